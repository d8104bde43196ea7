"""What the dashboard shows, computed from what ``kulta status`` and ``kulta history`` read.

Pure: statuses, history entries and analysis templates in, frozen view models
out (and their JSON form). No I/O here; ``kulta.app.dashboard`` reads the
backend with the same functions as the CLI and hands the results over.

* **Overview**: one row per stack of the environment: phase, step, weights.
* **Weight points**: one per update in the stack's history that KULTA made
  (its message carries ``step=`` and ``canary=``; see
  ``kulta.app.commands.update_fields``), at the update's start time: the canary
  weight over time.
* **Timeline**: each step of the current canary (and the promotion after the
  last), with the time an update first reached it in the stack's history, its
  canary weight there, and whether it is done, current or still to come.
* **Events**: the newest updates, newest first, with result and reason (the
  ``WHY`` column of ``kulta history``), plus the reconciler's failure record
  from ``health.json`` when there is one.
* **Analysis**: each run's measurements per metric, with the metric's
  ``successCondition`` from the templates when the dashboard was given the
  files, and a threshold when the condition is a plain comparison of the
  result with a number (``result[0] < 0.05``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kulta.adapters.stacks import HistoryEntry
from kulta.app.commands import StackRef, allowed_commands, update_fields
from kulta.core.commands import CommandKind
from kulta.core.conditions import Binary, ConditionError, Index, Literal, ResultRef, parse_condition
from kulta.model.analysis import AnalysisTemplate
from kulta.model.status import MeasurementPhase, Phase, RolloutStatus

__all__ = [
    "MAX_EVENTS",
    "DetailView",
    "EventRow",
    "MetricSeries",
    "OverviewRow",
    "Threshold",
    "StepState",
    "TimelineStep",
    "WeightPoint",
    "detail_view",
    "overview_rows",
    "threshold_of",
]

#: events listed on a rollout's page
MAX_EVENTS = 10
#: measurements plotted per metric (a status keeps a bounded list anyway)
MAX_POINTS = 100
COMPARISONS = frozenset({"<", "<=", ">", ">="})
FIELD_STEP = "step"
FIELD_CANARY = "canary"


@dataclass(frozen=True)
class OverviewRow:
    namespace: str
    rollout: str
    phase: Phase | None
    step: int
    step_count: int
    canary_weight: int
    stable_revision: str
    canary_revision: str
    message: str
    failing: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "rollout": self.rollout,
            "phase": self.phase.value if self.phase else None,
            "step": self.step,
            "stepCount": self.step_count,
            "canaryWeight": self.canary_weight,
            "stableRevision": self.stable_revision,
            "canaryRevision": self.canary_revision,
            "message": self.message,
            "failing": self.failing,
        }


@dataclass(frozen=True)
class WeightPoint:
    time: str
    step: str
    canary: int


class StepState(enum.Enum):
    DONE = "done"
    CURRENT = "current"
    ABORTED = "aborted"
    PENDING = "pending"


@dataclass(frozen=True)
class TimelineStep:
    """Step ``index`` of the current canary (``index == step_count``: the promotion)."""

    index: int
    state: StepState
    reached_at: str = ""
    canary: str = ""


@dataclass(frozen=True)
class EventRow:
    time: str
    result: str
    text: str


@dataclass(frozen=True)
class Threshold:
    """``result <op> value``: the line a measurement must stay on the right side of."""

    op: str
    value: float


@dataclass(frozen=True)
class MetricSeries:
    run: str
    where: str
    metric: str
    condition: str
    threshold: Threshold | None
    #: (finished at, value if numeric, phase, value as measured)
    points: tuple[tuple[str, float | None, MeasurementPhase, str], ...]


@dataclass(frozen=True)
class DetailView:
    row: OverviewRow
    environment: str
    weights: tuple[WeightPoint, ...]
    timeline: tuple[TimelineStep, ...]
    events: tuple[EventRow, ...]
    analysis: tuple[MetricSeries, ...]
    can_promote: bool
    can_abort: bool
    can_retry: bool

    def to_json(self) -> dict[str, Any]:
        return {
            **self.row.to_json(),
            "environment": self.environment,
            "weights": [{"time": p.time, "step": p.step, "canary": p.canary} for p in self.weights],
            "timeline": [
                {"step": t.index, "state": t.state.value, "reachedAt": t.reached_at, "canary": t.canary}
                for t in self.timeline
            ],
            "events": [vars(e) for e in self.events],
            "analysis": [
                {
                    "run": s.run,
                    "where": s.where,
                    "metric": s.metric,
                    "successCondition": s.condition,
                    "measurements": [
                        {"finishedAt": t, "value": text, "phase": phase.value} for t, _, phase, text in s.points
                    ],
                }
                for s in self.analysis
            ],
            "actions": {"promote": self.can_promote, "abort": self.can_abort, "retry": self.can_retry},
        }


def _row(ref: StackRef, status: RolloutStatus | None, health: Mapping[str, Mapping[str, Any]]) -> OverviewRow:
    entry = health.get(ref.name)
    failing = f"{entry.get('dependency', '?')}: {entry.get('error', '')}" if entry is not None else ""
    if status is None:
        return OverviewRow(ref.namespace, ref.rollout, None, 0, 0, 0, "", "", "no update yet", failing)
    return OverviewRow(
        namespace=status.namespace,
        rollout=status.rollout,
        phase=status.phase,
        step=min(status.current_step_index, status.step_count),
        step_count=status.step_count,
        canary_weight=status.weights[0].canary if status.weights else 0,
        stable_revision=status.stable_revision,
        canary_revision=status.canary_revision,
        message=status.message,
        failing=failing,
    )


def overview_rows(
    rows: Sequence[tuple[StackRef, RolloutStatus | None]], health: Mapping[str, Mapping[str, Any]]
) -> list[OverviewRow]:
    return [_row(ref, status, health) for ref, status in rows]


def _why(message: str) -> str:
    return message.split("::", 1)[1].strip() if "::" in message else message


def _weight_points(entries: Sequence[HistoryEntry]) -> tuple[WeightPoint, ...]:
    points = []
    for e in entries:
        fields = update_fields(e.message)
        canary = fields.get(FIELD_CANARY, "").rstrip("%")
        if FIELD_STEP in fields and canary.isdigit():
            points.append(WeightPoint(e.start_time, fields[FIELD_STEP], int(canary)))
    return tuple(points)


def _step_index(fields: Mapping[str, str]) -> int | None:
    head = fields.get(FIELD_STEP, "").split("/", 1)[0]
    return int(head) if head.isdigit() else None


def _timeline(entries: Sequence[HistoryEntry], status: RolloutStatus | None) -> tuple[TimelineStep, ...]:
    """The current canary's steps: when each was first reached, from the newest run of updates.

    A run starts where the step index goes down (a new revision or a retry starts again
    at step 0), so only the updates of the current canary count.
    """
    if status is None or status.step_count == 0:
        return ()
    reached: dict[int, tuple[str, str]] = {}
    previous = None
    for e in entries:
        fields = update_fields(e.message)
        index = _step_index(fields)
        if index is None or e.result != "succeeded":
            continue
        if previous is not None and index < previous:
            reached = {}
        previous = index
        reached.setdefault(index, (e.start_time, fields.get(FIELD_CANARY, "")))
    current = min(status.current_step_index, status.step_count)
    cells = []
    for index in range(status.step_count + 1):
        if status.aborted:
            state = StepState.ABORTED if index == current else StepState.DONE if index < current else StepState.PENDING
        elif status.in_flight:
            state = StepState.DONE if index < current else StepState.CURRENT if index == current else StepState.PENDING
        else:
            state = StepState.DONE
        time, canary = reached.get(index, ("", ""))
        cells.append(TimelineStep(index, state, time, canary))
    return tuple(cells)


def threshold_of(condition: str) -> Threshold | None:
    """``result < 0.05`` / ``result[0] >= 0.95`` / ``0.05 > result`` → the number and the side.

    Anything else (several terms, functions, a condition that does not parse)
    has no single line to draw: ``None``.
    """
    try:
        root = parse_condition(condition).root
    except ConditionError:
        return None
    if not isinstance(root, Binary) or root.op not in COMPARISONS:
        return None

    def is_result(node: object) -> bool:
        return isinstance(node, ResultRef) or (
            isinstance(node, Index)
            and isinstance(node.target, ResultRef)
            and isinstance(node.index, Literal)
            and node.index.value == 0
        )

    def number(node: object) -> float | None:
        if isinstance(node, Literal) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return float(node.value)
        return None

    flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
    right, left = number(root.right), number(root.left)
    if is_result(root.left) and right is not None:
        return Threshold(root.op, right)
    if is_result(root.right) and left is not None:
        return Threshold(flipped[root.op], left)
    return None


def _numeric(value: str) -> float | None:
    """A measured value as a number: a scalar, or a vector's first element; else ``None``."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].split(",", 1)[0]
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _conditions(templates: Sequence[AnalysisTemplate]) -> dict[tuple[str, str], str]:
    return {(t.name, m.name): m.success_condition or "" for t in templates for m in t.metrics}


def _analysis(status: RolloutStatus, templates: Sequence[AnalysisTemplate]) -> tuple[MetricSeries, ...]:
    conditions = _conditions(templates)
    series = []
    for run in status.analysis_runs:
        names = [t.name for t in run.ref.templates] if run.ref is not None else []
        metrics = list(dict.fromkeys(m.metric for m in run.measurements))
        for metric in metrics:
            condition = next((conditions[(n, metric)] for n in names if (n, metric) in conditions), "")
            points = tuple(
                (m.finished_at, _numeric(m.value), m.phase, m.value) for m in run.measurements if m.metric == metric
            )[-MAX_POINTS:]
            series.append(
                MetricSeries(
                    run=run.name,
                    where="background" if run.step_index is None else f"step {run.step_index}",
                    metric=metric,
                    condition=condition,
                    threshold=threshold_of(condition) if condition else None,
                    points=points,
                )
            )
    return tuple(series)


def detail_view(
    ref: StackRef,
    status: RolloutStatus | None,
    history: Sequence[HistoryEntry],
    health: Mapping[str, Mapping[str, Any]],
    templates: Sequence[AnalysisTemplate] = (),
) -> DetailView:
    """One rollout's page; ``history`` in any order (``StackManager.history`` lists newest first)."""
    entries = sorted(history, key=lambda e: e.version)
    events = [EventRow(e.start_time, e.result, _why(e.message)) for e in reversed(entries[-MAX_EVENTS:])]
    entry = health.get(ref.name)
    if entry is not None:
        reason = f"{entry.get('dependency', '?')}: {entry.get('error', '')}"
        events.insert(0, EventRow(str(entry.get("since", "")), "failing", reason))
    allowed = allowed_commands(status)
    return DetailView(
        row=_row(ref, status, health),
        environment=ref.environment,
        weights=_weight_points(entries),
        timeline=_timeline(entries, status),
        events=tuple(events),
        analysis=_analysis(status, templates) if status is not None else (),
        can_promote=CommandKind.PROMOTE in allowed,
        can_abort=CommandKind.ABORT in allowed,
        can_retry=CommandKind.RETRY in allowed,
    )
