"""Argo's counting rules, KULTA's "no Successful without data" rule, and measurement judging."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kulta.core.assess import (
    assess_metric,
    assess_run,
    effective_count,
    explain_metric,
    explain_run,
    measurement_phase,
    tally,
)
from kulta.model.analysis import Metric, PrometheusMetricProvider
from kulta.model.status import AnalysisPhase, Measurement, MeasurementPhase

S = MeasurementPhase.SUCCESSFUL
F = MeasurementPhase.FAILED
I = MeasurementPhase.INCONCLUSIVE  # noqa: E741
E = MeasurementPhase.ERROR
PROVIDER = PrometheusMetricProvider(address="http://prom:9090", query="up")


def metric(name: str = "m", **kwargs: object) -> Metric:
    return Metric(name=name, provider=PROVIDER, **kwargs)  # type: ignore[arg-type]


def measured(phases: list[MeasurementPhase], name: str = "m") -> list[Measurement]:
    return [
        Measurement(
            metric=name, phase=p, started_at=f"2026-01-01T00:00:{i:02d}Z", finished_at=f"2026-01-01T00:00:{i:02d}Z"
        )
        for i, p in enumerate(phases)
    ]


@pytest.mark.parametrize(
    ("kwargs", "phases", "expected"),
    [
        # nothing measured yet
        ({"count": 3, "interval_seconds": 1}, [], AnalysisPhase.PENDING),
        # failureLimit: Failed only when failed > limit
        ({"count": 5, "interval_seconds": 1}, [F], AnalysisPhase.FAILED),
        ({"count": 5, "interval_seconds": 1, "failure_limit": 1}, [F], AnalysisPhase.RUNNING),
        ({"count": 5, "interval_seconds": 1, "failure_limit": 1}, [F, S, F], AnalysisPhase.FAILED),
        ({"count": 3, "interval_seconds": 1, "failure_limit": 1}, [S, F, S], AnalysisPhase.SUCCESSFUL),
        ({"count": 3, "interval_seconds": 1, "failure_limit": 2}, [F, F, S], AnalysisPhase.SUCCESSFUL),
        # inconclusiveLimit
        ({"count": 5, "interval_seconds": 1}, [S, I], AnalysisPhase.INCONCLUSIVE),
        ({"count": 3, "interval_seconds": 1, "inconclusive_limit": 1}, [S, I, S], AnalysisPhase.SUCCESSFUL),
        ({"count": 5, "interval_seconds": 1, "inconclusive_limit": 1}, [I, S, I], AnalysisPhase.INCONCLUSIVE),
        # consecutiveErrorLimit (default 4): Error when consecutive errors > limit
        ({"count": 3, "interval_seconds": 1}, [E, E, E, E], AnalysisPhase.RUNNING),
        ({"count": 3, "interval_seconds": 1}, [E, E, E, E, E], AnalysisPhase.ERROR),
        ({"count": 3, "interval_seconds": 1, "consecutive_error_limit": 0}, [E], AnalysisPhase.ERROR),
        ({"count": 3, "interval_seconds": 1, "consecutive_error_limit": 1}, [E, S, E], AnalysisPhase.RUNNING),
        ({"count": 3, "interval_seconds": 1, "consecutive_error_limit": 1}, [S, E, E], AnalysisPhase.ERROR),
        # errors do not count towards count
        ({"count": 2, "interval_seconds": 1}, [S, E], AnalysisPhase.RUNNING),
        ({"count": 2, "interval_seconds": 1}, [S, E, S], AnalysisPhase.SUCCESSFUL),
        # count reached
        ({"count": 3, "interval_seconds": 1}, [S, S], AnalysisPhase.RUNNING),
        ({"count": 3, "interval_seconds": 1}, [S, S, S], AnalysisPhase.SUCCESSFUL),
        # no interval and no count: a single measurement
        ({}, [S], AnalysisPhase.SUCCESSFUL),
        ({}, [F], AnalysisPhase.FAILED),
        ({}, [E], AnalysisPhase.RUNNING),  # retried until consecutiveErrorLimit
        ({}, [E, S], AnalysisPhase.SUCCESSFUL),
        # interval without count: runs until stopped
        ({"interval_seconds": 1}, [S] * 50, AnalysisPhase.RUNNING),
        ({"interval_seconds": 1, "failure_limit": 2}, [S] * 10 + [F, F, F], AnalysisPhase.FAILED),
        # KULTA: never Successful without a single successful measurement
        ({"count": 3, "interval_seconds": 1, "failure_limit": 3}, [F, F, F], AnalysisPhase.FAILED),
        ({"count": 2, "interval_seconds": 1, "inconclusive_limit": 5}, [I, I], AnalysisPhase.INCONCLUSIVE),
        (
            {"count": 2, "interval_seconds": 1, "failure_limit": 5, "inconclusive_limit": 5},
            [I, F],
            AnalysisPhase.FAILED,
        ),
    ],
)
def test_metric_counting_rules(
    kwargs: dict[str, object], phases: list[MeasurementPhase], expected: AnalysisPhase
) -> None:
    assert assess_metric(metric(**kwargs), measured(phases)) is expected


# Several limits of one metric crossed at once. Argo's assessMetricFailureInconclusiveOrError
# (analysis/analysis.go) tests failureLimit, then inconclusiveLimit, then consecutiveErrorLimit,
# each overwriting the phase the one before set: the last limit crossed decides.
NINE = {"count": 9, "interval_seconds": 1}


@pytest.mark.parametrize(
    ("kwargs", "phases", "expected", "reason"),
    [
        # failed 1 > 0 and inconclusive 1 > 0: inconclusiveLimit is tested after failureLimit
        ({**NINE}, [F, I], AnalysisPhase.INCONCLUSIVE, "inconclusive (1) > inconclusiveLimit (0)"),
        ({**NINE}, [I, F], AnalysisPhase.INCONCLUSIVE, "inconclusive (1) > inconclusiveLimit (0)"),
        # failed 1 > 0 and consecutive errors 1 > 0: consecutiveErrorLimit is tested last
        (
            {**NINE, "consecutive_error_limit": 0},
            [F, E],
            AnalysisPhase.ERROR,
            "consecutive errors (1) > consecutiveErrorLimit (0)",
        ),
        # inconclusive 1 > 0 and consecutive errors 1 > 0
        (
            {**NINE, "consecutive_error_limit": 0},
            [I, E],
            AnalysisPhase.ERROR,
            "consecutive errors (1) > consecutiveErrorLimit (0)",
        ),
        # all three: failed 2 > 1, inconclusive 2 > 1, consecutive errors 2 > 1
        (
            {**NINE, "failure_limit": 1, "inconclusive_limit": 1, "consecutive_error_limit": 1},
            [F, F, I, I, E, E],
            AnalysisPhase.ERROR,
            "consecutive errors (2) > consecutiveErrorLimit (1)",
        ),
        # errors interrupted by a counted measurement are not consecutive: Inconclusive decides
        (
            {**NINE, "consecutive_error_limit": 0},
            [F, I, E, S],
            AnalysisPhase.INCONCLUSIVE,
            "inconclusive (1) > inconclusiveLimit (0)",
        ),
        # inconclusive at its limit (1 > 1 is false): only failureLimit is crossed
        ({**NINE, "inconclusive_limit": 1}, [I, F], AnalysisPhase.FAILED, "failed (1) > failureLimit (0)"),
        # failed 3 > 2 and inconclusive 1 > 0, errors 4 = the default limit 4: Inconclusive
        (
            {**NINE, "failure_limit": 2},
            [F, F, F, I, E, E, E, E],
            AnalysisPhase.INCONCLUSIVE,
            "inconclusive (1) > inconclusiveLimit (0)",
        ),
        # the fifth error crosses the default consecutiveErrorLimit (4) too: Error
        (
            {**NINE, "failure_limit": 2},
            [F, F, F, I, E, E, E, E, E],
            AnalysisPhase.ERROR,
            "consecutive errors (5) > consecutiveErrorLimit (4)",
        ),
    ],
)
def test_several_limits_of_one_metric_the_last_checked_wins(
    kwargs: dict[str, object], phases: list[MeasurementPhase], expected: AnalysisPhase, reason: str
) -> None:
    assert explain_metric(metric(**kwargs), measured(phases)) == (expected, reason)


def test_measurements_of_other_metrics_are_ignored() -> None:
    ms = measured([F, F], name="other") + measured([S])
    assert assess_metric(metric(), ms) is AnalysisPhase.SUCCESSFUL
    assert tally("m", ms).failed == 0


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"count": 4}, 4), ({"count": 4, "interval_seconds": 10}, 4), ({}, 1), ({"interval_seconds": 10}, None)],
)
def test_effective_count(kwargs: dict[str, object], expected: int | None) -> None:
    assert effective_count(metric(**kwargs)) == expected


def test_tally_counts_consecutive_errors_from_the_end() -> None:
    t = tally("m", measured([E, E, S, E, E, E]))
    assert (t.successful, t.errors, t.consecutive_errors, t.counted) == (1, 5, 3, 1)


# --------------------------------------------------------------------------- runs

A = metric("a", count=2, interval_seconds=1)
B = metric("b", count=1)
DRY = metric("dry", count=1, dry_run=True)


@pytest.mark.parametrize(
    ("metrics", "by_metric", "expected"),
    [
        ([A, B], {}, AnalysisPhase.RUNNING),
        ([A, B], {"a": [S, S]}, AnalysisPhase.RUNNING),
        ([A, B], {"a": [S, S], "b": [S]}, AnalysisPhase.SUCCESSFUL),
        # one failing metric ends the run at once, even while another still runs
        ([A, B], {"b": [F]}, AnalysisPhase.FAILED),
        ([A, B], {"a": [I]}, AnalysisPhase.INCONCLUSIVE),
        # the worst wins: Failed > Error > Inconclusive
        ([A, metric("b", count=1, consecutive_error_limit=0)], {"a": [I], "b": [E]}, AnalysisPhase.ERROR),
        ([A, B], {"a": [I], "b": [F]}, AnalysisPhase.FAILED),
        # dry-run metrics never fail the run, but are waited for
        ([A, DRY], {"a": [S, S], "dry": [F]}, AnalysisPhase.SUCCESSFUL),
        ([A, DRY], {"a": [S, S]}, AnalysisPhase.RUNNING),
        ([DRY], {"dry": [F]}, AnalysisPhase.SUCCESSFUL),
        # no metrics at all: never Successful
        ([], {}, AnalysisPhase.ERROR),
    ],
)
def test_run_phase(
    metrics: list[Metric], by_metric: dict[str, list[MeasurementPhase]], expected: AnalysisPhase
) -> None:
    ms = [m for name, phases in by_metric.items() for m in measured(phases, name)]
    assert assess_run(metrics, ms) is expected


# Several metrics of one run crossing limits in the same pass. Argo's assessRunStatus keeps the
# worst completed phase of the non-dry-run metrics by IsWorse (utils/analysis/helpers.go), whose
# analysisStatusOrder is Successful < Running < Pending < Inconclusive < Error < Failed; a tie
# keeps the first metric (IsWorse is strict). Dry-run metrics are skipped by IsTerminating and
# by assessRunStatus.
LIMIT9 = {"count": 9, "interval_seconds": 1, "consecutive_error_limit": 0}


@pytest.mark.parametrize(
    ("metrics", "by_metric", "expected", "named"),
    [
        # Inconclusive, Error and Failed in one pass: Failed is the worst
        (
            [metric("i", **LIMIT9), metric("e", **LIMIT9), metric("f", **LIMIT9)],
            {"i": [I], "e": [E], "f": [F]},
            AnalysisPhase.FAILED,
            "f",
        ),
        # Inconclusive and Error: Error
        ([metric("i", **LIMIT9), metric("e", **LIMIT9)], {"i": [I], "e": [E]}, AnalysisPhase.ERROR, "e"),
        # two metrics Failed: the first one in template order is named
        ([metric("x", **LIMIT9), metric("y", **LIMIT9)], {"y": [F], "x": [F]}, AnalysisPhase.FAILED, "x"),
        # metric "fi" crossed failureLimit and inconclusiveLimit: it is Inconclusive (the last
        # limit checked), so the run is Failed because of "f", not because of "fi"
        (
            [metric("fi", **LIMIT9), metric("f", **LIMIT9)],
            {"fi": [F, I], "f": [F]},
            AnalysisPhase.FAILED,
            "f",
        ),
        # metric "fe" crossed failureLimit and consecutiveErrorLimit: Error, worse than "i"
        (
            [metric("i", **LIMIT9), metric("fe", **LIMIT9)],
            {"i": [I], "fe": [F, E]},
            AnalysisPhase.ERROR,
            "fe",
        ),
        # a dry-run metric Failed in the same pass changes nothing: the worst binding one decides
        (
            [metric("i", **LIMIT9), metric("dry", **LIMIT9, dry_run=True)],
            {"i": [I], "dry": [F]},
            AnalysisPhase.INCONCLUSIVE,
            "i",
        ),
        # a dry-run metric crossing all three limits while the binding one is still running
        (
            [metric("a", **LIMIT9), metric("dry", **LIMIT9, dry_run=True)],
            {"a": [S], "dry": [F, I, E]},
            AnalysisPhase.RUNNING,
            "",
        ),
    ],
)
def test_several_metrics_crossing_limits_in_one_pass_the_worst_wins(
    metrics: list[Metric], by_metric: dict[str, list[MeasurementPhase]], expected: AnalysisPhase, named: str
) -> None:
    ms = [m for name, phases in by_metric.items() for m in measured(phases, name)]
    phase, message = explain_run(metrics, ms)
    assert phase is expected
    if named:
        assert message.startswith(f'metric "{named}" assessed {expected.value}: ')
    else:
        assert message == "waiting for a"


def test_a_dry_run_metric_crossing_limits_is_reported_not_binding() -> None:
    """assessRunStatus: a dry-run metric's result is noted; the run follows the binding metrics."""
    metrics = [metric("a", count=1), metric("dry", **LIMIT9, dry_run=True)]
    ms = [*measured([S], "a"), *measured([F, E], "dry")]
    phase, message = explain_run(metrics, ms)
    assert phase is AnalysisPhase.SUCCESSFUL
    assert message == (
        'all 2 metrics completed; dry-run metric "dry" assessed Error '
        "(consecutive errors (1) > consecutiveErrorLimit (0)), ignored"
    )


def test_run_message_names_the_deciding_metric_and_its_last_measurement() -> None:
    ms = [*measured([S]), *measured([F], name="b")]
    ms[-1] = Measurement(metric="b", phase=F, started_at="x", finished_at="x", value="[0.3]", message="cond not met")
    phase, message = explain_run([metric(count=2, interval_seconds=1), B], ms)
    assert phase is AnalysisPhase.FAILED
    assert message == 'metric "b" assessed Failed: failed (1) > failureLimit (0); last measurement: cond not met'
    phase, message = explain_run([A, DRY], [*measured([S, S], "a"), *measured([F], "dry")])
    assert phase is AnalysisPhase.SUCCESSFUL
    assert 'dry-run metric "dry" assessed Failed' in message


# --------------------------------------------------------------------------- properties

phase_lists = st.lists(st.sampled_from([S, F, I, E]), max_size=30)
limits = st.integers(min_value=0, max_value=5)


@settings(max_examples=400)
@given(
    phases=phase_lists,
    failure_limit=limits,
    inconclusive_limit=limits,
    error_limit=limits,
    count=st.one_of(st.none(), st.integers(min_value=1, max_value=10)),
    interval=st.one_of(st.none(), st.integers(min_value=1, max_value=60)),
)
def test_successful_never_exceeds_limits_or_lacks_data(
    phases: list[MeasurementPhase],
    failure_limit: int,
    inconclusive_limit: int,
    error_limit: int,
    count: int | None,
    interval: int | None,
) -> None:
    m = metric(
        count=count,
        interval_seconds=interval,
        failure_limit=failure_limit,
        inconclusive_limit=inconclusive_limit,
        consecutive_error_limit=error_limit,
    )
    # assess after every prefix, as the engine does after each measurement
    for n in range(len(phases) + 1):
        prefix = measured(phases[:n])
        phase = assess_metric(m, prefix)
        t = tally("m", prefix)
        if phase is AnalysisPhase.SUCCESSFUL:
            assert t.failed <= failure_limit
            assert t.inconclusive <= inconclusive_limit
            assert t.successful >= 1
            assert assess_run([m], prefix) is AnalysisPhase.SUCCESSFUL
        if t.failed > failure_limit:
            assert phase is AnalysisPhase.FAILED
        if phase.completed:
            break


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([S, F, I, E])), max_size=20))
def test_run_is_successful_only_when_every_binding_metric_is(events: list[tuple[str, MeasurementPhase]]) -> None:
    metrics = [metric("a", count=2, interval_seconds=1, failure_limit=1), metric("b", count=1, inconclusive_limit=1)]
    ms = [measured([p], name)[0] for name, p in events]
    if assess_run(metrics, ms) is AnalysisPhase.SUCCESSFUL:
        for m in metrics:
            assert assess_metric(m, ms) is AnalysisPhase.SUCCESSFUL
            assert tally(m.name, ms).successful >= 1


# --------------------------------------------------------------------------- judging one value


@pytest.mark.parametrize(
    ("success", "failure", "value", "expected"),
    [
        (None, None, [0.5], S),
        (None, None, [], S),
        ("result[0] >= 0.95", None, [0.99], S),
        ("result[0] >= 0.95", None, [0.5], F),
        (None, "result[0] > 0.05", [0.5], F),
        (None, "result[0] > 0.05", [0.01], S),
        # both set: Failed wins when both hold; neither -> Inconclusive
        ("result[0] > 0", "result[0] > 0.5", [0.7], F),
        ("result[0] > 0", "result[0] > 0.5", [0.3], S),
        ("result[0] > 1", "result[0] < 0", [0.5], I),
        # NaN: comparisons are false
        ("result[0] >= 0.95", None, [math.nan], F),
        (None, "result[0] > 0.05", [math.nan], S),
        ("result[0] < 0.05", "result[0] >= 0.05", [math.nan], I),
        ("isNaN(result[0]) || result[0] < 0.05", None, [math.nan], S),
        # +Inf
        ("result[0] < 0.05", None, [math.inf], F),
        # scalar results
        ("result < 0.05", None, 0.01, S),
        # empty vector: indexing is an Error measurement, a guard makes it a decision
        ("result[0] >= 0.95", None, [], E),
        ("len(result) > 0 && result[0] >= 0.95", None, [], F),
        # type mismatch: Error
        ("result < 0.05", None, [0.01], E),
    ],
)
def test_measurement_phase(
    success: str | None, failure: str | None, value: float | list[float], expected: MeasurementPhase
) -> None:
    phase, message = measurement_phase(metric(success_condition=success, failure_condition=failure), value)
    assert phase is expected
    assert message


def test_measurement_error_message_names_the_condition() -> None:
    phase, message = measurement_phase(metric(success_condition="result[0] >= 0.95"), [])
    assert phase is E
    assert "result[0] >= 0.95" in message
    assert "out of range" in message


def test_unparsable_condition_is_an_error_measurement_not_an_exception() -> None:
    phase, message = measurement_phase(metric(success_condition="result.__class__"), [1.0])
    assert phase is E
    assert "member access" in message
