"""``spec.strategy.canary``: its own fields and the rules that tie them together.

The fields of the canary block itself (services, maxSurge/maxUnavailable, scale-down
delays, dynamicStableScale, canary/stable pod metadata) are read here; its parts
have their own modules: ``rollout_steps`` (each step), ``rollout_traffic``
(trafficRouting) and ``rollout_analysis_refs`` (background analysis). The rules
across fields (what needs trafficRouting) are at the end of ``parse_canary``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kulta.model.rollout import CanaryStrategy, PodMetadata, RouteKind, Step, StepKind, TrafficRouting
from kulta.spec.common import check_dns_label, unsupported
from kulta.spec.fields import (
    INT32_MAX,
    INT32_WHY,
    MISSING,
    Issues,
    Shape,
    child,
    index,
    read_bool,
    read_int,
    read_list,
    read_str,
    read_string_map,
    show,
)
from kulta.spec.rollout_analysis_refs import parse_background_analysis
from kulta.spec.rollout_steps import parse_step
from kulta.spec.rollout_traffic import parse_traffic_routing

__all__ = ["parse_canary", "parse_pod_metadata"]

#: ASCII digits (``\d`` also takes other scripts' digits), at most 10 of them; used with ``fullmatch``.
_PERCENT = re.compile(r"([0-9]{1,10})%")

_CANARY = Shape(
    (
        "canaryService",
        "stableService",
        "maxSurge",
        "maxUnavailable",
        "dynamicStableScale",
        "scaleDownDelaySeconds",
        "abortScaleDownDelaySeconds",
        "canaryMetadata",
        "stableMetadata",
        "analysis",
        "steps",
        "trafficRouting",
    ),
    {
        "antiAffinity": unsupported("antiAffinity", "set pod anti-affinity in spec.template instead"),
        "pingPong": unsupported("pingPong", "use canaryService and stableService"),
        "minPodsPerReplicaSet": unsupported("minPodsPerReplicaSet"),
        "scaleDownDelayRevisionLimit": unsupported("scaleDownDelayRevisionLimit"),
        "replicaProgressThreshold": unsupported("replicaProgressThreshold"),
    },
)
_POD_METADATA = Shape(("labels", "annotations"))


def parse_pod_metadata(issues: Issues, value: Any, path: str) -> PodMetadata:
    """``canaryMetadata`` / ``stableMetadata``: labels and annotations added to that revision's pods."""
    data = _POD_METADATA.read(issues, value, path)
    if data is None:
        return PodMetadata()
    return PodMetadata(
        labels=read_string_map(issues, data.get("labels", MISSING), child(path, "labels")),
        annotations=read_string_map(issues, data.get("annotations", MISSING), child(path, "annotations")),
    )


def _parse_int_or_percent(issues: Issues, value: Any, path: str, *, max_percent: int | None) -> int | str | None:
    if value is MISSING:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            issues.add(path, f'{value} is negative; use a count like 1 or a percentage like "25%"')
            return None
        if value > INT32_MAX:
            # Argo's IntOrString holds an int32
            issues.add(path, f"{value} is above {INT32_MAX}: {INT32_WHY}")
            return None
        return value
    if isinstance(value, str):
        found = _PERCENT.fullmatch(value)
        if found:
            limit = INT32_MAX if max_percent is None else max_percent
            if int(found.group(1)) > limit:
                issues.add(path, f"{show(value)} is above {limit}%")
                return None
            return value
    issues.add(path, f'{show(value)} must be a count like 1 or a percentage like "25%"')
    return None


def _int_or_percent_is_zero(value: int | str) -> bool:
    return value in {0, "0%"}


def _check_services(issues: Issues, canary: Mapping[str, Any], path: str) -> tuple[str | None, str | None]:
    names: list[str | None] = []
    for key in ("canaryService", "stableService"):
        name = read_str(issues, canary.get(key, MISSING), child(path, key))
        if name is not None and not check_dns_label(issues, name, child(path, key)):
            name = None
        names.append(name)
    canary_service, stable_service = names
    if canary_service is not None and canary_service == stable_service:
        issues.add(
            child(path, "stableService"),
            f'"{stable_service}" is also the canaryService; two different Services are required',
        )
    return canary_service, stable_service


def parse_canary(issues: Issues, value: Any, path: str) -> CanaryStrategy | None:
    """``spec.strategy.canary`` with its steps, trafficRouting and background analysis."""
    before = len(issues)
    data = _CANARY.read(issues, value, path)
    if data is None:
        return None
    canary_service, stable_service = _check_services(issues, data, path)
    max_surge = _parse_int_or_percent(issues, data.get("maxSurge", MISSING), child(path, "maxSurge"), max_percent=None)
    max_unavailable = _parse_int_or_percent(
        issues, data.get("maxUnavailable", MISSING), child(path, "maxUnavailable"), max_percent=100
    )
    surge_value: int | str = "25%" if max_surge is None else max_surge
    unavailable_value: int | str = "25%" if max_unavailable is None else max_unavailable
    if _int_or_percent_is_zero(surge_value) and _int_or_percent_is_zero(unavailable_value):
        issues.add(
            child(path, "maxSurge"),
            "maxSurge and maxUnavailable are both 0, so no pod could ever be replaced; set one of them above 0",
        )
    dynamic = read_bool(issues, data.get("dynamicStableScale", MISSING), child(path, "dynamicStableScale"))
    scale_down = read_int(
        issues,
        data.get("scaleDownDelaySeconds", MISSING),
        child(path, "scaleDownDelaySeconds"),
        minimum=0,
    )
    abort_scale_down = read_int(
        issues,
        data.get("abortScaleDownDelaySeconds", MISSING),
        child(path, "abortScaleDownDelaySeconds"),
        minimum=0,
    )
    canary_metadata = parse_pod_metadata(issues, data.get("canaryMetadata", MISSING), child(path, "canaryMetadata"))
    stable_metadata = parse_pod_metadata(issues, data.get("stableMetadata", MISSING), child(path, "stableMetadata"))
    routing = None
    if "trafficRouting" in data:
        routing = parse_traffic_routing(issues, data["trafficRouting"], child(path, "trafficRouting"))
    has_routing = "trafficRouting" in data
    steps: list[Step] = []
    items = read_list(issues, data.get("steps", MISSING), child(path, "steps"))
    for position, item in enumerate(items or ()):
        step = parse_step(issues, item, index(child(path, "steps"), position), position)
        if step is not None:
            steps.append(step)
    background = None
    if "analysis" in data:
        background = parse_background_analysis(issues, data["analysis"], child(path, "analysis"))
        step_count = len(items or ())
        if background is not None and background.starting_step and background.starting_step >= step_count:
            where = child(child(path, "analysis"), "startingStep")
            if step_count:
                issues.add(where, f"{background.starting_step} is outside 0..{step_count - 1} (the step indexes)")
            else:
                issues.add(where, f"{background.starting_step} names a step, but there are no steps: use 0")
    # Rules that tie fields together (Argo's, except where noted in docs/spec.md).
    if has_routing:
        for key, name in (("canaryService", canary_service), ("stableService", stable_service)):
            if name is None and data.get(key) is None:
                issues.add(child(path, key), "is required with trafficRouting: name the Service the HTTPRoute sends to")
        if dynamic and "scaleDownDelaySeconds" in data:
            issues.add(
                child(path, "dynamicStableScale"),
                "cannot be combined with scaleDownDelaySeconds (the stable is already scaled down as "
                "traffic leaves it): remove one of them",
            )
    else:
        if dynamic:
            issues.add(child(path, "dynamicStableScale"), "needs trafficRouting: add trafficRouting or remove it")
        if "scaleDownDelaySeconds" in data:
            # Argo's ValidateRolloutStrategyCanary refuses it (InvalidCanaryScaleDownDelay).
            issues.add(child(path, "scaleDownDelaySeconds"), "needs trafficRouting: add trafficRouting or remove it")
        if "abortScaleDownDelaySeconds" in data:
            # Argo ignores it without trafficRouting (GetAbortScaleDownDelaySecondsOrDefault): refused by name here.
            issues.add(
                child(path, "abortScaleDownDelaySeconds"),
                "needs trafficRouting (without it an aborted canary is scaled down at once, as in Argo, which "
                "ignores this field): add trafficRouting or remove it",
            )
    _check_step_routing(issues, canary=data, items=items or [], path=path, has_routing=has_routing, routing=routing)
    if len(issues) != before:
        return None
    return CanaryStrategy(
        canary_service=canary_service,
        stable_service=stable_service,
        max_surge=surge_value,
        max_unavailable=unavailable_value,
        dynamic_stable_scale=bool(dynamic),
        scale_down_delay_seconds=scale_down,
        abort_scale_down_delay_seconds=abort_scale_down,
        canary_metadata=canary_metadata,
        stable_metadata=stable_metadata,
        analysis=background,
        steps=tuple(steps),
        traffic_routing=routing,
    )


_HEADER_STEP = StepKind.SET_HEADER_ROUTE.value
_MIRROR_STEP = StepKind.SET_MIRROR_ROUTE.value


def _check_step_routing(
    issues: Issues,
    *,
    canary: Mapping[str, Any],
    items: list[Any],
    path: str,
    has_routing: bool,
    routing: TrafficRouting | None,
) -> None:
    """setCanaryScale, setHeaderRoute and setMirrorRoute only make sense with traffic routing.

    A header route and a mirror route are both KULTA rules named ``kulta-<name>``,
    so one name may not serve both kinds.
    """
    route_steps: list[tuple[str, str, Any]] = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        where = index(child(path, "steps"), position)
        if "setCanaryScale" in item and not has_routing:
            issues.add(
                child(where, "setCanaryScale"),
                "needs trafficRouting: without it the canary's share of pods is its traffic share "
                "(Argo ignores this step silently): add trafficRouting or remove the step",
            )
        for key in (_HEADER_STEP, _MIRROR_STEP):
            if key in item:
                route_steps.append((key, child(where, key), item[key]))
    if not route_steps:
        return
    if not has_routing:
        for _, where, _ in route_steps:
            issues.add(where, "needs trafficRouting with managedRoutes: add them or remove the step")
        return
    routing_path = child(path, "trafficRouting")
    raw_routing = canary.get("trafficRouting")
    kinds = sorted({key for key, _, _ in route_steps})
    if isinstance(raw_routing, Mapping) and "managedRoutes" not in raw_routing:
        issues.add(
            child(routing_path, "managedRoutes"),
            f"is required by {' and '.join(kinds)} steps: list each managed route as {{name: ROUTE}}",
        )
        return
    if routing is None:
        return
    if _HEADER_STEP in kinds and not any(route.use_header_routes for _, route in routing.routes):
        issues.add(
            routing_path,
            "setHeaderRoute steps need a route with useHeaderRoutes: true (or the single httpRoute / grpcRoute form)",
        )
    if _MIRROR_STEP in kinds and not any(
        kind is RouteKind.HTTP and route.use_header_routes for kind, route in routing.routes
    ):
        issues.add(
            routing_path,
            "setMirrorRoute steps need an HTTPRoute with useHeaderRoutes: true (or the single httpRoute form); "
            "KULTA mirrors on HTTPRoutes only",
        )
    names_by_kind: dict[str, set[str]] = {_HEADER_STEP: set(), _MIRROR_STEP: set()}
    for key, where, raw in route_steps:
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if not isinstance(name, str) or not name:
            continue
        other = _MIRROR_STEP if key == _HEADER_STEP else _HEADER_STEP
        if name in names_by_kind[other]:
            issues.add(
                child(where, "name"),
                f'"{name}" already names a {other} route; both would be the rule kulta-{name}: use another name',
            )
        names_by_kind[key].add(name)
        if name not in routing.managed_routes:
            issues.add(
                child(where, "name"),
                f'"{name}" is not listed in {routing_path}.managedRoutes: add {{name: {name}}} there',
            )
