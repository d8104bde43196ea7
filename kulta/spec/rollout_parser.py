"""Turn one ``Rollout`` document into a ``kulta.model.rollout.Rollout``, or into errors.

The accepted schema is Argo Rollouts' canary strategy with the Gateway API traffic
router (docs/spec.md). Every field is checked and every problem recorded, so a user
fixes a file in one pass. Argo's quirks are kept (integer pause durations, the old
``analysis.templateName``), Argo's silent ignores are not (unknown ``trafficRouting``
keys, ``setCanaryScale`` without traffic routing are errors here).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from kulta.model.rollout import (
    PRIMARY_STEP_KINDS,
    AnalysisArg,
    AnalysisRef,
    AnalysisTemplateRef,
    BackgroundAnalysis,
    CanaryStrategy,
    HeaderMatch,
    HeaderMatchType,
    HTTPRouteRef,
    Pause,
    PodMetadata,
    Rollout,
    RolloutSpec,
    SetCanaryScale,
    SetHeaderRoute,
    SourceRef,
    Step,
    StepKind,
    TrafficRouting,
    WorkloadRef,
)
from kulta.spec.common import (
    check_dns_label,
    check_dns_subdomain,
    parse_args,
    parse_metadata,
    unsupported,
)
from kulta.spec.fields import (
    MISSING,
    Issues,
    check_keys,
    child,
    index,
    parse_duration,
    read_bool,
    read_int,
    read_list,
    read_mapping,
    read_str,
    read_string_map,
    show,
)

__all__ = ["GATEWAY_API_PLUGIN", "parse_rollout", "selector_matches"]

#: the key of the Argo Gateway API traffic router plugin under ``trafficRouting.plugins``.
GATEWAY_API_PLUGIN = "argoproj-labs/gatewayAPI"
#: KULTA's short form of the same configuration.
GATEWAY_API_SHORT = "gatewayAPI"

_PERCENT = re.compile(r"^(\d+)%$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")

_NOT_SUPPORTED_ROUTERS = ("istio", "nginx", "alb", "smi", "ambassador", "appMesh", "traefik", "apisix")
_GATEWAY_ONLY = "KULTA routes traffic with Gateway API HTTPRoutes only: use plugins.argoproj-labs/gatewayAPI"


def _template_refs(issues: Issues, data: Mapping[str, Any], path: str) -> tuple[AnalysisTemplateRef, ...]:
    refs: list[AnalysisTemplateRef] = []
    if "templateName" in data:
        name = read_str(issues, data["templateName"], child(path, "templateName"), required=True)
        if name is not None:
            refs.append(AnalysisTemplateRef(name=name, cluster_scope=False))
    items = read_list(issues, data.get("templates", MISSING), child(path, "templates"))
    for position, item in enumerate(items or ()):
        where = index(child(path, "templates"), position)
        entry = read_mapping(issues, item, where)
        if entry is None:
            continue
        check_keys(issues, entry, where, ("templateName", "clusterScope"))
        name = read_str(issues, entry.get("templateName", MISSING), child(where, "templateName"), required=True)
        scope = read_bool(issues, entry.get("clusterScope", MISSING), child(where, "clusterScope"))
        if name is None:
            continue
        ref = AnalysisTemplateRef(name=name, cluster_scope=bool(scope))
        if ref in refs:
            issues.add(child(where, "templateName"), f'template "{name}" is listed twice; keep one')
            continue
        refs.append(ref)
    if not refs and "templates" not in data and "templateName" not in data:
        issues.add(child(path, "templates"), "is required: list at least one {templateName: NAME}")
    elif not refs and items is not None and not items:
        issues.add(child(path, "templates"), "is empty: list at least one {templateName: NAME}")
    return tuple(refs)


_ANALYSIS_REFUSED = {
    "dryRun": unsupported("dryRun on a Rollout's analysis", "set dryRun in the AnalysisTemplate instead"),
    "measurementRetention": unsupported("measurementRetention"),
    "analysisRunMetadata": unsupported("analysisRunMetadata"),
}


def _analysis_args(issues: Issues, data: Mapping[str, Any], path: str) -> tuple[AnalysisArg, ...]:
    specs = parse_args(issues, data.get("args", MISSING), child(path, "args"), value_required=True)
    return tuple(AnalysisArg(name=s.name, value=s.value, value_from=s.value_from) for s in specs)


def _parse_step_analysis(issues: Issues, value: Any, path: str) -> AnalysisRef | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    check_keys(issues, data, path, ("templates", "templateName", "args"), _ANALYSIS_REFUSED)
    before = len(issues)
    refs = _template_refs(issues, data, path)
    args = _analysis_args(issues, data, path)
    return AnalysisRef(templates=refs, args=args) if len(issues) == before else None


def _parse_background(issues: Issues, value: Any, path: str) -> BackgroundAnalysis | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    check_keys(issues, data, path, ("templates", "templateName", "args", "startingStep"), _ANALYSIS_REFUSED)
    before = len(issues)
    refs = _template_refs(issues, data, path)
    args = _analysis_args(issues, data, path)
    start = read_int(issues, data.get("startingStep", MISSING), child(path, "startingStep"), minimum=0)
    if len(issues) != before:
        return None
    return BackgroundAnalysis(templates=refs, args=args, starting_step=start or 0)


def _parse_pause(issues: Issues, value: Any, path: str) -> Pause | None:
    if value is None:
        issues.add(path, "is empty; write `pause: {}` to pause until promoted or `pause: {duration: 30s}`")
        return None
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    check_keys(issues, data, path, ("duration",))
    if "duration" not in data or data["duration"] is None:
        return Pause(duration_seconds=None)
    seconds = parse_duration(issues, data["duration"], child(path, "duration"))
    return None if seconds is None else Pause(duration_seconds=seconds)


def _parse_canary_scale(issues: Issues, value: Any, path: str) -> SetCanaryScale | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    check_keys(issues, data, path, ("replicas", "weight", "matchTrafficWeight"))
    present = [key for key in ("replicas", "weight", "matchTrafficWeight") if key in data]
    if len(present) != 1:
        found = f" (found {' and '.join(present)})" if present else ""
        issues.add(path, f"needs exactly one of replicas, weight, matchTrafficWeight{found}")
        return None
    key = present[0]
    if key == "replicas":
        replicas = read_int(issues, data[key], child(path, key), minimum=0, required=True)
        return None if replicas is None else SetCanaryScale(replicas=replicas)
    if key == "weight":
        weight = read_int(issues, data[key], child(path, key), minimum=0, maximum=100, required=True)
        return None if weight is None else SetCanaryScale(weight=weight)
    match = read_bool(issues, data[key], child(path, key))
    if match is not True:
        if match is False:
            issues.add(child(path, key), "false has no effect; use matchTrafficWeight: true or set replicas/weight")
        elif data[key] is None:
            issues.add(child(path, key), "is empty; use matchTrafficWeight: true")
        return None
    return SetCanaryScale(match_traffic_weight=True)


def _parse_header_match(issues: Issues, value: Any, path: str) -> HeaderMatch | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    check_keys(issues, data, path, ("headerName", "headerValue"))
    name = read_str(issues, data.get("headerName", MISSING), child(path, "headerName"), required=True)
    if name is not None and not _HEADER_NAME.match(name):
        issues.add(child(path, "headerName"), f"{show(name)} is not a valid HTTP header name")
        name = None
    where = child(path, "headerValue")
    raw = data.get("headerValue", MISSING)
    if raw is MISSING or raw is None:
        issues.add(where, "is required: use {exact: V}, {prefix: V} or {regex: V}")
        return None
    matcher = read_mapping(issues, raw, where)
    if matcher is None:
        return None
    check_keys(issues, matcher, where, [member.value for member in HeaderMatchType])
    present = [member for member in HeaderMatchType if member.value in matcher]
    if len(present) != 1:
        found = f" (found {' and '.join(m.value for m in present)})" if present else ""
        issues.add(where, f"needs exactly one of exact, prefix, regex{found}")
        return None
    match_type = present[0]
    text = read_str(issues, matcher[match_type.value], child(where, match_type.value), required=True)
    if text is None or name is None:
        return None
    if match_type is HeaderMatchType.REGEX:
        try:
            re.compile(text)
        except re.error as exc:
            issues.add(child(where, "regex"), f"{show(text)} is not a valid regular expression: {exc}")
            return None
    return HeaderMatch(name=name, value=text, match_type=match_type)


def _parse_header_route(issues: Issues, value: Any, path: str) -> SetHeaderRoute | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    check_keys(issues, data, path, ("name", "match"))
    name = read_str(issues, data.get("name", MISSING), child(path, "name"), required=True)
    matches: list[HeaderMatch] = []
    ok = name is not None
    items = read_list(issues, data.get("match", MISSING), child(path, "match"))
    for position, item in enumerate(items or ()):
        parsed = _parse_header_match(issues, item, index(child(path, "match"), position))
        if parsed is None:
            ok = False
        else:
            matches.append(parsed)
    if "match" in data and data["match"] is not None and items is None:
        ok = False
    return SetHeaderRoute(name=name, matches=tuple(matches)) if ok and name is not None else None


_STEP_KEYS = tuple(kind.value for kind in StepKind)
_STEP_REFUSED = {
    "experiment": unsupported("the experiment step", "remove the step; use an analysis step to test the canary"),
    "setMirrorRoute": unsupported("the setMirrorRoute step", "remove the step"),
    "plugin": unsupported("the plugin step", "remove the step"),
}


def _parse_step(issues: Issues, value: Any, path: str, position: int) -> Step | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    if not data:
        issues.add(path, f"is empty; a step needs one of {', '.join(_STEP_KEYS)}")
        return None
    before = len(issues)
    check_keys(issues, data, path, _STEP_KEYS, _STEP_REFUSED)
    kinds = frozenset(kind for kind in StepKind if kind.value in data)
    primary = [kind.value for kind in PRIMARY_STEP_KINDS if kind in kinds]
    if len(primary) > 1:
        issues.add(
            path,
            f"has {' and '.join(primary)}; a step may have only one of setWeight, pause, analysis: "
            "split it into one step each",
        )
    set_weight = None
    if StepKind.SET_WEIGHT in kinds:
        set_weight = read_int(
            issues, data["setWeight"], child(path, "setWeight"), minimum=0, maximum=100, required=True
        )
    pause = _parse_pause(issues, data["pause"], child(path, "pause")) if StepKind.PAUSE in kinds else None
    analysis = (
        _parse_step_analysis(issues, data["analysis"], child(path, "analysis")) if StepKind.ANALYSIS in kinds else None
    )
    scale = (
        _parse_canary_scale(issues, data["setCanaryScale"], child(path, "setCanaryScale"))
        if StepKind.SET_CANARY_SCALE in kinds
        else None
    )
    header = (
        _parse_header_route(issues, data["setHeaderRoute"], child(path, "setHeaderRoute"))
        if StepKind.SET_HEADER_ROUTE in kinds
        else None
    )
    if len(issues) != before or not kinds:
        return None
    return Step(
        index=position,
        kinds=kinds,
        set_weight=set_weight,
        pause=pause,
        analysis=analysis,
        set_canary_scale=scale,
        set_header_route=header,
    )


def _parse_gateway(issues: Issues, value: Any, path: str) -> tuple[tuple[HTTPRouteRef, ...], str | None] | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    refused = {
        key: unsupported(key, "KULTA weights HTTPRoutes only: use httpRoute or httpRoutes")
        for key in ("grpcRoute", "grpcRoutes", "tcpRoute", "tcpRoutes", "tlsRoute", "tlsRoutes")
    }
    for key in ("configMap", "inProgressLabelKey", "inProgressLabelValue", "disableInProgressLabel"):
        refused[key] = unsupported(key)
    before = len(issues)
    check_keys(issues, data, path, ("httpRoute", "httpRoutes", "namespace"), refused)
    namespace = read_str(issues, data.get("namespace", MISSING), child(path, "namespace"))
    if namespace is not None and not check_dns_label(issues, namespace, child(path, "namespace")):
        namespace = None
    routes: list[HTTPRouteRef] = []
    if ("httpRoute" in data) == ("httpRoutes" in data):
        if "httpRoute" in data:
            issues.add(path, "set either httpRoute or httpRoutes, not both")
        else:
            issues.add(child(path, "httpRoute"), "is required: name the HTTPRoute whose weights KULTA sets")
        return None
    if "httpRoute" in data:
        name = read_str(issues, data["httpRoute"], child(path, "httpRoute"), required=True)
        if name is not None and check_dns_subdomain(issues, name, child(path, "httpRoute")):
            routes.append(HTTPRouteRef(name=name, namespace=namespace, use_header_routes=True))
    else:
        items = read_list(issues, data["httpRoutes"], child(path, "httpRoutes"))
        if items is not None and not items:
            issues.add(child(path, "httpRoutes"), "is empty: list at least one {name: ROUTE}")
        for position, item in enumerate(items or ()):
            where = index(child(path, "httpRoutes"), position)
            entry = read_mapping(issues, item, where)
            if entry is None:
                continue
            check_keys(issues, entry, where, ("name", "useHeaderRoutes"))
            name = read_str(issues, entry.get("name", MISSING), child(where, "name"), required=True)
            use_headers = read_bool(issues, entry.get("useHeaderRoutes", MISSING), child(where, "useHeaderRoutes"))
            if name is None or not check_dns_subdomain(issues, name, child(where, "name")):
                continue
            if any(route.name == name for route in routes):
                issues.add(child(where, "name"), f'HTTPRoute "{name}" is listed twice; keep one')
                continue
            routes.append(HTTPRouteRef(name=name, namespace=namespace, use_header_routes=bool(use_headers)))
    if len(issues) != before:
        return None
    return tuple(routes), namespace


def _parse_traffic_routing(issues: Issues, value: Any, path: str) -> TrafficRouting | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    refused = {key: unsupported(f"trafficRouting.{key}", _GATEWAY_ONLY) for key in _NOT_SUPPORTED_ROUTERS}
    refused["maxTrafficWeight"] = unsupported("maxTrafficWeight", "weights are always percentages (0..100)")
    check_keys(issues, data, path, ("plugins", GATEWAY_API_SHORT, "managedRoutes"), refused)
    gateway_value: Any = MISSING
    gateway_path = ""
    plugins = read_mapping(issues, data.get("plugins", MISSING), child(path, "plugins"))
    if plugins is not None:
        plugin_refused = {
            key: unsupported(f"the traffic router plugin {key}", _GATEWAY_ONLY)
            for key in plugins
            if isinstance(key, str) and key != GATEWAY_API_PLUGIN
        }
        check_keys(issues, plugins, child(path, "plugins"), (GATEWAY_API_PLUGIN,), plugin_refused)
        if GATEWAY_API_PLUGIN in plugins:
            gateway_value = plugins[GATEWAY_API_PLUGIN]
            gateway_path = child(child(path, "plugins"), GATEWAY_API_PLUGIN)
        elif not plugins:
            issues.add(child(path, "plugins"), f"is empty: configure {GATEWAY_API_PLUGIN}")
    if GATEWAY_API_SHORT in data:
        if gateway_value is not MISSING:
            issues.add(
                child(path, GATEWAY_API_SHORT),
                f"configure Gateway API once: either gatewayAPI or plugins.{GATEWAY_API_PLUGIN}, not both",
            )
        else:
            gateway_value = data[GATEWAY_API_SHORT]
            gateway_path = child(path, GATEWAY_API_SHORT)
    if gateway_value is MISSING:
        if len(issues) == before:
            issues.add(path, f"needs plugins.{GATEWAY_API_PLUGIN} (or the short form gatewayAPI) with an httpRoute")
        return None
    gateway = _parse_gateway(issues, gateway_value, gateway_path)
    managed: list[str] = []
    items = read_list(issues, data.get("managedRoutes", MISSING), child(path, "managedRoutes"))
    for position, item in enumerate(items or ()):
        where = index(child(path, "managedRoutes"), position)
        entry = read_mapping(issues, item, where)
        if entry is None:
            continue
        check_keys(issues, entry, where, ("name",))
        name = read_str(issues, entry.get("name", MISSING), child(where, "name"), required=True)
        if name is None:
            continue
        if name in managed:
            issues.add(child(where, "name"), f'route "{name}" is listed twice; keep one')
            continue
        managed.append(name)
    if gateway is None or len(issues) != before:
        return None
    routes, namespace = gateway
    return TrafficRouting(http_routes=routes, namespace=namespace, managed_routes=tuple(managed))


def _parse_pod_metadata(issues: Issues, value: Any, path: str) -> PodMetadata:
    data = read_mapping(issues, value, path)
    if data is None:
        return PodMetadata()
    check_keys(issues, data, path, ("labels", "annotations"))
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
        return value
    if isinstance(value, str):
        found = _PERCENT.match(value)
        if found:
            if max_percent is not None and int(found.group(1)) > max_percent:
                issues.add(path, f"{show(value)} is above {max_percent}%")
                return None
            return value
    issues.add(path, f'{show(value)} must be a count like 1 or a percentage like "25%"')
    return None


def _int_or_percent_is_zero(value: int | str) -> bool:
    return value in {0, "0%"}


_CANARY_KEYS = (
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
)
_CANARY_REFUSED = {
    "antiAffinity": unsupported("antiAffinity", "set pod anti-affinity in spec.template instead"),
    "pingPong": unsupported("pingPong", "use canaryService and stableService"),
    "minPodsPerReplicaSet": unsupported("minPodsPerReplicaSet"),
    "scaleDownDelayRevisionLimit": unsupported("scaleDownDelayRevisionLimit"),
    "replicaProgressThreshold": unsupported("replicaProgressThreshold"),
}


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


def _parse_canary(issues: Issues, value: Any, path: str, replicas: int) -> CanaryStrategy | None:
    del replicas  # the plan resolves percentages; kept for symmetry with Argo's validation order
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    check_keys(issues, data, path, _CANARY_KEYS, _CANARY_REFUSED)
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
        issues, data.get("scaleDownDelaySeconds", MISSING), child(path, "scaleDownDelaySeconds"), minimum=0
    )
    abort_scale_down = read_int(
        issues, data.get("abortScaleDownDelaySeconds", MISSING), child(path, "abortScaleDownDelaySeconds"), minimum=0
    )
    canary_metadata = _parse_pod_metadata(issues, data.get("canaryMetadata", MISSING), child(path, "canaryMetadata"))
    stable_metadata = _parse_pod_metadata(issues, data.get("stableMetadata", MISSING), child(path, "stableMetadata"))
    routing = None
    if "trafficRouting" in data:
        routing = _parse_traffic_routing(issues, data["trafficRouting"], child(path, "trafficRouting"))
    has_routing = "trafficRouting" in data
    steps: list[Step] = []
    items = read_list(issues, data.get("steps", MISSING), child(path, "steps"))
    for position, item in enumerate(items or ()):
        step = _parse_step(issues, item, index(child(path, "steps"), position), position)
        if step is not None:
            steps.append(step)
    background = None
    if "analysis" in data:
        background = _parse_background(issues, data["analysis"], child(path, "analysis"))
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
            issues.add(child(path, "scaleDownDelaySeconds"), "needs trafficRouting: add trafficRouting or remove it")
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


def _check_step_routing(
    issues: Issues,
    *,
    canary: Mapping[str, Any],
    items: list[Any],
    path: str,
    has_routing: bool,
    routing: TrafficRouting | None,
) -> None:
    """setCanaryScale and setHeaderRoute only make sense with traffic routing."""
    header_steps: list[tuple[str, Any]] = []
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
        if "setHeaderRoute" in item:
            header_steps.append((child(where, "setHeaderRoute"), item["setHeaderRoute"]))
    if not header_steps:
        return
    if not has_routing:
        for where, _ in header_steps:
            issues.add(where, "needs trafficRouting with managedRoutes: add them or remove the step")
        return
    routing_path = child(path, "trafficRouting")
    raw_routing = canary.get("trafficRouting")
    if isinstance(raw_routing, Mapping) and "managedRoutes" not in raw_routing:
        issues.add(
            child(routing_path, "managedRoutes"),
            "is required by setHeaderRoute steps: list each header route as {name: ROUTE}",
        )
        return
    if routing is None:
        return
    if not any(route.use_header_routes for route in routing.http_routes):
        issues.add(
            routing_path,
            "setHeaderRoute steps need an HTTPRoute with useHeaderRoutes: true (or the single httpRoute form)",
        )
    for where, raw in header_steps:
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if isinstance(name, str) and name and name not in routing.managed_routes:
            issues.add(
                child(where, "name"),
                f'"{name}" is not listed in {routing_path}.managedRoutes: add {{name: {name}}} there',
            )


def _parse_selector(issues: Issues, value: Any, path: str) -> dict[str, Any] | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    check_keys(issues, data, path, ("matchLabels", "matchExpressions"))
    labels = read_string_map(issues, data.get("matchLabels", MISSING), child(path, "matchLabels"))
    expressions: list[dict[str, Any]] = []
    items = read_list(issues, data.get("matchExpressions", MISSING), child(path, "matchExpressions"))
    for position, item in enumerate(items or ()):
        where = index(child(path, "matchExpressions"), position)
        entry = read_mapping(issues, item, where)
        if entry is None:
            continue
        check_keys(issues, entry, where, ("key", "operator", "values"))
        key = read_str(issues, entry.get("key", MISSING), child(where, "key"), required=True)
        operator = read_str(issues, entry.get("operator", MISSING), child(where, "operator"), required=True)
        values = read_list(issues, entry.get("values", MISSING), child(where, "values")) or []
        if operator is not None and operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            issues.add(child(where, "operator"), f"{show(operator)} is not one of In, NotIn, Exists, DoesNotExist")
        elif operator in ("In", "NotIn") and not values:
            issues.add(child(where, "values"), f"must list at least one value for {operator}")
        elif operator in ("Exists", "DoesNotExist") and values:
            issues.add(child(where, "values"), f"must be empty for {operator}")
        if not all(isinstance(v, str) for v in values):
            issues.add(child(where, "values"), "must be strings: quote them")
        if key is not None and operator is not None:
            expressions.append({"key": key, "operator": operator, "values": list(values)})
    if not labels and not expressions and len(issues) == before:
        issues.add(path, "is empty; an empty selector would match every pod: add matchLabels")
    if len(issues) != before:
        return None
    selector: dict[str, Any] = {}
    if labels:
        selector["matchLabels"] = labels
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """True when ``labels`` satisfy a Kubernetes label selector."""
    for key, value in dict(selector.get("matchLabels", {})).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def check_pod_template(issues: Issues, value: Any, path: str) -> dict[str, Any] | None:
    """Light checks of a PodTemplateSpec (Kubernetes validates the rest on apply)."""
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    metadata = read_mapping(issues, data.get("metadata", MISSING), child(path, "metadata"))
    if metadata is not None:
        read_string_map(issues, metadata.get("labels", MISSING), child(child(path, "metadata"), "labels"))
        read_string_map(issues, metadata.get("annotations", MISSING), child(child(path, "metadata"), "annotations"))
    spec = read_mapping(issues, data.get("spec", MISSING), child(path, "spec"))
    if spec is None:
        if "spec" not in data:
            issues.add(child(path, "spec"), "is required: a pod template needs spec.containers")
    else:
        containers_path = child(child(path, "spec"), "containers")
        containers = read_list(issues, spec.get("containers", MISSING), containers_path)
        if not containers and len(issues) == before:
            issues.add(containers_path, "must list at least one container")
        names: set[str] = set()
        for position, item in enumerate(containers or ()):
            where = index(containers_path, position)
            container = read_mapping(issues, item, where)
            if container is None:
                continue
            name = read_str(issues, container.get("name", MISSING), child(where, "name"), required=True)
            read_str(issues, container.get("image", MISSING), child(where, "image"), required=True)
            if name is not None:
                if name in names:
                    issues.add(child(where, "name"), f'container "{name}" appears twice; names must be unique')
                names.add(name)
    if len(issues) != before:
        return None
    return copy.deepcopy(dict(data))


def _template_labels(template: Mapping[str, Any]) -> dict[str, str]:
    metadata = template.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return dict(labels) if isinstance(labels, Mapping) else {}


def _parse_workload_ref(issues: Issues, value: Any, path: str) -> WorkloadRef | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    check_keys(
        issues,
        data,
        path,
        ("apiVersion", "kind", "name"),
        {"scaleDown": unsupported("workloadRef.scaleDown", "KULTA never scales the referenced Deployment")},
    )
    api_version = read_str(issues, data.get("apiVersion", MISSING), child(path, "apiVersion"), required=True)
    kind = read_str(issues, data.get("kind", MISSING), child(path, "kind"), required=True)
    name = read_str(issues, data.get("name", MISSING), child(path, "name"), required=True)
    if kind is not None and kind != "Deployment":
        issues.add(child(path, "kind"), f"{show(kind)} is not supported; KULTA takes templates from a Deployment")
    if api_version is not None and api_version != "apps/v1":
        issues.add(child(path, "apiVersion"), f"{show(api_version)} is not supported; use apps/v1")
    if len(issues) != before or api_version is None or kind is None or name is None:
        return None
    return WorkloadRef(api_version=api_version, kind=kind, name=name)


_SPEC_KEYS = (
    "replicas",
    "selector",
    "template",
    "workloadRef",
    "revisionHistoryLimit",
    "minReadySeconds",
    "progressDeadlineSeconds",
    "progressDeadlineAbort",
    "paused",
    "strategy",
)
_SPEC_REFUSED = {
    "analysis": unsupported("spec.analysis (AnalysisRun history limits)"),
    "restartAt": unsupported("restartAt"),
    "rollbackWindow": unsupported("rollbackWindow"),
}


def _parse_spec(issues: Issues, value: Any) -> RolloutSpec | None:
    path = "spec"
    data = read_mapping(issues, value, path)
    if data is None:
        if value is MISSING:
            issues.add(path, "is required")
        return None
    before = len(issues)
    check_keys(issues, data, path, _SPEC_KEYS, _SPEC_REFUSED)
    replicas = read_int(issues, data.get("replicas", MISSING), child(path, "replicas"), minimum=0)
    replicas = 1 if replicas is None else replicas
    history = read_int(
        issues, data.get("revisionHistoryLimit", MISSING), child(path, "revisionHistoryLimit"), minimum=0
    )
    min_ready = read_int(issues, data.get("minReadySeconds", MISSING), child(path, "minReadySeconds"), minimum=0)
    deadline = read_int(
        issues, data.get("progressDeadlineSeconds", MISSING), child(path, "progressDeadlineSeconds"), minimum=1
    )
    if deadline is not None and min_ready is not None and deadline <= min_ready:
        issues.add(
            child(path, "progressDeadlineSeconds"),
            f"{deadline} must be greater than minReadySeconds ({min_ready})",
        )
    elif "progressDeadlineSeconds" not in data and min_ready is not None and min_ready >= 600:
        issues.add(
            child(path, "minReadySeconds"),
            f"{min_ready} must be below progressDeadlineSeconds (600 by default): lower it or set "
            "progressDeadlineSeconds",
        )
    deadline_abort = read_bool(issues, data.get("progressDeadlineAbort", MISSING), child(path, "progressDeadlineAbort"))
    paused = read_bool(issues, data.get("paused", MISSING), child(path, "paused"))
    workload_ref = None
    template = None
    has_template = data.get("template") not in (None, {}) and "template" in data
    if "workloadRef" in data:
        workload_ref = _parse_workload_ref(issues, data["workloadRef"], child(path, "workloadRef"))
        if has_template:
            issues.add(
                child(path, "template"),
                "set either template or workloadRef, not both: the template comes from the referenced Deployment",
            )
    elif "template" not in data:
        issues.add(child(path, "template"), "is required (or refer to a Deployment's template with workloadRef)")
    else:
        template = check_pod_template(issues, data["template"], child(path, "template"))
    selector: dict[str, Any] | None = {}
    if "selector" in data:
        selector = _parse_selector(issues, data["selector"], child(path, "selector"))
    elif "workloadRef" not in data:
        issues.add(child(path, "selector"), "is required: add selector.matchLabels matching the template's labels")
    if template is not None and selector and not selector_matches(selector, _template_labels(template)):
        issues.add(
            child(path, "selector"),
            "does not match spec.template.metadata.labels: the ReplicaSets would not own their pods; "
            "make the template's labels satisfy the selector",
        )
    strategy_data = read_mapping(issues, data.get("strategy", MISSING), child(path, "strategy"))
    canary = None
    if strategy_data is None:
        if "strategy" not in data:
            issues.add(child(path, "strategy"), "is required: add strategy.canary with its steps")
    else:
        check_keys(
            issues,
            strategy_data,
            child(path, "strategy"),
            ("canary",),
            {"blueGreen": unsupported("the blueGreen strategy", "KULTA runs canary rollouts: use strategy.canary")},
        )
        if "canary" not in strategy_data:
            if "blueGreen" not in strategy_data:
                issues.add(child(child(path, "strategy"), "canary"), "is required")
        elif strategy_data["canary"] is None:
            canary = CanaryStrategy()
        else:
            canary = _parse_canary(issues, strategy_data["canary"], child(child(path, "strategy"), "canary"), replicas)
    if len(issues) != before or canary is None or selector is None:
        return None
    return RolloutSpec(
        replicas=replicas,
        selector=selector,
        template=template,
        workload_ref=workload_ref,
        revision_history_limit=10 if history is None else history,
        min_ready_seconds=0 if min_ready is None else min_ready,
        progress_deadline_seconds=600 if deadline is None else deadline,
        progress_deadline_abort=bool(deadline_abort),
        paused=bool(paused),
        strategy=canary,
    )


#: a ReplicaSet is named ``<rollout>-<hash>`` and the hash has up to 10 characters.
MAX_ROLLOUT_NAME = 253 - 11


def parse_rollout(issues: Issues, data: Mapping[str, Any], api_version: str, source: SourceRef) -> Rollout | None:
    """A Rollout from a document whose apiVersion and kind were already checked."""
    before = len(issues)
    check_keys(
        issues,
        data,
        "",
        ("apiVersion", "kind", "metadata", "spec"),
        {"status": "is written by the controller, not by users; remove it from the file"},
    )
    metadata = parse_metadata(issues, data.get("metadata", MISSING), max_name_length=MAX_ROLLOUT_NAME)
    spec = _parse_spec(issues, data.get("spec", MISSING))
    if len(issues) != before or spec is None or metadata.name is None:
        return None
    return Rollout(
        name=metadata.name,
        namespace=metadata.namespace,
        api_version=api_version,
        labels=metadata.labels,
        annotations=metadata.annotations,
        spec=spec,
        source=source,
    )
