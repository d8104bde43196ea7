"""Properties of build_events over arbitrary status transitions."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kulta.adapters.cdevents_schema import validate_event
from kulta.core.events import EndReason, EventType, build_events, record_events
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase, RolloutStatus, RouteWeight
from tests.event_scenarios import REV_A, REV_B, REV_C, TEMPLATES, context

REVISIONS = ("", REV_A, REV_B, REV_C)


@st.composite
def statuses(draw: st.DrawFn) -> RolloutStatus:
    stable = draw(st.sampled_from(REVISIONS))
    canary = draw(st.sampled_from(REVISIONS))
    canary_weight = draw(st.integers(0, 100))
    runs: tuple[AnalysisRunStatus, ...] = tuple(
        AnalysisRunStatus(name=name, phase=draw(st.sampled_from(list(AnalysisPhase))), step_index=1)
        for name in draw(st.lists(st.sampled_from(["a1", "a2"]), unique=True, max_size=2))
    )
    aborted = draw(st.booleans())
    changes: dict[str, Any] = {}
    if draw(st.booleans()):
        changes["images"] = (draw(st.sampled_from(["nginx", "ghcr.io/org/app:1.0", "localhost:5000/x/y"])),)
    return RolloutStatus(
        rollout="web",
        namespace="shop",
        environment="prod",
        phase=Phase.ABORTED if aborted else draw(st.sampled_from([Phase.PROGRESSING, Phase.PAUSED, Phase.HEALTHY])),
        current_step_index=draw(st.integers(0, 3)),
        step_count=3,
        stable_revision=stable,
        canary_revision=canary,
        weights=(RouteWeight("web", "shop", 100 - canary_weight, canary_weight),),
        replicas={r: 2 for r in {stable, canary} if r},
        aborted=aborted,
        deployed_once=draw(st.booleans()),
        rollout_started_at=draw(st.sampled_from(["", "2026-11-25T14:00:00Z", "2026-11-25T15:00:00Z"])),
        analysis_runs=runs,
        templates={r: TEMPLATES[r] for r in (stable, canary) if r and draw(st.booleans())},
        **changes,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prev=st.one_of(st.none(), statuses()),
    new=statuses(),
    reason=st.one_of(st.none(), st.sampled_from(list(EndReason))),
    prev_last=st.sampled_from(["", "11111111-2222-3333-4444-555555555555"]),
)
def test_any_transition_gives_valid_linked_deterministic_events(
    prev: RolloutStatus | None, new: RolloutStatus, reason: EndReason | None, prev_last: str
) -> None:
    if prev is not None:
        prev = prev.with_changes(last_event_id=prev_last)
    ctx = context(reason)
    events = build_events(prev, new, ctx)
    assert events == build_events(prev, new, ctx)
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))
    allowed_sources = set(ids) | ({prev_last} if prev_last else set())
    for index, ev in enumerate(events):
        validate_event(ev.body)
        for link in ev.body["context"].get("links", []):
            source = link["from"]["contextId"]
            assert source in allowed_sources
            assert source not in ids[index:], "links only point backwards"
    types = [e.type for e in events]
    assert types.count(EventType.PIPELINERUN_STARTED) <= 2
    assert types.count(EventType.SERVICE_UPGRADED) + types.count(EventType.SERVICE_DEPLOYED) <= 1
    if events:
        assert record_events(new, events).last_event_id == events[-1].id
