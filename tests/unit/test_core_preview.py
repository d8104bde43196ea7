"""What a Rollout file changes in the live rollout: the headline of `kulta preview --format markdown`.

The cases follow Argo's ``syncRolloutStatusCanary`` (rollout/canary.go): a new pod template
starts a canary from step 0, other steps alone restart the one in flight from step 0
(``PodTemplateOrStepsChanged`` -> ``ResetCurrentStepIndex``), the stable template again
ends the canary.
"""

from __future__ import annotations

import pytest

from kulta.core.preview import ChangeKind, ChangeSummary, classify_change
from kulta.core.revision import strategy_hash
from kulta.model.rollout import Rollout
from kulta.model.status import Phase, RolloutStatus
from tests.unit.spec_helpers import load, with_steps

STEPS = ({"setWeight": 25}, {"pause": {}}, {"setWeight": 50})
OTHER_STEPS = ({"setWeight": 10}, {"pause": {}}, {"setWeight": 50})


def rollout(*steps: object) -> Rollout:
    result = load(with_steps(*steps))
    assert not result.errors, result.errors
    return result.rollouts[0]


def status(
    stable: str, canary: str = "", *, step: int = 0, steps_hash: str = "", aborted: bool = False
) -> RolloutStatus:
    return RolloutStatus(
        rollout="web",
        namespace="shop",
        environment="dev",
        phase=Phase.PAUSED if canary else Phase.HEALTHY,
        current_step_index=step if canary else 3,
        step_count=3,
        stable_revision=stable,
        canary_revision=canary or stable,
        strategy_hash=steps_hash,
        aborted=aborted,
    )


def test_no_stack_is_the_first_deployment() -> None:
    assert classify_change(rollout(*STEPS), "rev-b", None) == ChangeSummary(
        ChangeKind.FIRST_DEPLOYMENT, "rev-b", "", "", None, False
    )


def test_a_new_template_against_a_rollout_at_rest_starts_a_canary() -> None:
    file = rollout(*STEPS)
    prev = status("rev-a", steps_hash=strategy_hash(file))
    assert classify_change(file, "rev-b", prev) == ChangeSummary(
        ChangeKind.NEW_REVISION, "rev-b", "rev-a", "", None, False
    )


def test_a_new_template_during_a_canary_replaces_it() -> None:
    file = rollout(*STEPS)
    prev = status("rev-a", "rev-b", step=2, steps_hash=strategy_hash(file))
    assert classify_change(file, "rev-c", prev) == ChangeSummary(
        ChangeKind.NEW_REVISION, "rev-c", "rev-a", "rev-b", 2, False
    )


def test_other_steps_for_the_canary_in_flight_restart_it() -> None:
    prev = status("rev-a", "rev-b", step=1, steps_hash=strategy_hash(rollout(*STEPS)))
    assert classify_change(rollout(*OTHER_STEPS), "rev-b", prev) == ChangeSummary(
        ChangeKind.STRATEGY_CHANGED, "rev-b", "rev-a", "rev-b", 1, True
    )


def test_the_same_file_as_the_canary_in_flight_changes_nothing() -> None:
    file = rollout(*STEPS)
    prev = status("rev-a", "rev-b", step=1, steps_hash=strategy_hash(file))
    assert classify_change(file, "rev-b", prev).kind is ChangeKind.NO_CHANGE


def test_the_stable_template_again_during_a_canary_goes_back_to_stable() -> None:
    file = rollout(*STEPS)
    prev = status("rev-a", "rev-b", step=1, steps_hash=strategy_hash(file))
    assert classify_change(file, "rev-a", prev).kind is ChangeKind.BACK_TO_STABLE


@pytest.mark.parametrize(("steps", "changed"), [(STEPS, False), (OTHER_STEPS, True)])
def test_the_stable_template_at_rest_changes_nothing_whatever_the_steps(
    steps: tuple[object, ...], changed: bool
) -> None:
    prev = status("rev-a", steps_hash=strategy_hash(rollout(*STEPS)))
    assert classify_change(rollout(*steps), "rev-a", prev) == ChangeSummary(
        ChangeKind.NO_CHANGE, "rev-a", "rev-a", "", None, changed
    )


def test_an_aborted_canary_stays_aborted_with_the_same_template() -> None:
    file = rollout(*STEPS)
    prev = status("rev-a", "rev-b", step=1, steps_hash=strategy_hash(file), aborted=True)
    assert classify_change(file, "rev-b", prev).kind is ChangeKind.ABORTED


def test_a_status_written_before_strategy_hashes_is_no_strategy_change() -> None:
    prev = status("rev-a", "rev-b", step=1, steps_hash="")
    assert classify_change(rollout(*OTHER_STEPS), "rev-b", prev) == ChangeSummary(
        ChangeKind.NO_CHANGE, "rev-b", "rev-a", "rev-b", 1, False
    )


def test_other_blue_green_fields_for_the_preview_in_flight_restart_nothing() -> None:
    """Argo restarts no blue-green rollout on a strategy edit (the reconciler declares the
    stage again), so the PR headline must not promise a restart from step 0."""
    from tests.unit.test_bluegreen import bg_rollout

    before, after = bg_rollout(previewReplicaCount=1), bg_rollout(previewReplicaCount=2)
    prev = status("rev-a", "rev-b", step=0, steps_hash=strategy_hash(before))
    assert classify_change(after, "rev-b", prev) == ChangeSummary(
        ChangeKind.NO_CHANGE, "rev-b", "rev-a", "rev-b", 0, True
    )
