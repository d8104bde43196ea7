"""GRPCRoutes are weighted like HTTPRoutes: every step is a Pulumi update the API server shows.

Real engine, real kubernetes provider, local control plane with the Gateway API
standard CRDs (GRPCRoute ``gateway.networking.k8s.io/v1``). The reconciler is
driven pass by pass with a controllable clock, as in ``test_rollout_steps``.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, config

from kulta.adapters.kube import KubeReader
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.routes import route_weights
from kulta.model.rollout import RouteKind
from kulta.model.status import Phase, RolloutStatus
from kulta.spec.loader import load_text
from tests.integration.conftest import kubectl, route_yaml, unique
from tests.integration.test_rollout_steps import Clock, NoMetrics

pytestmark = pytest.mark.cluster

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
PLURALS = {"HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes"}

ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: cart, namespace: {ns}}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: cart}}}}
  template:
    metadata: {{labels: {{app: cart}}}}
    spec:
      containers:
        - name: cart
          image: registry.local/cart:{tag}
          ports: [{{name: grpc, containerPort: 9090}}]
  strategy:
    canary:
      canaryService: cart-canary
      stableService: cart-stable
      trafficRouting:
        managedRoutes: [{{name: beta}}]
{routing}
      steps:
        - setWeight: 25
        - pause: {{duration: 1h}}
        - setWeight: 50
        - setHeaderRoute:
            name: beta
            match: [{{headerName: x-beta, headerValue: {{exact: "yes"}}}}]
        - setWeight: 75
"""
GRPC_ONLY = "        gatewayAPI: {grpcRoute: cart-rpc}"
MIXED = """        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: cart-web
            grpcRoutes: [{name: cart-rpc, useHeaderRoutes: true}]"""
HEADER_STEP = 3
METHOD = {"type": "Exact", "service": "shop.Cart", "method": "Get"}


def grpc_route_yaml(ns: str) -> str:
    """A user's GRPCRoute, as their GitOps tool would apply it: all traffic on stable."""
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: cart-rpc
  namespace: {ns}
spec:
  parentRefs:
    - name: demo-gateway
      namespace: demo
  rules:
    - matches:
        - method: {{type: Exact, service: shop.Cart, method: Get}}
      backendRefs:
        - {{name: cart-stable, port: 9090, weight: 100}}
        - {{name: cart-canary, port: 9090, weight: 0}}
"""


def live_route(api: Any, ns: str, kind: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, PLURALS[kind], name)


def load(ns: str, tag: str, routing: str):
    loaded = load_text(ROLLOUT.format(ns=ns, tag=tag, routing=routing), f"{ns}.yaml")
    assert not loaded.errors, loaded.errors
    return loaded


def make_env(cluster, tmp_path, routing: str, with_http: bool):
    ns = unique("grpc")
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=grpc_route_yaml(ns))
    if with_http:
        http = route_yaml(ns, name="cart-web", stable="cart-stable", canary="cart-canary")
        kubectl(cluster, "apply", "-f", "-", stdin=http)
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
    clock = Clock()
    seen: list[RolloutStatus] = []

    def check(status: RolloutStatus) -> None:
        """After every update: each route's live weights and header rule equal the status."""
        seen.append(status)
        expected_kinds = ["HTTPRoute", "GRPCRoute"] if with_http else ["GRPCRoute"]
        assert [w.kind.value for w in status.weights] == expected_kinds, status.weights
        for w in status.weights:
            route = live_route(api, ns, w.kind.value, w.route)
            rules = route["spec"]["rules"]
            assert route_weights(rules, "cart-stable", "cart-canary") == (w.stable, w.canary), (w, rules)
            header_rules = [r for r in rules if r.get("name") == "kulta-beta"]
            if status.in_flight and status.current_step_index >= HEADER_STEP:
                (rule,) = header_rules
                header = [{"name": "x-beta", "type": "Exact", "value": "yes"}]
                if w.kind is RouteKind.GRPC:
                    assert rule["matches"] == [{"method": METHOD, "headers": header}], rule
                else:
                    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}, "headers": header}], rule
                assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("cart-canary", 100)]
            else:
                assert header_rules == [], rules

    rec = Reconciler(
        ReconcilerConfig(environment="test"),
        stacks,
        KubeReader(cluster.kubeconfig),
        NoMetrics(),
        clock=clock,
        on_update=check,
    )
    return ns, api, stacks, clock, rec, seen


def start_canary(ns: str, routing: str, rec: Reconciler, clock: Clock, seen: list[RolloutStatus]):
    v1 = load(ns, "v1", routing)
    out = rec.reconcile_rollout(v1.rollouts[0], v1)
    assert out.phase is Phase.HEALTHY and not out.error, out
    v2 = load(ns, "v2", routing)
    rollout = v2.rollouts[0]
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.PROGRESSING and out.step == 1, out  # 25%, then the 1h pause holds
    return rollout, v2


def test_grpc_route_gets_every_step_weight_and_the_header_route_only_in_flight(cluster, tmp_path):
    ns, api, stacks, clock, rec, seen = make_env(cluster, tmp_path, GRPC_ONLY, with_http=False)
    rollout, v2 = start_canary(ns, GRPC_ONLY, rec, clock, seen)
    live = live_route(api, ns, "GRPCRoute", "cart-rpc")
    assert route_weights(live["spec"]["rules"], "cart-stable", "cart-canary") == (75, 25)
    assert live["metadata"]["labels"]["kulta.io/canary-in-flight"] == "true"

    # a hand edit of the GRPCRoute's weights is drift: the next pass puts the step's weights back
    rules = live["spec"]["rules"]
    rules[0]["backendRefs"][0]["weight"], rules[0]["backendRefs"][1]["weight"] = 10, 90
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, "grpcroutes", "cart-rpc", {"spec": {"rules": rules}}
    )
    out = rec.reconcile_rollout(rollout, v2)
    assert out.updates == 1 and out.step == 1, out
    fixed = live_route(api, ns, "GRPCRoute", "cart-rpc")["spec"]["rules"]
    assert route_weights(fixed, "cart-stable", "cart-canary") == (75, 25)

    clock.advance(3601)
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.HEALTHY and out.step == 5, out
    steps_seen = [s.current_step_index for s in seen if s.in_flight]
    assert {2, 3, 4} <= set(steps_seen), steps_seen
    assert [s.weights[0].canary for s in seen if s.in_flight][-1] == 75
    final = live_route(api, ns, "GRPCRoute", "cart-rpc")
    assert [r.get("name", "") for r in final["spec"]["rules"]] == [""]
    assert final["spec"]["rules"][0]["matches"] == [{"method": METHOD}]
    assert route_weights(final["spec"]["rules"], "cart-stable", "cart-canary") == (100, 0)
    assert "kulta.io/canary-in-flight" not in (final["metadata"].get("labels") or {})
    status = RolloutStatus.from_outputs(stacks.outputs(rec.stack_name(rollout)))
    assert [(w.kind, w.route, w.stable, w.canary) for w in status.weights] == [(RouteKind.GRPC, "cart-rpc", 100, 0)]


def test_mixed_http_and_grpc_routes_get_the_same_weights(cluster, tmp_path):
    ns, api, stacks, clock, rec, seen = make_env(cluster, tmp_path, MIXED, with_http=True)
    rollout, v2 = start_canary(ns, MIXED, rec, clock, seen)
    for kind, name in (("HTTPRoute", "cart-web"), ("GRPCRoute", "cart-rpc")):
        rules = live_route(api, ns, kind, name)["spec"]["rules"]
        assert route_weights(rules, "cart-stable", "cart-canary") == (75, 25), (kind, rules)
    clock.advance(3601)
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.HEALTHY and out.step == 5, out
    in_flight = [s for s in seen if s.in_flight]
    assert {s.current_step_index for s in in_flight} >= {2, 3, 4}
    for s in in_flight:
        assert s.weights[0].canary == s.weights[1].canary, s.weights
    for kind, name in (("HTTPRoute", "cart-web"), ("GRPCRoute", "cart-rpc")):
        rules = live_route(api, ns, kind, name)["spec"]["rules"]
        assert route_weights(rules, "cart-stable", "cart-canary") == (100, 0), (kind, rules)
        assert all(r.get("name") != "kulta-beta" for r in rules), (kind, rules)
