"""Blue-green rollouts, pass by pass with a fake clock: Argo's ``rollout/bluegreen.go`` worked through.

Each test walks a revision the way Argo's controller does (preview at
``previewReplicaCount``, prePromotionAnalysis, pause, switch of the active Service
only to a full ReplicaSet, postPromotionAnalysis, scale-down after the delay) and
checks the decision and the program inputs (which revision each Service selects,
each ReplicaSet's size). Expected values are literals from the example file.
"""

from __future__ import annotations

import copy
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kulta.app.commands import format_status_detail
from kulta.app.spec_commands import render_plan
from kulta.core.bluegreen import needs_controller_pause, pause_completed, preview_replicas
from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.decision import AbortReason, Decision, Observation
from kulta.core.defaults import abort_scale_down_delay_seconds, scale_down_delay_seconds
from kulta.core.program_inputs import build_program_inputs
from kulta.core.reconcile import decide, decide_step
from kulta.core.revision import pod_template_hash
from kulta.model.program import ProgramInputs, RevisionRole
from kulta.model.rollout import BlueGreenStrategy, Rollout
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase, RolloutStatus
from kulta.spec import load_paths
from tests.unit.spec_helpers import base_rollout, error_lines, load, template_doc

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
ANALYSIS = {"templates": [{"templateName": "success-rate"}]}


def bg_doc(**fields: Any) -> dict[str, Any]:
    doc = base_rollout(replicas=3)
    doc["spec"]["strategy"] = {
        "blueGreen": {"activeService": "web-active", "previewService": "web-preview", **copy.deepcopy(fields)}
    }
    return doc


def bg_rollout(**fields: Any) -> Rollout:
    result = load(bg_doc(**fields), template_doc())
    assert error_lines(result) == []
    (rollout,) = result.rollouts
    return rollout


def template(image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]},
    }


T1, T2 = template("registry.local/web:v1"), template("registry.local/web:v2")
R1, R2 = pod_template_hash(T1), pod_template_hash(T2)


def step(
    rollout: Rollout, tpl: dict[str, Any], prev: RolloutStatus | None, now: datetime, **kw: Any
) -> tuple[Decision, RolloutStatus]:
    d = decide(rollout, pod_template_hash(tpl), tpl, prev, now, environment="dev", git_commit="c0ffee", **kw)
    return d, RolloutStatus.from_outputs(d.status.to_outputs())


def inputs(rollout: Rollout, d: Decision, prev: RolloutStatus | None) -> ProgramInputs:
    return build_program_inputs(rollout, (), d, d.status, prev, {})


def selectors(i: ProgramInputs) -> dict[str, str]:
    return {s.name: s.revision for s in i.services}


def run(stage: str, phase: AnalysisPhase, step_index: int) -> AnalysisRunStatus:
    return AnalysisRunStatus(name=f"web-{R2}-{stage}", phase=phase, step_index=step_index, message="m")


def previewing(rollout: Rollout) -> tuple[RolloutStatus, Decision, RolloutStatus]:
    """v1 deployed, then v2 at the preview stage (recorded: its pods were available)."""
    _d, st1 = step(rollout, T1, None, T0)
    d, st = step(rollout, T2, st1, T0 + timedelta(minutes=1))
    return st1, d, st


# --------------------------------------------------------------------------- parsing and defaults


def test_defaults_are_argos() -> None:
    rollout = bg_rollout()
    bg = rollout.spec.blue_green
    assert bg == BlueGreenStrategy(active_service="web-active", preview_service="web-preview")
    # GetAutoPromotionEnabledOrDefault: true; GetScaleDownDelaySecondsOrDefault / GetAbort…: 30 and 30
    assert bg is not None and bg.auto_promotion_enabled is True and bg.auto_promotion_seconds == 0
    assert scale_down_delay_seconds(bg) == 30 and abort_scale_down_delay_seconds(bg) == 30
    assert preview_replicas(rollout.spec, bg) == 3
    assert not needs_controller_pause(bg)


def test_abort_scale_down_delay_zero_means_never() -> None:
    bg = BlueGreenStrategy(active_service="a", abort_scale_down_delay_seconds=0, scale_down_delay_seconds=0)
    assert abort_scale_down_delay_seconds(bg) is None
    assert scale_down_delay_seconds(bg) == 0


def test_auto_promotion_seconds_is_ignored_without_auto_promotion_and_warned() -> None:
    result = load(bg_doc(autoPromotionEnabled=False, autoPromotionSeconds=30))
    assert error_lines(result) == []
    assert [w.location.path for w in result.warnings] == ["spec.strategy.blueGreen.autoPromotionSeconds"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("previewReplicaCount", 0, "0 is below the minimum 1"),
        ("autoPromotionSeconds", -1, "-1 is below the minimum 0"),
        ("autoPromotionEnabled", "yes", 'must be true or false, got "yes"'),
    ],
)
def test_bad_values_are_refused_at_their_path(field: str, value: Any, message: str) -> None:
    assert error_lines(load(bg_doc(**{field: value}))) == [
        f"rollouts/web.yaml#1 spec.strategy.blueGreen.{field}: {message}"
    ]


# --------------------------------------------------------------------------- Argo's pause


def test_auto_promotion_seconds_ends_the_pause_strictly_after_the_deadline() -> None:
    # CompletedBlueGreenPause: MetaNow().After(pause start + autoPromotionSeconds)
    bg = BlueGreenStrategy(active_service="a", auto_promotion_seconds=30)
    assert needs_controller_pause(bg)
    assert not pause_completed(bg, None, T0)
    assert not pause_completed(bg, T0, T0 + timedelta(seconds=30))
    assert pause_completed(bg, T0, T0 + timedelta(seconds=31))
    manual = BlueGreenStrategy(active_service="a", auto_promotion_enabled=False, auto_promotion_seconds=30)
    assert not pause_completed(manual, T0, T0 + timedelta(days=1))


# --------------------------------------------------------------------------- the walk


def test_first_revision_selects_it_in_both_services() -> None:
    rollout = bg_rollout()
    d, st = step(rollout, T1, None, T0)
    assert st.phase is Phase.HEALTHY and st.stable_revision == R1 and d.replicas == {R1: 3}
    assert selectors(inputs(rollout, d, None)) == {"web-active": R1, "web-preview": R1}
    assert (st.current_step_index, st.step_count) == (1, 1)


def test_preview_pause_promote_and_delayed_scale_down() -> None:
    rollout = bg_rollout(previewReplicaCount=1, autoPromotionEnabled=False, prePromotionAnalysis=ANALYSIS)
    st1, d, st = previewing(rollout)
    # preview: 1 new pod beside 3 old; only the preview Service moves; the update waits for the new pod
    assert d.replicas == {R1: 3, R2: 1} and d.wait_ready == {R2}
    assert selectors(inputs(rollout, d, st1)) == {"web-active": R1, "web-preview": R2}
    assert (st.phase, st.current_step_index, st.canary_revision) == (Phase.PROGRESSING, 0, R2)
    # prePromotionAnalysis runs: no pause yet (reconcileBlueGreenPause waits for it)
    t = T0 + timedelta(minutes=2)
    running = Observation(analysis_runs=(run("prepromotion", AnalysisPhase.RUNNING, 0),))
    d, st = step(rollout, T2, st, t, observation=running)
    assert not d.apply and st.phase is Phase.PROGRESSING and st.pause_started_at == ""
    ok = Observation(analysis_runs=(run("prepromotion", AnalysisPhase.SUCCESSFUL, 0),))
    d, st = step(rollout, T2, st, t, observation=ok)
    # then the pause: recorded, nothing applied, no end (autoPromotionEnabled: false)
    assert not d.apply and st.phase is Phase.PAUSED and st.pause_started_at and d.next_due is None
    d, st = step(rollout, T2, st, t + timedelta(hours=5))
    assert not d.apply and st.phase is Phase.PAUSED
    # kulta promote: the new RS grows to 3, waits, then the active Service switches (one update)
    promote = ManualCommand(id="p1", kind=CommandKind.PROMOTE)
    t_promote = t + timedelta(hours=6)
    prev = st
    d, st = step(rollout, T2, st, t_promote, command=promote)
    assert d.apply and d.command_applied == promote
    assert d.replicas == {R1: 3, R2: 3} and d.wait_ready == {R2}
    assert (st.phase, st.stable_revision, st.canary_revision) == (Phase.HEALTHY, R2, "")
    program = inputs(rollout, d, prev)
    assert selectors(program) == {"web-active": R2, "web-preview": R2}
    grow = {rs.revision: (rs.replicas, rs.wait_available) for rs in program.replica_sets}
    assert grow == {R1: (3, False), R2: (3, True)}
    # the old ReplicaSet goes scaleDownDelaySeconds (30) later
    assert st.scale_down_revision == R1 and d.next_due == t_promote + timedelta(seconds=30)
    d, st = step(rollout, T2, st, t_promote + timedelta(seconds=29))
    assert not d.apply
    d, st = step(rollout, T2, st, t_promote + timedelta(seconds=30))
    assert d.apply and d.replicas == {R1: 0, R2: 3}


def test_auto_promotion_without_pause_switches_on_the_next_pass() -> None:
    rollout = bg_rollout()
    _st1, d, st = previewing(rollout)
    assert d.replicas == {R1: 3, R2: 3}
    d, st = step(rollout, T2, st, T0 + timedelta(minutes=1))
    assert d.apply and st.stable_revision == R2 and st.phase is Phase.HEALTHY


def test_auto_promotion_seconds_pauses_then_promotes() -> None:
    rollout = bg_rollout(autoPromotionSeconds=60)
    _st1, _d, st = previewing(rollout)
    t = T0 + timedelta(minutes=2)
    d, st = step(rollout, T2, st, t)
    assert st.phase is Phase.PAUSED and d.next_due == t + timedelta(seconds=60)
    d, st = step(rollout, T2, st, t + timedelta(seconds=60))
    assert not d.apply and st.phase is Phase.PAUSED
    d, st = step(rollout, T2, st, t + timedelta(seconds=61))
    assert d.apply and st.stable_revision == R2


def test_failed_pre_promotion_analysis_aborts_without_switching() -> None:
    rollout = bg_rollout(previewReplicaCount=1, prePromotionAnalysis=ANALYSIS)
    _st1, _d, st = previewing(rollout)
    failed = Observation(analysis_runs=(run("prepromotion", AnalysisPhase.FAILED, 0),))
    t = T0 + timedelta(minutes=2)
    prev = st
    d, st = step(rollout, T2, st, t, observation=failed)
    assert d.abort_reason is AbortReason.ANALYSIS and st.phase is Phase.ABORTED
    assert "prePromotionAnalysis" in st.message
    assert selectors(inputs(rollout, d, prev))["web-active"] == R1
    # abortScaleDownDelaySeconds (30): the preview pod stays 30 s
    assert d.replicas == {R1: 3, R2: 1} and d.next_due == t + timedelta(seconds=30)


def test_abort_keeps_the_new_replica_set_for_the_abort_delay() -> None:
    never = bg_rollout(abortScaleDownDelaySeconds=0)
    _st1, _d, st = previewing(never)
    abort = ManualCommand(id="a1", kind=CommandKind.ABORT)
    d, st = step(never, T2, st, T0 + timedelta(minutes=2), command=abort)
    assert d.abort_reason is AbortReason.MANUAL and d.replicas == {R1: 3, R2: 3} and d.next_due is None
    d, st = step(never, T2, st, T0 + timedelta(days=1))
    assert not d.apply and st.phase is Phase.ABORTED
    delayed = bg_rollout(abortScaleDownDelaySeconds=5)
    _st1, _d, st = previewing(delayed)
    t = T0 + timedelta(minutes=2)
    d, st = step(delayed, T2, st, t, command=abort)
    assert d.replicas[R2] == 3 and d.next_due == t + timedelta(seconds=5)
    d, st = step(delayed, T2, st, t + timedelta(seconds=5))
    assert d.apply and d.replicas[R2] == 0
    # kulta retry: the preview starts again
    d, st = step(delayed, T2, st, t + timedelta(seconds=6), command=ManualCommand(id="r1", kind=CommandKind.RETRY))
    assert d.apply and (st.phase, st.current_step_index, st.aborted) == (Phase.PROGRESSING, 0, False)
    assert d.replicas == {R1: 3, R2: 3}


def test_post_promotion_analysis_switches_first_and_a_failure_switches_back() -> None:
    rollout = bg_rollout(postPromotionAnalysis=ANALYSIS)
    _st1, _d, st = previewing(rollout)
    assert st.step_count == 2
    t = T0 + timedelta(minutes=2)
    prev = st
    d, st = step(rollout, T2, st, t)
    # switched: the active Service selects v2, v2 is not stable yet, v1 keeps its pods
    assert (st.current_step_index, st.stable_revision, st.canary_revision) == (1, R1, R2)
    assert d.replicas == {R1: 3, R2: 3} and d.wait_ready == {R2}
    assert selectors(inputs(rollout, d, prev)) == {"web-active": R2, "web-preview": R2}
    running = Observation(analysis_runs=(run("postpromotion", AnalysisPhase.RUNNING, 1),))
    d, st = step(rollout, T2, st, t, observation=running)
    assert not d.apply and st.current_step_index == 1
    failed = Observation(analysis_runs=(run("postpromotion", AnalysisPhase.FAILED, 1),))
    prev = st
    d, st = step(rollout, T2, st, t + timedelta(seconds=10), observation=failed)
    assert d.abort_reason is AbortReason.ANALYSIS and "postPromotionAnalysis" in st.message
    assert selectors(inputs(rollout, d, prev))["web-active"] == R1
    assert d.replicas[R1] == 3 and d.wait_ready == {R1}


def test_post_promotion_analysis_success_promotes() -> None:
    rollout = bg_rollout(postPromotionAnalysis=ANALYSIS)
    _st1, _d, st = previewing(rollout)
    t = T0 + timedelta(minutes=2)
    _d, st = step(rollout, T2, st, t)
    ok = Observation(analysis_runs=(run("postpromotion", AnalysisPhase.SUCCESSFUL, 1),))
    d, st = step(rollout, T2, st, t + timedelta(seconds=10), observation=ok)
    assert (st.phase, st.stable_revision, st.current_step_index) == (Phase.HEALTHY, R2, 2)
    assert st.scale_down_revision == R1


def test_preview_and_active_metadata_go_to_each_side() -> None:
    rollout = bg_rollout(previewMetadata={"labels": {"role": "preview"}}, activeMetadata={"labels": {"role": "active"}})
    st1, d, _st = previewing(rollout)
    by_rev = {rs.revision: (rs.role, dict(rs.pod_labels)) for rs in inputs(rollout, d, st1).replica_sets}
    assert by_rev == {R1: (RevisionRole.STABLE, {"role": "active"}), R2: (RevisionRole.CANARY, {"role": "preview"})}


def test_without_a_preview_service_only_the_active_service_is_declared() -> None:
    doc = bg_doc()
    del doc["spec"]["strategy"]["blueGreen"]["previewService"]
    (rollout,) = load(doc).rollouts
    st1, d, _st = previewing(rollout)
    assert selectors(inputs(rollout, d, st1)) == {"web-active": R1}


def test_promote_full_skips_the_analysis_and_the_pause() -> None:
    rollout = bg_rollout(autoPromotionEnabled=False, prePromotionAnalysis=ANALYSIS)
    _st1, _d, st = previewing(rollout)
    running = Observation(analysis_runs=(run("prepromotion", AnalysisPhase.RUNNING, 0),))
    full = ManualCommand(id="f1", kind=CommandKind.PROMOTE_FULL)
    d, st = step(rollout, T2, st, T0 + timedelta(minutes=2), command=full, observation=running)
    assert st.stable_revision == R2 and st.phase is Phase.HEALTHY
    (ended,) = [r for r in st.analysis_runs if r.name == f"web-{R2}-prepromotion"]
    assert ended.phase.completed


CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.mark.parametrize(
    ("file", "expected", "preview_row"),
    [
        (
            "argo-rollout-bluegreen.yaml",
            BlueGreenStrategy(
                active_service="rollout-bluegreen-active",
                preview_service="rollout-bluegreen-preview",
                auto_promotion_enabled=False,
            ),
            ["0", "preview", "stable", "new", "2", "2", "pause", "until", "promoted"],
        ),
        (
            "argo-e2e-rollout-bluegreen.yaml",
            BlueGreenStrategy(active_service="bluegreen", scale_down_delay_seconds=10),
            ["0", "preview", "stable", "-", "3", "3", "-"],
        ),
        (
            "rollouts-demo-bluegreen.yaml",
            BlueGreenStrategy(
                active_service="bluegreen-demo", preview_service="bluegreen-demo-preview", auto_promotion_enabled=False
            ),
            ["0", "preview", "stable", "new", "3", "3", "pause", "until", "promoted"],
        ),
    ],
)
def test_argos_blue_green_files_validate_and_plan(
    file: str, expected: BlueGreenStrategy, preview_row: list[str]
) -> None:
    result = load_paths([CORPUS / file], base=CORPUS)
    assert [str(e) for e in result.errors] == []
    (rollout,) = result.rollouts
    assert rollout.spec.blue_green == expected
    lines = render_plan(rollout, result.others)
    (row,) = [line.split() for line in lines if line.split()[:2] == ["0", "preview"]]
    assert row == preview_row


def test_status_lists_the_stages_with_the_current_one_marked() -> None:
    rollout = bg_rollout(postPromotionAnalysis=ANALYSIS)
    _st1, _d, st = previewing(rollout)
    out = io.StringIO()
    format_status_detail(st, rollout, out)
    lines = out.getvalue().splitlines()
    assert f"  services   web-active → {R1}   web-preview → {R2}" in lines
    stages = lines[lines.index("  stages") + 1 :]
    assert stages[:2] == [
        "   ▶  0 preview (prePromotionAnalysis, pause)",
        "      1 switched (postPromotionAnalysis)",
    ]


def test_preview_of_each_stage_declares_the_services_of_that_stage() -> None:
    rollout = bg_rollout(previewReplicaCount=1, postPromotionAnalysis=ANALYSIS)
    _d, st1 = step(rollout, T1, None, T0)
    seen = []
    for stage in (0, 1, 2):
        d = decide_step(rollout, R2, T2, st1, T0, stage, environment="dev")
        program = inputs(rollout, d, st1)
        seen.append((selectors(program)["web-active"], {rs.revision: rs.replicas for rs in program.replica_sets}))
    assert seen == [
        (R1, {R1: 3, R2: 1}),  # preview
        (R2, {R1: 3, R2: 3}),  # switched, postPromotionAnalysis running
        (R2, {R1: 3, R2: 3}),  # promoted; the old one goes after scaleDownDelaySeconds
    ]


def test_a_blue_green_edit_in_git_applies_from_the_next_move_without_a_restart() -> None:
    # Argo's needsBlueGreenControllerPause is read on every pass: ending autoPromotionEnabled: false
    # in Git removes the pause, and the switch follows (no restart of the preview)
    paused = bg_rollout(previewReplicaCount=1, autoPromotionEnabled=False)
    _st1, _d, st = previewing(paused)
    t = T0 + timedelta(minutes=2)
    _d, st = step(paused, T2, st, t)
    assert st.phase is Phase.PAUSED
    auto = bg_rollout(previewReplicaCount=1)
    # the stage is declared again under the new fields (same pods here), the pause start kept
    d, st2 = step(auto, T2, st, t + timedelta(seconds=1))
    assert d.apply and d.replicas == {R1: 3, R2: 1} and st2.current_step_index == 0
    assert st2.pause_started_at == st.pause_started_at and st2.strategy_hash != st.strategy_hash
    d, st = step(auto, T2, st2, t + timedelta(seconds=1))
    assert d.apply and (st.phase, st.stable_revision) == (Phase.HEALTHY, R2)
    assert d.replicas == {R1: 3, R2: 3}


def test_a_canary_turned_blue_green_mid_flight_starts_at_the_preview_and_switches_only_with_available_pods() -> None:
    """A canary paused at step 1 turned blue-green in Git: its step index is no stage. Argo
    switches the active Service only once the blue-green pause and prePromotionAnalysis are
    done (rollout/service.go reconcileActiveService), so the rollout starts at the preview:
    the active Service stays on stable (it once went straight to the new revision)."""
    canary_doc = base_rollout(replicas=3)
    canary_doc["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 34}, {"pause": {}}, {"setWeight": 67}]}}
    (canary,) = load(canary_doc).rollouts
    _d, st = step(canary, T1, None, T0)
    _d, st = step(canary, T2, st, T0 + timedelta(minutes=1))
    _d, st = step(canary, T2, st, T0 + timedelta(minutes=1))
    assert (st.current_step_index, st.phase) == (1, Phase.PAUSED) and st.pause_started_at
    blue_green = bg_rollout(postPromotionAnalysis=ANALYSIS)
    prev = st
    d, st = step(blue_green, T2, st, T0 + timedelta(minutes=2))
    # the preview (stage 0): the new ReplicaSet at full size (no previewReplicaCount) and the
    # basic canary's shrunk stable back to 3, both waited for; the canary's pause is not reused
    assert prev.replicas == {f"web-{R1}": 2, f"web-{R2}": 1}
    assert d.apply and st.current_step_index == 0 and st.pause_started_at == ""
    assert d.replicas == {R1: 3, R2: 3} and d.wait_ready == {R1, R2}
    assert selectors(inputs(blue_green, d, prev)) == {"web-active": R1, "web-preview": R2}
    # the preview ready and no pause asked for (autoPromotionEnabled): the switch, onto pods
    # that are available, then postPromotionAnalysis
    prev = st
    d, st = step(blue_green, T2, st, T0 + timedelta(minutes=2, seconds=5))
    assert st.current_step_index == 1 and st.stable_revision == R1
    program = inputs(blue_green, d, prev)
    assert selectors(program)["web-active"] == R2
    assert {rs.revision: rs.wait_available for rs in program.replica_sets}[R2] is True


def test_a_new_revision_during_post_promotion_puts_the_active_service_back_on_stable() -> None:
    rollout = bg_rollout(postPromotionAnalysis=ANALYSIS)
    _st1, _d, st = previewing(rollout)
    _d, st = step(rollout, T2, st, T0 + timedelta(minutes=2))
    assert st.current_step_index == 1
    t3 = template("registry.local/web:v3")
    r3 = pod_template_hash(t3)
    prev = st
    d, st = step(rollout, t3, st, T0 + timedelta(minutes=3))
    assert (st.current_step_index, st.canary_revision, st.stable_revision) == (0, r3, R1)
    program = inputs(rollout, d, prev)
    assert selectors(program) == {"web-active": R1, "web-preview": r3}
    assert {rs.revision: rs.replicas for rs in program.replica_sets} == {R1: 3, R2: 0, r3: 3}


def test_a_canary_turned_blue_green_waits_for_its_pre_promotion_analysis_and_a_person() -> None:
    """The gate a canary turned blue-green must pass (it once promoted on the second pass,
    with no analysis and no `kulta promote`): prePromotionAnalysis, then the pause of
    autoPromotionEnabled: false."""
    canary_doc = base_rollout(replicas=3)
    canary_doc["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 34}, {"pause": {}}, {"setWeight": 67}]}}
    (canary,) = load(canary_doc).rollouts
    _d, st = step(canary, T1, None, T0)
    _d, st = step(canary, T2, st, T0 + timedelta(minutes=1))
    _d, st = step(canary, T2, st, T0 + timedelta(minutes=1))
    assert st.current_step_index == 1
    gated = bg_rollout(autoPromotionEnabled=False, prePromotionAnalysis=ANALYSIS)
    t = T0 + timedelta(minutes=2)
    seen = []
    for minutes, observation in (
        (0, None),
        (1, Observation(analysis_runs=(run("prepromotion", AnalysisPhase.RUNNING, 0),))),
        (2, Observation(analysis_runs=(run("prepromotion", AnalysisPhase.SUCCESSFUL, 0),))),
        (90, None),
    ):
        kw = {"observation": observation} if observation is not None else {}
        d, st = step(gated, T2, st, t + timedelta(minutes=minutes), **kw)
        seen.append((st.current_step_index, st.phase, st.stable_revision))
        assert selectors(inputs(gated, d, st))["web-active"] == R1
    assert seen == [
        (0, Phase.PROGRESSING, R1),
        (0, Phase.PROGRESSING, R1),
        (0, Phase.PAUSED, R1),
        (0, Phase.PAUSED, R1),
    ]
    d, st = step(gated, T2, st, t + timedelta(minutes=91), command=ManualCommand(id="p1", kind=CommandKind.PROMOTE))
    assert st.stable_revision == R2


def test_a_failed_pre_promotion_run_aborts_even_when_the_same_pass_turns_the_rollout_into_a_canary() -> None:
    rollout = bg_rollout(previewReplicaCount=1, prePromotionAnalysis=ANALYSIS)
    _st1, _d, st = previewing(rollout)
    canary_doc = base_rollout(replicas=3)
    canary_doc["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 34}, {"pause": {}}]}}
    (canary,) = load(canary_doc).rollouts
    failed = Observation(analysis_runs=(run("prepromotion", AnalysisPhase.FAILED, 0),))
    d, st = step(canary, T2, st, T0 + timedelta(minutes=2), observation=failed)
    assert d.abort_reason is AbortReason.ANALYSIS and st.phase is Phase.ABORTED
    assert st.stable_revision == R1


def test_a_promote_sent_while_the_pre_promotion_analysis_runs_is_used_up_not_kept() -> None:
    rollout = bg_rollout(autoPromotionEnabled=False, prePromotionAnalysis=ANALYSIS)
    _st1, _d, st = previewing(rollout)
    t = T0 + timedelta(minutes=2)
    running = Observation(analysis_runs=(run("prepromotion", AnalysisPhase.RUNNING, 0),))
    early = ManualCommand(id="early", kind=CommandKind.PROMOTE)
    d, st = step(rollout, T2, st, t, observation=running, command=early)
    assert st.last_command_id == "early" and st.stable_revision == R1 and st.phase is Phase.PROGRESSING
    assert d.reason == "prePromotionAnalysis running; kulta promote has no pause to end yet"
    # the analysis succeeds: the pause of autoPromotionEnabled: false holds (the tag still says "early")
    ok = Observation(analysis_runs=(run("prepromotion", AnalysisPhase.SUCCESSFUL, 0),))
    d, st = step(rollout, T2, st, t + timedelta(minutes=1), observation=ok, command=early)
    assert st.phase is Phase.PAUSED and st.stable_revision == R1
    d, st = step(rollout, T2, st, t + timedelta(hours=2), command=early)
    assert st.phase is Phase.PAUSED and st.stable_revision == R1
