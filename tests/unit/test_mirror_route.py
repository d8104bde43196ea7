"""setMirrorRoute: the active set per step, the program inputs, and the mirror rule on the live HTTPRoute.

Worked examples follow the Gateway API plugin's ``httproute_mirror_test.go``
(a managed rule with the step's matches and a ``RequestMirror`` filter whose
``backendRef`` is the canary Service and ``percent`` the step's percentage).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from kulta.app.spec_commands import render_plan
from kulta.core.plan import PlanMode, desired_state, full_plan
from kulta.core.program_inputs import build_program_inputs
from kulta.core.routes import RouteRewriteError, rewrite_rules, route_weights
from kulta.model.program import HeaderRule, MirrorMatchInput, MirrorRule
from kulta.model.rollout import (
    HeaderMatch,
    HeaderMatchType,
    HTTPRouteRef,
    MirrorMatch,
    Pause,
    Rollout,
    SetMirrorRoute,
    Step,
    StepKind,
    TrafficRouting,
)
from kulta.spec import load_text
from tests.unit.spec_helpers import FILE, base_rollout
from tests.unit.test_reconcile_fidelity import T0, make, run, walk_to

ROUTING = {
    "managedRoutes": [{"name": "first"}, {"name": "second"}],
    "plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}},
}


def load_rollout(steps: list[Any]) -> Rollout:
    doc = base_rollout()
    canary = doc["spec"]["strategy"]["canary"]
    canary["trafficRouting"] = ROUTING
    canary["steps"] = steps
    result = load_text(yaml.safe_dump(doc), FILE)
    assert [str(e) for e in result.errors] == []
    (rollout,) = result.rollouts
    return rollout


def mirror(name: str, method: str | None = None, percentage: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if method is not None:
        body["match"] = [{"method": {"exact": method}}]
    if percentage is not None:
        body["percentage"] = percentage
    return {"setMirrorRoute": body}


# --------------------------------------------------------------------------- plan


def test_mirror_routes_accumulate_in_managed_route_order_are_replaced_and_removed() -> None:
    rollout = load_rollout(
        [
            {"setWeight": 10, **mirror("second", "GET", 50)},
            mirror("first", "POST"),
            {"pause": {}},
            mirror("second", "PUT"),
            mirror("first"),
            {"setWeight": 50},
        ]
    )
    seen = [
        [(r.name, r.matches[0].method, r.percentage) for r in state.mirror_routes] for state in full_plan(rollout.spec)
    ]
    assert seen == [
        [("second", "GET", 50)],
        [("first", "POST", None), ("second", "GET", 50)],
        [("first", "POST", None), ("second", "GET", 50)],
        [("first", "POST", None), ("second", "PUT", None)],
        [("second", "PUT", None)],
        [("second", "PUT", None)],
        [],  # full promotion: no managed routes (Argo's RemoveManagedRoutes once IsFullyPromoted)
    ]
    assert desired_state(rollout.spec, 3, PlanMode.ABORTED).mirror_routes == ()
    assert [s.header_routes for s in full_plan(rollout.spec)] == [()] * 7


# --------------------------------------------------------------------------- program inputs


def test_program_inputs_carry_mirror_rules_on_routes_with_header_routes() -> None:
    routing = TrafficRouting(
        http_routes=(HTTPRouteRef("web"), HTTPRouteRef("admin", use_header_routes=False)),
        managed_routes=("beta",),
    )
    route = SetMirrorRoute(
        "beta",
        (MirrorMatch("GET", ("/api", HeaderMatchType.PREFIX), (HeaderMatch("x-t", "1", HeaderMatchType.EXACT),)),),
        35,
    )
    steps = (
        Step(index=0, kinds=frozenset({StepKind.SET_WEIGHT}), set_weight=20),
        Step(index=1, kinds=frozenset({StepKind.SET_MIRROR_ROUTE}), set_mirror_route=route),
        Step(index=2, kinds=frozenset({StepKind.PAUSE}), pause=Pause(None)),
    )
    rollout = make(steps, routing=routing)
    prev = walk_to(rollout, 2)
    d, _ = run(rollout, prev, T0)
    inputs = build_program_inputs(rollout, (), d, d.status, prev, {})
    by_name = {r.name: r for r in inputs.routes}
    assert by_name["web"].mirror_rules == (
        MirrorRule("beta", (MirrorMatchInput("GET", ("/api", "prefix"), (("x-t", "1", "exact"),)),), 35),
    )
    assert by_name["admin"].mirror_rules == ()


# --------------------------------------------------------------------------- rule rewrite

RULES: list[dict[str, Any]] = [
    {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-gw", "value": "1"}]}}
        ],
        "backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 8080, "weight": 0},
        ],
        "timeouts": {"request": "10s"},
    },
    {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}], "backendRefs": [{"name": "admin", "port": 80}]},
]


def rewrite(rules: list[dict[str, Any]], *mirrors: MirrorRule, headers: tuple[HeaderRule, ...] = ()) -> list[Any]:
    return rewrite_rules(
        rules,
        route="shop/web",
        stable_service="web-stable",
        canary_service="web-canary",
        stable_weight=80,
        canary_weight=20,
        header_rules=headers,
        mirror_rules=mirrors,
    )


def test_mirror_rule_keeps_weights_mirrors_to_the_canary_and_leaves_the_users_rules_alone() -> None:
    before = copy.deepcopy(RULES)
    beta = MirrorRule("beta", (MirrorMatchInput("POST", ("/api", "prefix"), (("X-Test", "true", "exact"),)),), 50)
    out = rewrite(RULES, beta)
    assert before == RULES  # input untouched
    assert out[0] == {
        "name": "kulta-beta",
        "matches": [
            {
                "path": {"type": "RegularExpression", "value": "^/api.*"},
                "method": "POST",
                "headers": [{"name": "X-Test", "type": "Exact", "value": "true"}],
            }
        ],
        "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-gw", "value": "1"}]}},
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": "web-canary", "port": 8080}, "percent": 50},
            },
        ],
        "backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 80},
            {"name": "web-canary", "port": 8080, "weight": 20},
        ],
        "timeouts": {"request": "10s"},
    }
    # the user's rules: weights set on the one carrying both Services, the /admin rule byte for byte
    assert out[1]["backendRefs"] == out[0]["backendRefs"]
    assert out[1]["filters"] == RULES[0]["filters"]
    assert out[2] == RULES[1]
    assert len(out) == 3
    # KULTA's rule is not read back as the route's weights
    assert route_weights(out, "web-stable", "web-canary") == (80, 20)


def test_mirror_rule_without_percentage_mirrors_every_match_and_is_dropped_when_no_longer_active() -> None:
    beta = MirrorRule("beta", (MirrorMatchInput("GET", None, ()),))
    with_mirror = rewrite(RULES, beta)
    assert with_mirror[0]["filters"][-1] == {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": "web-canary", "port": 8080}},
    }
    assert with_mirror[0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}, "method": "GET"}]
    # the next step no longer has it: rewriting the live rules (with KULTA's rule) drops it
    without = rewrite(with_mirror)
    assert [r.get("name") for r in without] == [None, None]
    assert without[1] == RULES[1]


def test_header_and_mirror_rules_side_by_side() -> None:
    out = rewrite(
        RULES,
        MirrorRule("m", (MirrorMatchInput("GET", None, ()),)),
        headers=(HeaderRule("h", (("x-beta", "1", "exact"),)),),
    )
    assert [r.get("name") for r in out] == ["kulta-h", "kulta-m", None, None]


def test_each_step_match_narrows_each_rule_match_and_a_method_the_rule_never_takes_is_dropped() -> None:
    rules = copy.deepcopy(RULES)
    rules[0]["matches"] = [
        {"path": {"type": "PathPrefix", "value": "/shop"}, "method": "GET"},
        {"path": {"type": "PathPrefix", "value": "/shop"}, "method": "POST"},
    ]
    out = rewrite(rules, MirrorRule("m", (MirrorMatchInput("POST", ("/shop/cart", "exact"), ()),)))
    assert out[0]["matches"] == [{"path": {"type": "Exact", "value": "/shop/cart"}, "method": "POST"}]


@pytest.mark.parametrize(
    ("match", "fragment"),
    [
        (MirrorMatchInput(None, ("/other", "exact"), ()), "is not inside the path"),
        (MirrorMatchInput(None, ("/shop", "prefix"), ()), "is not inside the path"),  # would take /shopping too
        (MirrorMatchInput("PUT", None, ()), "their methods differ"),
        (MirrorMatchInput(None, None, (("tenant", "b", "exact"),)), "one match per header name"),
    ],
)
def test_a_mirror_match_that_would_take_requests_the_rule_does_not_is_refused(
    match: MirrorMatchInput, fragment: str
) -> None:
    rules = copy.deepcopy(RULES)
    rules[0]["matches"] = [
        {
            "path": {"type": "PathPrefix", "value": "/shop"},
            "method": "GET",
            "headers": [{"name": "tenant", "value": "a"}],
        }
    ]
    with pytest.raises(RouteRewriteError, match=fragment):
        rewrite(rules, MirrorRule("m", (match,)))


# --------------------------------------------------------------------------- kulta plan


def test_plan_shows_a_mirror_routes_column_only_when_a_step_sets_one() -> None:
    rollout = load_rollout([mirror("first", "GET", 25), {"pause": {}}, mirror("first"), {"setWeight": 50}])
    lines = render_plan(rollout)
    table = [line.split() for line in lines if line.startswith("  ") and line.split()[0] in {"0", "1", "2", "end"}]
    assert "mirror routes" in next(line for line in lines if "header routes" in line)
    assert table[0][:3] == ["0", "setMirrorRoute", "first"]
    assert table[0][-2:] == ["first(25%)", "-"]
    assert table[1][-3:] == ["first(25%)", "until", "promoted"]
    assert table[2][-2:] == ["-", "-"]
    assert table[3][-2:] == ["-", "-"]
    plain = render_plan(load_rollout([{"setWeight": 50}]))
    assert not any("mirror routes" in line for line in plain)
