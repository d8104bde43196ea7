"""setMirrorRoute end to end: the live HTTPRoute's ``kulta-shadow`` rule follows the step list.

Real engine, real kubernetes provider, local control plane with kwok nodes; the
reconciler is driven pass by pass with a controllable clock (as in
test_rollout_steps.py). After every Pulumi update the live HTTPRoute is read:
the mirror rule is there exactly while the step list has it set, carries a
``RequestMirror`` filter to the canary Service, and is gone after the step that
removes it (only ``name``, as in Argo), at promotion and at abort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client, config

from kulta.adapters.kube import KubeReader
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.constants import TAG_COMMAND
from kulta.core.routes import route_weights
from kulta.model.status import Phase, RolloutStatus
from kulta.spec.loader import load_text
from tests.integration.conftest import kubectl, route_yaml, unique

pytestmark = pytest.mark.cluster

ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: registry.local/web:{tag}
          ports: [{{name: http, containerPort: 8080}}]
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        managedRoutes: [{{name: shadow}}]
        gatewayAPI: {{httpRoute: web}}
      steps:
        - setWeight: 20
          setMirrorRoute:
            name: shadow
            percentage: 40
            match: [{{method: {{exact: GET}}}}]
        - pause: {{duration: 1h}}
        - setMirrorRoute: {{name: shadow}}
        - pause: {{duration: 1h}}
        - setMirrorRoute:
            name: shadow
            match: [{{headers: {{x-shadow: {{exact: "on"}}}}}}]
        - pause: {{duration: 1h}}
        - setWeight: 60
"""

#: what the mirror rule matches at each step index while in flight (None: no mirror rule)
EXPECTED: dict[int, tuple[str | None, list[dict[str, Any]], int | None] | None] = {
    0: ("GET", [], 40),
    1: ("GET", [], 40),
    2: None,
    3: None,
    4: (None, [{"name": "x-shadow", "type": "Exact", "value": "on"}], None),
    5: (None, [{"name": "x-shadow", "type": "Exact", "value": "on"}], None),
    6: (None, [{"name": "x-shadow", "type": "Exact", "value": "on"}], None),
}
SHADOW = "kulta-shadow"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class NoMetrics:
    def measure(self, *a, **k):
        raise AssertionError("this rollout has no analysis")


def load(ns: str, tag: str):
    loaded = load_text(ROLLOUT.format(ns=ns, tag=tag), f"{ns}.yaml")
    assert not loaded.errors, loaded.errors
    return loaded


def live_rules(api, ns: str) -> list[dict[str, Any]]:
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    return route["spec"]["rules"]


@pytest.fixture
def env(cluster, tmp_path):
    ns = unique("mirror")
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="web", stable="web-stable", canary="web-canary"))
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
    clock = Clock()
    seen: list[tuple[int, bool, bool]] = []

    def check(status: RolloutStatus) -> None:
        """After every update: the mirror rule is there exactly when EXPECTED says, with these contents."""
        rules = live_rules(api, ns)
        shadow = [r for r in rules if r.get("name") == SHADOW]
        in_flight = status.in_flight and not status.aborted
        expected = EXPECTED.get(status.current_step_index) if in_flight else None
        seen.append((status.current_step_index, in_flight, bool(shadow)))
        if expected is None:
            assert not shadow, (status.current_step_index, rules)
        else:
            method, headers, percent = expected
            assert len(shadow) == 1, rules
            (rule,) = shadow
            (match,) = rule["matches"]
            assert match.get("method") == method, rule
            assert match.get("headers", []) == headers, rule
            assert match["path"] == {"type": "PathPrefix", "value": "/"}, rule
            (mirror,) = [f for f in rule["filters"] if f["type"] == "RequestMirror"]
            ref = mirror["requestMirror"]["backendRef"]
            assert (ref["name"], ref["port"]) == ("web-canary", 8080), mirror
            assert mirror["requestMirror"].get("percent") == percent, mirror
            # the mirrored requests themselves keep the step's split
            weights = {b["name"]: b["weight"] for b in rule["backendRefs"]}
            assert (weights["web-stable"], weights["web-canary"]) == (
                status.weights[0].stable,
                status.weights[0].canary,
            )
        # the user's rule always carries the step's weights; KULTA's rule is not read as the route's weights
        got = route_weights(rules, "web-stable", "web-canary")
        assert got == (status.weights[0].stable, status.weights[0].canary), (got, status.weights)

    rec = Reconciler(
        ReconcilerConfig(environment="test"),
        stacks,
        KubeReader(cluster.kubeconfig),
        NoMetrics(),
        clock=clock,
        on_update=check,
    )
    return ns, api, stacks, clock, rec, seen


def test_mirror_rule_follows_the_steps_and_leaves_at_promotion_and_abort(env):
    ns, api, stacks, clock, rec, seen = env
    v1 = load(ns, "v1")
    out = rec.reconcile_rollout(v1.rollouts[0], v1)
    assert out.phase is Phase.HEALTHY and not out.error, out
    # another field manager adds a second rule: it must survive every KULTA update
    rules = live_rules(api, ns)
    rules.append(
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
            "backendRefs": [{"name": "admin", "port": 80}],
        }
    )
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web", {"spec": {"rules": rules}}
    )

    v2 = load(ns, "v2")
    rollout = v2.rollouts[0]
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.PROGRESSING and out.step == 1, out
    assert live_rules(api, ns)[0].get("name") == SHADOW
    clock.advance(3601)
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.PROGRESSING and out.step == 3, out
    assert SHADOW not in [r.get("name") for r in live_rules(api, ns)]  # removed by step 2 (only name)
    clock.advance(3601)
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.PROGRESSING and out.step == 5, out
    assert SHADOW in [r.get("name") for r in live_rules(api, ns)]  # set again by step 4
    clock.advance(3601)
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.HEALTHY, out
    final_rules = live_rules(api, ns)
    assert SHADOW not in [r.get("name") for r in final_rules]  # gone at promotion
    assert final_rules[-1]["matches"][0]["path"]["value"] == "/admin"
    assert route_weights(final_rules, "web-stable", "web-canary") == (100, 0)
    # every step index was seen with the mirror rule as expected (the check ran after each update)
    assert {(step, shadow) for step, flight, shadow in seen if flight} >= {(0, True), (2, False), (4, True), (6, True)}

    # abort: a new canary sets the mirror rule at step 0; aborting removes it
    v3 = load(ns, "v3")
    rollout3 = v3.rollouts[0]
    out = rec.reconcile_rollout(rollout3, v3)
    assert out.phase is Phase.PROGRESSING and out.step == 1, out
    assert SHADOW in [r.get("name") for r in live_rules(api, ns)]
    stacks.set_tag(rec.stack_name(rollout3), TAG_COMMAND, ManualCommand("abort-1", CommandKind.ABORT).to_config())
    out = rec.reconcile_rollout(rollout3, v3)
    assert out.phase is Phase.ABORTED, out
    aborted_rules = live_rules(api, ns)
    assert SHADOW not in [r.get("name") for r in aborted_rules]
    assert route_weights(aborted_rules, "web-stable", "web-canary") == (100, 0)
    assert aborted_rules[-1]["matches"][0]["path"]["value"] == "/admin"
