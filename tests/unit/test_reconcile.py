"""The rollout state machine, pass by pass, with a fake clock (no cluster, no engine)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.decision import AbortReason, Observation
from kulta.core.names import inline_run_name
from kulta.core.reconcile import decide, decide_step
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase, RolloutStatus
from kulta.spec.loader import load_paths

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def load_demo(image: str = "registry.local/demo:v1"):
    loaded = load_paths([ROOT / "examples" / "demo-rollout.yaml", ROOT / "examples" / "analysis-success-rate.yaml"])
    assert not loaded.errors
    rollout = loaded.rollouts[0]
    template = dict(resolve_template(rollout, loaded.others))
    template = {
        **template,
        "spec": {**template["spec"], "containers": [{**template["spec"]["containers"][0], "image": image}]},
    }
    return rollout, template, pod_template_hash(template)


def step(rollout, template, rev, prev, now, **kw):
    d = decide(rollout, rev, template, prev, now, environment="dev", git_commit="c0ffee", **kw)
    # the engine records exactly the outputs it was given
    return d, RolloutStatus.from_outputs(d.status.to_outputs())


@pytest.fixture
def healthy_v1():
    rollout, t1, r1 = load_demo()
    d, st = step(rollout, t1, r1, None, T0)
    return rollout, t1, r1, d, st


def test_first_revision_is_deployed_straight_to_stable(healthy_v1):
    rollout, _t1, r1, d, st = healthy_v1
    assert d.apply and st.phase is Phase.HEALTHY
    assert st.stable_revision == r1 and st.canary_revision == ""
    assert d.replicas == {r1: 4} and d.wait_ready == {r1}
    assert st.replicas == {f"demo-{r1}": 4}
    assert [(w.stable, w.canary) for w in st.weights] == [(100, 0)]


def test_unchanged_template_is_a_no_op(healthy_v1):
    rollout, t1, r1, _d, st = healthy_v1
    d, st2 = step(rollout, t1, r1, st, T0 + timedelta(minutes=5))
    assert not d.apply
    assert st2.to_outputs() == st.to_outputs() | {"message": st2.message}


def test_full_walk_through_every_step_to_promotion(healthy_v1):
    rollout, _t1, r1, _d, st = healthy_v1
    _r, t2, r2 = load_demo("registry.local/demo:v2")
    now = T0 + timedelta(minutes=1)
    seen = []
    # step 0: setWeight 25
    d, st = step(rollout, t2, r2, st, now)
    assert d.apply and st.current_step_index == 0 and st.canary_revision == r2
    assert d.replicas == {r1: 4, r2: 1} and d.canary_weight == 25 and d.wait_ready == {r2}
    seen.append((st.current_step_index, st.weights[0].canary))
    # step 0 has no wait: step 1 (pause 5s) is applied in the same pass
    d, st = step(rollout, t2, r2, st, now)
    assert d.apply and st.current_step_index == 1 and st.pause_started_at
    # the pause holds for 5 s
    d, st_hold = step(rollout, t2, r2, st, now + timedelta(seconds=3))
    assert not d.apply and d.next_due == now + timedelta(seconds=5)
    # then step 2 (50%), then step 3 (analysis, still 50%)
    d, st = step(rollout, t2, r2, st, now + timedelta(seconds=5))
    assert st.current_step_index == 2 and d.canary_weight == 50 and d.replicas[r2] == 2
    d, st = step(rollout, t2, r2, st, now + timedelta(seconds=5))
    assert st.current_step_index == 3 and d.canary_weight == 50
    # analysis running: hold
    running = AnalysisRunStatus(name=inline_run_name("demo", r2, 3), phase=AnalysisPhase.RUNNING, step_index=3)
    d, _ = step(rollout, t2, r2, st, now + timedelta(seconds=6), observation=Observation(analysis_runs=(running,)))
    assert not d.apply or d.status.current_step_index == 3
    ok = AnalysisRunStatus(name=running.name, phase=AnalysisPhase.SUCCESSFUL, step_index=3)
    d, st = step(rollout, t2, r2, st, now + timedelta(seconds=8), observation=Observation(analysis_runs=(ok,)))
    assert st.current_step_index == 4 and d.canary_weight == 75 and d.replicas[r2] == 3
    assert any(r.phase is AnalysisPhase.SUCCESSFUL for r in st.analysis_runs)
    d, st = step(rollout, t2, r2, st, now + timedelta(seconds=8))
    assert st.current_step_index == 5
    d, st = step(rollout, t2, r2, st, now + timedelta(seconds=14))
    # promoted: v2 stable, v1 kept for scaleDownDelaySeconds
    assert st.phase is Phase.HEALTHY and st.stable_revision == r2 and st.canary_revision == ""
    assert d.replicas[r2] == 4 and d.replicas[r1] == 4 and st.scale_down_revision == r1
    assert [(w.stable, w.canary) for w in st.weights] == [(100, 0)]
    # after the delay the old stable goes to 0 replicas (kept for history)
    d, st = step(rollout, t2, r2, st, now + timedelta(seconds=14 + 31))
    assert d.apply and d.replicas[r1] == 0 and st.scale_down_revision == ""
    d, _ = step(rollout, t2, r2, st, now + timedelta(seconds=120))
    assert not d.apply


def _in_flight(healthy_v1, image="registry.local/demo:v2"):
    rollout, _t1, r1, _d, st = healthy_v1
    _r, t2, r2 = load_demo(image)
    _d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=1))
    return rollout, r1, t2, r2, st


def test_manual_abort_sends_all_traffic_to_stable_once(healthy_v1):
    rollout, r1, t2, r2, st = _in_flight(healthy_v1)
    cmd = ManualCommand(id="a1", kind=CommandKind.ABORT)
    d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=2), command=cmd)
    assert d.abort_reason is AbortReason.MANUAL and st.phase is Phase.ABORTED and st.aborted
    assert d.canary_weight == 0 and d.replicas[r1] == 4 and st.last_command_id == "a1"
    assert d.wait_ready == {r1}
    # canary scaled down after abortScaleDownDelaySeconds, command not applied twice
    d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=2, seconds=31), command=cmd)
    assert d.replicas[r2] == 0 and st.phase is Phase.ABORTED
    d, st2 = step(rollout, t2, r2, st, T0 + timedelta(minutes=5), command=cmd)
    assert not d.apply and st2.phase is Phase.ABORTED


def test_retry_restarts_from_step_zero(healthy_v1):
    rollout, r1, t2, r2, st = _in_flight(healthy_v1)
    _d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=2), command=ManualCommand("a", CommandKind.ABORT))
    d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=3), command=ManualCommand("r", CommandKind.RETRY))
    assert not st.aborted and st.current_step_index == 0 and d.canary_weight == 25


def test_failed_inline_analysis_aborts(healthy_v1):
    rollout, r1, t2, r2, st = _in_flight(healthy_v1)
    st = st.with_changes(current_step_index=3)
    failed = AnalysisRunStatus(
        name=inline_run_name("demo", r2, 3), phase=AnalysisPhase.FAILED, step_index=3, message="error rate 0.2"
    )
    d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=2), observation=Observation(analysis_runs=(failed,)))
    assert d.abort_reason is AbortReason.ANALYSIS and st.phase is Phase.ABORTED and d.canary_weight == 0
    assert "error rate 0.2" in st.message


def test_new_revision_mid_rollout_restarts_from_step_zero(healthy_v1):
    rollout, r1, t2, r2, st = _in_flight(healthy_v1)
    _d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=1))  # now at step 1
    _r, t3, r3 = load_demo("registry.local/demo:v3")
    d, st = step(rollout, t3, r3, st, T0 + timedelta(minutes=2))
    assert st.canary_revision == r3 and st.current_step_index == 0 and st.stable_revision == r1
    assert d.replicas[r2] == 0 and d.replicas[r3] == 1 and d.replicas[r1] == 4


def test_pause_until_promoted_needs_promote(healthy_v1):
    rollout, r1, t2, r2, st = _in_flight(healthy_v1)
    # promote --full jumps to promotion from anywhere
    d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=2), command=ManualCommand("p", CommandKind.PROMOTE_FULL))
    assert st.phase is Phase.HEALTHY and st.stable_revision == r2


def test_failed_update_retries_and_past_the_deadline_is_degraded_then_retried(healthy_v1):
    rollout, r1, t2, r2, st = _in_flight(healthy_v1)
    other = Observation(update_failed=True, update_error="API server said 500")
    d, st2 = step(rollout, t2, r2, st, T0 + timedelta(minutes=1, seconds=30), observation=other)
    assert not d.apply and st2.phase is Phase.PROGRESSING  # not a deadline: retry next pass
    late = Observation(update_failed=True, update_error="canary never Ready", deadline_exceeded=True)
    d, st2 = step(rollout, t2, r2, st, T0 + timedelta(minutes=12), observation=late)
    assert d.apply and st2.phase is Phase.DEGRADED and "canary never Ready" in st2.message
    # the next pass re-applies the same step instead of advancing
    d, st3 = step(rollout, t2, r2, st2, T0 + timedelta(minutes=13))
    assert d.apply and st3.current_step_index == st2.current_step_index and st3.phase is Phase.PROGRESSING


def test_first_update_of_a_canary_past_the_deadline_aborts_when_asked(healthy_v1):
    rollout, _t1, r1, _d, st = healthy_v1
    spec = replace(rollout.spec, progress_deadline_abort=True)
    rollout = replace(rollout, spec=spec)
    _r, t2, r2 = load_demo("registry.local/demo:v2")
    late = Observation(update_failed=True, update_error="timed out", deadline_exceeded=True)
    d, st2 = step(rollout, t2, r2, st, T0 + timedelta(minutes=12), observation=late)
    assert st2.phase is Phase.ABORTED and st2.canary_revision == r2 and d.canary_weight == 0
    assert d.abort_reason is AbortReason.PROGRESS_DEADLINE


def test_preview_decision_for_each_step(healthy_v1):
    rollout, _t1, r1, _d, st = healthy_v1
    _r, t2, r2 = load_demo("registry.local/demo:v2")
    weights = [decide_step(rollout, r2, t2, st, T0, i, environment="dev").canary_weight for i in range(6)]
    assert weights == [25, 25, 50, 50, 75, 75]
    promo = decide_step(rollout, r2, t2, st, T0, 6, environment="dev")
    assert promo.status.stable_revision == r2 and promo.status.phase is Phase.HEALTHY


def test_reverting_git_to_stable_mid_canary_rolls_back_then_is_healthy(healthy_v1):
    rollout, t1, r1, _d, st = healthy_v1
    _r, t2, r2 = load_demo("registry.local/demo:v2")
    _d, st = step(rollout, t2, r2, st, T0 + timedelta(minutes=1))
    d, st = step(rollout, t1, r1, st, T0 + timedelta(minutes=2))
    assert st.phase is Phase.ABORTED and d.canary_weight == 0
    d, st = step(rollout, t1, r1, st, T0 + timedelta(minutes=2))
    assert st.phase is Phase.HEALTHY and not st.in_flight and not st.aborted
    assert d.replicas[r1] == 4 and st.stable_revision == r1
    d, st = step(rollout, t1, r1, st, T0 + timedelta(minutes=3))
    assert st.phase is Phase.HEALTHY and d.replicas.get(r2, 0) == 0


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (AnalysisPhase.FAILED, Phase.ABORTED),
        (AnalysisPhase.ERROR, Phase.ABORTED),
        (AnalysisPhase.INCONCLUSIVE, Phase.PAUSED),
    ],
)
def test_background_analysis_result_decides(healthy_v1, phase, expected):
    from kulta.core.names import background_run_name
    from kulta.core.revision import strategy_hash
    from kulta.model.rollout import AnalysisTemplateRef, BackgroundAnalysis

    rollout, r1, t2, r2, st = _in_flight(healthy_v1)
    strategy = replace(
        rollout.spec.strategy, analysis=BackgroundAnalysis(templates=(AnalysisTemplateRef("success-rate"),))
    )
    rollout = replace(rollout, spec=replace(rollout.spec, strategy=strategy))
    # the canary started with this strategy (a strategy edited mid-flight restarts it)
    st = st.with_changes(strategy_hash=strategy_hash(rollout))
    run = AnalysisRunStatus(name=background_run_name("demo", r2), phase=phase, message="error ratio 0.3")
    d, st2 = step(rollout, t2, r2, st, T0 + timedelta(minutes=2), observation=Observation(analysis_runs=(run,)))
    assert st2.phase is expected
    if expected is Phase.ABORTED:
        assert d.canary_weight == 0 and d.abort_reason is AbortReason.ANALYSIS
    else:
        assert st2.current_step_index == st.current_step_index
        promoted, st3 = step(
            rollout, t2, r2, st2, T0 + timedelta(minutes=3), command=ManualCommand("p", CommandKind.PROMOTE)
        )
        assert st3.current_step_index == st.current_step_index + 1
        # the background analysis starts over instead of pausing again at every step
        assert all(r.name != run.name for r in st3.analysis_runs)


def test_old_revisions_are_pruned_to_revision_history_limit(healthy_v1):
    rollout, _t1, _r1, _d, st = healthy_v1
    assert rollout.spec.revision_history_limit == 3
    now = T0
    revisions = []
    for n in range(2, 9):
        _r, t, r = load_demo(f"registry.local/demo:v{n}")
        revisions.append(r)
        now += timedelta(minutes=5)
        _d, st = step(rollout, t, r, st, now)  # canary starts
        d, st = step(rollout, t, r, st, now, command=ManualCommand(f"p{n}", CommandKind.PROMOTE_FULL))
        assert st.stable_revision == r
        now += timedelta(minutes=1)
        d, st = step(rollout, t, r, st, now)  # old stable scaled down after the delay
    declared = set(d.replicas)
    old = declared - {st.stable_revision}
    assert len(old) <= 3, d.replicas
    assert all(d.replicas[r] == 0 for r in old)
    assert revisions[-2] in old  # the previous stable is kept for a quick look back
    assert set(st.templates) == declared  # templates kept only for declared revisions


def test_a_state_whose_update_was_killed_before_its_history_entry_is_applied_again_unchanged(healthy_v1):
    """Step 2 of the demo (setWeight 50) recorded by an update killed before Pulumi wrote
    its history entry: the next decision re-applies 50% / 2 canary pods, never step 3."""
    rollout, _t1, r1, _d, st = healthy_v1
    _r, t2, r2 = load_demo("registry.local/demo:v2")
    now = T0 + timedelta(minutes=1)
    for at in (now, now, now + timedelta(seconds=5)):  # steps 0, 1 (pause 5 s), 2
        _d, st = step(rollout, t2, r2, st, at)
    assert st.current_step_index == 2 and st.message == "step 1 done (paused 5s); applying step 2"
    later = now + timedelta(seconds=9)
    d, again = step(rollout, t2, r2, st, later, observation=Observation(unrecorded=True))
    assert d.apply and again.current_step_index == 2 and again.phase is st.phase
    assert d.canary_weight == 50 and d.replicas == {r1: 4, r2: 2}
    assert [(w.stable, w.canary) for w in again.weights] == [(50, 50)]
    assert again.step_started_at == st.step_started_at  # the step's clock is not restarted
    assert d.reason == (
        "step 1 done (paused 5s); applying step 2"
        " (recorded again: its first update was killed before Pulumi wrote its history entry)"
    )
    # killed once more in the same place: the reason does not grow
    d2, _ = step(rollout, t2, r2, again, later, observation=Observation(unrecorded=True))
    assert d2.reason == d.reason
    # recorded: the canary goes on to step 3 (analysis) as if nothing had happened
    d3, st3 = step(rollout, t2, r2, again, later)
    assert d3.apply and st3.current_step_index == 3
