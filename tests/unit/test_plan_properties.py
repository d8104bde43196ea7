"""Property tests: KULTA's plan against a reference model of Argo Rollouts' controller.

The model (the ``argo_*`` functions below) is written here from Argo Rollouts' Go
source (argoproj/argo-rollouts: ``utils/replicaset/canary.go``,
``utils/replicaset/replicaset.go``, ``rollout/canary.go``) and imports nothing from
``kulta.core.plan``: it keeps Argo's structure (ReplicaSets with spec and available
counts, one ReplicaSet scaled per reconcile) and uses exact fractions where Argo uses
float64. Hypothesis generates specs, and every property compares the plan with what
the model's controller settles on. Filtering goes through ``assume``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kulta.core.plan import (
    PlanMode,
    ReplicaSetScale,
    WaitKind,
    abort_canary_weight,
    abort_route_weight,
    basic_canary_counts,
    basic_canary_path,
    desired_state,
    full_plan,
    rolling_plan,
    rolling_update,
    routed_replicas,
    stable_replicas_for_weights,
    weighted_steps_without_canary_pods,
)
from kulta.model.rollout import (
    AnalysisRef,
    AnalysisTemplateRef,
    CanaryStrategy,
    HeaderMatch,
    HeaderMatchType,
    HTTPRouteRef,
    Pause,
    RolloutSpec,
    SetCanaryScale,
    SetHeaderRoute,
    Step,
    StepKind,
    TrafficRouting,
)

# --------------------------------------------------------------------------------------
# Reference model of Argo Rollouts (written from the Go source, not from kulta.core.plan)
# --------------------------------------------------------------------------------------

#: weightutil.MaxTrafficWeight without maxTrafficWeight (which KULTA refuses)
ARGO_MAX_WEIGHT = 100


def argo_scaled_value(value: int | str, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    percent = int(value.removesuffix("%"))
    quotient, remainder = divmod(percent * total, 100)
    return quotient + 1 if round_up and remainder else quotient


def argo_max_surge(strategy: CanaryStrategy, replicas: int) -> int:
    """MaxSurge -> resolveFenceposts: the surge, rounded up."""
    return argo_scaled_value(strategy.max_surge, replicas, round_up=True)


def argo_max_unavailable(strategy: CanaryStrategy, replicas: int) -> int:
    """MaxUnavailable -> resolveFenceposts: rounded down, 1 if both are 0, capped at replicas."""
    if replicas == 0:
        return 0
    unavailable = argo_scaled_value(strategy.max_unavailable, replicas, round_up=False)
    if argo_max_surge(strategy, replicas) == 0 and unavailable == 0:
        unavailable = 1
    return unavailable if unavailable <= replicas else replicas


def argo_approximate(replicas: int, weight: int, max_surge: int) -> tuple[int, int]:
    """approximateWeightedCanaryStableReplicaCounts -> (canary, stable)."""
    if replicas == 0:
        return 0, 0
    share = Fraction(replicas * weight, ARGO_MAX_WEIGHT)
    ceil_count = -(-share.numerator // share.denominator)
    floor_count = share.numerator // share.denominator

    def tied(total: int) -> bool:  # floorCeilingTied
        scaled = Fraction(total * weight, ARGO_MAX_WEIGHT)
        return scaled - scaled.numerator // scaled.denominator == Fraction(1, 2)

    zero_allowed = weight in (ARGO_MAX_WEIGHT, 0) or (replicas == 1 and max_surge == 0)
    options: list[tuple[int, int]] = []
    if ceil_count < replicas or zero_allowed:
        options.append((ceil_count, replicas))
    if not tied(replicas) and (floor_count != 0 or zero_allowed):
        options.append((floor_count, replicas))
    if max_surge > 0:
        options.append((ceil_count, replicas + 1))
        if not tied(replicas + 1) and (floor_count != 0 or zero_allowed):
            options.append((floor_count, replicas + 1))
    if not options:
        return 0, replicas
    best = options[0]
    best_delta = abs(Fraction(best[0] * ARGO_MAX_WEIGHT, best[1]) - weight)
    for option in options[1:]:
        delta = abs(Fraction(option[0] * ARGO_MAX_WEIGHT, option[1]) - weight)
        if delta < best_delta:
            best, best_delta = option, delta
    return best[0], best[1] - best[0]


@dataclass
class ArgoRS:
    """A ReplicaSet as Argo's functions see it: spec.replicas and status.availableReplicas."""

    spec: int
    available: int


def argo_replicas_for_scale_down(rs: ArgoRS, ignore_availability: bool) -> int:
    """GetReplicasForScaleDown."""
    if rs.spec < rs.available:
        return rs.spec
    return rs.spec if ignore_availability else rs.available


def argo_adjust_within_limits(
    drain: ArgoRS, adjust: ArgoRS, drain_count: int, adjust_count: int, max_allowed: int, min_available: int
) -> tuple[int, int]:
    """adjustReplicaWithinLimits."""
    over = max(0, adjust_count + drain_count - max_allowed)
    total_available = min(drain.available, drain_count)
    adjust_count -= over
    total_available += min(adjust.available, adjust_count)
    extra = max(0, adjust.available - adjust_count)
    needed = max(0, min_available - total_available)
    adjust_count += min(extra, needed)
    over = max(0, adjust_count + drain_count - max_allowed)
    return drain_count - over, adjust_count


def argo_basic_canary(spec: RolloutSpec, weight: int, new: ArgoRS, stable: ArgoRS, older: int = 0) -> tuple[int, int]:
    """CalculateReplicaCountsForBasicCanary with a stable RS -> (new, stable).

    ``older`` is the spec.replicas sum of the other ReplicaSets."""
    replicas = spec.replicas
    surge = argo_max_surge(spec.strategy, replicas)
    desired_new, desired_stable = argo_approximate(replicas, weight, surge)
    new_count, stable_count = new.spec, stable.spec
    max_allowed = replicas + surge
    scale_up = max_allowed - (older + new.spec + stable.spec)
    if stable.spec < desired_stable and scale_up > 0:
        if stable.spec + scale_up < desired_stable:
            stable_count = stable.spec + scale_up
            scale_up = 0
        else:
            stable_count = desired_stable
            scale_up -= desired_stable - stable.spec
    if new.spec < desired_new and scale_up > 0:
        new_count = new.spec + scale_up if new.spec + scale_up < desired_new else desired_new
    if older > 0:
        return new_count, stable_count
    min_available = replicas - argo_max_unavailable(spec.strategy, replicas)
    increasing = desired_new >= new.spec
    to_scale_down = argo_replicas_for_scale_down(new, not increasing) + argo_replicas_for_scale_down(stable, increasing)
    if to_scale_down <= min_available:
        return new_count, stable_count
    scale_down = to_scale_down - min_available
    if not increasing:
        if new.spec > desired_new:
            new_count = max(desired_new, new.spec - scale_down)
        new_count, stable_count = argo_adjust_within_limits(
            new, stable, new_count, stable_count, max_allowed, min_available
        )
    else:
        if stable.spec > desired_stable:
            stable_count = max(desired_stable, stable.spec - scale_down)
        stable_count, new_count = argo_adjust_within_limits(
            stable, new, stable_count, new_count, max_allowed, min_available
        )
    return new_count, stable_count


def argo_reconcile_basic(spec: RolloutSpec, weight: int, stable: int, canary: int) -> tuple[int, int] | None:
    """One pass of reconcileCanaryReplicaSets with every created pod available.

    The stable RS is reconciled first and a pass that scaled it ends there; otherwise
    the new RS is scaled (NewRSNewReplicas). None when neither changes.
    """
    _, stable_target = argo_basic_canary(spec, weight, ArgoRS(canary, canary), ArgoRS(stable, stable))
    if stable_target != stable:
        return stable_target, canary
    canary_target, _ = argo_basic_canary(spec, weight, ArgoRS(canary, canary), ArgoRS(stable, stable))
    if canary_target != canary:
        return stable, canary_target
    return None


def argo_basic_transition(spec: RolloutSpec, weight: int, stable: int, canary: int) -> list[tuple[int, int]]:
    """Every (stable, canary) the controller passes through until nothing scales."""
    states = [(stable, canary)]
    bound = 4 * (spec.replicas + argo_max_surge(spec.strategy, spec.replicas) + stable + canary) + 4
    for _ in range(bound):
        following = argo_reconcile_basic(spec, weight, *states[-1])
        if following is None:
            return states
        states.append(following)
    raise AssertionError(f"no steady state after {bound} reconciles: {states[-6:]}")


def argo_current_set_weight(steps: tuple[Step, ...], index: int) -> int:
    """GetCurrentSetWeight while progressing: 100 past the last step."""
    if index >= len(steps):
        return ARGO_MAX_WEIGHT
    for step in steps[index::-1]:
        if step.set_weight is not None:
            return step.set_weight
    return 0


@dataclass
class ArgoStatus:
    """The bits of a Rollout's status the traffic-routed replica math reads."""

    current_step_index: int = 0
    abort: bool = False
    promote_full: bool = False


def argo_status(spec: RolloutSpec, index: int, mode: PlanMode) -> ArgoStatus:
    """Argo's status at KULTA's (step, mode): syncRolloutStatusCanary resets the step index
    to 0 when a rollout with steps is aborted; a full promotion is status.promoteFull."""
    if mode is PlanMode.ABORTED:
        return ArgoStatus(current_step_index=0, abort=True)
    return ArgoStatus(current_step_index=index, promote_full=mode is PlanMode.PROMOTED)


def argo_abort_delay(strategy: CanaryStrategy) -> tuple[int | None, bool]:
    """GetAbortScaleDownDelaySecondsOrDefault for a canary: (delay, was set); None = never."""
    if strategy.traffic_routing is None:
        return 0, False
    if strategy.abort_scale_down_delay_seconds is None:
        return 30, False
    if strategy.abort_scale_down_delay_seconds == 0:
        return None, True
    return strategy.abort_scale_down_delay_seconds, True


def argo_use_set_canary_scale(spec: RolloutSpec, status: ArgoStatus) -> SetCanaryScale | None:
    """UseSetCanaryScale."""
    steps = spec.strategy.steps
    if spec.strategy.traffic_routing is None:
        return None
    if status.abort and argo_abort_delay(spec.strategy)[0] is not None:
        return None
    if status.current_step_index >= len(steps):
        return None
    for step in steps[status.current_step_index :: -1]:
        if step.set_canary_scale is None:
            continue
        if step.set_canary_scale.match_traffic_weight:
            return None
        return step.set_canary_scale
    return None


def argo_desired_canary_weight(spec: RolloutSpec, status: ArgoStatus, new: ArgoRS | None, stable: ArgoRS | None) -> int:
    """GetDesiredCanaryWeight (and GetCurrentSetWeight)."""
    strategy = spec.strategy
    if status.abort and strategy.dynamic_stable_scale and new is not None and stable is not None:
        replicas = spec.replicas
        expected = replicas - stable.available
        canary = max(expected, new.available)
        delay, was_set = argo_abort_delay(strategy)
        if was_set and delay is not None:  # HasExplicitAbortScaleDownDelay
            canary = expected
        for step in reversed(strategy.steps):
            if step.set_weight is not None and -(-replicas * step.set_weight // ARGO_MAX_WEIGHT) < canary:
                return step.set_weight
        return 0
    if status.abort:
        return 0
    return argo_current_set_weight(strategy.steps, status.current_step_index)


def argo_traffic_routed(
    spec: RolloutSpec,
    status: ArgoStatus,
    route_canary_weight: int | None,
    new: ArgoRS | None = None,
    stable: ArgoRS | None = None,
) -> tuple[int, int]:
    """CalculateReplicaCountsForTrafficRoutedCanary -> (canary, stable).

    ``route_canary_weight`` is status.canary.weights (stable = 100 - canary; None = nil).
    """
    replicas = spec.replicas
    scale_replicas: int | None = None
    if status.promote_full:
        desired_weight = ARGO_MAX_WEIGHT
    else:
        scale = argo_use_set_canary_scale(spec, status)
        if scale is not None and scale.replicas is not None:
            scale_replicas, desired_weight = scale.replicas, 0
        elif scale is not None and scale.weight is not None:
            desired_weight = scale.weight
        else:
            desired_weight = argo_desired_canary_weight(spec, status, new, stable)
    canary = scale_replicas if scale_replicas is not None else -(-desired_weight * replicas // ARGO_MAX_WEIGHT)
    if not spec.strategy.dynamic_stable_scale:
        return canary, replicas
    stable_count = -(-(ARGO_MAX_WEIGHT - desired_weight) * replicas // ARGO_MAX_WEIGHT)
    if route_canary_weight is not None:
        actual = -(-(ARGO_MAX_WEIGHT - route_canary_weight) * replicas // ARGO_MAX_WEIGHT)
        stable_count = max(stable_count, actual)
        if status.abort:
            canary = max(-(-route_canary_weight * replicas // ARGO_MAX_WEIGHT), canary)
    return canary, stable_count


def argo_abort_route_weight(spec: RolloutSpec, new: ArgoRS, stable: ArgoRS, route_canary_weight: int | None) -> int:
    """calculateDesiredWeightOnAbortOrStableRollback while aborted (rollout/trafficrouting.go)."""
    replicas = spec.replicas
    if not spec.strategy.dynamic_stable_scale or replicas == 0:
        return 0
    desired = argo_desired_canary_weight(spec, ArgoStatus(abort=True), new, stable)
    expected = max(0, ARGO_MAX_WEIGHT - ARGO_MAX_WEIGHT * stable.available // replicas)
    if route_canary_weight is None:
        return max(expected, desired)
    if desired <= 0:
        return min(expected, route_canary_weight)
    if desired > 0 and ARGO_MAX_WEIGHT * stable.available // replicas < ARGO_MAX_WEIGHT - desired:
        return route_canary_weight
    return min(desired, route_canary_weight)


def argo_header_routes(spec: RolloutSpec, index: int) -> list[tuple[str, tuple[HeaderMatch, ...]]]:
    """The managed header routes in force at ``index``, in managedRoutes order."""
    routes: list[tuple[str, tuple[HeaderMatch, ...]]] = []
    names = spec.strategy.traffic_routing.managed_routes if spec.strategy.traffic_routing else ()
    for name in names:
        last = None
        for step in spec.strategy.steps[: index + 1]:
            if step.set_header_route is not None and step.set_header_route.name == name:
                last = step.set_header_route
        if last is not None and last.matches:
            routes.append((name, last.matches))
    return routes


# --------------------------------------------------------------------------------------
# Generated specs
# --------------------------------------------------------------------------------------

ROUTES = ("alpha", "beta")
ANALYSIS = AnalysisRef((AnalysisTemplateRef("t"),))

percent = st.integers(0, 100)
replica_counts = st.one_of(st.integers(0, 3), st.integers(0, 40))
int_or_percent = st.one_of(st.integers(0, 5), percent.map(lambda p: f"{p}%"))

primary = st.one_of(
    st.none(),
    percent.map(lambda w: {"set_weight": w}),
    st.one_of(st.none(), st.integers(0, 3600)).map(lambda s: {"pause": Pause(s)}),
    st.just({"analysis": ANALYSIS}),
)
canary_scale = st.one_of(
    st.none(),
    st.integers(0, 60).map(lambda r: SetCanaryScale(replicas=r)),
    percent.map(lambda w: SetCanaryScale(weight=w)),
    st.just(SetCanaryScale(match_traffic_weight=True)),
)
header_route = st.one_of(
    st.none(),
    st.builds(
        lambda name, values: SetHeaderRoute(
            name, tuple(HeaderMatch("X-Canary", v, HeaderMatchType.EXACT) for v in values)
        ),
        st.sampled_from(ROUTES),
        st.lists(st.sampled_from(("a", "b")), max_size=2),
    ),
)
KINDS = {
    "set_weight": StepKind.SET_WEIGHT,
    "pause": StepKind.PAUSE,
    "analysis": StepKind.ANALYSIS,
    "set_canary_scale": StepKind.SET_CANARY_SCALE,
    "set_header_route": StepKind.SET_HEADER_ROUTE,
}


@st.composite
def specs(draw: st.DrawFn, routed: bool | None = None) -> RolloutSpec:
    with_routing = draw(st.booleans()) if routed is None else routed
    steps: list[Step] = []
    for index in range(draw(st.integers(0, 8))):
        fields: dict[str, Any] = dict(draw(primary) or {})
        if with_routing:
            scale = draw(canary_scale)
            if scale is not None:
                fields["set_canary_scale"] = scale
            route = draw(header_route)
            if route is not None:
                fields["set_header_route"] = route
        if not fields:
            fields = {"set_weight": draw(percent)}
        steps.append(Step(index=index, kinds=frozenset(KINDS[name] for name in fields), **fields))
    surge = draw(int_or_percent)
    unavailable = draw(int_or_percent)
    # validation refuses both literally 0 (both may still resolve to 0 pods: Argo then uses 1)
    assume(not (surge in (0, "0%") and unavailable in (0, "0%")))
    strategy = CanaryStrategy(
        canary_service="c" if with_routing else None,
        stable_service="s" if with_routing else None,
        max_surge=surge,
        max_unavailable=unavailable,
        dynamic_stable_scale=with_routing and draw(st.booleans()),
        abort_scale_down_delay_seconds=draw(st.sampled_from([None, 0, 5])) if with_routing else None,
        steps=tuple(steps),
        traffic_routing=TrafficRouting((HTTPRouteRef("r"),), managed_routes=ROUTES) if with_routing else None,
    )
    return RolloutSpec(
        replicas=draw(replica_counts), selector={"matchLabels": {"a": "b"}}, template={}, strategy=strategy
    )


basic_specs = specs(routed=False)
routed_specs = specs(routed=True)

FAST = settings(max_examples=150, deadline=None)

# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------


@FAST
@given(specs())
def test_weight_wait_and_header_routes_follow_the_steps(spec: RolloutSpec) -> None:
    plan = full_plan(spec)
    assert [state.step_index for state in plan] == list(range(len(spec.strategy.steps) + 1))
    for step, state in zip(spec.strategy.steps, plan, strict=False):
        assert state.canary_weight == argo_current_set_weight(spec.strategy.steps, step.index)
        assert state.stable_weight == ARGO_MAX_WEIGHT - state.canary_weight
        assert [(route.name, route.matches) for route in state.header_routes] == argo_header_routes(spec, step.index)
        if step.pause is not None:
            expected = WaitKind.PAUSE_UNTIL_PROMOTED if step.pause.until_promoted else WaitKind.PAUSE_DURATION
            assert (state.wait.kind, state.wait.seconds) == (expected, step.pause.duration_seconds)
        elif step.analysis is not None:
            assert (state.wait.kind, state.wait.analysis) == (WaitKind.ANALYSIS, step.analysis)
        else:
            assert state.wait.kind is WaitKind.NONE


@FAST
@given(specs())
def test_the_last_state_is_full_promotion(spec: RolloutSpec) -> None:
    last = full_plan(spec)[-1]
    assert (last.canary_weight, last.stable_replicas, last.canary_replicas) == (100, 0, spec.replicas)
    assert (last.header_routes, last.wait.kind, last.mode) == ((), WaitKind.NONE, PlanMode.PROMOTED)


@FAST
@given(specs(), st.data())
def test_abort_returns_all_traffic_to_stable(spec: RolloutSpec, data: st.DataObject) -> None:
    """Once an abort is over all traffic is on a full stable; the canary has no pod, except
    a setCanaryScale of step 0 kept by abortScaleDownDelaySeconds: 0 (UseSetCanaryScale)."""
    index = data.draw(st.integers(0, len(spec.strategy.steps)))
    state = desired_state(spec, index, PlanMode.ABORTED)
    kept = argo_use_set_canary_scale(spec, argo_status(spec, index, PlanMode.ABORTED))
    if spec.strategy.traffic_routing is None:
        canary = 0
    else:
        canary, _ = argo_traffic_routed(spec, argo_status(spec, index, PlanMode.ABORTED), 0)
    assert (state.canary_weight, state.stable_replicas, state.canary_replicas) == (0, spec.replicas, canary)
    assert (canary > 0) <= (kept is not None)
    assert (state.header_routes, state.mode) == ((), PlanMode.ABORTED)


@FAST
@given(basic_specs)
def test_basic_canary_steps_end_where_argo_settles(spec: RolloutSpec) -> None:
    """Each step starts from the previous step's pods, all available, and ends where
    Argo's controller stops scaling; promotion settles at weight 100."""
    state = (spec.replicas, 0)
    for planned in full_plan(spec):
        state = argo_basic_transition(spec, planned.canary_weight, *state)[-1]
        assert (planned.stable_replicas, planned.canary_replicas) == state


@st.composite
def tie_prone_splits(draw: st.DrawFn) -> tuple[int, int, int | str]:
    """(replicas, weight, maxSurge) where replicas * weight / 100 often ends in .5 or
    comes close to replicas: where Argo's candidates drop out."""
    replicas = draw(st.one_of(st.sampled_from([1, 2, 5, 10, 25, 50]), st.integers(1, 60)))
    ties = [w for w in range(101) if (2 * replicas * w) % 100 == 50 or (2 * (replicas + 1) * w) % 100 == 50]
    near_top = [w for w in range(101) if replicas * w > 100 * (replicas - 1)]
    # replicas * weight / 100 = replicas - 0.5: the ceiling leaves no stable pod, the floor is a tie
    both = [w for w in range(101) if 2 * replicas * w == 100 * (2 * replicas - 1)]
    weight = draw(st.one_of(*(st.sampled_from(group) for group in (ties, near_top, both) if group), percent))
    surge = draw(st.sampled_from([0, "0%", 1, 2, "25%", "100%"]))
    return replicas, weight, surge


@FAST
@given(tie_prone_splits())
def test_basic_canary_split_matches_argo_where_candidates_drop_out(split: tuple[int, int, int | str]) -> None:
    replicas, weight, surge = split
    strategy = CanaryStrategy(
        max_surge=surge, max_unavailable=1, steps=(Step(0, frozenset({KINDS["set_weight"]}), set_weight=weight),)
    )
    spec = RolloutSpec(replicas=replicas, strategy=strategy)
    state = desired_state(spec, 0)
    canary, stable = argo_approximate(replicas, weight, argo_max_surge(strategy, replicas))
    assert (state.canary_replicas, state.stable_replicas) == (canary, stable)


@FAST
@given(basic_specs)
def test_basic_canary_pods_stay_within_argo_totals(spec: RolloutSpec) -> None:
    """Argo's approximation uses replicas or replicas + 1 pods (only with maxSurge), and
    with maxSurge both sides keep a pod at weights 1..99 (approximateWeighted... doc)."""
    replicas = spec.replicas
    surge = argo_max_surge(spec.strategy, replicas)
    for state in full_plan(spec):
        allowed = {replicas, replicas + 1} if surge > 0 and replicas > 0 else {replicas}
        assert state.total_replicas in allowed
        if surge > 0 and replicas > 0 and 0 < state.canary_weight < 100:
            assert min(state.stable_replicas, state.canary_replicas) >= 1


@FAST
@given(specs())
def test_steps_without_canary_pods_are_those_argo_leaves_empty(spec: RolloutSpec) -> None:
    assume(spec.replicas > 0)
    expected = []
    for step in spec.strategy.steps:
        weight = argo_current_set_weight(spec.strategy.steps, step.index)
        if spec.strategy.traffic_routing is None:
            canary, _ = argo_approximate(spec.replicas, weight, argo_max_surge(spec.strategy, spec.replicas))
        else:
            canary, _ = argo_traffic_routed(spec, ArgoStatus(step.index), weight)
        if weight > 0 and canary == 0:
            expected.append(step.index)
    assert weighted_steps_without_canary_pods(spec) == tuple(expected)


@FAST
@given(routed_specs)
def test_routed_steps_match_argo_once_the_route_has_the_step_weight(spec: RolloutSpec) -> None:
    for state in full_plan(spec)[:-1]:
        route_weight = argo_current_set_weight(spec.strategy.steps, state.step_index)
        canary, stable = argo_traffic_routed(spec, ArgoStatus(state.step_index), route_weight)
        assert (state.stable_replicas, state.canary_replicas) == (stable, canary)


@FAST
@given(routed_specs)
def test_routed_stable_has_pods_for_its_traffic(spec: RolloutSpec) -> None:
    """Argo's dynamicStableScale never sizes the stable below the traffic it serves."""
    for state in full_plan(spec)[:-1]:
        needed = Fraction(spec.replicas * state.stable_weight, 100)
        assert state.stable_replicas >= needed
        assert state.stable_replicas <= spec.replicas


@FAST
@given(routed_specs, st.data())
def test_routed_canary_without_override_has_pods_for_its_traffic(spec: RolloutSpec, data: st.DataObject) -> None:
    """Without a setCanaryScale in force the canary has the fewest pods for its weight."""
    index = data.draw(st.integers(0, len(spec.strategy.steps) - 1)) if spec.strategy.steps else 0
    assume(spec.strategy.steps and argo_use_set_canary_scale(spec, ArgoStatus(index)) is None)
    state = desired_state(spec, index)
    needed = Fraction(spec.replicas * state.canary_weight, 100)
    assert needed <= state.canary_replicas < needed + 1


@FAST
@given(basic_specs)
def test_rolling_update_is_argos_and_stays_within_surge_and_unavailable(spec: RolloutSpec) -> None:
    """Without steps Argo's weight is 100: the update ends at (0, R), never has more than
    R + maxSurge pods nor fewer than R - maxUnavailable available, one side at a time."""
    spec = replace(spec, strategy=replace(spec.strategy, steps=()))
    replicas = spec.replicas
    path = rolling_plan(spec)
    assert list(path) == argo_basic_transition(spec, ARGO_MAX_WEIGHT, replicas, 0)
    assert [rolling_update(spec, *state) for state in path] == [*path[1:], None]
    assert path[0] == (replicas, 0)
    assert path[-1] == (0, replicas)
    surge = argo_max_surge(spec.strategy, replicas)
    unavailable = argo_max_unavailable(spec.strategy, replicas)
    for (stable, canary), (next_stable, next_canary) in itertools.pairwise(path):
        assert (stable == next_stable) != (canary == next_canary)
    for stable, canary in path:
        assert replicas - unavailable <= stable + canary <= replicas + surge


@FAST
@given(basic_specs, percent, st.integers(0, 45), st.integers(0, 45))
def test_basic_canary_path_is_argos_from_any_pods(spec: RolloutSpec, weight: int, stable: int, canary: int) -> None:
    """From any pods to any weight: Argo's sequence, ending at the split for the weight."""
    path = basic_canary_path(spec, weight, stable, canary)
    assert list(path) == argo_basic_transition(spec, weight, stable, canary)
    split_canary, split_stable = argo_approximate(spec.replicas, weight, argo_max_surge(spec.strategy, spec.replicas))
    assert path[-1] == (split_stable, split_canary)


@FAST
@given(basic_specs, percent, st.data())
def test_basic_canary_path_stays_within_surge_and_unavailable(
    spec: RolloutSpec, weight: int, data: st.DataObject
) -> None:
    """Starting within R - maxUnavailable .. R + maxSurge pods, every state stays within."""
    low = spec.replicas - argo_max_unavailable(spec.strategy, spec.replicas)
    high = spec.replicas + argo_max_surge(spec.strategy, spec.replicas)
    total = data.draw(st.integers(low, high))
    stable = data.draw(st.integers(0, total))
    path = basic_canary_path(spec, weight, stable, total - stable)
    assert all(low <= stable + canary <= high for stable, canary in path)


pods_with_availability = st.integers(0, 45).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n + 2)))


@settings(max_examples=400, deadline=None)
@given(basic_specs, percent, pods_with_availability, pods_with_availability, st.sampled_from([0, 0, 1, 3]))
def test_basic_canary_counts_are_argos_with_any_availability(
    spec: RolloutSpec, weight: int, stable: tuple[int, int], canary: tuple[int, int], older: int
) -> None:
    counts = basic_canary_counts(spec, weight, ReplicaSetScale(*stable), ReplicaSetScale(*canary), older)
    new, stable_target = argo_basic_canary(spec, weight, ArgoRS(*canary), ArgoRS(*stable), older)
    assert counts == (stable_target, new)


route_weights = st.one_of(st.none(), percent)
availability = st.one_of(st.none(), st.tuples(st.integers(0, 45), st.integers(0, 45)))


@settings(max_examples=300, deadline=None)
@given(routed_specs, st.data(), st.sampled_from(list(PlanMode)), route_weights, availability)
def test_routed_replicas_are_argos_for_any_route_weight(
    spec: RolloutSpec,
    data: st.DataObject,
    mode: PlanMode,
    route_weight: int | None,
    available: tuple[int, int] | None,
) -> None:
    """Against CalculateReplicaCountsForTrafficRoutedCanary with status.canary.weights, while
    progressing, promoting fully or aborting (with the ReplicaSets' availability)."""
    index = data.draw(st.integers(0, len(spec.strategy.steps)))
    stable_available, canary_available = available if available is not None else (None, None)
    pods = routed_replicas(
        spec, index, route_weight, mode, stable_available=stable_available, canary_available=canary_available
    )
    new_rs = stable_rs = None
    if available is not None:
        stable_rs, new_rs = ArgoRS(available[0], available[0]), ArgoRS(available[1], available[1])
    canary, stable = argo_traffic_routed(spec, argo_status(spec, index, mode), route_weight, new_rs, stable_rs)
    assert pods == (stable, canary)


@FAST
@given(routed_specs, st.integers(0, 45), st.integers(0, 45), route_weights)
def test_abort_route_weight_is_argos(
    spec: RolloutSpec, stable_available: int, canary_available: int, route_weight: int | None
) -> None:
    weight = abort_route_weight(spec, stable_available, canary_available, route_weight)
    expected = argo_abort_route_weight(
        spec, ArgoRS(canary_available, canary_available), ArgoRS(stable_available, stable_available), route_weight
    )
    assert weight == expected


@FAST
@given(routed_specs, percent, route_weights)
def test_stable_serves_the_traffic_on_the_route_and_the_desired_traffic(
    spec: RolloutSpec, desired: int, route_weight: int | None
) -> None:
    """dynamicStableScale: the stable has the fewest pods for the larger of the traffic it
    serves now and the traffic it is about to serve; without it, all replicas
    (CalculateReplicaCountsForTrafficRoutedCanary)."""
    stable = stable_replicas_for_weights(spec, desired, route_weight)
    serving = [desired] if route_weight is None else [desired, route_weight]
    needed = max(Fraction(spec.replicas * (100 - weight), 100) for weight in serving)
    if spec.strategy.dynamic_stable_scale:
        assert needed <= stable < needed + 1
    else:
        assert stable == spec.replicas


@st.composite
def aborting_dynamic(draw: st.DrawFn) -> tuple[RolloutSpec, int, int, int | None]:
    """A dynamicStableScale spec with availabilities an abort passes through (0..replicas)."""
    spec = draw(routed_specs)
    spec = replace(spec, strategy=replace(spec.strategy, dynamic_stable_scale=True))
    weights = {step.set_weight for step in spec.strategy.steps if step.set_weight is not None}
    # stable shares equal to a step's stable weight: where Argo switches from holding the
    # route's weight to following the steps
    at_step = [n for n in range(spec.replicas + 1) if spec.replicas and 100 - 100 * n // spec.replicas in weights]
    stable_available = draw(st.one_of(st.integers(0, spec.replicas), st.sampled_from(at_step or [0])))
    canary_available = draw(st.integers(0, spec.replicas))
    return spec, stable_available, canary_available, draw(route_weights)


@settings(max_examples=300, deadline=None)
@given(aborting_dynamic())
def test_abort_weights_are_argos_while_the_stable_scales_back_up(
    case: tuple[RolloutSpec, int, int, int | None],
) -> None:
    spec, stable_available, canary_available, route_weight = case
    new_rs, stable_rs = ArgoRS(canary_available, canary_available), ArgoRS(stable_available, stable_available)
    desired = argo_desired_canary_weight(spec, ArgoStatus(abort=True), new_rs, stable_rs)
    assert abort_canary_weight(spec, stable_available, canary_available) == desired
    assert abort_route_weight(spec, stable_available, canary_available, route_weight) == argo_abort_route_weight(
        spec, new_rs, stable_rs, route_weight
    )
