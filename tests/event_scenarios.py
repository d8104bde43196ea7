"""Rollout status sequences shared by the CDEvents unit and integration tests.

Each scenario is the list of ``RolloutStatus`` values a rollout's stack outputs
go through; ``replay`` threads them through ``build_events`` the way the
reconciler does (carrying ``chain_id`` / ``last_event_id`` forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kulta.core.events import CDEvent, EndReason, EventContext, build_events, record_events
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase, RolloutStatus, RouteWeight

__all__ = [
    "IMAGE_V1",
    "IMAGE_V2",
    "IMAGE_V3",
    "REV_A",
    "REV_B",
    "REV_C",
    "Step",
    "aborted_by_analysis",
    "aborted_rollout_events",
    "context",
    "first_deploy",
    "full_rollout",
    "full_rollout_events",
    "manual_abort",
    "replay",
    "stable_a",
    "superseded",
]

REV_A = "6d4f8b7c9a"
REV_B = "7f9c2e1d3b"
REV_C = "8a1b3c5d7e"
IMAGE_V1 = "registry.local/team/web:v1"
IMAGE_V2 = "registry.local/team/web:v2"
IMAGE_V3 = "registry.local/team/web@sha256:" + "ab" * 32


def _template(image: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}}


TEMPLATES = {REV_A: _template(IMAGE_V1), REV_B: _template(IMAGE_V2), REV_C: _template(IMAGE_V3)}


def context(end_reason: EndReason | None = None, now: str = "2026-11-25T14:00:00Z") -> EventContext:
    return EventContext(
        source="/kulta/prod-eu1",
        uri="https://kulta.example.com/rollouts/shop/web",
        environment_id="prod-eu1/shop",
        cluster="prod-eu1",
        end_reason=end_reason,
        now=now,
    )


def _weights(canary: int) -> tuple[RouteWeight, ...]:
    return (RouteWeight(route="web", namespace="shop", stable=100 - canary, canary=canary),)


def _status(**changes: Any) -> RolloutStatus:
    base = RolloutStatus(
        rollout="web",
        namespace="shop",
        environment="prod",
        phase=Phase.HEALTHY,
        current_step_index=3,
        step_count=3,
        stable_revision=REV_A,
        canary_revision=REV_A,
        weights=_weights(0),
        replicas={REV_A: 4},
        step_started_at="2026-11-25T13:00:00Z",
        git_commit="1111111",
        images=(IMAGE_V1,),
        deployed_once=True,
        revision_history=(REV_A,),
        templates={REV_A: TEMPLATES[REV_A]},
    )
    return base.with_changes(**changes)


Step = tuple[RolloutStatus, EventContext]


def _in_flight(step: int, canary_weight: int, phase: Phase = Phase.PROGRESSING, **changes: Any) -> RolloutStatus:
    return _status(
        phase=phase,
        current_step_index=step,
        canary_revision=REV_B,
        weights=_weights(canary_weight),
        replicas={REV_A: 4, REV_B: 1 if canary_weight < 50 else 2},
        step_started_at=f"2026-11-25T14:0{step}:00Z",
        git_commit="2222222",
        images=(IMAGE_V2,),
        rollout_started_at="2026-11-25T14:00:00Z",
        templates={REV_A: TEMPLATES[REV_A], REV_B: TEMPLATES[REV_B]},
        **changes,
    )


def stable_a() -> RolloutStatus:
    return _status()


def full_rollout() -> list[Step]:
    """Stable A → canary B through 3 steps (20%, pause, 50%) → all steps done → promoted."""
    ctx = context()
    return [
        (_in_flight(0, 20), ctx),
        (_in_flight(1, 20, phase=Phase.PAUSED), ctx),
        (_in_flight(2, 50), ctx),
        (_in_flight(3, 100), ctx),
        (
            _status(
                stable_revision=REV_B,
                canary_revision=REV_B,
                current_step_index=3,
                git_commit="2222222",
                images=(IMAGE_V2,),
                replicas={REV_B: 4},
                rollout_started_at="2026-11-25T14:00:00Z",
                revision_history=(REV_A, REV_B),
                templates={REV_B: TEMPLATES[REV_B]},
            ),
            context(EndReason.PROMOTED),
        ),
    ]


def aborted_by_analysis() -> list[Step]:
    """Canary B passes step 0, its step-1 analysis fails, the rollout aborts."""
    running = AnalysisRunStatus(name="web-b-1-success-rate", phase=AnalysisPhase.RUNNING, step_index=1)
    failed = AnalysisRunStatus(
        name="web-b-1-success-rate",
        phase=AnalysisPhase.FAILED,
        step_index=1,
        message="success-rate 0.91 < 0.99",
    )
    ctx = context()
    return [
        (_in_flight(0, 20), ctx),
        (_in_flight(1, 20, analysis_runs=(running,)), ctx),
        (
            _in_flight(
                1,
                0,
                phase=Phase.ABORTED,
                aborted=True,
                analysis_runs=(failed,),
                message="analysis web-b-1-success-rate failed",
            ),
            context(EndReason.ANALYSIS_FAILED),
        ),
    ]


def manual_abort() -> list[Step]:
    """Canary B at step 1 is aborted by ``kulta abort``."""
    ctx = context()
    return [
        (_in_flight(0, 20), ctx),
        (_in_flight(1, 20, phase=Phase.PAUSED), ctx),
        (
            _in_flight(1, 0, phase=Phase.ABORTED, aborted=True, message="aborted by alice"),
            context(EndReason.MANUAL_ABORT),
        ),
    ]


def superseded() -> list[Step]:
    """Canary B at step 1 is replaced by a newer commit (revision C) before it finishes."""
    ctx = context()
    c_started = _in_flight(0, 20).with_changes(
        canary_revision=REV_C,
        images=(IMAGE_V3,),
        git_commit="3333333",
        rollout_started_at="2026-11-25T15:00:00Z",
        replicas={REV_A: 4, REV_C: 1},
        templates={REV_A: TEMPLATES[REV_A], REV_C: TEMPLATES[REV_C]},
    )
    return [(_in_flight(0, 20), ctx), (_in_flight(1, 20), ctx), (c_started, context(EndReason.SUPERSEDED))]


def first_deploy() -> list[Step]:
    """A brand-new stack: revision A goes live in the first update."""
    return [(_status(), context())]


def replay(steps: Sequence[Step], start: RolloutStatus | None) -> list[list[CDEvent]]:
    """Run the statuses through ``build_events`` like the reconciler: one batch per update.

    ``start`` is the status before the first step (``None``: a brand-new stack).
    """
    prev = start
    batches: list[list[CDEvent]] = []
    for new, ctx in steps:
        carried = new if prev is None else new.with_changes(chain_id=prev.chain_id, last_event_id=prev.last_event_id)
        events = build_events(prev, carried, ctx)
        batches.append(events)
        prev = record_events(carried, events)
    return batches


def full_rollout_events() -> list[CDEvent]:
    """Every event of rollout ``web``: stable A, canary B through all steps, promoted."""
    return [e for batch in replay(full_rollout(), stable_a()) for e in batch]


def aborted_rollout_events() -> list[CDEvent]:
    """Every event of rollout ``api``: canary B aborted by its step-1 analysis."""
    steps: list[Step] = [(s.with_changes(rollout="api"), c) for s, c in aborted_by_analysis()]
    return [e for batch in replay(steps, stable_a().with_changes(rollout="api")) for e in batch]
