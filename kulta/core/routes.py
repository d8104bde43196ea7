"""Rewrite a live HTTPRoute's or GRPCRoute's rules for one rollout step, touching only weights.

In the Gateway API CRDs ``spec.rules`` is an atomic list, so a server-side apply
must send the whole list. KULTA therefore reads the live rules, changes only
(a) the ``weight`` of backendRefs that point at the rollout's stable or canary
Service, in every rule that carries both, and (b) its own header-route rules,
named ``kulta-<header route name>``; every other byte the user (or another field
manager) wrote is returned as it was. This module is pure: the caller reads the
live route and applies the result.

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
from kulta.model.program import HeaderRule
from kulta.model.rollout import RouteKind

__all__ = [
    "HEADER_RULE_PREFIX",
    "HeaderRule",
    "RouteRewriteError",
    "header_rule_name",
    "rewrite_rules",
    "route_weights",
]

HEADER_RULE_PREFIX = "kulta-"
GATEWAY_MATCH_EXACT = "Exact"
GATEWAY_MATCH_REGEX = "RegularExpression"


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


def _header_match(name: str, value: str, match_type: str) -> dict[str, Any]:
    if match_type == "exact":
        return {"name": name, "type": GATEWAY_MATCH_EXACT, "value": value}
    if match_type == "prefix":
        escaped = "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in value)
        return {"name": name, "type": GATEWAY_MATCH_REGEX, "value": f"^{escaped}.*"}
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
) -> list[dict[str, Any]]:
    """Return ``rules`` with this step's weights and header rules, all else unchanged.

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
        out.append(new_rule)
    if template is None:
        raise RouteRewriteError(
            f"{kind.value} {route}: no rule has backendRefs to both Service {stable_service!r} and "
            f"{canary_service!r}; add both to the rule that should carry the canary's traffic"
        )
    # Header rules go first so their more specific matches are listed before the
    # catch-all rule (Gateway API ranks header matches above path-only ones anyway).
    headers = [_header_rule(template, h, canary_service, kind) for h in header_rules if h.matches]
    return headers + out


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
