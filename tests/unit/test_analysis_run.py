"""The pure run engine: arguments, placeholders, secrets, scheduling by a hand-driven clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kulta.adapters.analysis_runner import advance_analysis
from kulta.core.analysis_run import (
    DEFAULT_ERROR_RETRY_SECONDS,
    MAX_DURATION_SECONDS,
    AnalysisSetupError,
    ResolvedArgs,
    TerminationReason,
    builtin_values,
    check_template,
    due_metrics,
    failed_setup,
    next_due_at,
    record,
    render,
    resolve_args,
    secret_env_name,
    start_run,
    terminate_run,
)
from kulta.core.times import format_time, parse_time
from kulta.errors import PermanentError
from kulta.model.analysis import AnalysisTemplate, Metric, PrometheusMetricProvider, TemplateArg
from kulta.model.rollout import (
    AnalysisArg,
    AnalysisRef,
    AnalysisTemplateRef,
    ArgValueFrom,
    PodTemplateHashValue,
    SourceRef,
)
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Measurement, MeasurementPhase

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PROVIDER = PrometheusMetricProvider(address="http://prom:9090", query="up")
CONTEXT = {"stable_hash": "aaa111", "canary_hash": "bbb222", "rollout": "web", "namespace": "shop"}


def metric(name: str = "m", **kwargs: object) -> Metric:
    return Metric(name=name, provider=PROVIDER, **kwargs)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def took(name: str, phase: MeasurementPhase, seconds: float) -> Measurement:
    return Measurement(
        metric=name, phase=phase, started_at=format_time(at(seconds)), finished_at=format_time(at(seconds))
    )


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (T0, "2026-03-01T12:00:00Z"),
        (T0 + timedelta(milliseconds=250), "2026-03-01T12:00:00.250Z"),
        (datetime(2026, 3, 1, 14, 0, tzinfo=UTC).astimezone(), "2026-03-01T14:00:00Z"),
    ],
)
def test_times_are_rfc3339_utc(moment: datetime, text: str) -> None:
    assert format_time(moment) == text
    assert parse_time(text) == moment


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))


# --------------------------------------------------------------------------- arguments


def resolve(
    template_args: list[TemplateArg], ref_args: list[AnalysisArg], environ: Mapping[str, str] | None = None
) -> ResolvedArgs:
    return resolve_args(template_args, ref_args, environ=environ or {}, **CONTEXT)


def test_defaults_and_rollout_values() -> None:
    args = resolve(
        [TemplateArg("service", value="web-canary"), TemplateArg("threshold", value="0.95"), TemplateArg("window")],
        [AnalysisArg("window", value="5m"), AnalysisArg("threshold", value="0.99")],
    )
    assert dict(args.values) == {"service": "web-canary", "threshold": "0.99", "window": "5m"}
    assert args.secret_names == frozenset()


@pytest.mark.parametrize(
    ("value_from", "expected"),
    [
        (ArgValueFrom(pod_template_hash_value=PodTemplateHashValue.STABLE), "aaa111"),
        (ArgValueFrom(pod_template_hash_value=PodTemplateHashValue.LATEST), "bbb222"),
        (ArgValueFrom(field_ref="metadata.name"), "web"),
        (ArgValueFrom(field_ref="metadata.namespace"), "shop"),
    ],
)
def test_value_from_supplied_by_kulta(value_from: ArgValueFrom, expected: str) -> None:
    from_rollout = resolve([TemplateArg("h")], [AnalysisArg("h", value_from=value_from)])
    as_default = resolve([TemplateArg("h", value_from=value_from)], [])
    assert from_rollout.values["h"] == as_default.values["h"] == expected


def test_latest_hash_is_the_stable_one_when_no_canary_exists() -> None:
    args = resolve_args(
        [TemplateArg("h", value_from=ArgValueFrom(pod_template_hash_value=PodTemplateHashValue.LATEST))],
        [],
        stable_hash="aaa111",
        canary_hash="",
        rollout="web",
        namespace="shop",
        environ={},
    )
    assert args.values["h"] == "aaa111"


@pytest.mark.parametrize(
    ("secret", "key", "variable"),
    [
        ("prometheus-auth", "token", "KULTA_SECRET_PROMETHEUS_AUTH_TOKEN"),
        ("prom.auth", "api-key", "KULTA_SECRET_PROM_AUTH_API_KEY"),
        ("Grafana", "Bearer_1", "KULTA_SECRET_GRAFANA_BEARER_1"),
    ],
)
def test_secret_env_name_convention(secret: str, key: str, variable: str) -> None:
    assert secret_env_name(secret, key) == variable


def test_secret_args_come_from_the_environment_and_are_marked() -> None:
    ref = ArgValueFrom(secret_key_ref=("prometheus-auth", "token"))
    args = resolve([TemplateArg("token", value_from=ref)], [], {"KULTA_SECRET_PROMETHEUS_AUTH_TOKEN": "s3cr3t-value"})
    assert args.values["token"] == "s3cr3t-value"
    assert args.secret_names == frozenset({"token"})
    assert args.redact("401 for Bearer s3cr3t-value at http://prom") == "401 for Bearer *** at http://prom"
    # short secrets are redacted too (the generic redactor skips them)
    short = resolve([TemplateArg("t", value_from=ref)], [], {"KULTA_SECRET_PROMETHEUS_AUTH_TOKEN": "ab"})
    assert short.redact("key=ab!") == "key=***!"


def test_missing_secret_names_the_variable_not_a_value() -> None:
    ref = ArgValueFrom(secret_key_ref=("prometheus-auth", "token"))
    with pytest.raises(AnalysisSetupError) as caught:
        resolve([TemplateArg("token", value_from=ref)], [], {"OTHER": "x"})
    assert "KULTA_SECRET_PROMETHEUS_AUTH_TOKEN" in str(caught.value)
    assert "'token'" in str(caught.value)
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize(
    ("template_args", "ref_args", "fragment"),
    [
        ([TemplateArg("service")], [], "argument 'service' has no value: the template declares it without a default"),
        (
            [TemplateArg("a", value="1", value_from=ArgValueFrom(field_ref="metadata.name"))],
            [],
            "sets both value and valueFrom",
        ),
        ([TemplateArg("a", value_from=ArgValueFrom(field_ref="metadata.labels['x']"))], [], "is not supported"),
        ([TemplateArg("a", value_from=ArgValueFrom())], [], "empty valueFrom"),
        ([TemplateArg("a", value="1"), TemplateArg("a", value="2")], [], "several templates with different defaults"),
    ],
)
def test_argument_errors(template_args: list[TemplateArg], ref_args: list[AnalysisArg], fragment: str) -> None:
    with pytest.raises(AnalysisSetupError) as caught:
        resolve(template_args, ref_args)
    assert fragment in str(caught.value)


def test_a_declaration_without_default_does_not_conflict() -> None:
    assert resolve([TemplateArg("a", value="1"), TemplateArg("a")], []).values["a"] == "1"
    assert resolve([TemplateArg("a"), TemplateArg("a", value="2")], []).values["a"] == "2"
    assert resolve([TemplateArg("a", value="1"), TemplateArg("a", value="1")], []).values["a"] == "1"


def test_conflicting_defaults_are_fine_when_the_rollout_passes_the_value() -> None:
    args = resolve([TemplateArg("a", value="1"), TemplateArg("a", value="2")], [AnalysisArg("a", value="3")])
    assert args.values["a"] == "3"


# --------------------------------------------------------------------------- placeholders

BUILTINS = builtin_values(rollout="web", namespace="shop", stable_hash="aaa111", canary_hash="bbb222")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('rate(x{svc="{{args.service}}"}[1m])', 'rate(x{svc="web-canary"}[1m])'),
        ("{{ args.service }}/{{args.window}}", "web-canary/5m"),
        ("{{rollout.name}}.{{rollout.namespace}}", "web.shop"),
        (
            'x{revision="{{rollout.canaryHash}}"} / y{revision="{{rollout.stableHash}}"}',
            'x{revision="bbb222"} / y{revision="aaa111"}',
        ),
        ("no placeholders {here}", "no placeholders {here}"),
    ],
)
def test_render(text: str, expected: str) -> None:
    args = ResolvedArgs(values={"service": "web-canary", "window": "5m"})
    assert render(text, args, BUILTINS) == expected


def test_unknown_placeholder_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(AnalysisSetupError) as caught:
        render("{{args.servce}}", ResolvedArgs(values={"service": "x"}), BUILTINS)
    message = str(caught.value)
    assert "{{args.servce}} is not defined" in message
    assert "args.service" in message
    assert "rollout.canaryHash" in message


# --------------------------------------------------------------------------- scheduling


def test_initial_delay_then_interval_until_count() -> None:
    m = metric(interval_seconds=10, count=2, initial_delay_seconds=5)
    run = start_run("r", step_index=1, now=T0)
    assert run.phase is AnalysisPhase.RUNNING
    assert due_metrics(run, [m], at(4)) == ()
    assert next_due_at(run, [m], at(4)) == at(5)
    assert due_metrics(run, [m], at(5)) == (m,)
    run = record(run, [m], [took("m", MeasurementPhase.SUCCESSFUL, 5)])
    assert run.phase is AnalysisPhase.RUNNING
    assert due_metrics(run, [m], at(14)) == ()
    assert next_due_at(run, [m], at(14)) == at(15)
    assert due_metrics(run, [m], at(15)) == (m,)
    run = record(run, [m], [took("m", MeasurementPhase.SUCCESSFUL, 15)])
    assert run.phase is AnalysisPhase.SUCCESSFUL
    assert due_metrics(run, [m], at(100)) == ()
    assert next_due_at(run, [m], at(100)) is None


def test_single_measurement_metric_retries_errors_after_the_default_interval() -> None:
    m = metric(consecutive_error_limit=1)
    run = start_run("r", step_index=None, now=T0)
    assert due_metrics(run, [m], T0) == (m,)
    run = record(run, [m], [took("m", MeasurementPhase.ERROR, 0)])
    assert run.phase is AnalysisPhase.RUNNING
    assert next_due_at(run, [m], at(1)) == at(DEFAULT_ERROR_RETRY_SECONDS)
    run = record(run, [m], [took("m", MeasurementPhase.ERROR, DEFAULT_ERROR_RETRY_SECONDS)])
    assert run.phase is AnalysisPhase.ERROR
    assert "consecutive errors (2) > consecutiveErrorLimit (1)" in run.message
    assert next_due_at(run, [m], at(60)) is None


def test_metrics_are_scheduled_independently() -> None:
    fast = metric("fast", interval_seconds=1, count=3)
    slow = metric("slow", interval_seconds=10, count=1, initial_delay_seconds=2)
    run = start_run("r", step_index=0, now=T0)
    assert due_metrics(run, [fast, slow], T0) == (fast,)
    run = record(run, [fast, slow], [took("fast", MeasurementPhase.SUCCESSFUL, 0)])
    assert next_due_at(run, [fast, slow], T0) == at(1)
    assert due_metrics(run, [fast, slow], at(2)) == (fast, slow)


def test_a_failing_metric_stops_every_other_metric() -> None:
    a = metric("a", interval_seconds=1, count=10)
    b = metric("b", interval_seconds=1, count=10)
    run = start_run("r", step_index=None, now=T0)
    run = record(run, [a, b], [took("a", MeasurementPhase.SUCCESSFUL, 0), took("b", MeasurementPhase.FAILED, 0)])
    assert run.phase is AnalysisPhase.FAILED
    assert due_metrics(run, [a, b], at(5)) == ()
    assert next_due_at(run, [a, b], at(5)) is None


def test_one_pass_crossing_several_limits_ends_the_run_with_the_worst() -> None:
    """Argo's assessRunStatus + IsWorse: Failed > Error > Inconclusive; dry-run metrics are skipped."""
    inconclusive = metric("i", interval_seconds=1, count=5)
    error = metric("e", interval_seconds=1, count=5, consecutive_error_limit=0)
    failed = metric("f", interval_seconds=1, count=5)
    dry = metric("dry", interval_seconds=1, count=5, dry_run=True)
    metrics = [inconclusive, error, dry, failed]
    run = start_run("r", step_index=None, now=T0)
    run = record(
        run,
        metrics,
        [
            took("i", MeasurementPhase.INCONCLUSIVE, 0),
            took("e", MeasurementPhase.ERROR, 0),
            took("dry", MeasurementPhase.FAILED, 0),
            took("f", MeasurementPhase.FAILED, 0),
        ],
    )
    assert run.phase is AnalysisPhase.FAILED
    assert run.message == 'metric "f" assessed Failed: failed (1) > failureLimit (0)'
    assert due_metrics(run, metrics, at(10)) == ()
    # without the Failed metric the same pass ends Error (named "e"), not Inconclusive
    run = record(
        start_run("r", step_index=None, now=T0),
        [inconclusive, error, dry],
        [
            took("i", MeasurementPhase.INCONCLUSIVE, 0),
            took("e", MeasurementPhase.ERROR, 0),
            took("dry", MeasurementPhase.FAILED, 0),
        ],
    )
    assert run.phase is AnalysisPhase.ERROR
    assert run.message == 'metric "e" assessed Error: consecutive errors (1) > consecutiveErrorLimit (0)'


def test_record_on_a_completed_run_changes_nothing() -> None:
    m = metric()
    run = record(start_run("r", step_index=None, now=T0), [m], [took("m", MeasurementPhase.FAILED, 0)])
    assert run.phase is AnalysisPhase.FAILED
    assert record(run, [m], [took("m", MeasurementPhase.SUCCESSFUL, 1)]) is run


# Stopping a run from outside. Argo's cancelAnalysisRuns sets spec.terminate; assessRunStatus
# then ends the run Successful with "Run Terminated" unless a non-dry-run metric crossed a limit
# (assessMetricStatus with terminating: never measured -> Successful, "until stopped" ->
# Successful); a completed run is never touched (reconcileAnalysisRun returns it as it is).
FOREVER = metric("f", interval_seconds=60)


@pytest.mark.parametrize(
    ("metrics", "measurements"),
    [
        # background metric measured "until stopped", two successes
        ([FOREVER], [took("f", MeasurementPhase.SUCCESSFUL, 0), took("f", MeasurementPhase.SUCCESSFUL, 60)]),
        # stopped before the first measurement (initialDelay not over): Argo still says Successful
        ([metric("late", interval_seconds=60, initial_delay_seconds=300)], []),
        # only Errors, fewer than consecutiveErrorLimit (4): no limit crossed, Successful
        ([FOREVER], [took("f", MeasurementPhase.ERROR, 0), took("f", MeasurementPhase.ERROR, 10)]),
        # a failure within failureLimit and an inconclusive within inconclusiveLimit
        (
            [metric("f", interval_seconds=60, failure_limit=1, inconclusive_limit=1)],
            [took("f", MeasurementPhase.FAILED, 0), took("f", MeasurementPhase.INCONCLUSIVE, 60)],
        ),
        # count not reached yet
        ([metric("c", interval_seconds=60, count=5)], [took("c", MeasurementPhase.SUCCESSFUL, 0)]),
        # a dry-run metric that crossed every limit does not count
        (
            [FOREVER, metric("dry", interval_seconds=60, dry_run=True, consecutive_error_limit=0)],
            [
                took("f", MeasurementPhase.SUCCESSFUL, 0),
                took("dry", MeasurementPhase.FAILED, 0),
                took("dry", MeasurementPhase.ERROR, 60),
            ],
        ),
    ],
)
@pytest.mark.parametrize("reason", list(TerminationReason))
def test_terminating_a_running_run_ends_it_successful_run_terminated(
    metrics: list[Metric], measurements: list[Measurement], reason: TerminationReason
) -> None:
    run = record(start_run("bg", step_index=None, now=T0), metrics, measurements)
    assert run.phase is AnalysisPhase.RUNNING
    stopped = terminate_run(run, reason)
    assert stopped.phase is AnalysisPhase.SUCCESSFUL
    assert stopped.message == f"Run Terminated: {reason.value}"
    assert stopped.measurements == run.measurements
    assert (stopped.name, stopped.step_index, stopped.started_at) == ("bg", None, run.started_at)
    # a terminated run takes no more measurements and keeps its verdict
    assert due_metrics(stopped, metrics, at(10_000)) == ()
    assert next_due_at(stopped, metrics, at(10_000)) is None
    assert record(stopped, metrics, [took(metrics[0].name, MeasurementPhase.FAILED, 9_000)]) is stopped
    assert AnalysisRunStatus.from_outputs(stopped.to_outputs()) == stopped


@pytest.mark.parametrize(
    ("phase", "message"),
    [
        (AnalysisPhase.FAILED, 'metric "f" assessed Failed: failed (1) > failureLimit (0)'),
        (AnalysisPhase.ERROR, 'metric "f" assessed Error: consecutive errors (5) > consecutiveErrorLimit (4)'),
        (AnalysisPhase.INCONCLUSIVE, 'metric "f" assessed Inconclusive: inconclusive (1) > inconclusiveLimit (0)'),
        (AnalysisPhase.SUCCESSFUL, "all 1 metrics completed"),
    ],
)
def test_terminating_a_completed_run_changes_nothing(phase: AnalysisPhase, message: str) -> None:
    run = AnalysisRunStatus(name="bg", phase=phase, started_at=format_time(T0), message=message)
    for reason in TerminationReason:
        assert terminate_run(run, reason) is run


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "dry"]),
            st.sampled_from(list(MeasurementPhase)),
        ),
        max_size=12,
    ),
    st.sampled_from(list(TerminationReason)),
)
def test_terminate_run_ends_running_runs_successful_and_leaves_completed_ones(
    events: list[tuple[str, MeasurementPhase]], reason: TerminationReason
) -> None:
    """Whatever was measured, one pass at a time: Running -> Successful, completed -> unchanged."""
    metrics = [
        metric("a", interval_seconds=1, failure_limit=1),
        metric("b", interval_seconds=1, count=4, inconclusive_limit=1, consecutive_error_limit=2),
        metric("dry", interval_seconds=1, dry_run=True, consecutive_error_limit=0),
    ]
    run = start_run("bg", step_index=None, now=T0)
    for second, (name, phase) in enumerate(events):
        run = record(run, metrics, [took(name, phase, second)])
    stopped = terminate_run(run, reason)
    if run.phase is AnalysisPhase.RUNNING:
        assert stopped.phase is AnalysisPhase.SUCCESSFUL
        assert stopped.message == "Run Terminated: " + reason.value
    else:
        assert stopped is run


def test_a_background_run_that_failed_keeps_failed_when_the_rollout_aborts() -> None:
    run = record(start_run("bg", step_index=None, now=T0), [FOREVER], [took("f", MeasurementPhase.FAILED, 0)])
    assert run.phase is AnalysisPhase.FAILED
    assert terminate_run(run, TerminationReason.ABORTED) is run


def test_a_run_that_could_not_start_keeps_error_when_terminated() -> None:
    run = failed_setup(start_run("bg", step_index=None, now=T0), AnalysisSetupError("template 'x' is missing"))
    assert terminate_run(run, TerminationReason.PROMOTED) is run
    assert run.phase is AnalysisPhase.ERROR


def test_status_round_trips_through_stack_outputs() -> None:
    m = metric(interval_seconds=1, count=3)
    run = record(start_run("r", step_index=2, now=T0), [m], [took("m", MeasurementPhase.SUCCESSFUL, 0)])
    again = AnalysisRunStatus.from_outputs(run.to_outputs())
    assert again == run
    assert next_due_at(again, [m], T0) == at(1)


# --------------------------------------------------------------------------- templates


def template(
    name: str, metrics: tuple[Metric, ...], args: tuple[TemplateArg, ...] = (), **kw: object
) -> AnalysisTemplate:
    return AnalysisTemplate(
        name=name,
        namespace=str(kw.get("namespace", "shop")),
        cluster_scoped=bool(kw.get("cluster_scoped", False)),
        args=args,
        metrics=metrics,
        source=SourceRef(file=f"analysis/{name}.yaml", document=1),
    )


def test_check_template_reports_durations_beyond_go_and_costly_conditions() -> None:
    longest = 9_223_372_036  # Go's math.MaxInt64 nanoseconds, in whole seconds
    ok = template(
        "ok",
        (
            Metric(
                name="a",
                provider=PrometheusMetricProvider(address="http://p", query="up", timeout_seconds=longest),
                interval_seconds=longest,
                initial_delay_seconds=longest,
                success_condition="all(result, {# < max(result)})",
            ),
        ),
    )
    assert check_template(ok) == []
    bad = template(
        "t",
        (
            Metric(
                name="a",
                provider=PrometheusMetricProvider(address="http://p", query="up", timeout_seconds=longest + 1),
                interval_seconds=10**20,
                initial_delay_seconds=longest + 1,
                failure_condition="any(result, {any(result, {any(result, {# > 0})})})",
            ),
        ),
    )
    problems = check_template(bad)
    assert [p.path for p in problems] == [
        "spec.metrics[0].failureCondition",
        "spec.metrics[0].interval",
        "spec.metrics[0].initialDelay",
        "spec.metrics[0].provider.prometheus.timeout",
    ]
    # innermost {# > 0}: 3 steps; each any(): 2 + 100 x its body -> 302, 30202, 3020202
    assert "too costly: up to 3020202 evaluation steps for a result of 100 series" in problems[0].message
    assert problems[1].message == "is longer than 9223372036s (2562047h47m16s), the largest duration Argo can hold"
    assert longest == MAX_DURATION_SECONDS


def test_scheduling_never_overflows_on_huge_durations() -> None:
    """The reconciler asks next_due_at about templates as they are in Git: no OverflowError."""
    huge = metric("h", interval_seconds=10**30, initial_delay_seconds=10**30)
    run = start_run("r", step_index=None, now=T0)
    assert next_due_at(run, [huge], T0) == T0 + timedelta(seconds=9_223_372_036)
    assert due_metrics(run, [huge], T0) == ()
    run = record(run, [huge], [took("h", MeasurementPhase.SUCCESSFUL, 0)])
    assert next_due_at(run, [huge], T0) == T0 + timedelta(seconds=9_223_372_036)
    # a run started near the end of time: the due time saturates at datetime.max
    late = AnalysisRunStatus(name="r", phase=AnalysisPhase.RUNNING, started_at="9999-12-31T00:00:00Z")
    assert next_due_at(late, [metric("d", initial_delay_seconds=86_400 * 2)], T0) == datetime.max.replace(tzinfo=UTC)
    assert due_metrics(late, [metric("d", initial_delay_seconds=86_400 * 2)], T0) == ()


def test_check_template_reports_file_and_field() -> None:
    bad = template(
        "t",
        (
            metric("a", success_condition="result[0] >=", failure_condition="result[0] > {{args.max}}"),
            metric("a"),
        ),
    )
    problems = check_template(bad)
    assert [p.path for p in problems] == ["spec.metrics[0].successCondition", "spec.metrics[1].name"]
    assert str(problems[0]).startswith("analysis/t.yaml#1 spec.metrics[0].successCondition: condition")
    assert check_template(template("ok", (metric("a", success_condition="result[0] > 1"),))) == []


# --------------------------------------------------------------------------- one reconcile pass, fake provider


@dataclass
class ScriptedProvider:
    """Returns scripted phases per metric and remembers what it was asked."""

    script: dict[str, list[MeasurementPhase]]
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def measure(
        self, metric: Metric, query: str, headers: Mapping[str, str], now: datetime, secrets: Sequence[str] = ()
    ) -> Measurement:
        self.calls.append((metric.name, query, dict(headers)))
        phase = self.script[metric.name].pop(0)
        secret_echo = " ".join(headers.values())
        return Measurement(
            metric=metric.name,
            phase=phase,
            started_at=format_time(now),
            finished_at=format_time(now),
            value="[0.1]",
            message=f"query {query} with {secret_echo}",
        )


TOKEN_REF = ArgValueFrom(secret_key_ref=("prom", "token"))
ENV = {"KULTA_SECRET_PROM_TOKEN": "tok-123456"}


def rate_template() -> AnalysisTemplate:
    provider = PrometheusMetricProvider(
        address="http://prom:9090",
        query='errors{revision="{{args.canary}}",svc="{{rollout.name}}"} token={{args.token}}',
        headers=(("Authorization", "Bearer {{args.token}}"),),
    )
    return template(
        "rate",
        (
            Metric(
                name="errors",
                provider=provider,
                interval_seconds=1,
                count=2,
                success_condition="result[0] < {{args.max}}",
            ),
        ),
        args=(TemplateArg("canary"), TemplateArg("max", value="0.05"), TemplateArg("token", value_from=TOKEN_REF)),
    )


def advance(
    run: AnalysisRunStatus | None, provider: ScriptedProvider, now: datetime, **kw: object
) -> AnalysisRunStatus:
    params: dict[str, object] = {
        "name": "web-step-2",
        "templates": [rate_template(), template("other", (metric("latency"),))],
        "ref": AnalysisRef(
            templates=(AnalysisTemplateRef("rate", cluster_scope=False),),
            args=(AnalysisArg("canary", value_from=ArgValueFrom(pod_template_hash_value=PodTemplateHashValue.LATEST)),),
        ),
        "step_index": 2,
        "provider": provider,
        "environ": ENV,
        "now": now,
        **CONTEXT,
    }
    params.update(kw)
    return advance_analysis(run, **params)  # type: ignore[arg-type]


def test_advance_renders_measures_and_redacts() -> None:
    provider = ScriptedProvider({"errors": [MeasurementPhase.SUCCESSFUL, MeasurementPhase.SUCCESSFUL]})
    run = advance(None, provider, T0)
    assert run.phase is AnalysisPhase.RUNNING
    assert run.step_index == 2
    assert run.started_at == "2026-03-01T12:00:00Z"
    name, query, headers = provider.calls[0]
    assert name == "errors"
    assert query == 'errors{revision="bbb222",svc="web"} token=tok-123456'
    assert headers == {"Authorization": "Bearer tok-123456"}
    assert "tok-123456" not in run.measurements[0].message
    assert "***" in run.measurements[0].message
    # not due yet: no call
    run = advance(run, provider, at(0.5))
    assert len(provider.calls) == 1
    run = advance(run, provider, at(1))
    assert run.phase is AnalysisPhase.SUCCESSFUL
    assert len(run.measurements) == 2
    # completed: unchanged, no more calls
    assert advance(run, provider, at(5)) is run
    assert len(provider.calls) == 2
    assert "tok-123456" not in str(run.to_outputs())


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"environ": {}}, "KULTA_SECRET_PROM_TOKEN"),
        ({"ref": AnalysisRef(templates=(AnalysisTemplateRef("rate"),), args=())}, "argument 'canary' has no value"),
        ({"ref": AnalysisRef(templates=(AnalysisTemplateRef("nope"),), args=())}, "'nope' is not defined"),
        (
            {"ref": AnalysisRef(templates=(AnalysisTemplateRef("rate", cluster_scope=True),), args=())},
            "ClusterAnalysisTemplate 'rate' is not defined",
        ),
        (
            {
                "templates": [template("a", (metric("x"),)), template("b", (metric("x"),))],
                "ref": AnalysisRef(templates=(AnalysisTemplateRef("a"), AnalysisTemplateRef("b")), args=()),
            },
            "metric 'x' is defined by template 'a' (analysis/a.yaml#1) and by 'b' (analysis/b.yaml#1)",
        ),
        (
            {
                "templates": [template("c", (metric("x", success_condition="result > {{args.max}} +"),))],
                "ref": AnalysisRef(templates=(AnalysisTemplateRef("c"),), args=(AnalysisArg("max", value="1"),)),
            },
            "metric 'x': condition 'result > 1 +'",
        ),
        # durations beyond Go's largest time.Duration (Argo's ValidateMetric refuses them)
        (
            {
                "templates": [template("d", (metric("x", interval_seconds=10**30, count=2),))],
                "ref": AnalysisRef(templates=(AnalysisTemplateRef("d"),), args=()),
            },
            "metric 'x': interval is longer than 9223372036s (2562047h47m16s)",
        ),
        (
            {
                "templates": [template("d", (metric("x", initial_delay_seconds=9_223_372_037),))],
                "ref": AnalysisRef(templates=(AnalysisTemplateRef("d"),), args=()),
            },
            "metric 'x': initialDelay is longer than 9223372036s",
        ),
        (
            {
                "templates": [
                    template(
                        "d",
                        (
                            Metric(
                                name="x",
                                provider=PrometheusMetricProvider(
                                    address="http://prom:9090", query="up", timeout_seconds=10**400
                                ),
                            ),
                        ),
                    )
                ],
                "ref": AnalysisRef(templates=(AnalysisTemplateRef("d"),), args=()),
            },
            "metric 'x': provider.prometheus.timeout is longer than 9223372036s",
        ),
        # a condition over the evaluation budget, and a literal beyond 64 bits once rendered
        (
            {
                "templates": [
                    template(
                        "h",
                        (
                            metric(
                                "x",
                                success_condition="count(result, {count(result, {count(result, {true}) > 0}) > 0}) > 0",
                            ),
                        ),
                    )
                ],
                "ref": AnalysisRef(templates=(AnalysisTemplateRef("h"),), args=()),
            },
            "too costly",
        ),
        (
            {
                "templates": [template("c", (metric("x", success_condition="result < {{args.max}}"),))],
                "ref": AnalysisRef(templates=(AnalysisTemplateRef("c"),), args=(AnalysisArg("max", value="9" * 400),)),
            },
            "is out of the 64-bit range",
        ),
    ],
)
def test_setup_problems_end_the_run_in_error(changes: dict[str, object], fragment: str) -> None:
    provider = ScriptedProvider({})
    run = advance(None, provider, T0, **changes)
    assert run.phase is AnalysisPhase.ERROR
    assert fragment in run.message
    assert provider.calls == []


def test_metrics_of_several_templates_run_together() -> None:
    provider = ScriptedProvider({"errors": [MeasurementPhase.SUCCESSFUL], "latency": [MeasurementPhase.FAILED]})
    run = advance(
        None,
        provider,
        T0,
        ref=AnalysisRef(
            templates=(AnalysisTemplateRef("rate"), AnalysisTemplateRef("other")),
            args=(AnalysisArg("canary", value="c1"),),
        ),
    )
    assert sorted(c[0] for c in provider.calls) == ["errors", "latency"]
    assert run.phase is AnalysisPhase.FAILED
    assert 'metric "latency" assessed Failed' in run.message


def test_cluster_template_is_found_by_cluster_scope() -> None:
    cluster = template("shared", (metric("x"),), cluster_scoped=True, namespace="")
    provider = ScriptedProvider({"x": [MeasurementPhase.SUCCESSFUL]})
    run = advance(
        None,
        provider,
        T0,
        templates=[cluster],
        ref=AnalysisRef(templates=(AnalysisTemplateRef("shared", cluster_scope=True),), args=()),
    )
    assert run.phase is AnalysisPhase.SUCCESSFUL
