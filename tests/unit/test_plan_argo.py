"""KULTA's plan against Argo Rollouts' own expectations, case by case.

Every expected value here is copied from Argo Rollouts' tests (argoproj/argo-rollouts;
the Go test and case are named on each table) or from the documentation comments of
the Go functions; none is computed by KULTA's code.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kulta.core.plan import (
    PlanMode,
    ReplicaSetScale,
    abort_canary_weight,
    abort_route_weight,
    basic_canary_counts,
    basic_canary_next,
    basic_canary_path,
    basic_canary_replicas,
    desired_state,
    rolling_plan,
    rolling_update,
    routed_replicas,
    stable_replicas_for_weights,
)
from kulta.model.rollout import CanaryStrategy, RolloutSpec
from tests.unit.plan_helpers import make_spec, pause, scale, weight
from tests.unit.spec_helpers import base_rollout, load

# utils/replicaset/canary_test.go, TestApproximateWeightedNewStableReplicaCounts:
# (replicas, weight, maxSurge, expected canary, expected stable); maxWeight is 100.
APPROXIMATE_WEIGHTED_CASES = [
    (0, 0, 0, 0, 0),
    (0, 50, 0, 0, 0),
    (0, 100, 0, 0, 0),
    (0, 0, 1, 0, 0),
    (0, 50, 1, 0, 0),
    (0, 100, 1, 0, 0),
    (1, 0, 0, 0, 1),
    (1, 1, 0, 0, 1),
    (1, 49, 0, 0, 1),
    (1, 50, 0, 1, 0),
    (1, 99, 0, 1, 0),
    (1, 100, 0, 1, 0),
    (1, 0, 1, 0, 1),
    (1, 1, 1, 1, 1),
    (1, 49, 1, 1, 1),
    (1, 50, 1, 1, 1),
    (1, 99, 1, 1, 1),
    (1, 100, 1, 1, 0),
    (2, 0, 0, 0, 2),
    (2, 1, 0, 1, 1),
    (2, 50, 0, 1, 1),
    (2, 99, 0, 1, 1),
    (2, 100, 0, 2, 0),
    (2, 0, 1, 0, 2),
    (2, 1, 1, 1, 2),
    (2, 50, 1, 1, 1),
    (2, 99, 1, 2, 1),
    (2, 100, 1, 2, 0),
    (3, 10, 0, 1, 2),
    (3, 25, 0, 1, 2),
    (3, 33, 0, 1, 2),
    (3, 34, 0, 1, 2),
    (3, 49, 0, 1, 2),
    (3, 50, 0, 2, 1),
    (3, 10, 1, 1, 3),
    (3, 25, 1, 1, 3),
    (3, 33, 1, 1, 2),
    (3, 34, 1, 1, 2),
    (3, 49, 1, 2, 2),
    (3, 50, 1, 2, 2),
    (10, 0, 1, 0, 10),
    (10, 1, 0, 1, 9),
    (10, 14, 0, 1, 9),
    (10, 15, 0, 2, 8),
    (10, 16, 0, 2, 8),
    (10, 99, 0, 9, 1),
    (10, 100, 1, 10, 0),
    (10, 1, 1, 1, 10),
    (10, 18, 1, 2, 9),
    (10, 19, 1, 2, 9),
    (10, 20, 1, 2, 8),
    (10, 23, 1, 2, 8),
    (10, 24, 1, 3, 8),
    (10, 25, 1, 3, 8),
    (10, 99, 1, 10, 1),
]


@pytest.mark.parametrize(("replicas", "weight", "surge", "canary", "stable"), APPROXIMATE_WEIGHTED_CASES)
def test_approximate_weighted_canary_stable_replica_counts(
    replicas: int, weight: int, surge: int, canary: int, stable: int
) -> None:
    assert basic_canary_replicas(replicas, weight, surge) == (canary, stable)


def e2e_rollout(replicas: int, steps: str, *, routed: bool = True, **canary: Any) -> RolloutSpec:
    """A Rollout with Argo's e2e steps (YAML copied from the Go test), loaded by KULTA."""
    doc = base_rollout(replicas=replicas)
    strategy = doc["spec"]["strategy"]["canary"]
    strategy["steps"] = yaml.safe_load(steps)
    strategy.update(canary)
    if not routed:
        for key in ("canaryService", "stableService", "trafficRouting"):
            del strategy[key]
    result = load(doc)
    assert result.errors == ()
    (rollout,) = result.rollouts
    return rollout.spec


def pods(spec: RolloutSpec, step_index: int) -> tuple[int, int]:
    """(canary, stable) pods at a step, in the order of Argo's ExpectCanaryStablePodCount."""
    state = desired_state(spec, step_index)
    return state.canary_replicas, state.stable_replicas


def test_e2e_canary_set_canary_scale() -> None:
    """test/e2e/canary_test.go, TestCanarySetCanaryScale (nginx-template: 4 replicas, traffic routing)."""
    spec = e2e_rollout(
        4,
        """
- pause: {}
- setCanaryScale:
    weight: 25
- pause: {duration: 100s}
- setWeight: 50
- pause: {duration: 10s}
- setCanaryScale:
    replicas: 3
- pause: {}
- setCanaryScale:
    matchTrafficWeight: true
- pause: {duration: 5s}
""",
    )
    assert [pods(spec, index) for index in (0, 2, 4, 6, 8)] == [(0, 4), (1, 4), (1, 4), (3, 4), (2, 4)]


def test_e2e_canary_dynamic_stable_scale() -> None:
    """test/e2e/canary_test.go, TestCanaryDynamicStableScale (canary-dynamic-stable-scale.yaml):
    revision 1 (stable) 3 and revision 2 (canary) 1 at the first pause, 1 and 3 at the second."""
    spec = e2e_rollout(4, "[{setWeight: 25}, {pause: {}}, {setWeight: 75}, {pause: {}}]", dynamicStableScale=True)
    assert [pods(spec, index) for index in (1, 3)] == [(1, 3), (3, 1)]


def test_e2e_rollout_scaling_when_paused() -> None:
    """test/e2e/canary_test.go, TestRolloutScalingWhenPaused (rollout-basic.yaml: no traffic
    routing, default maxSurge 25 %): setWeight 25 gives (1, 1) with 1 replica, (2, 6) once
    scaled to 8, (1, 3) once scaled to 4."""
    steps = "[{setWeight: 25}, {pause: {}}]"
    assert [pods(e2e_rollout(replicas, steps, routed=False), 1) for replicas in (1, 8, 4)] == [(1, 1), (2, 6), (1, 3)]


def test_e2e_reduce_weight_steady_states() -> None:
    """test/e2e/canary_test.go, TestReduceWeightAndHonorMaxUnavailable: 3 replicas, maxSurge 2,
    maxUnavailable 0, basic canary; at the first pause (step 1) canary 3 and stable 0. The
    steps back to weight 0 and up again settle at (0, 3) and (3, 0)."""
    spec = e2e_rollout(
        3,
        "[{setWeight: 100}, {pause: {}}, {setWeight: 0}, {pause: {}}, {setWeight: 100}, {pause: {}}]",
        routed=False,
        maxSurge=2,
        maxUnavailable=0,
    )
    assert [pods(spec, index) for index in range(6)] == [(3, 0), (3, 0), (0, 3), (0, 3), (3, 0), (3, 0)]


def basic_spec(replicas: int, max_surge: int | str, max_unavailable: int | str) -> RolloutSpec:
    strategy = CanaryStrategy(max_surge=max_surge, max_unavailable=max_unavailable)
    return RolloutSpec(replicas=replicas, strategy=strategy)


# utils/replicaset/canary_test.go, TestCalculateReplicaCountsForCanary, every case without
# trafficRouting: (name, replicas, weight, maxSurge, maxUnavailable, stable (spec, available),
# canary (spec, available), older RS pods, expected stable, expected canary). promoteFull
# cases use weight 100 (GetCanaryReplicasOrWeight).
CALCULATE_BASIC_CASES = [
    ("Do not add extra RSs in scaleDownCount when .Spec.Replica < AvailableReplicas",
     10, 100, 3, 0, (7, 8), (6, 3), 0, 7, 6),
    ("Use max surge int to scale up canary", 10, 20, 2, 0, (10, 10), (0, 0), 0, 10, 2),
    ("Use max surge percentage to scale up canary", 10, 20, "20%", 0, (10, 10), (0, 0), 0, 10, 2),
    ("Scale down extra stable replicas", 10, 20, "20%", 0, (10, 10), (2, 2), 0, 8, 2),
    ("Do not go past max surge", 10, 30, 2, 0, (10, 10), (0, 0), 0, 10, 2),
    ("Use max unavailable int to scale down stableRS", 10, 20, 0, 2, (10, 10), (0, 0), 0, 8, 0),
    ("Use max surge percentage to scale down stableRS", 10, 20, 0, "20%", (10, 10), (0, 0), 0, 8, 0),
    ("Do not go past max unavailable", 10, 30, 0, 2, (10, 10), (0, 0), 0, 8, 0),
    ("Use Max Surge and Max Unavailable", 10, 50, 2, 1, (10, 10), (0, 0), 0, 9, 2),
    ("Scale canaryRS to zero on setWeight of 0%", 10, 0, 1, 1, (10, 10), (1, 1), 0, 10, 0),
    ("Scale stable to zero on setWeight of 100%", 10, 100, 1, 1, (1, 1), (10, 10), 0, 0, 10),
    ("Do not scale canaryRS down to zero on non-zero weight", 1, 20, 1, 0, (1, 1), (0, 0), 0, 1, 1),
    ("Do not scale canaryRS down to zero on non-100 weight", 1, 90, 1, 0, (1, 1), (0, 0), 0, 1, 1),
    ("Scale canaryRS to zero on <50 weight without surge", 1, 49, 0, 1, (1, 1), (0, 0), 0, 1, 0),
    ("Scale stableRS down to zero on >=50 weight without surge", 1, 51, 0, 1, (1, 1), (0, 0), 0, 0, 0),
    ("Scale canaryRS to one on >=50 weight without surge and stable replicas",
     1, 51, 0, 1, (0, 0), (0, 0), 0, 0, 1),
    ("Scale up Stable before canaryRS", 10, 30, 1, 0, (1, 1), (0, 0), 3, 7, 1),
    ("Scale down canaryRS and stable", 10, 30, 0, 3, (8, 5), (4, 4), 0, 7, 3),
    ("Scale down stable and canary available", 10, 100, 1, 0, (10, 2), (10, 8), 0, 2, 9),
    ("Do not scale down canaryRS or stable when older RS count >= scaleDownCount",
     10, 30, 0, 1, (8, 6), (4, 2), 3, 8, 4),
    ("Do not round past maxSurge with uneven setWeight divisor", 10, 5, 0, 1, (10, 10), (0, 0), 0, 9, 0),
    ("Do not round past maxSurge with uneven setWeight divisor (part 2)", 10, 5, 0, 1, (9, 9), (0, 0), 0, 9, 1),
    ("Use maxUnavailable of 1 when percentage of maxUnavailable and maxSurge result in 0 replicas",
     10, 10, "0%", "0%", (10, 10), (0, 0), 0, 9, 0),
    ("Ignore setCanaryScale when trafficRouting is missing and use setWeight for replicas",
     10, 20, "20%", 0, (10, 10), (0, 0), 0, 10, 2),
    ("honor maxSurge during scale up when stableRS unavailable", 4, 100, 1, 0, (4, 1), (0, 0), 0, 4, 1),
    ("scale down to maxunavailable without exceeding maxSurge", 3, 99, 0, 2, (3, 3), (0, 0), 0, 1, 0),
    ("scale down to maxunavailable without exceeding maxSurge (part 2)", 3, 99, 0, 2, (1, 1), (0, 0), 0, 1, 2),
    ("honor maxUnavailable during scale down stableRS unavailable", 4, 100, 1, 0, (4, 1), (1, 1), 0, 3, 1),
    ("honor maxUnavailable when aborting or reducing weight part 1", 4, 0, 1, 0, (0, 0), (4, 4), 0, 1, 4),
    ("honor maxUnavailable when aborting or reducing weight part 2", 4, 0, 1, 0, (1, 0), (4, 4), 0, 1, 4),
    ("honor maxUnavailable when aborting or reducing weight part 3", 4, 0, 1, 0, (1, 1), (4, 4), 0, 1, 3),
    ("promote full does not consider weight", 4, 100, 4, 4, (4, 4), (0, 0), 0, 0, 4),
    ("promote full still honors maxSurge/maxUnavailable", 4, 100, 3, 0, (4, 4), (0, 0), 0, 4, 3),
    # The examples of CalculateReplicaCountsForBasicCanary's doc comment (the one with
    # weight 5 of 10 replicas predates the surge candidates of the approximation, which
    # keep 10 stable pods there, and is left out).
    ("doc: replicas 10 currentWeight 10", 10, 10, 1, 1, (10, 10), (0, 0), 0, 9, 1),
    ("doc: replicas 10 currentWeight 30 surge 3", 10, 30, 3, 0, (10, 10), (0, 0), 0, 10, 3),
    ("doc: replicas 10 currentWeight 30 max unavailable 5", 10, 30, 0, 5, (10, 10), (0, 0), 0, 7, 0),
    ("doc: replicas 1 currentWeight 5", 1, 5, 1, 0, (1, 1), (0, 0), 0, 1, 1),
    ("doc: replicas 1 currentWeight 95", 1, 95, 1, 0, (1, 1), (0, 0), 0, 1, 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "replicas", "weight", "surge", "unavailable", "stable", "canary", "older", "want_stable", "want_canary"),
    CALCULATE_BASIC_CASES,
    ids=[case[0] for case in CALCULATE_BASIC_CASES],
)
def test_calculate_replica_counts_for_basic_canary(
    name: str,
    replicas: int,
    weight: int,
    surge: int | str,
    unavailable: int | str,
    stable: tuple[int, int],
    canary: tuple[int, int],
    older: int,
    want_stable: int,
    want_canary: int,
) -> None:
    counts = basic_canary_counts(
        basic_spec(replicas, surge, unavailable), weight, ReplicaSetScale(*stable), ReplicaSetScale(*canary), older
    )
    assert counts == (want_stable, want_canary)


# utils/replicaset/replicaset.go, the doc comment of resolveFenceposts ("should scale
# old(-1), then new(+1), ..."): (replicas, maxUnavailable, maxSurge, (stable, canary)...).
FENCEPOST_SEQUENCES = [
    (2, "1%", "0%", [(2, 0), (1, 0), (1, 1), (0, 1), (0, 2)]),
    (1, "1%", "0%", [(1, 0), (0, 0), (0, 1)]),
    (2, "25%", "1%", [(2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]),
    (1, "25%", "1%", [(1, 0), (1, 1), (0, 1)]),
    (2, "0%", "1%", [(2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]),
    (1, "0%", "1%", [(1, 0), (1, 1), (0, 1)]),
]


@pytest.mark.parametrize(("replicas", "unavailable", "surge", "expected"), FENCEPOST_SEQUENCES)
def test_rolling_plan_follows_resolve_fenceposts(
    replicas: int, unavailable: str, surge: str, expected: list[tuple[int, int]]
) -> None:
    assert rolling_plan(basic_spec(replicas, surge, unavailable)) == tuple(expected)


def test_e2e_max_surge_scaling_during_update() -> None:
    """test/e2e/canary_test.go, TestRolloutWithMaxSurgeScalingDuringUpdate: 4 replicas, no
    steps, maxSurge 100 %; the update passes through canary 4 / stable 3 (7 pods)."""
    assert (3, 4) in rolling_plan(basic_spec(4, "100%", "25%"))


def test_e2e_scaling_during_update_first_move() -> None:
    """test/e2e/canary_test.go, TestRolloutScalingDuringUpdate: 4 replicas, no steps, maxSurge 2,
    maxUnavailable 0; the canary never becomes available and the rollout stays at canary 2 /
    stable 4: the first move of the update."""
    assert rolling_update(basic_spec(4, 2, 0), 4, 0) == (4, 2)


def test_e2e_reduce_weight_honors_max_unavailable() -> None:
    """test/e2e/canary_test.go, TestReduceWeightAndHonorMaxUnavailable: from canary 3 / stable 0
    to weight 0 with maxSurge 2, maxUnavailable 0, Argo first surges the stable to 2 and
    keeps the 3 canary pods ("verify we don't scale down immediately")."""
    spec = basic_spec(3, 2, 0)
    assert basic_canary_next(spec, 0, 0, 3) == (2, 3)
    assert basic_canary_path(spec, 0, 0, 3)[-1] == (3, 0)


def routed_spec(
    replicas: int, *steps: dict[str, Any], dynamic: bool = False, abort_delay: int | None = None
) -> RolloutSpec:
    return make_spec(replicas, *steps, dynamic=dynamic, abort_scale_down_delay_seconds=abort_delay)


# utils/replicaset/canary_test.go, TestCalculateReplicaCountsForCanary, the cases with
# trafficRouting (newRollout: one step with the setWeight and the setCanaryScale; the
# minPodsPerReplicaSet cases are left out: KULTA refuses that field).
@pytest.mark.parametrize(
    ("name", "spec", "mode", "expected"),
    [
        (
            "For canary replicas, use setCanaryScale.replicas when specified along with trafficRouting",
            routed_spec(1, {**weight(100), **scale(replicas=9)}),
            PlanMode.PROGRESSING,
            (1, 9),
        ),
        (
            "Use setCanaryScale.weight for canary replicas when specified with trafficRouting",
            routed_spec(4, {**weight(100), **scale(weight=200)}),
            PlanMode.PROGRESSING,
            (4, 8),
        ),
        (
            "Ignore setCanaryScale replicas/weight when matchTrafficWeight is true",
            routed_spec(10, {**weight(20), **scale(replicas=9, weight=100, match_traffic_weight=True)}),
            PlanMode.PROGRESSING,
            (10, 2),
        ),
        (
            "aborted with abortScaleDownDelaySeconds:0 and setCanaryScale",
            routed_spec(1, {**weight(0), **scale(replicas=1)}, abort_delay=0),
            PlanMode.ABORTED,
            (1, 1),
        ),
        (
            "aborted with abortScaleDownDelaySeconds>0 and setCanaryScale",
            routed_spec(1, {**weight(0), **scale(replicas=1)}, abort_delay=30),
            PlanMode.ABORTED,
            (1, 0),
        ),
        # TestCalculateReplicaCountsForCanaryTrafficRouting
        (
            "TestCalculateReplicaCountsForCanaryTrafficRouting",
            routed_spec(10, weight(10)),
            PlanMode.PROGRESSING,
            (10, 1),
        ),
    ],
)
def test_calculate_replica_counts_for_traffic_routed_canary(
    name: str, spec: RolloutSpec, mode: PlanMode, expected: tuple[int, int]
) -> None:
    assert routed_replicas(spec, 0, None, mode) == expected


def dynamic_case(set_weight: int, *more: int) -> RolloutSpec:
    """newRollout(10, setWeight) with dynamicStableScale and the test's extra setWeight steps."""
    return routed_spec(10, weight(set_weight), *(weight(w) for w in more), dynamic=True)


# utils/replicaset/canary_test.go, TestCalculateReplicaCountsForCanaryTrafficRoutingDynamicScale:
# (name, spec, aborted, route canary weight, (stable, canary) ReplicaSets' available pods or
# None when the test passes no ReplicaSet, expected (stable, canary)). The test builds the
# canary ReplicaSet with its spec count as available count.
@pytest.mark.parametrize(
    ("name", "spec", "aborted", "route", "available", "expected"),
    [
        (
            "Should scale stable replica up depending on next expected canary downscale step, if abort is true",
            dynamic_case(20, 60), True, 60, (4, 6), (8, 6),
        ),
        (
            "Should scale stable replica up depending on available canary replicas, if actual number of canaries "
            "is less than expected and abort is true",
            dynamic_case(20, 60), True, 60, (4, 1), (8, 6),
        ),
        (
            "Should scale stable replica up depending on available stable replicas, if abort is true",
            dynamic_case(20, 60), True, 60, (4, 2), (8, 6),
        ),
        (
            "Should scale stable up as if canaries are scaled down to 0 if stable and canary replicas not passed, "
            "and abort is true",
            dynamic_case(20, 60), True, 60, None, (10, 6),
        ),
        ("Should scale down stable", dynamic_case(10), False, 10, None, (9, 1)),
        ("Should take max of desired canary (20) > actual (10)", dynamic_case(20), False, 10, None, (9, 2)),
        ("Should leave canary scaled up if there is still traffic to it on abort",
         dynamic_case(20), True, 20, None, (10, 2)),
        ("Should reduce canary when there is less traffic to it on abort", dynamic_case(20), True, 10, None, (10, 1)),
    ],
)  # fmt: skip
def test_calculate_replica_counts_dynamic_scale(
    name: str,
    spec: RolloutSpec,
    aborted: bool,
    route: int,
    available: tuple[int, int] | None,
    expected: tuple[int, int],
) -> None:
    stable_available, canary_available = available if available is not None else (None, None)
    mode = PlanMode.ABORTED if aborted else PlanMode.PROGRESSING
    pods = routed_replicas(spec, 0, route, mode, stable_available=stable_available, canary_available=canary_available)
    assert pods == expected


# utils/replicaset/canary_test.go, TestGetDesiredCanaryWeightOnAbortWithScaleDownDelay:
# 10 replicas, steps setWeight 10 and 50, dynamicStableScale, canary with 5 available pods.
@pytest.mark.parametrize(
    ("name", "abort_delay", "stable_available", "expected"),
    [
        ("no explicit delay: weight is held up by canary size (progressive drain unchanged)", None, 9, 10),
        ("explicit delay: weight steps down gradually while stable is scaling up", 30, 5, 10),
        ("explicit delay: weight reaches zero once stable nearly covers spec.Replicas (deadlock case)", 30, 9, 0),
        ("explicit zero delay (leave canary up indefinitely): weight is held up by canary size", 0, 9, 10),
    ],
)
def test_desired_canary_weight_on_abort(
    name: str, abort_delay: int | None, stable_available: int, expected: int
) -> None:
    spec = routed_spec(10, weight(10), weight(50), dynamic=True, abort_delay=abort_delay)
    assert abort_canary_weight(spec, stable_available, 5) == expected


def test_stable_scales_to_spec_replicas_once_abort_weight_reaches_zero() -> None:
    """The subtest "stable scales to spec.Replicas once weight reaches zero" of the same test."""
    spec = routed_spec(10, weight(10), weight(50), dynamic=True, abort_delay=30)
    stable, _ = routed_replicas(spec, 0, 10, PlanMode.ABORTED, stable_available=9, canary_available=5)
    assert stable == 10


# rollout/trafficrouting_test.go: the weight set on the route while a dynamicStableScale
# rollout of 5 replicas aborts: (test, steps, stable available, canary available, route
# canary weight, expected weight).
@pytest.mark.parametrize(
    ("name", "steps", "stable_available", "canary_available", "route", "expected"),
    [
        ("TestDynamicScalingDontIncreaseWeightWhenAborted", (weight(50), pause()), 4, 0, 0, 0),
        ("TestDynamicScalingDecreaseWeightAccordingToStepWeightsAvailabilityWhenAborted",
         (weight(50), pause()), 3, 4, 100, 50),
        ("TestDynamicScalingDecreaseWeightAccordingToStableAvailabilityWhenAborted", (pause(),), 1, 4, 100, 80),
        ("TestDynamicScalingDecreaseWeightAccordingToStableAvailabilityWhenAbortedAndResetService",
         (weight(50), pause()), 5, 0, 20, 0),
    ],
)  # fmt: skip
def test_abort_route_weight(
    name: str,
    steps: tuple[dict[str, Any], ...],
    stable_available: int,
    canary_available: int,
    route: int,
    expected: int,
) -> None:
    spec = routed_spec(5, *steps, dynamic=True)
    assert abort_route_weight(spec, stable_available, canary_available, route) == expected


def test_e2e_dynamic_stable_scale_abort() -> None:
    """test/e2e/canary_test.go, TestCanaryDynamicStableScale: 4 replicas, setWeight 25 / 75,
    aborted at the second pause (stable 1, canary 3, route 75). Marking stable pods ready
    one by one, the canary drains to 1 while the stable reaches 4, then to 0."""
    spec = e2e_rollout(4, "[{setWeight: 25}, {pause: {}}, {setWeight: 75}, {pause: {}}]", dynamicStableScale=True)

    def step(stable_ready: int, canary_ready: int, route: int) -> tuple[int, tuple[int, int]]:
        new_route = abort_route_weight(spec, stable_ready, canary_ready, route)
        pods = routed_replicas(
            spec, 3, new_route, PlanMode.ABORTED, stable_available=stable_ready, canary_available=canary_ready
        )
        return new_route, pods

    # Aborted: the stable cannot take traffic yet; it is scaled up to 3, the route kept at 75.
    assert step(1, 3, 75) == (75, (3, 3))
    # 3 of the stable's pods ready: the route steps down to 25 and the canary to 1 pod ...
    assert step(3, 3, 75) == (25, (3, 1))
    # ... and once it has, the stable is scaled to 4 (the e2e waits for canary 1, stable 4).
    assert step(3, 1, 25) == (25, (4, 1))
    # The last stable pod ready: all traffic back on the stable, no canary pod.
    assert step(4, 1, 25) == (0, (4, 0))


def test_e2e_dynamic_stable_scale_abort_with_explicit_delay_holds_the_route() -> None:
    """test/e2e/canary_test.go, TestCanaryDynamicStableScaleAbortScaleDownDelay
    (abortScaleDownDelaySeconds 10): right after the abort the route keeps 75 % while the
    stable's new pods are not ready; with 3 of 4 ready it steps down to 25, then to 0."""
    spec = e2e_rollout(
        4,
        "[{setWeight: 25}, {pause: {}}, {setWeight: 75}, {pause: {}}]",
        dynamicStableScale=True,
        abortScaleDownDelaySeconds=10,
    )
    assert abort_route_weight(spec, 1, 3, 75) == 75
    assert abort_route_weight(spec, 3, 3, 75) == 25
    assert abort_route_weight(spec, 4, 3, 25) == 0


@pytest.mark.parametrize(("delay", "canary"), [(0, 1), (1, 0)])
def test_e2e_canary_scale_down_on_abort(delay: int, canary: int) -> None:
    """test/e2e/canary_test.go, TestCanaryUnScaleDownOnAbort (abortScaleDownDelaySeconds 0:
    revision 2 keeps 1 pod) and TestCanaryScaleDownOnAbort (1 s: revision 2 ends with 0);
    steps setCanaryScale replicas 1, pause; 1 replica."""
    spec = e2e_rollout(1, "[{setCanaryScale: {replicas: 1}}, {pause: {}}]", abortScaleDownDelaySeconds=delay)
    aborted = desired_state(spec, 1, PlanMode.ABORTED)
    assert (aborted.canary_weight, aborted.stable_replicas, aborted.canary_replicas) == (0, 1, canary)


@pytest.mark.parametrize(("dynamic", "route", "expected"), [(True, 10, 9), (True, None, 8), (False, 10, 10)])
def test_stable_replicas_for_weights(dynamic: bool, route: int | None, expected: int) -> None:
    """TestCalculateReplicaCountsForCanaryTrafficRoutingDynamicScale, "Should take max of
    desired canary (20) > actual (10)": desired stable 80 % is 8 pods, the route's 90 % is 9;
    without a route weight only the desired counts; without dynamicStableScale, all 10."""
    spec = routed_spec(10, weight(20), dynamic=dynamic)
    assert stable_replicas_for_weights(spec, 20, route) == expected
