"""Property tests of the plan invariants stated in docs/plan.md."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kulta.core.plan import (
    PlanMode,
    desired_state,
    full_plan,
    replicas_for_weight,
    resolve_max_surge,
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

ROUTES = ("alpha", "beta")
ANALYSIS = AnalysisRef((AnalysisTemplateRef("t"),))

percent = st.integers(0, 100)
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


@st.composite
def specs(draw: st.DrawFn) -> RolloutSpec:
    routed = draw(st.booleans())
    steps: list[Step] = []
    for index in range(draw(st.integers(0, 8))):
        fields: dict[str, Any] = dict(draw(primary) or {})
        if routed:
            scale = draw(canary_scale)
            if scale is not None:
                fields["set_canary_scale"] = scale
            route = draw(header_route)
            if route is not None:
                fields["set_header_route"] = route
        if not fields:
            fields = {"set_weight": draw(percent)}
        kinds = {
            "set_weight": StepKind.SET_WEIGHT,
            "pause": StepKind.PAUSE,
            "analysis": StepKind.ANALYSIS,
            "set_canary_scale": StepKind.SET_CANARY_SCALE,
            "set_header_route": StepKind.SET_HEADER_ROUTE,
        }
        steps.append(Step(index=index, kinds=frozenset(kinds[name] for name in fields), **fields))
    surge = draw(int_or_percent)
    unavailable = draw(int_or_percent)
    if surge in (0, "0%") and unavailable in (0, "0%"):
        unavailable = 1
    strategy = CanaryStrategy(
        canary_service="c" if routed else None,
        stable_service="s" if routed else None,
        max_surge=surge,
        max_unavailable=unavailable,
        dynamic_stable_scale=routed and draw(st.booleans()),
        steps=tuple(steps),
        traffic_routing=TrafficRouting((HTTPRouteRef("r"),), managed_routes=ROUTES) if routed else None,
    )
    return RolloutSpec(
        replicas=draw(st.integers(0, 50)), selector={"matchLabels": {"a": "b"}}, template={}, strategy=strategy
    )


def override_in_force(spec: RolloutSpec, index: int) -> bool:
    for step in reversed(spec.strategy.steps[: index + 1]):
        if step.set_canary_scale is not None:
            return not step.set_canary_scale.match_traffic_weight
    return False


FAST = settings(max_examples=120, deadline=None)


@FAST
@given(specs())
def test_weights_are_percentages_that_sum_to_100(spec: RolloutSpec) -> None:
    for state in full_plan(spec):
        assert 0 <= state.canary_weight <= 100
        assert state.canary_weight + state.stable_weight == 100


@FAST
@given(specs())
def test_replicas_are_never_negative(spec: RolloutSpec) -> None:
    for state in full_plan(spec):
        assert state.stable_replicas >= 0
        assert state.canary_replicas >= 0


@FAST
@given(specs())
def test_the_last_state_is_full_promotion(spec: RolloutSpec) -> None:
    plan = full_plan(spec)
    assert len(plan) == len(spec.strategy.steps) + 1
    last = plan[-1]
    assert (last.canary_weight, last.canary_replicas, last.stable_replicas) == (100, spec.replicas, 0)
    assert last.header_routes == ()
    assert last.mode is PlanMode.PROMOTED


@FAST
@given(specs(), st.data())
def test_abort_returns_all_traffic_to_stable(spec: RolloutSpec, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(spec.strategy.steps)))
    state = desired_state(spec, index, PlanMode.ABORTED)
    assert (state.canary_weight, state.stable_weight) == (0, 100)
    assert (state.stable_replicas, state.canary_replicas) == (spec.replicas, 0)
    assert state.header_routes == ()


@FAST
@given(specs())
def test_weight_is_the_last_set_weight_so_far(spec: RolloutSpec) -> None:
    current = 0
    for step, state in zip(spec.strategy.steps, full_plan(spec), strict=False):
        if step.set_weight is not None:
            current = step.set_weight
        assert state.canary_weight == current
        assert state.step_index == step.index


@FAST
@given(specs())
def test_basic_canary_stays_within_max_surge(spec: RolloutSpec) -> None:
    """Without routing: replicas <= stable + canary <= replicas + min(1, maxSurge)."""
    if spec.strategy.traffic_routing is not None:
        return
    replicas = spec.replicas
    surge = resolve_max_surge(spec.strategy, replicas)
    for state in full_plan(spec):
        assert replicas <= state.total_replicas <= replicas + min(1, surge)
        if replicas >= 2 and 0 < state.canary_weight < 100:
            assert state.canary_replicas >= 1
            assert state.stable_replicas >= 1


@FAST
@given(specs())
def test_routed_stable_always_has_capacity_for_its_traffic(spec: RolloutSpec) -> None:
    if spec.strategy.traffic_routing is None:
        return
    for state in full_plan(spec)[:-1]:
        assert state.stable_replicas >= replicas_for_weight(spec.replicas, state.stable_weight)
        if not spec.strategy.dynamic_stable_scale:
            assert state.stable_replicas == spec.replicas


@FAST
@given(specs())
def test_routed_canary_follows_weight_unless_overridden(spec: RolloutSpec) -> None:
    """Without a setCanaryScale override, canary = ceil(replicas * weight / 100); with
    dynamicStableScale the total is then at most replicas + 1."""
    if spec.strategy.traffic_routing is None:
        return
    for state in full_plan(spec)[:-1]:
        if override_in_force(spec, state.step_index):
            continue
        assert state.canary_replicas == replicas_for_weight(spec.replicas, state.canary_weight)
        if spec.strategy.dynamic_stable_scale:
            assert state.total_replicas <= spec.replicas + 1


@FAST
@given(specs())
def test_plan_is_pure(spec: RolloutSpec) -> None:
    assert full_plan(spec) == full_plan(spec)
