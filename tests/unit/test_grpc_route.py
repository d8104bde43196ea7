"""GRPCRoutes beside HTTPRoutes: parsing, targets, rule rewrite, status outputs, program inputs.

Expected values follow the Gateway API plugin (argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi):
``insertGatewayAPIRouteLists`` turns ``grpcRoute`` into one route with ``useHeaderRoutes: true``;
``setGRPCHeaderRoute`` builds a header rule whose matches keep each template match's ``method``
and carry only the step's headers (``getGRPCHeaderRouteRuleList``: Exact or RegularExpression).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from kulta.core.names import route_targets
from kulta.core.program_inputs import build_program_inputs
from kulta.core.revision import strategy_hash
from kulta.core.routes import HeaderRule, RouteRewriteError, rewrite_rules, route_weights
from kulta.model.rollout import (
    GRPCRouteRef,
    HeaderMatch,
    HeaderMatchType,
    HTTPRouteRef,
    Pause,
    Rollout,
    RouteKind,
    SetHeaderRoute,
    Step,
    StepKind,
    TrafficRouting,
)
from kulta.model.status import RolloutStatus, RouteWeight
from kulta.spec import load_text
from tests.unit.spec_helpers import FILE, base_rollout
from tests.unit.test_reconcile_fidelity import T0, make, run, walk_to

GRPC_RULES = [
    {
        "matches": [
            {"method": {"type": "Exact", "service": "shop.Cart", "method": "Get"}},
            {
                "method": {"type": "Exact", "service": "shop.Cart", "method": "Put"},
                "headers": [{"name": "tenant", "type": "Exact", "value": "acme"}],
            },
        ],
        "backendRefs": [
            {"name": "web-stable", "port": 9090, "weight": 100},
            {"name": "web-canary", "port": 9090, "weight": 0},
        ],
    },
    {"matches": [{"method": {"service": "shop.Admin"}}], "backendRefs": [{"name": "admin", "port": 9090}]},
]


def load_rollout(routing: dict[str, Any], steps: list[Any] | None = None) -> Rollout:
    doc = base_rollout()
    canary = doc["spec"]["strategy"]["canary"]
    canary["trafficRouting"] = routing
    canary["steps"] = steps or [{"setWeight": 25}, {"pause": {}}]
    result = load_text(yaml.safe_dump(doc), FILE)
    assert [str(e) for e in result.errors] == []
    (rollout,) = result.rollouts
    return rollout


def load_errors(routing: dict[str, Any], steps: list[Any]) -> list[str]:
    doc = base_rollout()
    doc["spec"]["strategy"]["canary"].update(trafficRouting=routing, steps=steps)
    return [str(e) for e in load_text(yaml.safe_dump(doc), FILE).errors]


# --------------------------------------------------------------------------- parser


def test_short_form_grpc_route_is_one_route_with_header_routes() -> None:
    rollout = load_rollout({"gatewayAPI": {"grpcRoute": "cart-rpc"}})
    routing = rollout.spec.strategy.traffic_routing
    assert routing is not None
    assert routing.http_routes == ()
    assert routing.grpc_routes == (GRPCRouteRef("cart-rpc", None, True),)


def test_plugin_form_mixes_http_routes_and_grpc_routes() -> None:
    rollout = load_rollout(
        {
            "plugins": {
                "argoproj-labs/gatewayAPI": {
                    "namespace": "edge",
                    "httpRoutes": [{"name": "web", "useHeaderRoutes": True}],
                    "grpcRoutes": [{"name": "cart-rpc"}, {"name": "pay-rpc", "useHeaderRoutes": True}],
                }
            }
        }
    )
    routing = rollout.spec.strategy.traffic_routing
    assert routing is not None
    assert routing.http_routes == (HTTPRouteRef("web", "edge", True),)
    assert routing.grpc_routes == (GRPCRouteRef("cart-rpc", "edge", False), GRPCRouteRef("pay-rpc", "edge", True))


def test_header_steps_need_a_route_that_takes_header_routes() -> None:
    steps = [{"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}}]
    managed = [{"name": "beta"}]
    assert load_errors({"managedRoutes": managed, "gatewayAPI": {"grpcRoute": "rpc"}}, steps) == []
    assert load_errors({"managedRoutes": managed, "gatewayAPI": {"grpcRoutes": [{"name": "rpc"}]}}, steps) == [
        f"{FILE}#1 spec.strategy.canary.trafficRouting: setHeaderRoute steps need a route with useHeaderRoutes: true "
        "(or the single httpRoute / grpcRoute form)"
    ]


def test_tcp_and_tls_routes_stay_refused() -> None:
    errors = load_errors({"gatewayAPI": {"grpcRoute": "rpc", "tlsRoutes": [{"name": "t"}]}}, [])
    assert errors == [
        f"{FILE}#1 spec.strategy.canary.trafficRouting.gatewayAPI.tlsRoutes: tlsRoutes is not supported by KULTA; "
        "KULTA weights HTTPRoutes and GRPCRoutes only: use httpRoute(s) or grpcRoute(s)"
    ]


# --------------------------------------------------------------------------- route targets


def test_route_targets_list_http_routes_then_grpc_routes_with_their_kind() -> None:
    rollout = load_rollout(
        {"gatewayAPI": {"namespace": "edge", "grpcRoutes": [{"name": "rpc"}], "httpRoutes": [{"name": "web"}]}}
    )
    assert route_targets(rollout) == ((RouteKind.HTTP, "edge", "web"), (RouteKind.GRPC, "edge", "rpc"))
    short = load_rollout({"gatewayAPI": {"grpcRoute": "rpc"}})
    assert route_targets(short) == ((RouteKind.GRPC, "shop", "rpc"),)


def test_strategy_hash_of_an_http_only_rollout_is_unchanged_by_grpc_support() -> None:
    # 5544bdd577: strategy_hash of this rollout computed by KULTA before GRPCRoutes existed (c573886);
    # a different value would restart every canary in flight on upgrade.
    rollout = load_rollout({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}})
    assert strategy_hash(rollout) == "5544bdd577"
    grpc = load_rollout({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web", "grpcRoute": "rpc"}}})
    assert strategy_hash(grpc) != "5544bdd577"


# --------------------------------------------------------------------------- rule rewrite


def test_grpc_weights_and_header_rule_keep_methods_and_match_only_the_step_headers() -> None:
    before = copy.deepcopy(GRPC_RULES)
    header = HeaderRule(name="beta", matches=(("x-beta", "yes", "exact"), ("x-user", "qa-", "prefix")))
    out = rewrite_rules(
        GRPC_RULES,
        route="shop/rpc",
        stable_service="web-stable",
        canary_service="web-canary",
        stable_weight=70,
        canary_weight=30,
        header_rules=[header],
        kind=RouteKind.GRPC,
    )
    assert before == GRPC_RULES
    headers = [
        {"name": "x-beta", "type": "Exact", "value": "yes"},
        {"name": "x-user", "type": "RegularExpression", "value": "^qa-.*"},
    ]
    assert out == [
        {
            "name": "kulta-beta",
            "matches": [
                {"method": {"type": "Exact", "service": "shop.Cart", "method": "Get"}, "headers": headers},
                {"method": {"type": "Exact", "service": "shop.Cart", "method": "Put"}, "headers": headers},
            ],
            "backendRefs": [{"name": "web-canary", "port": 9090, "weight": 100}],
        },
        {
            "matches": before[0]["matches"],
            "backendRefs": [
                {"name": "web-stable", "port": 9090, "weight": 70},
                {"name": "web-canary", "port": 9090, "weight": 30},
            ],
        },
        before[1],
    ]
    assert route_weights(out, "web-stable", "web-canary") == (70, 30)


def test_grpc_header_rule_of_a_rule_without_matches_matches_headers_only() -> None:
    rules = [{"backendRefs": [{"name": "web-stable", "port": 9090}, {"name": "web-canary", "port": 9090}]}]
    header = HeaderRule(name="beta", matches=(("x-beta", "b.*", "regex"),))
    out = rewrite_rules(
        rules,
        route="shop/rpc",
        stable_service="web-stable",
        canary_service="web-canary",
        stable_weight=100,
        canary_weight=0,
        header_rules=[header],
        kind=RouteKind.GRPC,
    )
    assert out[0] == {
        "name": "kulta-beta",
        "matches": [{"headers": [{"name": "x-beta", "type": "RegularExpression", "value": "b.*"}]}],
        "backendRefs": [{"name": "web-canary", "port": 9090, "weight": 100}],
    }


def test_grpc_route_without_both_backends_names_the_kind() -> None:
    with pytest.raises(RouteRewriteError, match=r"^GRPCRoute shop/rpc: no rule has backendRefs"):
        rewrite_rules(
            [GRPC_RULES[1]],
            route="shop/rpc",
            stable_service="web-stable",
            canary_service="web-canary",
            stable_weight=50,
            canary_weight=50,
            kind=RouteKind.GRPC,
        )


# --------------------------------------------------------------------------- status outputs


def test_route_weight_outputs_carry_the_kind_only_for_grpc_routes() -> None:
    grpc = RouteWeight(route="rpc", namespace="shop", stable=75, canary=25, kind=RouteKind.GRPC)
    http = RouteWeight(route="web", namespace="shop", stable=75, canary=25)
    assert grpc.to_outputs() == {"route": "rpc", "namespace": "shop", "stable": 75, "canary": 25, "kind": "GRPCRoute"}
    assert http.to_outputs() == {"route": "web", "namespace": "shop", "stable": 75, "canary": 25}
    assert RouteWeight.from_outputs(grpc.to_outputs()) == grpc
    assert RouteWeight.from_outputs(http.to_outputs()) == http


def test_outputs_written_before_grpc_support_read_back_as_http_routes() -> None:
    old = {
        "rollout": "web",
        "namespace": "shop",
        "environment": "dev",
        "phase": "Progressing",
        "currentStepIndex": 1,
        "stepCount": 2,
        "stableRevision": "rev1",
        "canaryRevision": "rev2",
        "weights": [{"route": "web", "namespace": "shop", "stable": 75, "canary": 25}],
    }
    status = RolloutStatus.from_outputs(old)
    assert status.weights == (RouteWeight("web", "shop", 75, 25, RouteKind.HTTP),)
    assert status.to_outputs()["weights"] == old["weights"]


# --------------------------------------------------------------------------- program inputs


def test_program_inputs_weight_both_kinds_and_send_header_rules_where_asked() -> None:
    routing = TrafficRouting(
        http_routes=(HTTPRouteRef("web", use_header_routes=False),),
        grpc_routes=(GRPCRouteRef("web", use_header_routes=True),),
        managed_routes=("beta",),
    )
    header = SetHeaderRoute("beta", (HeaderMatch("x-beta", "1", HeaderMatchType.EXACT),))
    steps = (
        Step(index=0, kinds=frozenset({StepKind.SET_HEADER_ROUTE}), set_header_route=header),
        Step(index=1, kinds=frozenset({StepKind.SET_WEIGHT}), set_weight=40),
        Step(index=2, kinds=frozenset({StepKind.PAUSE}), pause=Pause(None)),
    )
    rollout = make(steps, routing=routing)
    prev = walk_to(rollout, 2)
    d, status = run(rollout, prev, T0)
    assert [(w.kind, w.route, w.stable, w.canary) for w in status.weights] == [
        (RouteKind.HTTP, "web", 60, 40),
        (RouteKind.GRPC, "web", 60, 40),
    ]
    live = {(RouteKind.GRPC, "shop", "web"): GRPC_RULES}
    inputs = build_program_inputs(rollout, (), d, d.status, prev, live)
    by_kind = {r.kind: r for r in inputs.routes}
    assert set(by_kind) == {RouteKind.HTTP, RouteKind.GRPC}
    assert by_kind[RouteKind.GRPC].live_rules == tuple(GRPC_RULES)
    assert by_kind[RouteKind.HTTP].live_rules == ()
    assert [h.name for h in by_kind[RouteKind.GRPC].header_rules] == ["beta"]
    assert by_kind[RouteKind.HTTP].header_rules == ()
    assert (by_kind[RouteKind.GRPC].stable_weight, by_kind[RouteKind.GRPC].canary_weight) == (60, 40)
