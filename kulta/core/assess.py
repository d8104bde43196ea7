"""Argo Rollouts' counting rules: from measurements to a metric's and a run's phase.

These rules decide whether a canary is promoted or aborted, so they live in one
pure module with no clock and no I/O, and are tested table-driven and by
property. They follow Argo Rollouts (``analysis/analysis.go``) with one
deliberate difference, marked below: KULTA never reports Successful for a
metric that has no successful measurement at all, because "promote on missing
data" is the failure mode progressive delivery exists to prevent.

Per metric (non-Error measurements are "counted"; Error ones are not):

1. no measurement yet                          -> Pending
2. consecutive errors > consecutiveErrorLimit  -> Error
3. inconclusive > inconclusiveLimit            -> Inconclusive
4. failed > failureLimit                       -> Failed
5. counted >= effective count:
   at least one Successful                     -> Successful
   none Successful, some Failed                -> Failed        (KULTA; Argo says Successful)
   none Successful, none Failed                -> Inconclusive  (KULTA; Argo says Successful)
6. otherwise                                   -> Running

Rules 2-4 are Argo's ``assessMetricFailureInconclusiveOrError``, which tests
failureLimit, then inconclusiveLimit, then consecutiveErrorLimit and lets the
*last* limit crossed set the phase: when several limits of one metric are
crossed, Error wins over Inconclusive, which wins over Failed. (Within one
metric this is the reverse of the run-level order below.)

The effective count is ``count``, or 1 when neither ``count`` nor ``interval``
is set (a single measurement), or unbounded when only ``interval`` is set.

Per run (Argo's ``assessRunStatus`` with ``IsTerminating`` and ``IsWorse``): a
non-dry-run metric that is Failed, Error or Inconclusive ends the run with the
worst of them by ``analysisStatusOrder`` (Failed > Error > Inconclusive; on a
tie the first metric in template order names the cause). Argo marks the run
terminating on the pass a metric completes badly and ends it on the next pass
without taking further measurements, the still-running metrics counting as
Successful; KULTA ends it in the same pass, with the same phase and without a
further measurement, which is what makes background analysis abort the
rollout "the moment it fails". Otherwise the run is Running until every metric
(dry-run ones included) completes, then Successful. Dry-run metrics are
measured and reported but never change the run's phase (``IsTerminating`` and
``assessRunStatus`` skip them). A run stopped from outside (promotion, abort)
is decided by ``kulta.core.analysis_run.terminate_run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kulta.core.conditions import ConditionError, parse_condition
from kulta.model.analysis import Metric
from kulta.model.status import AnalysisPhase, Measurement, MeasurementPhase

__all__ = [
    "BAD_PHASES",
    "MetricTally",
    "assess_metric",
    "assess_run",
    "effective_count",
    "explain_metric",
    "explain_run",
    "limits_crossed",
    "measurement_phase",
    "tally",
]

#: run-ending metric phases, best to worst: Argo's ``analysisStatusOrder`` as ``IsWorse`` reads it (utils/analysis).
BAD_PHASES: tuple[AnalysisPhase, ...] = (AnalysisPhase.INCONCLUSIVE, AnalysisPhase.ERROR, AnalysisPhase.FAILED)


@dataclass(frozen=True)
class MetricTally:
    """How many measurements of one metric ended in each phase."""

    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0

    @property
    def counted(self) -> int:
        """Measurements that count towards ``count`` (Error ones do not, as in Argo)."""
        return self.successful + self.failed + self.inconclusive


def tally(metric_name: str, measurements: Sequence[Measurement]) -> MetricTally:
    """Count the measurements of ``metric_name`` (others are ignored)."""
    successful = failed = inconclusive = errors = consecutive = 0
    for m in measurements:
        if m.metric != metric_name:
            continue
        if m.phase is MeasurementPhase.ERROR:
            errors += 1
            consecutive += 1
            continue
        consecutive = 0
        if m.phase is MeasurementPhase.SUCCESSFUL:
            successful += 1
        elif m.phase is MeasurementPhase.FAILED:
            failed += 1
        else:
            inconclusive += 1
    return MetricTally(successful, failed, inconclusive, errors, consecutive)


def effective_count(metric: Metric) -> int | None:
    """How many counted measurements complete the metric; None = until the run is stopped."""
    if metric.count is not None:
        return metric.count
    if metric.interval_seconds is None:
        return 1
    return None


def limits_crossed(metric: Metric, t: MetricTally) -> tuple[AnalysisPhase, str] | None:
    """The phase a crossed limit gives the metric, and why; None when no limit is crossed.

    Argo's ``assessMetricFailureInconclusiveOrError`` checks failureLimit, then
    inconclusiveLimit, then consecutiveErrorLimit, each one overwriting the
    phase set before it, so the last limit crossed decides: Error over
    Inconclusive over Failed.
    """
    if t.consecutive_errors > metric.consecutive_error_limit:
        return (
            AnalysisPhase.ERROR,
            f"consecutive errors ({t.consecutive_errors}) > consecutiveErrorLimit ({metric.consecutive_error_limit})",
        )
    if t.inconclusive > metric.inconclusive_limit:
        return (
            AnalysisPhase.INCONCLUSIVE,
            f"inconclusive ({t.inconclusive}) > inconclusiveLimit ({metric.inconclusive_limit})",
        )
    if t.failed > metric.failure_limit:
        return AnalysisPhase.FAILED, f"failed ({t.failed}) > failureLimit ({metric.failure_limit})"
    return None


def explain_metric(metric: Metric, measurements: Sequence[Measurement]) -> tuple[AnalysisPhase, str]:
    """The metric's phase and why (Argo's ``assessMetricStatus``, with KULTA's rule 5)."""
    t = tally(metric.name, measurements)
    if t.counted + t.errors == 0:
        return AnalysisPhase.PENDING, ""
    crossed = limits_crossed(metric, t)
    if crossed is not None:
        return crossed
    wanted = effective_count(metric)
    if wanted is not None and t.counted >= wanted:
        # KULTA's rule: never Successful without a single successful measurement.
        if t.successful == 0 and t.failed > 0:
            return AnalysisPhase.FAILED, f"no successful measurement ({t.failed} failed, {t.inconclusive} inconclusive)"
        if t.successful == 0:
            return (
                AnalysisPhase.INCONCLUSIVE,
                f"no successful measurement ({t.inconclusive} inconclusive, {t.errors} errors)",
            )
        return (
            AnalysisPhase.SUCCESSFUL,
            f"count ({wanted}) reached: {t.successful} successful, {t.failed} failed, {t.inconclusive} inconclusive",
        )
    return AnalysisPhase.RUNNING, ""


def assess_metric(metric: Metric, measurements: Sequence[Measurement]) -> AnalysisPhase:
    """The phase of one metric under Argo's counting rules (see the module docstring)."""
    return explain_metric(metric, measurements)[0]


def explain_run(metrics: Sequence[Metric], measurements: Sequence[Measurement]) -> tuple[AnalysisPhase, str]:
    """The run's phase and a one-line reason naming the deciding metric."""
    if not metrics:
        return AnalysisPhase.ERROR, "the analysis has no metrics: nothing could show the canary is healthy"
    worst: tuple[int, Metric, AnalysisPhase, str] | None = None
    waiting: list[str] = []
    dry_notes: list[str] = []
    for metric in metrics:
        phase, reason = explain_metric(metric, measurements)
        if metric.dry_run:
            if phase.completed and phase is not AnalysisPhase.SUCCESSFUL:
                dry_notes.append(f'dry-run metric "{metric.name}" assessed {phase.value} ({reason}), ignored')
            elif not phase.completed:
                waiting.append(metric.name)
            continue
        if phase in BAD_PHASES:
            rank = BAD_PHASES.index(phase)
            if worst is None or rank > worst[0]:
                worst = (rank, metric, phase, reason)
        elif not phase.completed:
            waiting.append(metric.name)
    if worst is not None:
        _, metric, phase, reason = worst
        last = _last_message(metric.name, measurements)
        message = f'metric "{metric.name}" assessed {phase.value}: {reason}'
        return phase, message + (f"; last measurement: {last}" if last else "")
    if waiting:
        return AnalysisPhase.RUNNING, "waiting for " + ", ".join(waiting)
    summary = f"all {len(metrics)} metrics completed"
    return AnalysisPhase.SUCCESSFUL, "; ".join([summary, *dry_notes])


def assess_run(metrics: Sequence[Metric], measurements: Sequence[Measurement]) -> AnalysisPhase:
    """The run's phase: worst failing non-dry-run metric, else Running, else Successful."""
    return explain_run(metrics, measurements)[0]


def _last_message(metric_name: str, measurements: Sequence[Measurement]) -> str:
    for m in reversed(measurements):
        if m.metric == metric_name:
            return m.message
    return ""


def measurement_phase(metric: Metric, value: float | bool | str | list[float]) -> tuple[MeasurementPhase, str]:
    """Judge one measured value with the metric's conditions (Argo's rules).

    No condition: Successful. Only a success condition: Failed when it is false.
    Only a failure condition: Successful when it is false. Both: Failed when the
    failure condition holds (even if the success condition holds too),
    Successful when only the success condition holds, Inconclusive when neither
    does. A condition that cannot be evaluated (``result[0]`` of an empty vector,
    a type error) makes the measurement an Error, never an exception.
    """
    success_expr = metric.success_condition or ""
    failure_expr = metric.failure_condition or ""
    try:
        success = parse_condition(success_expr).evaluate(value) if success_expr else False
        failure = parse_condition(failure_expr).evaluate(value) if failure_expr else False
    except ConditionError as err:
        return MeasurementPhase.ERROR, str(err)
    if not success_expr and not failure_expr:
        return MeasurementPhase.SUCCESSFUL, "no condition set"
    if success_expr and not failure_expr:
        failure = not success
    elif failure_expr and not success_expr:
        success = not failure
    if failure:
        held = (
            f"failureCondition {failure_expr!r} met" if failure_expr else f"successCondition {success_expr!r} not met"
        )
        return MeasurementPhase.FAILED, held
    if success:
        held = (
            f"successCondition {success_expr!r} met" if success_expr else f"failureCondition {failure_expr!r} not met"
        )
        return MeasurementPhase.SUCCESSFUL, held
    return MeasurementPhase.INCONCLUSIVE, "neither successCondition nor failureCondition met"
