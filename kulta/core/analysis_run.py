"""The analysis run engine: arguments, templating and scheduling, with no clock and no I/O.

KULTA's status is persisted as Pulumi stack outputs and the reconciler may be
restarted at any moment, so an analysis run cannot be a thread that sleeps
between queries. Instead it is a value (``AnalysisRunStatus``) and these pure
functions answer "which metrics are due *now*?" (``due_metrics``), "when should
I come back?" (``next_due_at``) and "what is the run's phase with these new
measurements?" (``record``). The caller passes ``now``; tests drive time by hand.

Arguments (``resolve_args``) and placeholders (``render``) live here too
because they decide what a query says, and a secret argument must be marked
as such from the moment it is read so it can be redacted everywhere after.

Placeholders: ``{{args.NAME}}`` plus the built-ins of ``builtin_values``:
``{{rollout.name}}``, ``{{rollout.namespace}}``, ``{{rollout.stableHash}}``,
``{{rollout.canaryHash}}``. Secret arguments (``valueFrom.secretKeyRef``) are
read from the environment variable ``KULTA_SECRET_<SECRET>_<KEY>`` (upper-cased,
every character other than A-Z and 0-9 replaced by ``_``); see
``secret_env_name``.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from kulta.core.assess import effective_count, explain_metric, explain_run
from kulta.core.conditions import ConditionError, check_cost, parse_condition
from kulta.core.metric_fields import MAX_DURATION_SECONDS, check_durations, resolve_fields
from kulta.core.times import format_time, parse_time
from kulta.errors import PermanentError, SpecError
from kulta.model.analysis import AnalysisTemplate, Metric, PrometheusMetricProvider, TemplateArg, WebMetricProvider
from kulta.model.rollout import AnalysisArg, ArgValueFrom, PodTemplateHashValue
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Measurement, MeasurementPhase
from kulta.redact import REDACTED, redact_text

__all__ = [
    "BUILTIN_CANARY_HASH",
    "BUILTIN_NAME",
    "BUILTIN_NAMESPACE",
    "BUILTIN_STABLE_HASH",
    "DEFAULT_ERROR_RETRY_SECONDS",
    "MAX_DURATION_SECONDS",
    "SECRET_ENV_PREFIX",
    "AnalysisSetupError",
    "RUN_TERMINATED",
    "ResolvedArgs",
    "TerminationReason",
    "WHOLE_ARG_PLACEHOLDER",
    "builtin_values",
    "check_durations",
    "check_template",
    "due_metrics",
    "failed_setup",
    "is_whole_url",
    "next_due_at",
    "record",
    "render",
    "render_metric",
    "render_url",
    "resolve_args",
    "secret_env_name",
    "start_run",
    "terminate_run",
]

log = logging.getLogger(__name__)

#: a metric without ``interval`` whose measurement errored is retried after this (Argo's value).
DEFAULT_ERROR_RETRY_SECONDS = 10
#: Argo's message for a run stopped from outside (``assessRunStatus``).
RUN_TERMINATED = "Run Terminated"
SECRET_ENV_PREFIX = "KULTA_SECRET_"  # noqa: S105 (a variable-name prefix, not a secret)
ARGS_PREFIX = "args."
BUILTIN_NAME = "rollout.name"
BUILTIN_NAMESPACE = "rollout.namespace"
BUILTIN_STABLE_HASH = "rollout.stableHash"
BUILTIN_CANARY_HASH = "rollout.canaryHash"
FIELD_REF_NAME = "metadata.name"
FIELD_REF_NAMESPACE = "metadata.namespace"

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
#: a value that is one ``{{args.NAME}}`` placeholder and nothing else (``fullmatch``).
WHOLE_ARG_PLACEHOLDER = re.compile(r"\s*\{\{\s*args\.[A-Za-z0-9_.-]+\s*\}\}\s*")
_URL_SCHEMES = ("http://", "https://")
#: what a whole-URL argument's value must look like once rendered: a scheme, then a host.
_WHOLE_URL = re.compile(r"https?://[^\s/?#]+([/?#][^\s]*)?")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


class AnalysisSetupError(PermanentError):
    """An analysis cannot start: a missing argument, template, secret or an invalid condition.

    The message names the argument, template or metric; it never contains a secret value.
    """


# --------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class ResolvedArgs:
    """Argument values by name; ``secret_names`` are the ones read from secrets."""

    values: Mapping[str, str] = field(default_factory=dict)
    secret_names: frozenset[str] = frozenset()

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(self.values[name] for name in sorted(self.secret_names) if self.values.get(name))

    def redact(self, text: str, extra: Sequence[str] = ()) -> str:
        """``text`` with every secret value (and ``extra`` literals) replaced by ``***``."""
        result = text
        for secret in sorted({*self.secret_values, *(e for e in extra if e)}, key=len, reverse=True):
            result = result.replace(secret, REDACTED)
        return redact_text(result)


def secret_env_name(secret: str, key: str) -> str:
    """The environment variable holding ``secretKeyRef {name: secret, key: key}``.

    ``("prometheus-auth", "token")`` -> ``KULTA_SECRET_PROMETHEUS_AUTH_TOKEN``.
    """
    return SECRET_ENV_PREFIX + _NOT_ALNUM.sub("_", f"{secret}_{key}".upper())


def _resolve_one(
    arg: TemplateArg | AnalysisArg,
    origin: str,
    *,
    stable_hash: str,
    canary_hash: str,
    rollout: str,
    namespace: str,
    environ: Mapping[str, str],
) -> tuple[str, bool]:
    """(value, is_secret) of one argument."""
    if arg.value is not None and arg.value_from is not None:
        raise AnalysisSetupError(f"argument {arg.name!r} ({origin}) sets both value and valueFrom; keep one")
    if arg.value is not None:
        return arg.value, False
    source: ArgValueFrom | None = arg.value_from
    if source is None:
        raise AnalysisSetupError(
            f"argument {arg.name!r} has no value: {origin} declares it without a default "
            "and the rollout's analysis does not pass it"
        )
    if source.pod_template_hash_value is PodTemplateHashValue.STABLE:
        return stable_hash, False
    if source.pod_template_hash_value is PodTemplateHashValue.LATEST:
        return canary_hash or stable_hash, False
    if source.field_ref is not None:
        if source.field_ref == FIELD_REF_NAME:
            return rollout, False
        if source.field_ref == FIELD_REF_NAMESPACE:
            return namespace, False
        raise AnalysisSetupError(
            f"argument {arg.name!r} ({origin}): fieldRef {source.field_ref!r} is not supported; "
            f"use {FIELD_REF_NAME!r} or {FIELD_REF_NAMESPACE!r}"
        )
    if source.secret_key_ref is not None:
        secret, key = source.secret_key_ref
        variable = secret_env_name(secret, key)
        if variable not in environ:
            raise AnalysisSetupError(
                f"argument {arg.name!r} ({origin}) reads secret {secret!r} key {key!r}: "
                f"set the environment variable {variable} for KULTA"
            )
        return environ[variable], True
    raise AnalysisSetupError(f"argument {arg.name!r} ({origin}) has an empty valueFrom")


def resolve_args(
    template_args: Sequence[TemplateArg],
    ref_args: Sequence[AnalysisArg],
    *,
    stable_hash: str,
    canary_hash: str,
    rollout: str,
    namespace: str,
    environ: Mapping[str, str],
) -> ResolvedArgs:
    """Every argument's value: the rollout's value wins over the template's default.

    Arguments the rollout passes but no template declares are kept (several
    templates share one argument list, as in Argo). Two templates declaring the
    same argument with different defaults is an error unless the rollout passes it.
    """
    chosen: dict[str, tuple[TemplateArg | AnalysisArg, str]] = {}
    passed = {a.name: a for a in ref_args}
    for targ in template_args:
        if targ.name in passed:
            continue
        previous = chosen.get(targ.name)
        if previous is not None:
            if not targ.has_default:
                continue  # a declaration without a default never replaces one with a default
            earlier = previous[0]
            had_default = earlier.value is not None or earlier.value_from is not None
            if had_default and (earlier.value, earlier.value_from) != (targ.value, targ.value_from):
                raise AnalysisSetupError(
                    f"argument {targ.name!r} is declared by several templates with different defaults; "
                    "pass it from the rollout's analysis args"
                )
        chosen[targ.name] = (targ, "the template")
    for rarg in ref_args:
        chosen[rarg.name] = (rarg, "the rollout")
    values: dict[str, str] = {}
    secrets: set[str] = set()
    for name, (arg, origin) in chosen.items():
        value, secret = _resolve_one(
            arg,
            origin,
            stable_hash=stable_hash,
            canary_hash=canary_hash,
            rollout=rollout,
            namespace=namespace,
            environ=environ,
        )
        values[name] = value
        if secret:
            secrets.add(name)
    return ResolvedArgs(values=values, secret_names=frozenset(secrets))


def builtin_values(*, rollout: str, namespace: str, stable_hash: str, canary_hash: str) -> dict[str, str]:
    """The ``{{rollout.*}}`` placeholders KULTA supplies to every template."""
    return {
        BUILTIN_NAME: rollout,
        BUILTIN_NAMESPACE: namespace,
        BUILTIN_STABLE_HASH: stable_hash,
        BUILTIN_CANARY_HASH: canary_hash,
    }


def render(
    text: str, args: ResolvedArgs, builtins: Mapping[str, str], quote: Callable[[str], str] | None = None
) -> str:
    """Replace ``{{args.NAME}}`` and ``{{rollout.*}}``; an unknown placeholder is an error.

    ``quote`` (e.g. percent-encoding for a URL) is applied to each substituted value.
    """

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.startswith(ARGS_PREFIX) and key[len(ARGS_PREFIX) :] in args.values:
            value = args.values[key[len(ARGS_PREFIX) :]]
            return quote(value) if quote is not None else value
        if key in builtins:
            return quote(builtins[key]) if quote is not None else builtins[key]
        known = sorted([*(ARGS_PREFIX + n for n in args.values), *builtins])
        raise AnalysisSetupError(f"placeholder {{{{{key}}}}} is not defined; known: {', '.join(known)}")

    return _PLACEHOLDER.sub(substitute, text)


# --------------------------------------------------------------------------- templates


def _condition_problem(expr: str) -> str | None:
    """Why a (rendered) condition cannot run: it does not parse, or is over the evaluation budget."""
    try:
        check_cost(parse_condition(expr))
    except ConditionError as err:
        return str(err)
    return None


def check_template(template: AnalysisTemplate) -> list[SpecError]:
    """Problems visible in a template file alone, for ``kulta validate``.

    Duplicate metric names; conditions that do not parse or whose worst case
    (``conditions.check_cost``: a result of ``VALIDATE_SERIES`` series) is over
    the evaluation budget; an interval, initialDelay or timeout longer than Go's
    largest Duration. Conditions holding ``{{...}}`` placeholders are checked
    after rendering, when the run starts (``render_metric``).
    """
    problems: list[SpecError] = []
    seen: set[str] = set()

    def add(path: str, message: str) -> None:
        problems.append(SpecError(template.source.file, template.source.document, path, message))

    for i, metric in enumerate(template.metrics):
        where = f"spec.metrics[{i}]"
        if metric.name in seen:
            add(f"{where}.name", f"{metric.name!r} is repeated")
        seen.add(metric.name)
        for key, expr in (
            ("successCondition", metric.success_condition),
            ("failureCondition", metric.failure_condition),
        ):
            if not expr or _PLACEHOLDER.search(expr):
                continue
            problem = _condition_problem(expr)
            if problem is not None:
                add(f"{where}.{key}", problem)
        for key, problem in check_durations(metric):
            add(f"{where}.{key}", problem)
    return problems


# --------------------------------------------------------------------------- scheduling


def start_run(name: str, *, step_index: int | None, now: datetime) -> AnalysisRunStatus:
    """A new, Running run with no measurements."""
    return AnalysisRunStatus(name=name, phase=AnalysisPhase.RUNNING, step_index=step_index, started_at=format_time(now))


def _metric_measurements(run: AnalysisRunStatus, metric: Metric) -> list[Measurement]:
    return [m for m in run.measurements if m.metric == metric.name]


#: later than any measurement can be due (``datetime.max`` in UTC).
_NEVER = datetime.max.replace(tzinfo=UTC)


def _after(moment: datetime, seconds: int) -> datetime:
    """``moment`` + ``seconds``, saturating at ``_NEVER`` instead of raising OverflowError.

    Durations are bounded when a run starts (``check_durations``), but the
    scheduler is also asked about templates as they are in Git right now.
    """
    try:
        return moment + timedelta(seconds=min(seconds, MAX_DURATION_SECONDS))
    except OverflowError:
        return _NEVER


def _next_measurement_at(run: AnalysisRunStatus, metric: Metric, started: datetime) -> datetime | None:
    """When ``metric`` should next be measured; None once it is complete."""
    if explain_metric(metric, run.measurements)[0].completed:
        return None
    taken = _metric_measurements(run, metric)
    if not taken:
        return _after(started, metric.initial_delay_seconds)
    last = taken[-1]
    interval = metric.interval_seconds
    if interval is None:
        if last.phase is not MeasurementPhase.ERROR:
            # single-measurement metric already counted: complete (explain_metric said so)
            wanted = effective_count(metric)
            log.warning("metric %s has no interval and count %s but is not complete", metric.name, wanted)
            return None
        interval = DEFAULT_ERROR_RETRY_SECONDS
    return _after(parse_time(last.finished_at or last.started_at), interval)


def _started(run: AnalysisRunStatus, now: datetime) -> datetime:
    return parse_time(run.started_at) if run.started_at else now


def due_metrics(run: AnalysisRunStatus, metrics: Sequence[Metric], now: datetime) -> tuple[Metric, ...]:
    """Metrics whose next measurement is due at ``now`` (initialDelay, interval and count respected)."""
    if run.phase.completed:
        return ()
    started = _started(run, now)
    due: list[Metric] = []
    for metric in metrics:
        at = _next_measurement_at(run, metric, started)
        if at is not None and at <= now:
            due.append(metric)
    return tuple(due)


def next_due_at(run: AnalysisRunStatus, metrics: Sequence[Metric], now: datetime) -> datetime | None:
    """The earliest time a measurement is due (may be <= now: due already); None when the run is complete."""
    if run.phase.completed:
        return None
    started = _started(run, now)
    times = [at for metric in metrics if (at := _next_measurement_at(run, metric, started)) is not None]
    return min(times) if times else None


def record(run: AnalysisRunStatus, metrics: Sequence[Metric], measurements: Sequence[Measurement]) -> AnalysisRunStatus:
    """Append ``measurements`` and re-assess the run's phase and message.

    A completed run is returned unchanged: its verdict is final.
    """
    if run.phase.completed:
        if measurements:
            log.warning(
                "analysis run %s is already %s; %d measurements ignored", run.name, run.phase.value, len(measurements)
            )
        return run
    combined = (*run.measurements, *measurements)
    phase, message = explain_run(metrics, combined)
    if phase is not run.phase:
        log.info("analysis run %s: %s -> %s (%s)", run.name, run.phase.value, phase.value, message)
    return replace(run, measurements=combined, phase=phase, message=message)


class TerminationReason(enum.Enum):
    """Why a run is stopped from outside; Argo cancels a rollout's runs in these cases
    (``reconcileAnalysisRuns`` / ``cancelAnalysisRuns`` in rollout/analysis.go)."""

    PROMOTED = "rollout promoted"
    ABORTED = "rollout aborted"
    STEP_LEFT = "the rollout left the analysis step"


def terminate_run(run: AnalysisRunStatus, reason: TerminationReason) -> AnalysisRunStatus:
    """Stop a run from outside (promotion, abort, a step left): its final phase and message.

    Argo sets ``spec.terminate`` on the AnalysisRun (``cancelAnalysisRuns``) and
    the run's next assessment decides the phase (``assessRunStatus`` with
    ``IsTerminating``; ``assessMetricStatus`` with ``terminating``): a metric
    that crossed a limit keeps Failed/Error/Inconclusive, every other metric
    (never measured, count not reached, or measured "until stopped") ends
    Successful, and the run message is "Run Terminated" unless a limit was
    crossed. A run KULTA still has Running has no binding metric past a limit
    (``record`` would have ended it), and dry-run metrics never count, so such a
    run ends **Successful** with the message ``Run Terminated: <reason>``. A
    completed run is returned unchanged: a background run that already Failed
    keeps Failed. No metric definitions are needed, and no measurement is taken.
    """
    if run.phase.completed:
        return run
    message = f"{RUN_TERMINATED}: {reason.value}"
    log.info("analysis run %s: %s -> %s (%s)", run.name, run.phase.value, AnalysisPhase.SUCCESSFUL.value, message)
    return replace(run, phase=AnalysisPhase.SUCCESSFUL, message=message)


def failed_setup(run: AnalysisRunStatus, error: AnalysisSetupError) -> AnalysisRunStatus:
    """The run ends Error because it could not be set up (the rollout aborts, never promotes)."""
    return replace(run, phase=AnalysisPhase.ERROR, message=f"analysis cannot run: {error}")


def _url_quote(value: str) -> str:
    """A placeholder's value as it goes into a URL: every reserved character percent-encoded,
    so an argument can never add a path segment, a query parameter or a fragment."""
    return quote(value, safe="")


def is_whole_url(value: str) -> bool:
    """Whether ``value`` can be a web metric's whole URL: ``http://`` or ``https://``, a host, no spaces."""
    return value.startswith(_URL_SCHEMES) and _WHOLE_URL.fullmatch(value) is not None


def render_url(url: str, args: ResolvedArgs, builtins: Mapping[str, str]) -> str:
    """``url`` with placeholders replaced by their percent-encoded values (``urllib.parse.quote``).

    A URL that is one ``{{args.NAME}}`` as a whole (Argo's ``url: "{{args.secret-url}}"``, the
    URL kept in a Secret) is that argument's value, which must then be a whole ``http://`` or
    ``https://`` URL with a host; else AnalysisSetupError naming the field, never the value
    (it may be a secret).
    """
    if not WHOLE_ARG_PLACEHOLDER.fullmatch(url):
        return render(url, args, builtins, quote=_url_quote)
    value = render(url.strip(), args, builtins)
    if not is_whole_url(value):
        raise AnalysisSetupError(
            f"provider.web.url {url.strip()!r}: the argument's value is not an http:// or https:// URL "
            "with a host (a URL given as one argument must be the whole URL)"
        )
    return value


def _render_json(value: object, args: ResolvedArgs, builtins: Mapping[str, str]) -> object:
    """Placeholders replaced inside every string (keys too) of a decoded JSON document:
    a value stays a JSON string, so it can never change the document's structure."""
    if isinstance(value, str):
        return render(value, args, builtins)
    if isinstance(value, list):
        return [_render_json(item, args, builtins) for item in value]
    if isinstance(value, dict):
        return {render(k, args, builtins): _render_json(v, args, builtins) for k, v in value.items()}
    return value


def _render_provider(
    provider: PrometheusMetricProvider | WebMetricProvider, args: ResolvedArgs, builtins: Mapping[str, str]
) -> PrometheusMetricProvider | WebMetricProvider:
    headers = tuple((name, render(value, args, builtins)) for name, value in provider.headers)
    if isinstance(provider, PrometheusMetricProvider):
        return replace(
            provider,
            address=render(provider.address, args, builtins),
            query=render(provider.query, args, builtins),
            headers=headers,
        )
    json_body = provider.json_body
    if json_body is not None:
        json_body = json.dumps(_render_json(json.loads(json_body), args, builtins), separators=(",", ":"))
    return replace(
        provider,
        url=render_url(provider.url, args, builtins),
        headers=headers,
        body=None if provider.body is None else render(provider.body, args, builtins),
        json_body=json_body,
    )


def render_metric(metric: Metric, args: ResolvedArgs, builtins: Mapping[str, str]) -> Metric:
    """``metric`` with every placeholder rendered (address, query, URL, headers, bodies, conditions,
    and the templated count, limits, interval and initialDelay).

    Values substituted into a web metric's URL are percent-encoded (``render_url``); in
    ``jsonBody`` they are substituted inside JSON strings only (``_render_json``).
    AnalysisSetupError (the run ends Error) for a templated field whose rendered text is out
    of its bounds (``metric_fields.resolve_fields``), a duration beyond ``MAX_DURATION_SECONDS``
    or a rendered condition that does not parse or is over the evaluation budget.
    """
    rendered_provider = _render_provider(metric.provider, args, builtins)

    texts = {field: render(template, args, builtins) for field, template in metric.templated}
    metric, problems = resolve_fields(metric, texts, args.redact)
    problems += check_durations(metric)
    if problems:
        key, problem = problems[0]
        raise AnalysisSetupError(f"metric {metric.name!r}: {key} {args.redact(problem)}")

    def checked(expr: str | None) -> str | None:
        if not expr:
            return expr
        rendered = render(expr, args, builtins)
        problem = _condition_problem(rendered)
        if problem is not None:
            raise AnalysisSetupError(f"metric {metric.name!r}: {args.redact(problem)}")
        return rendered

    return replace(
        metric,
        provider=rendered_provider,
        success_condition=checked(metric.success_condition),
        failure_condition=checked(metric.failure_condition),
    )
