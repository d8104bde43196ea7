"""What one reconcile decision takes in and gives out.

``Observation``: what the caller learned this pass from the outside world.
``Decision``: the whole next status and the Kubernetes state that expresses it;
the caller records it as one Pulumi update (``kulta.core.program_inputs``
turns it into the program's inputs).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kulta.core.commands import ManualCommand
from kulta.model.rollout import SetHeaderRoute, SetMirrorRoute
from kulta.model.status import AnalysisRunStatus, Phase, RolloutStatus

__all__ = ["AbortReason", "Decision", "Observation", "WaitOutcome", "WaitResult"]


class AbortReason(enum.Enum):
    MANUAL = "manual"
    ANALYSIS = "analysis"
    PROGRESS_DEADLINE = "progress-deadline"


@dataclass(frozen=True)
class Observation:
    """What the caller learned this pass from the outside world."""

    #: analysis runs advanced this pass (inline and background), replacing same-named ones
    analysis_runs: tuple[AnalysisRunStatus, ...] = ()
    #: the last update of the current step failed (e.g. the canary never became available)
    update_failed: bool = False
    update_error: str = ""
    #: it failed because Pods did not become available within progressDeadlineSeconds
    #: (the update waits for availability with the deadline as its timeout)
    deadline_exceeded: bool = False
    #: the live cluster differs from the last status (weights or replicas edited by hand)
    drift: bool = False
    #: the update that recorded the last status was killed before its history entry:
    #: record the same state again before anything else (``UnrecordedUpdateError``)
    unrecorded: bool = False


class WaitOutcome(enum.Enum):
    """Where the current step's wait stands."""

    DONE = "done"
    WAITING = "waiting"


@dataclass(frozen=True)
class WaitResult:
    outcome: WaitOutcome
    #: the phase while waiting
    phase: Phase
    #: when to look again (a timed pause's end)
    due: datetime | None
    note: str


@dataclass(frozen=True)
class Decision:
    """The next status and the Kubernetes state that expresses it."""

    status: RolloutStatus
    #: replicas per revision hash; revisions absent here are not declared (pruned)
    replicas: Mapping[str, int]
    canary_weight: int
    header_routes: tuple[SetHeaderRoute, ...]
    #: revisions whose Pods must be available before traffic or selectors move in this update
    wait_ready: frozenset[str]
    #: the revision the canary Service selects (the stable one when nothing is in flight)
    canary_service_revision: str
    apply: bool
    next_due: datetime | None
    reason: str
    abort_reason: AbortReason | None = None
    command_applied: ManualCommand | None = None
    templates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the step's active mirror routes (none when nothing is in flight)
    mirror_routes: tuple[SetMirrorRoute, ...] = ()
