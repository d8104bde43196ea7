"""``{{args.*}}`` in a metric's count, limits, interval and initialDelay (Argo's ``ResolveMetricArgs``).

The worked examples are Argo's own e2e templates (argoproj/argo-rollouts
test/e2e/functional/rollout-secret.yaml and rollout-secret-withArgs.yaml: ``count:
"{{args.analysis-runs}}"``, ``interval: "{{args.analysis-interval}}"``, ``failureLimit:
"{{args.failure-limit}}"``) and Go's largest Duration, 2562047h47m16s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kulta.adapters.analysis_runner import run_metrics
from kulta.core.analysis_run import (
    AnalysisSetupError,
    ResolvedArgs,
    due_metrics,
    next_due_at,
    record,
    render_metric,
    start_run,
)
from kulta.core.metric_fields import resolve_fields
from kulta.core.times import format_time
from kulta.model.analysis import Metric, MetricField, PrometheusMetricProvider
from kulta.model.rollout import AnalysisArg, AnalysisRef, AnalysisTemplateRef
from kulta.model.status import Measurement, MeasurementPhase
from kulta.spec import load_paths
from tests.unit.spec_helpers import base_rollout, load, template_doc

M0 = "spec.metrics[0]"
HELP = "must be a whole number from 0 to 2147483647"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def argo_metric(**changes: Any) -> dict[str, Any]:
    """The metric of Argo's analysis-secret template, with a Prometheus provider."""
    metric: dict[str, Any] = {
        "name": "webmetric",
        "count": "{{args.analysis-runs}}",
        "interval": "{{args.analysis-interval}}",
        "failureLimit": "{{args.failure-limit}}",
        "successCondition": "result[0] == 1",
        "provider": {"prometheus": {"address": "http://127.0.0.1:9090", "query": "vector(1)"}},
    }
    metric.update(changes)
    return metric


#: Argo's analysis-secret defaults (rollout-secret.yaml)
ARGO_ARGS = [
    {"name": "analysis-interval", "value": "5s"},
    {"name": "analysis-runs", "value": "2"},
    {"name": "failure-limit", "value": "1"},
    {"name": "inconclusive-limit", "value": "1"},
]


def parsed(metric: dict[str, Any], args: list[dict[str, Any]] | None = None) -> Metric:
    result = load(template_doc(metrics=[metric], args=ARGO_ARGS if args is None else args))
    assert [str(e) for e in result.errors] == []
    return result.templates[0].metrics[0]


def declared(*names: str) -> list[dict[str, Any]]:
    return [{"name": name} for name in names]


def render(metric: Metric, **values: str) -> Metric:
    return render_metric(metric, ResolvedArgs(values=values), {})


def test_the_template_keeps_the_templated_fields_as_written() -> None:
    metric = parsed(argo_metric(initialDelay="{{args.analysis-interval}}"))
    assert dict(metric.templated) == {
        MetricField.COUNT: "{{args.analysis-runs}}",
        MetricField.INTERVAL: "{{args.analysis-interval}}",
        MetricField.INITIAL_DELAY: "{{args.analysis-interval}}",
        MetricField.FAILURE_LIMIT: "{{args.failure-limit}}",
    }


def test_argo_rollout_secret_defaults_render_to_count_2_every_5s_failure_limit_1() -> None:
    metric = render(parsed(argo_metric()), **{"analysis-runs": "2", "analysis-interval": "5s", "failure-limit": "1"})
    assert (metric.count, metric.interval_seconds, metric.failure_limit, metric.templated) == (2, 5, 1, ())


def test_argo_rollout_secret_with_args_values_from_the_rollout_win() -> None:
    """rollout-secret-withArgs.yaml: the template says 10 runs every 100s, the Rollout 3 every 5s."""
    result = load(
        template_doc(
            metrics=[argo_metric(initialDelay="{{args.analysis-interval}}")],
            args=[
                {"name": "analysis-interval", "value": "100s"},
                {"name": "analysis-runs", "value": "10"},
                {"name": "failure-limit"},
            ],
        )
    )
    ref = AnalysisRef(
        templates=(AnalysisTemplateRef(name="success-rate"),),
        args=(
            AnalysisArg(name="failure-limit", value="2"),
            AnalysisArg(name="analysis-interval", value="5s"),
            AnalysisArg(name="analysis-runs", value="3"),
        ),
    )
    metrics, _ = run_metrics(
        result.templates, ref, stable_hash="a", canary_hash="b", rollout="web", namespace="shop", environ={}
    )
    (metric,) = metrics
    assert (metric.count, metric.interval_seconds, metric.initial_delay_seconds, metric.failure_limit) == (3, 5, 5, 2)


@pytest.mark.parametrize(
    ("fields", "rendered", "expected"),
    [
        # (count, interval, initialDelay, failureLimit, inconclusiveLimit, consecutiveErrorLimit)
        ({"interval": "{{args.i}}"}, {"i": "1h30m"}, (None, 5400, 0, 0, 0, 4)),
        ({"initialDelay": "{{args.d}}", "interval": "10s"}, {"d": "90"}, (None, 10, 90, 0, 0, 4)),
        ({"count": "{{args.n}}"}, {"n": "0"}, (1, None, 0, 0, 0, 4)),  # Argo's EffectiveCount: 1 without interval
        ({"count": "{{args.n}}", "interval": "{{args.i}}"}, {"n": "0", "i": "30s"}, (None, 30, 0, 0, 0, 4)),
        ({"count": "{{args.n}}", "interval": "5s"}, {"n": " 7 "}, (7, 5, 0, 0, 0, 4)),
        ({"count": 4, "interval": "5s", "inconclusiveLimit": "{{args.l}}"}, {"l": "4"}, (4, 5, 0, 0, 4, 4)),
        ({"consecutiveErrorLimit": "{{args.e}}"}, {"e": "0"}, (1, None, 0, 0, 0, 0)),
        ({"count": "{{args.n}}", "interval": "5s"}, {"n": "2147483647"}, (2147483647, 5, 0, 0, 0, 4)),
    ],
)
def test_rendered_values(fields: dict[str, Any], rendered: dict[str, str], expected: tuple[Any, ...]) -> None:
    metric = render(
        parsed({"name": "m", **fields, "provider": argo_metric()["provider"]}, declared(*rendered)), **rendered
    )
    got = (
        metric.count,
        metric.interval_seconds,
        metric.initial_delay_seconds,
        metric.failure_limit,
        metric.inconclusive_limit,
        metric.consecutive_error_limit,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("fields", "rendered", "message"),
    [
        ({"count": "{{args.n}}", "interval": "5s"}, {"n": "-1"}, f'count is "-1" (from "{{{{args.n}}}}"): {HELP}'),
        (
            {"count": "{{args.n}}", "interval": "5s"},
            {"n": "2147483648"},
            f'count is "2147483648" (from "{{{{args.n}}}}"): {HELP}',
        ),
        (
            {"failureLimit": "{{args.n}}"},
            {"n": "9" * 5000},
            f'failureLimit is "{"9" * 60}..." (from "{{{{args.n}}}}"): {HELP}',
        ),
        (
            {"consecutiveErrorLimit": "{{args.n}}"},
            {"n": "four"},
            f'consecutiveErrorLimit is "four" (from "{{{{args.n}}}}"): {HELP}',
        ),
        (
            {"inconclusiveLimit": "{{args.n}}"},
            {"n": "1.5"},
            f'inconclusiveLimit is "1.5" (from "{{{{args.n}}}}"): {HELP}',
        ),
        ({"interval": "{{args.i}}"}, {"i": "0s"}, 'interval is "0s" (from "{{args.i}}"): must be longer than 0s'),
        (
            {"interval": "{{args.i}}"},
            {"i": "soon"},
            'interval is "soon" (from "{{args.i}}"): not a duration; '
            "use whole seconds (90) or a duration like 30s, 5m, 1h, 1h30m",
        ),
        (
            {"interval": "{{args.i}}s"},
            {"i": ""},
            'interval is "s" (from "{{args.i}}s"): not a duration; '
            "use whole seconds (90) or a duration like 30s, 5m, 1h, 1h30m",
        ),
        (
            {"initialDelay": "{{args.d}}"},
            {"d": "2562047h47m17s"},
            'initialDelay is "2562047h47m17s" (from "{{args.d}}"): longer than 9223372036s (2562047h47m16s), '
            "the largest duration Argo can hold",
        ),
        (
            {"count": "{{args.n}}"},
            {"n": "5"},
            "interval is required when count is 5: add e.g. interval: 30s",
        ),
        (
            {"count": 2, "interval": "5s", "failureLimit": "{{args.n}}"},
            {"n": "3"},
            "failureLimit 3 is above count (2), so the metric could never fail: lower it",
        ),
        (
            {"count": "{{args.n}}", "interval": "5s", "inconclusiveLimit": 3},
            {"n": "2"},
            "inconclusiveLimit 3 is above count (2), so the metric could never fail: lower it",
        ),
    ],
)
def test_rendered_values_out_of_bounds_end_the_run_with_the_field_named(
    fields: dict[str, Any], rendered: dict[str, str], message: str
) -> None:
    metric = parsed({"name": "m", **fields, "provider": argo_metric()["provider"]}, declared("n", "i", "d"))
    with pytest.raises(AnalysisSetupError) as caught:
        render(metric, **rendered)
    assert str(caught.value) == f"metric 'm': {message}"


def test_a_secret_value_in_a_templated_field_is_redacted_in_the_error() -> None:
    metric = parsed(argo_metric(), declared("analysis-runs", "analysis-interval", "failure-limit"))
    args = ResolvedArgs(
        values={"analysis-runs": "hunter2", "analysis-interval": "5s", "failure-limit": "1"},
        secret_names=frozenset({"analysis-runs"}),
    )
    with pytest.raises(AnalysisSetupError) as caught:
        render_metric(metric, args, {})
    assert "hunter2" not in str(caught.value)
    assert str(caught.value) == f'metric \'webmetric\': count is "***" (from "{{{{args.analysis-runs}}}}"): {HELP}'


def test_a_metric_without_templated_fields_is_unchanged() -> None:
    metric = Metric(name="m", provider=PrometheusMetricProvider(address="http://p", query="q"), interval_seconds=5)
    assert resolve_fields(metric, {}) == (metric, [])


def test_scheduling_uses_the_rendered_interval_and_count() -> None:
    """Rendered "7s" and "2": due at start, then 7s after the first finished, then complete."""
    metric = render(parsed(argo_metric()), **{"analysis-runs": "2", "analysis-interval": "7s", "failure-limit": "0"})
    run = start_run("r", step_index=1, now=T0)
    assert due_metrics(run, [metric], T0) == (metric,)
    first = Measurement(
        metric="webmetric",
        phase=MeasurementPhase.SUCCESSFUL,
        started_at=format_time(T0),
        finished_at=format_time(T0 + timedelta(seconds=1)),
        value="[1]",
    )
    run = record(run, [metric], [first])
    assert next_due_at(run, [metric], T0 + timedelta(seconds=1)) == T0 + timedelta(seconds=8)
    assert due_metrics(run, [metric], T0 + timedelta(seconds=7)) == ()
    assert due_metrics(run, [metric], T0 + timedelta(seconds=8)) == (metric,)
    second = Measurement(
        metric="webmetric",
        phase=MeasurementPhase.SUCCESSFUL,
        started_at=format_time(T0 + timedelta(seconds=8)),
        finished_at=format_time(T0 + timedelta(seconds=9)),
        value="[1]",
    )
    run = record(run, [metric], [second])
    assert run.phase.completed
    assert next_due_at(run, [metric], T0 + timedelta(seconds=9)) is None


# --------------------------------------------------------------------------- kulta validate


def rollout_with(args: list[dict[str, Any]]) -> dict[str, Any]:
    return base_rollout(
        strategy={
            "canary": {
                "steps": [
                    {"setWeight": 20},
                    {"analysis": {"templates": [{"templateName": "success-rate"}], "args": args}},
                ]
            }
        }
    )


WHERE = 'metric "webmetric" in template "success-rate" (rollouts/web.yaml#1 spec.metrics[0])'
STEP = "rollouts/web.yaml#2 spec.strategy.canary.steps[1].analysis.args"


def test_validate_checks_templated_fields_with_the_rollouts_literal_values() -> None:
    result = load(
        template_doc(metrics=[argo_metric()], args=ARGO_ARGS),
        rollout_with([{"name": "analysis-runs", "value": "-2"}, {"name": "analysis-interval", "value": "0s"}]),
    )
    assert [str(e) for e in result.errors] == [
        f'{STEP}: with these arguments, count of {WHERE} is "-2" (from "{{{{args.analysis-runs}}}}"): {HELP}',
        f'{STEP}: with these arguments, interval of {WHERE} is "0s" (from "{{{{args.analysis-interval}}}}"): '
        "must be longer than 0s",
    ]


def test_validate_checks_the_relations_once_every_value_is_known() -> None:
    result = load(
        template_doc(metrics=[argo_metric()], args=ARGO_ARGS),
        rollout_with([{"name": "failure-limit", "value": "3"}]),
    )
    assert [str(e) for e in result.errors] == [
        f"{STEP}: with these arguments, failureLimit of {WHERE} 3 is above count (2), "
        "so the metric could never fail: lower it"
    ]


def test_validate_says_what_it_could_not_check_when_a_value_comes_from_value_from() -> None:
    result = load(
        template_doc(metrics=[argo_metric()], args=ARGO_ARGS),
        rollout_with(
            [
                {"name": "analysis-interval", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "analysis-runs", "value": "x"},
            ]
        ),
    )
    assert [str(e) for e in result.errors] == [
        f'{STEP}: with these arguments, count of {WHERE} is "x" (from "{{{{args.analysis-runs}}}}"): {HELP}'
    ]
    assert [str(w) for w in result.warnings] == [
        f'{STEP}: interval of {WHERE} is "{{{{args.analysis-interval}}}}": not checked here because '
        "{{args.analysis-interval}} is only known when the run starts (valueFrom); "
        "the run ends Error if the value is out of bounds"
    ]


def test_valid_literal_values_give_no_error_and_no_warning() -> None:
    result = load(template_doc(metrics=[argo_metric()], args=ARGO_ARGS), rollout_with([]))
    assert ([str(e) for e in result.errors], [str(w) for w in result.warnings]) == ([], [])


def test_an_undeclared_argument_in_a_templated_field_is_an_error_of_the_template() -> None:
    result = load(template_doc(metrics=[argo_metric(interval="{{args.every}}")], args=ARGO_ARGS))
    assert [str(e) for e in result.errors] == [
        f'rollouts/web.yaml#1 {M0}.interval: uses {{{{args.every}}}} but the template declares no argument "every": '
        "add it to spec.args"
    ]


def test_the_example_file_renders_one_template_at_two_paces() -> None:
    """examples/analysis-templated-pace.yaml: step 1 measures 3 times 5s apart with no failure
    allowed; step 3 12 times a minute apart with the template's failureLimit 1."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    result = load_paths([examples / "analysis-templated-pace.yaml"], base=examples)
    assert ([str(e) for e in result.errors], [str(w) for w in result.warnings]) == ([], [])
    (rollout,) = result.rollouts
    paces = []
    for index in (1, 3):
        ref = rollout.spec.strategy.steps[index].analysis
        assert ref is not None
        (metric,), _ = run_metrics(
            result.templates,
            ref,
            stable_hash="s",
            canary_hash="c",
            rollout="checkout",
            namespace="checkout",
            environ={},
        )
        paces.append((metric.count, metric.interval_seconds, metric.failure_limit))
    assert paces == [(3, 5, 0), (12, 60, 1)]


def test_a_long_secret_value_is_redacted_before_it_is_cut_for_the_message() -> None:
    secret = "s3cr3t-" * 20  # 140 characters: a cut of it would not be found by the redaction
    metric = parsed(argo_metric(), declared("analysis-runs", "analysis-interval", "failure-limit"))
    args = ResolvedArgs(
        values={"analysis-runs": "2", "analysis-interval": secret, "failure-limit": "1"},
        secret_names=frozenset({"analysis-interval"}),
    )
    with pytest.raises(AnalysisSetupError) as caught:
        render_metric(metric, args, {})
    assert "s3cr3t" not in str(caught.value)
    assert str(caught.value).startswith('metric \'webmetric\': interval is "***" (from "{{args.analysis-interval}}")')
