"""``spec.strategy.canary.trafficRouting``: the Gateway API plugin and ``managedRoutes``.

KULTA routes traffic with Gateway API HTTPRoutes and GRPCRoutes, configured as
Argo's ``plugins.argoproj-labs/gatewayAPI`` (or KULTA's short form ``gatewayAPI``);
TCPRoutes, TLSRoutes, every other router of Argo (istio, nginx, alb, ...) and every
other plugin are refused by name. As the plugin's ``insertGatewayAPIRouteLists``
does, the single forms ``httpRoute`` / ``grpcRoute`` mean one route with
``useHeaderRoutes: true``, and ``isConfigHasRoutes`` requires at least one route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kulta.model.rollout import GRPCRouteRef, HTTPRouteRef, TrafficRouting
from kulta.spec.common import check_dns_label, check_dns_subdomain, unsupported
from kulta.spec.fields import (
    MISSING,
    Issues,
    Shape,
    check_keys,
    child,
    index,
    read_bool,
    read_list,
    read_mapping,
    read_str,
)

__all__ = ["GATEWAY_API_PLUGIN", "GATEWAY_API_SHORT", "parse_traffic_routing"]

#: the key of the Argo Gateway API traffic router plugin under ``trafficRouting.plugins``.
GATEWAY_API_PLUGIN = "argoproj-labs/gatewayAPI"
#: KULTA's short form of the same configuration.
GATEWAY_API_SHORT = "gatewayAPI"

_NOT_SUPPORTED_ROUTERS = ("istio", "nginx", "alb", "smi", "ambassador", "appMesh", "traefik", "apisix")
_GATEWAY_ONLY = (
    "KULTA routes traffic with Gateway API HTTPRoutes and GRPCRoutes only: use plugins.argoproj-labs/gatewayAPI"
)
_HTTP_SINGLE, _HTTP_LIST = "httpRoute", "httpRoutes"
_GRPC_SINGLE, _GRPC_LIST = "grpcRoute", "grpcRoutes"

_TRAFFIC_ROUTING = Shape(
    ("plugins", GATEWAY_API_SHORT, "managedRoutes"),
    {
        **{key: unsupported(f"trafficRouting.{key}", _GATEWAY_ONLY) for key in _NOT_SUPPORTED_ROUTERS},
        "maxTrafficWeight": unsupported("maxTrafficWeight", "weights are always percentages (0..100)"),
    },
)
_GATEWAY = Shape(
    (_HTTP_SINGLE, _HTTP_LIST, _GRPC_SINGLE, _GRPC_LIST, "namespace"),
    {
        **{
            key: unsupported(key, "KULTA weights HTTPRoutes and GRPCRoutes only: use httpRoute(s) or grpcRoute(s)")
            for key in ("tcpRoute", "tcpRoutes", "tlsRoute", "tlsRoutes")
        },
        **{
            key: unsupported(key, "name the routes with httpRoute(s) or grpcRoute(s)")
            for key in ("httpRouteSelector", "grpcRouteSelector", "tcpRouteSelector", "tlsRouteSelector")
        },
        **{
            key: unsupported(key)
            for key in ("configMap", "inProgressLabelKey", "inProgressLabelValue", "disableInProgressLabel")
        },
    },
)
_ROUTE_ENTRY = Shape(("name", "useHeaderRoutes"))
_MANAGED_ROUTE = Shape(("name",))


def _parse_routes(
    issues: Issues, data: Mapping[str, Any], path: str, single: str, many: str, kind: str
) -> list[tuple[str, bool]]:
    """(name, useHeaderRoutes) of one route kind's ``single`` or ``many`` form (both: an issue)."""
    if single in data and many in data:
        issues.add(path, f"set either {single} or {many}, not both")
        return []
    if single in data:
        name = read_str(issues, data[single], child(path, single), required=True)
        if name is not None and check_dns_subdomain(issues, name, child(path, single)):
            return [(name, True)]
        return []
    if many not in data:
        return []
    routes: list[tuple[str, bool]] = []
    items = read_list(issues, data[many], child(path, many))
    if items is not None and not items:
        issues.add(child(path, many), "is empty: list at least one {name: ROUTE}")
    for position, item in enumerate(items or ()):
        where = index(child(path, many), position)
        entry = _ROUTE_ENTRY.read(issues, item, where)
        if entry is None:
            continue
        name = read_str(issues, entry.get("name", MISSING), child(where, "name"), required=True)
        use_headers = read_bool(issues, entry.get("useHeaderRoutes", MISSING), child(where, "useHeaderRoutes"))
        if name is None or not check_dns_subdomain(issues, name, child(where, "name")):
            continue
        if any(known == name for known, _ in routes):
            issues.add(child(where, "name"), f'{kind} "{name}" is listed twice; keep one')
            continue
        routes.append((name, bool(use_headers)))
    return routes


def _parse_gateway(
    issues: Issues, value: Any, path: str
) -> tuple[tuple[HTTPRouteRef, ...], tuple[GRPCRouteRef, ...], str | None] | None:
    """The plugin's configuration: the HTTPRoute(s) and GRPCRoute(s) to weight and their namespace."""
    before = len(issues)
    data = _GATEWAY.read(issues, value, path)
    if data is None:
        return None
    namespace = read_str(issues, data.get("namespace", MISSING), child(path, "namespace"))
    if namespace is not None and not check_dns_label(issues, namespace, child(path, "namespace")):
        namespace = None
    if not any(key in data for key in (_HTTP_SINGLE, _HTTP_LIST, _GRPC_SINGLE, _GRPC_LIST)):
        issues.add(
            child(path, _HTTP_SINGLE),
            "is required: name the HTTPRoute (or grpcRoute: the GRPCRoute) whose weights KULTA sets",
        )
        return None
    http = _parse_routes(issues, data, path, _HTTP_SINGLE, _HTTP_LIST, "HTTPRoute")
    grpc = _parse_routes(issues, data, path, _GRPC_SINGLE, _GRPC_LIST, "GRPCRoute")
    if len(issues) != before:
        return None
    return (
        tuple(HTTPRouteRef(name=n, namespace=namespace, use_header_routes=h) for n, h in http),
        tuple(GRPCRouteRef(name=n, namespace=namespace, use_header_routes=h) for n, h in grpc),
        namespace,
    )


def _parse_plugins(issues: Issues, data: Any, path: str) -> tuple[Any, str]:
    """The Gateway API plugin's value and path under ``plugins`` (MISSING when absent)."""
    plugins = read_mapping(issues, data, path)
    if plugins is None:
        return MISSING, ""
    plugin_refused = {
        key: unsupported(f"the traffic router plugin {key}", _GATEWAY_ONLY)
        for key in plugins
        if isinstance(key, str) and key != GATEWAY_API_PLUGIN
    }
    check_keys(issues, plugins, path, (GATEWAY_API_PLUGIN,), plugin_refused)
    if GATEWAY_API_PLUGIN in plugins:
        return plugins[GATEWAY_API_PLUGIN], child(path, GATEWAY_API_PLUGIN)
    if not plugins:
        issues.add(path, f"is empty: configure {GATEWAY_API_PLUGIN}")
    return MISSING, ""


def _parse_managed_routes(issues: Issues, value: Any, path: str) -> tuple[str, ...]:
    managed: list[str] = []
    for position, item in enumerate(read_list(issues, value, path) or ()):
        where = index(path, position)
        entry = _MANAGED_ROUTE.read(issues, item, where)
        if entry is None:
            continue
        name = read_str(issues, entry.get("name", MISSING), child(where, "name"), required=True)
        if name is None:
            continue
        if name in managed:
            issues.add(child(where, "name"), f'route "{name}" is listed twice; keep one')
            continue
        managed.append(name)
    return tuple(managed)


def parse_traffic_routing(issues: Issues, value: Any, path: str) -> TrafficRouting | None:
    """``trafficRouting``: exactly one Gateway API configuration, plus ``managedRoutes``."""
    before = len(issues)
    data = _TRAFFIC_ROUTING.read(issues, value, path)
    if data is None:
        return None
    gateway_value, gateway_path = _parse_plugins(issues, data.get("plugins", MISSING), child(path, "plugins"))
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
            issues.add(
                path,
                f"needs plugins.{GATEWAY_API_PLUGIN} (or the short form gatewayAPI) with an httpRoute or grpcRoute",
            )
        return None
    gateway = _parse_gateway(issues, gateway_value, gateway_path)
    managed = _parse_managed_routes(issues, data.get("managedRoutes", MISSING), child(path, "managedRoutes"))
    if gateway is None or len(issues) != before:
        return None
    http_routes, grpc_routes, namespace = gateway
    return TrafficRouting(http_routes=http_routes, namespace=namespace, managed_routes=managed, grpc_routes=grpc_routes)
