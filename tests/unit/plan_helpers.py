"""Builders of typed Rollout specs for the plan tests (no YAML: the plan takes the model)."""

from __future__ import annotations

from typing import Any

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

__all__ = [
    "ANALYSIS",
    "ROUTING",
    "header",
    "make_spec",
    "make_steps",
    "pause",
    "scale",
    "weight",
]

ROUTING = TrafficRouting((HTTPRouteRef("web"),), managed_routes=("first", "second"))
ANALYSIS = AnalysisRef((AnalysisTemplateRef("success-rate"),))

_FIELD_KINDS = {
    "set_weight": StepKind.SET_WEIGHT,
    "pause": StepKind.PAUSE,
    "analysis": StepKind.ANALYSIS,
    "set_canary_scale": StepKind.SET_CANARY_SCALE,
    "set_header_route": StepKind.SET_HEADER_ROUTE,
}


def weight(value: int) -> dict[str, Any]:
    return {"set_weight": value}


def scale(**fields: Any) -> dict[str, Any]:
    return {"set_canary_scale": SetCanaryScale(**fields)}


def pause(seconds: int | None = None) -> dict[str, Any]:
    return {"pause": Pause(seconds)}


def header(name: str, *values: str) -> dict[str, Any]:
    matches = tuple(HeaderMatch("X-Test", value, HeaderMatchType.EXACT) for value in values)
    return {"set_header_route": SetHeaderRoute(name, matches)}


def make_steps(*parts: dict[str, Any]) -> tuple[Step, ...]:
    steps = []
    for index, fields in enumerate(parts):
        kinds = frozenset(_FIELD_KINDS[name] for name in fields)
        steps.append(Step(index=index, kinds=kinds, **fields))
    return tuple(steps)


def make_spec(
    replicas: int,
    *parts: dict[str, Any],
    routing: TrafficRouting | None = ROUTING,
    dynamic: bool = False,
    max_surge: int | str = "25%",
    max_unavailable: int | str = "25%",
    abort_scale_down_delay_seconds: int | None = None,
) -> RolloutSpec:
    """A spec with these steps; traffic routing unless ``routing=None``; Argo's defaults otherwise."""
    strategy = CanaryStrategy(
        canary_service="c" if routing else None,
        stable_service="s" if routing else None,
        max_surge=max_surge,
        max_unavailable=max_unavailable,
        dynamic_stable_scale=dynamic,
        abort_scale_down_delay_seconds=abort_scale_down_delay_seconds,
        steps=make_steps(*parts),
        traffic_routing=routing,
    )
    return RolloutSpec(replicas=replicas, selector={"matchLabels": {"app": "x"}}, template={}, strategy=strategy)
