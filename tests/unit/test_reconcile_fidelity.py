"""Argo fidelity of the decision: strategy edits, delays, background analysis, program inputs.

Each test is a worked example with the expected values written out by hand from
Argo Rollouts' rules (``rollout/canary.go``, ``utils/defaults/defaults.go``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.decision import AbortReason, Observation
from kulta.core.names import background_run_name, inline_run_name
from kulta.core.program_inputs import build_program_inputs
from kulta.core.reconcile import Situation, classify, decide
from kulta.model.program import RevisionRole, ScaleOrder
from kulta.model.rollout import (
    AnalysisRef,
    AnalysisTemplateRef,
    BackgroundAnalysis,
    CanaryStrategy,
    HeaderMatch,
    HeaderMatchType,
    HTTPRouteRef,
    Pause,
    PodMetadata,
    Rollout,
    RolloutSpec,
    SetHeaderRoute,
    SourceRef,
    Step,
    StepKind,
    TrafficRouting,
)
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase, RolloutStatus

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
ANALYSIS = AnalysisRef((AnalysisTemplateRef("success-rate"),))
V1 = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}
V2 = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:2"}]}}
R1, R2 = "rev1", "rev2"


def weight(w: int, i: int) -> Step:
    return Step(index=i, kinds=frozenset({StepKind.SET_WEIGHT}), set_weight=w)


def pause(seconds: int | None, i: int) -> Step:
    return Step(index=i, kinds=frozenset({StepKind.PAUSE}), pause=Pause(seconds))


def analysis(i: int) -> Step:
    return Step(index=i, kinds=frozenset({StepKind.ANALYSIS}), analysis=ANALYSIS)


ROUTED = TrafficRouting(http_routes=(HTTPRouteRef("web"),))


def make(steps: tuple[Step, ...], *, routing: TrafficRouting | None = ROUTED, **strategy: object) -> Rollout:
    canary = CanaryStrategy(
        canary_service="web-canary" if routing else None,
        stable_service="web-stable" if routing else None,
        steps=steps,
        traffic_routing=routing,
        **strategy,  # type: ignore[arg-type]
    )
    spec = RolloutSpec(replicas=4, selector={"matchLabels": {"app": "web"}}, template=V2, strategy=canary)
    return Rollout("web", "shop", "argoproj.io/v1alpha1", {}, {}, spec, SourceRef("web.yaml", 1))


def run(rollout: Rollout, prev: RolloutStatus | None, now: datetime, revision: str = R2, **kw: object):
    template = V1 if revision == R1 else V2
    d = decide(rollout, revision, template, prev, now, environment="dev", **kw)  # type: ignore[arg-type]
    return d, RolloutStatus.from_outputs(d.status.to_outputs())


def at_stable_v1(rollout: Rollout) -> RolloutStatus:
    return run(rollout, None, T0, revision=R1)[1]


def walk_to(rollout: Rollout, index: int) -> RolloutStatus:
    """Start the v2 canary and walk (with each wait satisfied) until ``index`` is the current step."""
    st = at_stable_v1(rollout)
    _, st = run(rollout, st, T0)
    while st.current_step_index < index:
        step = rollout.spec.strategy.steps[st.current_step_index]
        obs = Observation()
        cmd = None
        if step.analysis is not None:
            name = inline_run_name("web", R2, st.current_step_index)
            obs = Observation(analysis_runs=(AnalysisRunStatus(name, AnalysisPhase.SUCCESSFUL, st.current_step_index),))
        if step.pause is not None:
            cmd = ManualCommand(f"promote-{st.current_step_index}", CommandKind.PROMOTE)
        _, st = run(rollout, st, T0, observation=obs, command=cmd)
    return st


# --------------------------------------------------------------------------- strategy edits

STEPS = (weight(20, 0), pause(None, 1), weight(40, 2), analysis(3), weight(80, 4), pause(60, 5))


def test_shortening_steps_during_a_running_analysis_lets_it_finish_then_restarts_with_stable_weights_first():
    original = make(STEPS)
    st = walk_to(original, 3)
    assert (st.current_step_index, st.weights[0].canary) == (3, 40)
    shortened = make(STEPS[:2])  # the analysis step and everything after it are gone
    running = AnalysisRunStatus(inline_run_name("web", R2, 3), AnalysisPhase.RUNNING, 3, ref=ANALYSIS)
    st = st.with_changes(analysis_runs=(running,))
    # the running analysis is never skipped: it finishes before anything moves
    assert classify(shortened, R2, st, None, Observation()) is Situation.STRATEGY_CHANGED_ANALYSIS_RUNNING
    d, held = run(shortened, st, T0 + timedelta(minutes=1))
    assert not d.apply and held.current_step_index == 3 and held.weights[0].canary == 40
    assert "finishes first" in d.reason
    # it succeeds: now the canary restarts, traffic back to stable first
    done = AnalysisRunStatus(inline_run_name("web", R2, 3), AnalysisPhase.SUCCESSFUL, 3, ref=ANALYSIS)
    d, ended = run(shortened, held, T0 + timedelta(minutes=2), observation=Observation(analysis_runs=(done,)))
    # first the result is recorded (no resource changes), so the history shows how it ended
    assert not d.apply and ended.analysis_runs == (done,) and ended.current_step_index == 3
    assert "web-rev2-step3 Successful" in d.reason
    d, reset = run(shortened, ended, T0 + timedelta(minutes=2))
    assert reset.phase is Phase.PROGRESSING and reset.stable_revision == R1 and reset.canary_revision == R2
    assert d.canary_weight == 0 and [(w.stable, w.canary) for w in reset.weights] == [(100, 0)]
    assert reset.current_step_index == 0 and reset.analysis_runs == ()
    assert reset.restart_reason.startswith("strategy changed in Git") and "step 3" in reset.restart_reason
    assert d.reason == reset.message == reset.restart_reason
    # the next decision applies step 0 of the new steps: 20%, then holds at the indefinite pause
    d, st0 = run(shortened, reset, T0 + timedelta(minutes=2))
    assert (st0.current_step_index, d.canary_weight, st0.restart_reason) == (0, 20, "")
    d, st1 = run(shortened, st0, T0 + timedelta(minutes=2))
    assert (st1.current_step_index, st1.phase, d.canary_weight) == (1, Phase.PAUSED, 20)
    d, again = run(shortened, st1, T0 + timedelta(minutes=3))
    assert not d.apply and again.phase is Phase.PAUSED and again.stable_revision == R1


def test_an_analysis_that_fails_after_the_steps_were_shortened_aborts():
    st = walk_to(make(STEPS), 3)
    running = AnalysisRunStatus(inline_run_name("web", R2, 3), AnalysisPhase.RUNNING, 3, ref=ANALYSIS)
    st = st.with_changes(analysis_runs=(running,))
    shortened = make(STEPS[:1])
    _, held = run(shortened, st, T0)
    failed = replace(running, phase=AnalysisPhase.FAILED, message="error ratio 0.2")
    d, after = run(shortened, held, T0 + timedelta(minutes=1), observation=Observation(analysis_runs=(failed,)))
    assert after.phase is Phase.ABORTED and d.abort_reason is AbortReason.ANALYSIS
    assert after.stable_revision == R1 and d.canary_weight == 0


def test_the_analysis_a_run_measures_is_kept_in_the_outputs():
    ref = AnalysisRef((AnalysisTemplateRef("a"), AnalysisTemplateRef("b", cluster_scope=True)), ())
    run_ = AnalysisRunStatus("r", AnalysisPhase.RUNNING, 2, ref=ref)
    outputs = run_.to_outputs()
    assert outputs["analysis"] == {
        "templates": [{"templateName": "a", "clusterScope": False}, {"templateName": "b", "clusterScope": True}],
        "args": [],
    }
    assert AnalysisRunStatus.from_outputs(outputs) == run_


def test_a_failed_analysis_aborts_even_when_the_same_commit_shortens_the_steps():
    st = walk_to(make(STEPS), 3)
    failed = AnalysisRunStatus(inline_run_name("web", R2, 3), AnalysisPhase.FAILED, 3, message="error ratio 0.2")
    shortened = make(STEPS[:1])
    d, after = run(shortened, st, T0 + timedelta(minutes=1), observation=Observation(analysis_runs=(failed,)))
    assert after.phase is Phase.ABORTED and d.abort_reason is AbortReason.ANALYSIS
    assert after.stable_revision == R1 and d.canary_weight == 0


def test_a_failed_analysis_is_not_promoted_past_by_a_person():
    st = walk_to(make(STEPS), 3)
    failed = AnalysisRunStatus(inline_run_name("web", R2, 3), AnalysisPhase.ERROR, 3, message="no data")
    promote = ManualCommand("p-1", CommandKind.PROMOTE)
    d, after = run(make(STEPS), st, T0, observation=Observation(analysis_runs=(failed,)), command=promote)
    assert after.phase is Phase.ABORTED and after.stable_revision == R1


def test_promoting_past_a_running_analysis_terminates_its_run():
    st = walk_to(make(STEPS), 3)
    running = AnalysisRunStatus(inline_run_name("web", R2, 3), AnalysisPhase.RUNNING, 3, ref=ANALYSIS)
    obs = Observation(analysis_runs=(running,))
    d, after = run(make(STEPS), st, T0, observation=obs, command=ManualCommand("p-3", CommandKind.PROMOTE))
    assert after.current_step_index == 4 and d.canary_weight == 80
    assert [(r.phase, r.message) for r in after.analysis_runs] == [
        (AnalysisPhase.SUCCESSFUL, "Run Terminated: the rollout left the analysis step")
    ]


def test_changing_traffic_routing_or_background_analysis_also_restarts():
    st = walk_to(make(STEPS), 2)
    other_route = make(STEPS, routing=TrafficRouting(http_routes=(HTTPRouteRef("web"), HTTPRouteRef("web-2"))))
    assert classify(other_route, R2, st, None, Observation()) is Situation.STRATEGY_CHANGED
    background = make(STEPS, analysis=BackgroundAnalysis(templates=(AnalysisTemplateRef("latency"),)))
    assert classify(background, R2, st, None, Observation()) is Situation.STRATEGY_CHANGED
    # replicas, surge and metadata are not the strategy a canary walks through
    more = replace(make(STEPS, max_surge=2), spec=replace(make(STEPS, max_surge=2).spec, replicas=9))
    assert classify(more, R2, st, None, Observation()) is Situation.STEPPING


def test_a_status_written_before_strategy_hashes_existed_is_not_restarted():
    st = walk_to(make(STEPS), 2).with_changes(strategy_hash="")
    assert classify(make(STEPS), R2, st, None, Observation()) is Situation.STEPPING


def test_spec_paused_holds_the_canary_at_its_step():
    rollout = make(STEPS)
    st = walk_to(rollout, 2)
    paused = replace(rollout, spec=replace(rollout.spec, paused=True))
    d, held = run(paused, st, T0 + timedelta(hours=1))
    assert not d.apply and held.phase is Phase.PAUSED and held.current_step_index == 2
    assert "spec.paused is true" in d.reason
    d, resumed = run(rollout, held, T0 + timedelta(hours=1))  # paused: false again
    assert d.apply and resumed.current_step_index == 3


# --------------------------------------------------------------------------- scale-down delays


def test_basic_canary_promotion_scales_the_old_stable_down_at_once():
    # no trafficRouting: Argo's default scaleDownDelaySeconds is 0 (a Service spans both revisions)
    rollout = make((weight(50, 0),), routing=None)
    st = walk_to(rollout, 0)
    d, done = run(rollout, st, T0 + timedelta(minutes=1))
    assert done.phase is Phase.HEALTHY and done.stable_revision == R2
    assert d.replicas == {R1: 0, R2: 4} and done.scale_down_revision == ""


def test_routed_canary_promotion_keeps_the_old_stable_for_30_seconds():
    rollout = make((weight(50, 0),))
    st = walk_to(rollout, 0)
    d, done = run(rollout, st, T0)
    assert d.replicas == {R1: 4, R2: 4}
    assert (done.scale_down_revision, done.scale_down_at) == (R1, "2026-12-01T12:00:30Z")


def test_abort_scale_down_delay_zero_never_scales_the_aborted_canary_down():
    rollout = make((weight(50, 0), pause(None, 1)), abort_scale_down_delay_seconds=0)
    st = walk_to(rollout, 1)
    d, aborted = run(rollout, st, T0, command=ManualCommand("a-1", CommandKind.ABORT))
    assert aborted.phase is Phase.ABORTED and d.canary_weight == 0
    assert d.replicas == {R1: 4, R2: 2} and aborted.scale_down_revision == "" and d.next_due is None
    d, later = run(rollout, aborted, T0 + timedelta(days=1))
    assert not d.apply and later.replicas == {"web-rev1": 4, "web-rev2": 2}


def test_abort_with_the_default_delay_scales_the_canary_down_after_30_seconds():
    rollout = make((weight(50, 0), pause(None, 1)))
    st = walk_to(rollout, 1)
    d, aborted = run(rollout, st, T0, command=ManualCommand("a-1", CommandKind.ABORT))
    assert d.replicas == {R1: 4, R2: 2} and aborted.scale_down_at == "2026-12-01T12:00:30Z"
    d, later = run(rollout, aborted, T0 + timedelta(seconds=30))
    assert d.apply and later.replicas == {"web-rev1": 4, "web-rev2": 0}


# --------------------------------------------------------------------------- background analysis


def background_rollout() -> Rollout:
    return make((weight(50, 0), pause(None, 1)), analysis=BackgroundAnalysis(templates=(AnalysisTemplateRef("bg"),)))


def test_background_analysis_ends_at_promotion_as_argo_terminates_it():
    rollout = background_rollout()
    st = walk_to(rollout, 1)
    name = background_run_name("web", R2)
    running = AnalysisRunStatus(name, AnalysisPhase.RUNNING, None, message="")
    obs = Observation(analysis_runs=(running,))
    _, done = run(rollout, st, T0, observation=obs, command=ManualCommand("p", CommandKind.PROMOTE))
    assert done.phase is Phase.HEALTHY
    assert [(r.name, r.phase, r.message) for r in done.analysis_runs] == [
        (name, AnalysisPhase.SUCCESSFUL, "Run Terminated: rollout promoted")
    ]


def test_background_analysis_ends_at_abort():
    rollout = background_rollout()
    st = walk_to(rollout, 1)
    name = background_run_name("web", R2)
    obs = Observation(analysis_runs=(AnalysisRunStatus(name, AnalysisPhase.RUNNING, None),))
    _, aborted = run(rollout, st, T0, observation=obs, command=ManualCommand("a", CommandKind.ABORT))
    assert aborted.phase is Phase.ABORTED
    assert [(r.phase, r.message) for r in aborted.analysis_runs] == [
        (AnalysisPhase.SUCCESSFUL, "Run Terminated: rollout aborted")
    ]


# --------------------------------------------------------------------------- program inputs


def test_header_rules_go_only_to_routes_with_use_header_routes():
    routing = TrafficRouting(
        http_routes=(HTTPRouteRef("public", use_header_routes=True), HTTPRouteRef("internal", use_header_routes=False)),
        managed_routes=("testers",),
    )
    header = SetHeaderRoute("testers", (HeaderMatch("X-Canary", "yes", HeaderMatchType.EXACT),))
    steps = (
        Step(index=0, kinds=frozenset({StepKind.SET_HEADER_ROUTE}), set_header_route=header),
        weight(10, 1),
        pause(None, 2),
    )
    rollout = make(steps, routing=routing)
    prev = walk_to(rollout, 0)
    d, st = run(rollout, prev, T0)
    inputs = build_program_inputs(rollout, (), d, d.status, prev, {})
    rules = {r.name: r.header_rules for r in inputs.routes}
    assert [h.name for h in rules["public"]] == ["testers"]
    assert rules["internal"] == ()


def test_canary_and_stable_metadata_follow_the_role_and_move_at_promotion():
    rollout = make(
        (weight(50, 0), pause(None, 1)),
        canary_metadata=PodMetadata(labels={"role": "canary"}, annotations={"scrape": "true"}),
        stable_metadata=PodMetadata(labels={"role": "stable"}),
    )
    prev = walk_to(rollout, 1)
    d, _ = run(rollout, prev, T0)  # holding at the pause
    inputs = build_program_inputs(rollout, (), d, d.status, prev, {})
    by_rev = {rs.revision: rs for rs in inputs.replica_sets}
    assert (by_rev[R2].role, dict(by_rev[R2].pod_labels), dict(by_rev[R2].pod_annotations)) == (
        RevisionRole.CANARY,
        {"role": "canary"},
        {"scrape": "true"},
    )
    assert (by_rev[R1].role, dict(by_rev[R1].pod_labels)) == (RevisionRole.STABLE, {"role": "stable"})
    d, promoted = run(rollout, prev, T0, command=ManualCommand("p", CommandKind.PROMOTE))
    inputs = build_program_inputs(rollout, (), d, d.status, prev, {})
    by_rev = {rs.revision: rs for rs in inputs.replica_sets}
    assert (by_rev[R2].role, dict(by_rev[R2].pod_labels), dict(by_rev[R2].pod_annotations)) == (
        RevisionRole.STABLE,
        {"role": "stable"},
        {},
    )
    assert by_rev[R1].role is RevisionRole.OLD and dict(by_rev[R1].pod_labels) == {}


def test_shrinking_replica_sets_are_ordered_after_the_switch():
    # basic canary promotion: the new revision grows (waited for), the old one shrinks last
    rollout = make((weight(50, 0),), routing=None)
    prev = walk_to(rollout, 0)
    assert prev.replicas == {"web-rev1": 2, "web-rev2": 2}
    d, _ = run(rollout, prev, T0)
    inputs = build_program_inputs(rollout, (), d, d.status, prev, {})
    order = {rs.revision: (rs.replicas, rs.order, rs.wait_available) for rs in inputs.replica_sets}
    assert order == {R1: (0, ScaleOrder.SHRINK, False), R2: (4, ScaleOrder.GROW, True)}
    assert {s.name: s.revision for s in inputs.services} == {"web-stable": R2, "web-canary": R2}


def test_a_huge_or_secret_error_text_never_reaches_the_status_whole():
    st = walk_to(make(STEPS), 1)
    error = "Authorization: Bearer s3cr3t-token " + "x" * 3_000_000
    obs = Observation(update_failed=True, update_error=error)
    d, held = run(make(STEPS), st, T0, observation=obs)
    assert len(held.message) <= 2000 and len(d.reason) <= 2000
    assert "s3cr3t-token" not in held.message and "more characters)" in held.message


def walk_rolling(rollout: Rollout) -> list[tuple[int, int]]:
    """Every update of a v2 rollout without steps: (old pods, new pods), until Healthy."""
    st = at_stable_v1(rollout)
    seen = []
    for _ in range(50):
        d, st = run(rollout, st, T0)
        seen.append((d.replicas.get(R1, 0), d.replicas.get(R2, 0)))
        if st.phase is Phase.HEALTHY and st.stable_revision == R2:
            return seen
    raise AssertionError(f"never promoted: {seen}")


def test_no_steps_without_routing_replaces_pods_in_moves_paced_by_max_surge():
    # Argo, replicas 4, maxSurge 1, maxUnavailable 0: never more than 5 pods, never fewer
    # than 4 available; the stable side moves first when it can (one ReplicaSet per pass)
    rollout = make((), routing=None, max_surge=1, max_unavailable=0)
    assert walk_rolling(rollout) == [(4, 1), (3, 1), (3, 2), (2, 2), (2, 3), (1, 3), (1, 4), (0, 4), (0, 4)]


def test_no_steps_without_routing_paced_by_max_unavailable():
    # maxSurge 0, maxUnavailable 1: never more than 4 pods, never fewer than 3 available
    rollout = make((), routing=None, max_surge=0, max_unavailable=1)
    assert walk_rolling(rollout) == [(3, 0), (3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3), (0, 4), (0, 4)]


def test_match_expressions_are_kept_in_every_replica_set_selector():
    from kulta.adapters.program import _selector

    rollout = make(STEPS)
    expressions = [{"key": "tier", "operator": "In", "values": ["web", "edge"]}]
    rollout = replace(
        rollout,
        spec=replace(rollout.spec, selector={"matchLabels": {"app": "web"}, "matchExpressions": expressions}),
    )
    prev = walk_to(rollout, 1)
    d, _ = run(rollout, prev, T0)
    inputs = build_program_inputs(rollout, (), d, d.status, prev, {})
    assert _selector(inputs, R2) == {
        "matchLabels": {"app": "web", "rollouts-pod-template-hash": R2},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "edge"]}],
    }
