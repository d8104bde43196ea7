"""A metric's numbers: bounds and relations, and the fields written as ``{{args.*}}`` templates.

Argo resolves the arguments in the whole metric (``ResolveMetricArgs``, utils/analysis/factory.go:
the metric marshalled to JSON, every ``{{args.NAME}}`` replaced, unmarshalled again) before
``ValidateMetric`` checks it and ``generateMetricTasks`` / ``calculateNextReconcileTime``
(analysis/analysis.go) schedule it. So ``count``, ``failureLimit``, ``inconclusiveLimit``,
``consecutiveErrorLimit`` (``*intstrutil.IntOrString``), ``interval`` and ``initialDelay``
(``DurationString``) may each be a template such as ``"{{args.interval}}"``.

KULTA keeps such a field's text (``Metric.templated``) when the file is read and turns it into
its number here, once the values are known (``resolve_fields``): when the run starts, and
for ``kulta validate`` when the Rollout passes literal values. The rendered text must pass
the bounds a literal value passes (a whole number 0..2147483647, a duration KULTA reads,
an interval longer than 0s, nothing beyond Go's largest Duration) and the relations
between fields (``relation_problems``). Argo reads a count or limit that is not a number
as 0 (``IntOrString.IntValue``); KULTA refuses it by name instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace

from kulta.core.durations import DURATION_HELP, duration_seconds
from kulta.model.analysis import Metric, MetricField, WebMetricProvider

__all__ = [
    "LIMIT_FIELDS",
    "LIMIT_HELP",
    "MAX_DURATION_SECONDS",
    "MAX_LIMIT",
    "check_durations",
    "relation_problems",
    "rendered_value",
    "resolve_fields",
]

#: the longest interval, initialDelay or timeout: Go's largest ``time.Duration`` (2562047h47m16s) in
#: whole seconds. Argo parses these into a Duration, and ``ValidateMetric`` refuses what does not fit.
MAX_DURATION_SECONDS = 9_223_372_036
#: the largest count or limit: KULTA bounds them as Kubernetes' int32 fields.
MAX_LIMIT = 2_147_483_647
LIMIT_HELP = f"must be a whole number from 0 to {MAX_LIMIT}"
LIMIT_FIELDS = (
    MetricField.COUNT,
    MetricField.FAILURE_LIMIT,
    MetricField.INCONCLUSIVE_LIMIT,
    MetricField.CONSECUTIVE_ERROR_LIMIT,
)
#: a count or limit as text: ASCII digits (``str.isdigit`` also takes ``²``), at most 10.
_DIGIT_STRING = re.compile(r"[0-9]{1,10}")
_SHOWN_CHARACTERS = 60
_LONGEST = f"longer than {MAX_DURATION_SECONDS}s (2562047h47m16s), the largest duration Argo can hold"


def _timeout_field(metric: Metric) -> str:
    if isinstance(metric.provider, WebMetricProvider):
        return "provider.web.timeoutSeconds"
    return "provider.prometheus.timeout"


def check_durations(metric: Metric) -> list[tuple[str, str]]:
    """(field, problem) for each of ``interval``, ``initialDelay``, ``timeout`` beyond Go's largest Duration.

    Argo's ``ValidateMetric`` refuses an interval or initialDelay that
    ``DurationString.Duration()`` cannot parse, which includes every value above
    ``MAX_DURATION_SECONDS``; the run ends Error ("Analysis spec invalid").
    """
    problems: list[tuple[str, str]] = []
    for key, seconds in (
        (MetricField.INTERVAL.value, metric.interval_seconds),
        (MetricField.INITIAL_DELAY.value, metric.initial_delay_seconds),
        (_timeout_field(metric), metric.provider.timeout_seconds),
    ):
        if seconds is not None and seconds > MAX_DURATION_SECONDS:
            problems.append((key, f"is {_LONGEST}"))
    return problems


def relation_problems(
    count: int | None, *, interval_set: bool, failure_limit: int | None, inconclusive_limit: int | None
) -> list[tuple[str, str]]:
    """(field, problem) between the effective ``count`` and the fields it depends on (``None``: not known).

    Argo's ``ValidateMetric``: "interval must be specified when count > 1", "count must be >=
    failureLimit / inconclusiveLimit" (KULTA compares with the effective count, 1 without
    interval and count, where such a limit would make the metric unable to fail).
    """
    problems: list[tuple[str, str]] = []
    if count is None:
        return problems
    if count > 1 and not interval_set:
        problems.append((MetricField.INTERVAL.value, f"is required when count is {count}: add e.g. interval: 30s"))
    for field, limit in (
        (MetricField.FAILURE_LIMIT, failure_limit),
        (MetricField.INCONCLUSIVE_LIMIT, inconclusive_limit),
    ):
        if limit is not None and limit > count:
            problems.append(
                (field.value, f"{limit} is above count ({count}), so the metric could never fail: lower it")
            )
    return problems


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut to a readable length."""
    quoted = json.dumps(text[:_SHOWN_CHARACTERS])
    return quoted if len(text) <= _SHOWN_CHARACTERS else quoted[:-1] + '..."'


def _limit(text: str) -> int | None:
    stripped = text.strip()
    if not _DIGIT_STRING.fullmatch(stripped):
        return None
    value = int(stripped)
    return value if value <= MAX_LIMIT else None


def _unchanged(text: str) -> str:
    return text


def rendered_value(
    field: MetricField, template: str, text: str, redact: Callable[[str], str] = _unchanged
) -> tuple[int | None, str | None]:
    """(value, problem) of one templated ``field`` (written ``template``) whose rendered text is ``text``.

    ``redact`` hides secret values in ``text`` before it is cut for the message (a cut secret
    would no longer be found and replaced afterwards).

    ``(COUNT, "{{args.n}}", "-1")`` -> ``(None, 'is "-1" (from "{{args.n}}"): must be a whole number from 0 to
    2147483647')``; ``(INTERVAL, "{{args.i}}", "1m30s")`` -> ``(90, None)``.
    """
    where = f"is {_shown(redact(text))} (from {_shown(template)})"
    if field in LIMIT_FIELDS:
        value = _limit(text)
        return (value, None) if value is not None else (None, f"{where}: {LIMIT_HELP}")
    seconds = duration_seconds(text.strip())
    if seconds is None:
        return None, f"{where}: not a duration; {DURATION_HELP}"
    if field is MetricField.INTERVAL and seconds == 0:
        return None, f"{where}: must be longer than 0s"
    if seconds > MAX_DURATION_SECONDS:
        return None, f"{where}: {_LONGEST}"
    return seconds, None


def resolve_fields(
    metric: Metric, rendered: Mapping[MetricField, str], redact: Callable[[str], str] = _unchanged
) -> tuple[Metric, list[tuple[str, str]]]:
    """``metric`` with its templated fields set from their ``rendered`` texts, and the (field, problem) list.

    When the list is not empty the metric cannot run (Argo: "Analysis spec invalid", the run
    ends Error). ``rendered`` holds the text of every field in ``metric.templated``, its
    placeholders already replaced. Worked example: ``interval: "{{args.interval}}"`` rendered
    ``"5s"`` with ``count: 3`` gives ``interval_seconds=5, count=3``; ``count: "{{args.count}}"``
    rendered ``"0"`` without an interval gives the effective count 1, as a literal ``count: 0``.
    """
    if not metric.templated:
        return metric, []
    problems: list[tuple[str, str]] = []
    values: dict[MetricField, int] = {}
    for field, template in metric.templated:
        value, problem = rendered_value(field, template, rendered[field], redact)
        if problem is not None:
            problems.append((field.value, problem))
        elif value is not None:
            values[field] = value
    if problems:
        return metric, problems
    interval = values.get(MetricField.INTERVAL, metric.interval_seconds)
    count = metric.count
    if MetricField.COUNT in values:
        given = values[MetricField.COUNT]
        count = given if given else (None if interval is not None else 1)
    resolved = replace(
        metric,
        interval_seconds=interval,
        initial_delay_seconds=values.get(MetricField.INITIAL_DELAY, metric.initial_delay_seconds),
        count=count,
        failure_limit=values.get(MetricField.FAILURE_LIMIT, metric.failure_limit),
        inconclusive_limit=values.get(MetricField.INCONCLUSIVE_LIMIT, metric.inconclusive_limit),
        consecutive_error_limit=values.get(MetricField.CONSECUTIVE_ERROR_LIMIT, metric.consecutive_error_limit),
        templated=(),
    )
    problems += relation_problems(
        count,
        interval_set=interval is not None,
        failure_limit=resolved.failure_limit,
        inconclusive_limit=resolved.inconclusive_limit,
    )
    return resolved, problems
