"""KULTA's plan against Argo Rollouts' own expectations, case by case.

Every expected value here is copied from Argo Rollouts' tests (argoproj/argo-rollouts;
the Go test and case are named on each table) or from the documentation comments of
the Go functions; none is computed by KULTA's code.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kulta.core.plan import basic_canary_replicas, desired_state
from kulta.model.rollout import RolloutSpec
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
