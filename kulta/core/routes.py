"""Rewrite a live HTTPRoute's or GRPCRoute's rules for one rollout step, touching only weights.

In the Gateway API CRDs ``spec.rules`` is an atomic list, so a server-side apply
must send the whole list. KULTA therefore reads the live rules, changes only
(a) the ``weight`` of backendRefs that point at the rollout's stable or canary
Service, in every rule that carries both, and (b) its own header-route rules,
named ``kulta-<header route name>``; every other byte the user (or another field
manager) wrote is returned as it was. This module is pure: the caller reads the
live route and applies the result.

A mirror rule (Argo's ``setMirrorRoute``), also named ``kulta-<name>``, on
HTTPRoutes only, is the first rule carrying both Services, narrowed by the
step's matches: its backendRefs keep the step's weights, and a ``RequestMirror``
filter copies the matched requests (``percent`` of them, if given) to the
canary Service. The Gateway API plugin's rule mode (``setHTTPMirrorRouteAsRule``,
``convertRouteMatchesToHTTPRouteMatches``, ``buildMirrorFilter``) adds a managed
rule with the step's matches and a ``RequestMirror`` filter to the canary the
same way. Each step match is combined with each match of that rule, so the
mirror rule never takes a request the rule would not take: a combination whose
methods differ is dropped, and a step path must lie inside the rule's path.

GRPCRoute rules have the same ``backendRefs`` shape; only a header rule differs:
a GRPCRoute match is ``{method, headers}`` (no path), so a header rule keeps
each template match's ``method`` and matches only the step's headers, as the
Gateway API plugin's ``setGRPCHeaderRoute`` / ``getGRPCHeaderRouteRuleList`` do.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from kulta.errors import KultaError
from kulta.model.program import HeaderRule, MirrorMatchInput, MirrorRule
from kulta.model.rollout import RouteKind

__all__ = [
    "HEADER_RULE_PREFIX",
    "HeaderRule",
    "MirrorRule",
    "RouteRewriteError",
    "header_rule_name",
    "rewrite_rules",
    "route_weights",
]

HEADER_RULE_PREFIX = "kulta-"
GATEWAY_MATCH_EXACT = "Exact"
GATEWAY_MATCH_REGEX = "RegularExpression"
GATEWAY_PATH_PREFIX = "PathPrefix"
GATEWAY_FILTER_REQUEST_MIRROR = "RequestMirror"
#: Gateway API's limits on one HTTPRouteRule (its CRD's maxItems)
MAX_RULE_MATCHES = 64
MAX_MATCH_HEADERS = 16
_MATCH_EXACT = "exact"
_MATCH_PREFIX = "prefix"
_BACKEND_OBJECT_KEYS = ("group", "kind", "name", "namespace", "port")


class RouteRewriteError(KultaError):
    """The live route cannot carry this rollout's traffic split (names the route and the fix)."""


def header_rule_name(route_name: str) -> str:
    return f"{HEADER_RULE_PREFIX}{route_name}"


def _ref_name(ref: Mapping[str, Any]) -> str:
    kind = ref.get("kind", "Service")
    group = ref.get("group", "")
    if kind != "Service" or group not in ("", "core"):
        return ""
    return str(ref.get("name", ""))


def _carries_both(rule: Mapping[str, Any], stable: str, canary: str) -> bool:
    names = {_ref_name(r) for r in rule.get("backendRefs", []) or []}
    return stable in names and canary in names


def _escape(value: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in value)


def _header_match(name: str, value: str, match_type: str) -> dict[str, Any]:
    if match_type == _MATCH_EXACT:
        return {"name": name, "type": GATEWAY_MATCH_EXACT, "value": value}
    if match_type == _MATCH_PREFIX:
        return {"name": name, "type": GATEWAY_MATCH_REGEX, "value": f"^{_escape(value)}.*"}
    return {"name": name, "type": GATEWAY_MATCH_REGEX, "value": value}


def _header_rule(template_rule: Mapping[str, Any], header: HeaderRule, canary: str, kind: RouteKind) -> dict[str, Any]:
    """A rule that sends requests with the headers (on the template rule's paths or gRPC methods) to the canary."""
    canary_ref: dict[str, Any] = {}
    for ref in template_rule.get("backendRefs", []) or []:
        if _ref_name(ref) == canary:
            canary_ref = copy.deepcopy(dict(ref))
    canary_ref["weight"] = 100
    headers = [_header_match(n, v, t) for n, v, t in header.matches]
    base_matches = template_rule.get("matches") or [{}]
    matches = []
    for m in base_matches:
        if kind is RouteKind.GRPC:
            new_match = {"method": copy.deepcopy(m["method"])} if "method" in m else {}
            new_match["headers"] = headers
        else:
            new_match = copy.deepcopy(dict(m))
            new_match["headers"] = [*list(new_match.get("headers", []) or []), *headers]
        matches.append(new_match)
    return {"name": header_rule_name(header.name), "matches": matches, "backendRefs": [canary_ref]}


def _path_match(value: str, match_type: str) -> dict[str, Any]:
    """Argo's path StringMatch: exact as Exact; a string prefix and a regex as RegularExpression."""
    if match_type == _MATCH_EXACT:
        return {"type": GATEWAY_MATCH_EXACT, "value": value}
    if match_type == _MATCH_PREFIX:
        return {"type": GATEWAY_MATCH_REGEX, "value": f"^{_escape(value)}.*"}
    return {"type": GATEWAY_MATCH_REGEX, "value": value}


def _inside(rule_path: Mapping[str, Any] | None, value: str, match_type: str) -> bool:
    """Whether every path the step's path match takes is one the rule's path match takes."""
    if rule_path is None:
        return True
    kind, base = rule_path.get("type", GATEWAY_PATH_PREFIX), str(rule_path.get("value", "/"))
    if kind == GATEWAY_PATH_PREFIX:
        root = base.rstrip("/")
        if not root:
            return True
        if match_type == _MATCH_EXACT:
            return value == root or value.startswith(root + "/")
        return match_type == _MATCH_PREFIX and value.startswith(root + "/")
    return kind == GATEWAY_MATCH_EXACT and match_type == _MATCH_EXACT and value == base


def _mirror_match(base: Mapping[str, Any], step: MirrorMatchInput, where: str) -> dict[str, Any] | None:
    """``base`` (a rule's match) narrowed by the step's match; None when no request meets both."""
    out = copy.deepcopy(dict(base))
    if step.method is not None:
        if out.get("method", step.method) != step.method:
            return None
        out["method"] = step.method
    if step.path is not None:
        value, match_type = step.path
        if not _inside(base.get("path"), value, match_type):
            raise RouteRewriteError(
                f"{where}: path {match_type} {value!r} is not inside the path {dict(base.get('path') or {})} "
                "of the rule carrying the canary; give a path inside it"
            )
        out["path"] = _path_match(value, match_type)
    headers = {str(h.get("name", "")).lower(): dict(h) for h in base.get("headers", []) or []}
    merged = [copy.deepcopy(dict(h)) for h in base.get("headers", []) or []]
    for name, value, match_type in step.headers:
        header = _header_match(name, value, match_type)
        same = headers.get(name.lower())
        if same is None:
            merged.append(header)
        elif (same.get("type", GATEWAY_MATCH_EXACT), same.get("value")) != (header["type"], header["value"]):
            raise RouteRewriteError(
                f"{where}: header {name!r} is matched by the rule carrying the canary too, with another value; "
                "Gateway API takes one match per header name"
            )
    if len(merged) > MAX_MATCH_HEADERS:
        raise RouteRewriteError(f"{where}: {len(merged)} header matches; Gateway API takes at most {MAX_MATCH_HEADERS}")
    if merged:
        out["headers"] = merged
    return out


def _mirror_rule(weighted_template: Mapping[str, Any], mirror: MirrorRule, canary: str, route: str) -> dict[str, Any]:
    """The template rule (with this step's weights), narrowed to the step's matches, mirroring to the canary."""
    where = f"HTTPRoute {route}: setMirrorRoute {mirror.name}"
    target: dict[str, Any] = {}
    for ref in weighted_template.get("backendRefs", []) or []:
        if _ref_name(ref) == canary:
            target = {k: copy.deepcopy(ref[k]) for k in _BACKEND_OBJECT_KEYS if k in ref}
    request_mirror: dict[str, Any] = {"backendRef": target}
    if mirror.percentage is not None:
        request_mirror["percent"] = mirror.percentage
    matches = []
    for base in weighted_template.get("matches") or [{}]:
        for step in mirror.matches:
            narrowed = _mirror_match(base, step, where)
            if narrowed is not None:
                matches.append(narrowed)
    if not matches:
        raise RouteRewriteError(
            f"{where}: no match meets a match of the rule carrying the canary (their methods differ); "
            "match a method that rule takes"
        )
    if len(matches) > MAX_RULE_MATCHES:
        raise RouteRewriteError(
            f"{where}: {len(matches)} matches (the step's times the rule's); Gateway API takes at most "
            f"{MAX_RULE_MATCHES}"
        )
    filters = [copy.deepcopy(dict(f)) for f in weighted_template.get("filters", []) or []]
    filters.append({"type": GATEWAY_FILTER_REQUEST_MIRROR, "requestMirror": request_mirror})
    rule = {k: copy.deepcopy(v) for k, v in weighted_template.items() if k not in ("name", "matches", "filters")}
    return {**rule, "name": header_rule_name(mirror.name), "matches": matches, "filters": filters}


def rewrite_rules(
    rules: Sequence[Mapping[str, Any]],
    *,
    route: str,
    stable_service: str,
    canary_service: str,
    stable_weight: int,
    canary_weight: int,
    header_rules: Sequence[HeaderRule] = (),
    kind: RouteKind = RouteKind.HTTP,
    mirror_rules: Sequence[MirrorRule] = (),
) -> list[dict[str, Any]]:
    """Return ``rules`` with this step's weights, header rules and mirror rules, all else unchanged.

    Example: a rule with backendRefs ``[stable(weight 100), canary(weight 0)]`` and a
    step of 25% gives ``[stable(weight 75), canary(weight 25)]``; a second rule that
    only sends ``/admin`` to another Service is returned as it was.
    """
    if stable_weight + canary_weight != 100 or min(stable_weight, canary_weight) < 0:
        raise RouteRewriteError(
            f"{kind.value} {route}: weights {stable_weight}/{canary_weight} must be >= 0 and sum to 100"
        )
    out: list[dict[str, Any]] = []
    template: Mapping[str, Any] | None = None
    weighted_template: Mapping[str, Any] | None = None
    for rule in rules:
        if str(rule.get("name", "")).startswith(HEADER_RULE_PREFIX):
            continue  # KULTA's own header rules are rebuilt below
        new_rule = copy.deepcopy(dict(rule))
        if _carries_both(rule, stable_service, canary_service):
            template = template or rule
            for ref in new_rule.get("backendRefs", []):
                name = _ref_name(ref)
                if name == stable_service:
                    ref["weight"] = stable_weight
                elif name == canary_service:
                    ref["weight"] = canary_weight
            weighted_template = weighted_template or new_rule
        out.append(new_rule)
    if template is None or weighted_template is None:
        raise RouteRewriteError(
            f"{kind.value} {route}: no rule has backendRefs to both Service {stable_service!r} and "
            f"{canary_service!r}; add both to the rule that should carry the canary's traffic"
        )
    # Header rules go first so their more specific matches are listed before the
    # catch-all rule (Gateway API ranks header matches above path-only ones anyway).
    headers = [_header_rule(template, h, canary_service, kind) for h in header_rules if h.matches]
    if mirror_rules and kind is not RouteKind.HTTP:
        raise RouteRewriteError(f"{kind.value} {route}: setMirrorRoute applies to HTTPRoutes only")
    mirrors = [_mirror_rule(weighted_template, m, canary_service, route) for m in mirror_rules if m.matches]
    return headers + mirrors + out


def route_weights(
    rules: Sequence[Mapping[str, Any]], stable_service: str, canary_service: str
) -> tuple[int, int] | None:
    """The (stable, canary) weights of the first rule carrying both Services, or None."""
    for rule in rules:
        if str(rule.get("name", "")).startswith(HEADER_RULE_PREFIX):
            continue
        if _carries_both(rule, stable_service, canary_service):
            weights = {_ref_name(r): int(r.get("weight", 1)) for r in rule.get("backendRefs", [])}
            return weights[stable_service], weights[canary_service]
    return None
