"""The step plan: replica math, header routes and waits, table-driven."""

from __future__ import annotations

import pytest

from kulta.core.plan import (
    DesiredState,
    PlanMode,
    Wait,
    WaitKind,
    basic_canary_replicas,
    desired_state,
    full_plan,
    replicas_for_weight,
    resolve_max_surge,
    resolve_max_unavailable,
    rolling_plan,
    rolling_update,
    weighted_steps_without_canary_pods,
)
from kulta.model.rollout import CanaryStrategy, RolloutSpec
from tests.unit.plan_helpers import ANALYSIS, header, make_spec, pause, scale, weight


def counts(spec: RolloutSpec) -> list[tuple[int, int, int]]:
    """(canary weight, stable pods, canary pods) of every state of the plan."""
    return [(s.canary_weight, s.stable_replicas, s.canary_replicas) for s in full_plan(spec)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # Traffic routing keeps the stable fully scaled; canary = ceil(replicas * weight / 100).
        (make_spec(4, weight(25), pause(), weight(50)), [(25, 4, 1), (25, 4, 1), (50, 4, 2), (100, 0, 4)]),
        (make_spec(3, weight(10), weight(67)), [(10, 3, 1), (67, 3, 3), (100, 0, 3)]),
        (make_spec(10, pause(), weight(5)), [(0, 10, 0), (5, 10, 1), (100, 0, 10)]),
        # dynamicStableScale shrinks the stable as traffic leaves it (rounded up).
        (
            make_spec(5, weight(10), weight(50), weight(90), dynamic=True),
            [(10, 5, 1), (50, 3, 3), (90, 1, 5), (100, 0, 5)],
        ),
        # setCanaryScale.replicas: fixed canary count, traffic moves independently.
        (
            make_spec(10, scale(replicas=1), weight(50), scale(match_traffic_weight=True)),
            [(0, 10, 1), (50, 10, 1), (50, 10, 5), (100, 0, 10)],
        ),
        # ... and with dynamicStableScale the stable keeps full size (Argo: scale weight 0).
        (make_spec(10, scale(replicas=1), weight(50), dynamic=True), [(0, 10, 1), (50, 10, 1), (100, 0, 10)]),
        # setCanaryScale.weight: canary sized for that weight; stable never below its traffic share.
        (make_spec(10, scale(weight=30), weight(10), dynamic=True), [(0, 10, 3), (10, 9, 3), (100, 0, 10)]),
        (make_spec(10, weight(60), scale(weight=20), dynamic=True), [(60, 4, 6), (60, 8, 2), (100, 0, 10)]),
        # Basic canary (no routing): the pod ratio approximates the weight within maxSurge.
        (
            make_spec(10, weight(10), weight(30), weight(95), routing=None),
            [(10, 9, 1), (30, 7, 3), (95, 1, 10), (100, 0, 10)],
        ),
        # No split of 10 pods for 95 % without surge in Argo: 10 canary pods would leave no
        # stable pod, and 9.5 is a tie, which drops the floor (9): Argo runs no canary pod.
        (make_spec(10, weight(95), routing=None, max_surge=0, max_unavailable=1), [(95, 10, 0), (100, 0, 10)]),
        (make_spec(1, weight(5), weight(95), routing=None, max_surge=1), [(5, 1, 1), (95, 1, 1), (100, 0, 1)]),
        (
            make_spec(1, weight(5), weight(95), routing=None, max_surge=0, max_unavailable=1),
            [(5, 1, 0), (95, 0, 1), (100, 0, 1)],
        ),
        (make_spec(3, weight(50), routing=None), [(50, 2, 2), (100, 0, 3)]),
        (make_spec(0, weight(50)), [(50, 0, 0), (100, 0, 0)]),
        # No steps: straight to promotion.
        (make_spec(4), [(100, 0, 4)]),
    ],
)
def test_replica_math(spec: RolloutSpec, expected: list[tuple[int, int, int]]) -> None:
    assert counts(spec) == expected


@pytest.mark.parametrize(
    ("replicas", "weight_", "surge", "expected"),
    [
        # Argo's documented examples (utils/replicaset/canary.go).
        (10, 10, 1, (1, 9)),
        (10, 30, 3, (3, 7)),
        (10, 5, 1, (1, 10)),
        (1, 5, 1, (1, 1)),
        (1, 95, 1, (1, 1)),
        (4, 25, 1, (1, 3)),
        (3, 50, 1, (2, 2)),
        (3, 50, 0, (2, 1)),
        (10, 0, 3, (0, 10)),
        (10, 100, 3, (10, 0)),
    ],
)
def test_basic_canary_replicas(replicas: int, weight_: int, surge: int, expected: tuple[int, int]) -> None:
    assert basic_canary_replicas(replicas, weight_, surge) == expected


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 4, (1, 1)),
        ("25%", "25%", 10, (3, 2)),
        ("25%", "25%", 1, (1, 0)),
        (0, "10%", 5, (0, 1)),
        (2, 0, 5, (2, 0)),
        ("0%", "0%", 5, (0, 1)),
        ("100%", "100%", 3, (3, 3)),
        # Argo's MaxUnavailable: never more than replicas, and 0 for 0 replicas.
        (0, 5, 3, (0, 3)),
        ("25%", "25%", 0, (0, 0)),
        (0, 1, 0, (0, 0)),
    ],
)
def test_resolve_surge_and_unavailable(
    surge: int | str, unavailable: int | str, replicas: int, expected: tuple[int, int]
) -> None:
    strategy = CanaryStrategy(canary_service=None, stable_service=None, max_surge=surge, max_unavailable=unavailable)
    assert (resolve_max_surge(strategy, replicas), resolve_max_unavailable(strategy, replicas)) == expected


@pytest.mark.parametrize(
    ("replicas", "weight_", "expected"), [(4, 25, 1), (3, 10, 1), (3, 0, 0), (7, 100, 7), (10, 33, 4), (0, 50, 0)]
)
def test_replicas_for_weight_rounds_up(replicas: int, weight_: int, expected: int) -> None:
    assert replicas_for_weight(replicas, weight_) == expected


def test_waits() -> None:
    spec = make_spec(4, weight(10), pause(), pause(90), {"analysis": ANALYSIS}, {**weight(20), **header("first", "a")})
    waits = [state.wait for state in full_plan(spec)]
    assert waits == [
        Wait(WaitKind.NONE),
        Wait(WaitKind.PAUSE_UNTIL_PROMOTED),
        Wait(WaitKind.PAUSE_DURATION, seconds=90),
        Wait(WaitKind.ANALYSIS, analysis=ANALYSIS),
        Wait(WaitKind.NONE),
        Wait(WaitKind.NONE),
    ]


def test_header_routes_accumulate_in_managed_route_order_and_are_removed() -> None:
    spec = make_spec(
        4,
        header("second", "b"),
        header("first", "a"),
        header("second", "b2"),
        header("first"),
        weight(50),
    )
    names = [[(r.name, tuple(m.value for m in r.matches)) for r in state.header_routes] for state in full_plan(spec)]
    assert names == [
        [("second", ("b",))],
        [("first", ("a",)), ("second", ("b",))],
        [("first", ("a",)), ("second", ("b2",))],
        [("second", ("b2",))],
        [("second", ("b2",))],
        [],
    ]


def test_promotion_and_abort_states() -> None:
    spec = make_spec(6, {**weight(30), **header("first", "x")}, pause())
    assert desired_state(spec, 0, PlanMode.PROMOTED) == DesiredState(
        0, 100, 0, 6, (), Wait(WaitKind.NONE), PlanMode.PROMOTED
    )
    assert desired_state(spec, 2) == DesiredState(2, 100, 0, 6, (), Wait(WaitKind.NONE), PlanMode.PROMOTED)
    aborted = desired_state(spec, 1, PlanMode.ABORTED)
    assert aborted == DesiredState(1, 0, 6, 0, (), Wait(WaitKind.NONE), PlanMode.ABORTED)
    assert aborted.stable_weight == 100
    assert desired_state(spec, 0).mode is PlanMode.PROGRESSING
    assert desired_state(spec, 0).stable_weight == 70


@pytest.mark.parametrize("index", [-1, 3])
def test_step_index_out_of_range(index: int) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        desired_state(make_spec(4, weight(10), pause()), index)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # 95 % of 10 pods without surge: Argo finds no split (see test_replica_math).
        (make_spec(10, weight(50), weight(95), pause(), routing=None, max_surge=0, max_unavailable=1), (1, 2)),
        # One pod without surge: below 50 % the canary has no pod.
        (make_spec(1, weight(20), weight(50), routing=None, max_surge=0, max_unavailable=1), (0,)),
        # With surge every weight above 0 gets a canary pod; weight 0 needs none.
        (make_spec(10, weight(0), weight(95), routing=None, max_surge=1), ()),
        # Traffic routing: a setCanaryScale of 0 pods while traffic flows.
        (make_spec(4, weight(10), scale(replicas=0)), (1,)),
        (make_spec(0, weight(50), routing=None), ()),
    ],
)
def test_weighted_steps_without_canary_pods(spec: RolloutSpec, expected: tuple[int, ...]) -> None:
    assert weighted_steps_without_canary_pods(spec) == expected


TEN_WITHOUT_SURGE = [
    (10, 0), (9, 0), (9, 1), (8, 1), (8, 2), (7, 2), (7, 3), (6, 3), (6, 4), (5, 4), (5, 5),
    (4, 5), (4, 6), (3, 6), (3, 7), (2, 7), (2, 8), (1, 8), (1, 9), (0, 9), (0, 10),
]  # fmt: skip
TEN_WITHOUT_UNAVAILABLE = [
    (10, 0), (10, 1), (9, 1), (9, 2), (8, 2), (8, 3), (7, 3), (7, 4), (6, 4), (6, 5), (5, 5),
    (5, 6), (4, 6), (4, 7), (3, 7), (3, 8), (2, 8), (2, 9), (1, 9), (1, 10), (0, 10),
]  # fmt: skip


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        # maxSurge 0, maxUnavailable 1: one stable pod down, then one canary pod up.
        (1, 0, 1, [(1, 0), (0, 0), (0, 1)]),
        (4, 0, 1, [(4, 0), (3, 0), (3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3), (0, 4)]),
        (10, 0, 1, TEN_WITHOUT_SURGE),
        # maxSurge 1, maxUnavailable 0: one canary pod up, then one stable pod down.
        (1, 1, 0, [(1, 0), (1, 1), (0, 1)]),
        (4, 1, 0, [(4, 0), (4, 1), (3, 1), (3, 2), (2, 2), (2, 3), (1, 3), (1, 4), (0, 4)]),
        (10, 1, 0, TEN_WITHOUT_UNAVAILABLE),
        # 25 %/25 % (the default): 1 replica resolves to surge 1, unavailable 0; 4 to 1 and 1;
        # 10 to 3 and 2. The stable is reconciled first, so it gives up its unavailable pods
        # before the canary surges into the room left up to replicas + maxSurge.
        (1, "25%", "25%", [(1, 0), (1, 1), (0, 1)]),
        (4, "25%", "25%", [(4, 0), (3, 0), (3, 2), (1, 2), (1, 4), (0, 4)]),
        (10, "25%", "25%", [(10, 0), (8, 0), (8, 5), (3, 5), (3, 10), (0, 10)]),
        (0, "25%", "25%", [(0, 0)]),
    ],
)
def test_rolling_plan_without_routing(
    replicas: int, surge: int | str, unavailable: int | str, expected: list[tuple[int, int]]
) -> None:
    spec = make_spec(replicas, routing=None, max_surge=surge, max_unavailable=unavailable)
    assert rolling_plan(spec) == tuple(expected)
    assert [rolling_update(spec, *state) for state in expected] == [*expected[1:], None]


@pytest.mark.parametrize("dynamic", [False, True])
def test_rolling_plan_with_routing_is_not_paced(dynamic: bool) -> None:
    """Argo sizes a routed canary for weight 100 at once; the stable goes after promotion."""
    spec = make_spec(4, dynamic=dynamic, max_surge=1, max_unavailable=0)
    assert rolling_plan(spec) == ((4, 0), (4, 4), (0, 4))
    assert rolling_update(spec, 2, 1) == (4, 1)
    assert rolling_update(spec, 3, 4) == (0, 4)
    assert rolling_update(spec, 0, 4) is None
