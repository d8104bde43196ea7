"""Every step is a Pulumi update: the API server matches the plan after each one.

Real engine, real kubernetes provider, local control plane with kwok nodes.
The reconciler is driven pass by pass with a controllable clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client, config

from kulta.adapters.kube import KubeReader
from kulta.adapters.outbox import Outbox
from kulta.adapters.program import deploy
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.constants import TAG_COMMAND
from kulta.core.plan import desired_state
from kulta.core.reconcile import decide_step
from kulta.core.revision import pod_template_hash, resolve_template
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
      scaleDownDelaySeconds: 30
      abortScaleDownDelaySeconds: 30
      trafficRouting:
        managedRoutes: [{{name: beta}}]
        gatewayAPI: {{httpRoute: web}}
      steps:
        - setWeight: 25
        - pause: {{duration: 1h}}
        - setWeight: 50
        - setHeaderRoute:
            name: beta
            match: [{{headerName: x-beta, headerValue: {{exact: "yes"}}}}]
        - setWeight: 75
"""


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


@pytest.fixture
def env(cluster, tmp_path, request):
    ns = unique("steps")
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="web", stable="web-stable", canary="web-canary"))
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
    clock = Clock()
    seen: list[RolloutStatus] = []
    checks: list[str] = []

    def check(status: RolloutStatus) -> None:
        """After every update: ReplicaSets and route weights in the API server equal the status."""
        seen.append(status)
        apps = client.AppsV1Api(api)
        for rs, replicas in status.replicas.items():
            live = apps.read_namespaced_replica_set(rs, ns)
            assert live.spec.replicas == replicas, (rs, live.spec.replicas, replicas)
        for w in status.weights[1:]:  # other routes of a multi-route rollout carry the same split
            other = client.CustomObjectsApi(api).get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", ns, "httproutes", w.route
            )
            assert route_weights(other["spec"]["rules"], "web-stable", "web-canary") == (w.stable, w.canary)
        route = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
        )
        got = route_weights(route["spec"]["rules"], "web-stable", "web-canary")
        assert got == (status.weights[0].stable, status.weights[0].canary), (got, status.weights)
        header_rules = [r for r in route["spec"]["rules"] if r.get("name") == "kulta-beta"]
        if status.in_flight and status.current_step_index >= 3:  # setHeaderRoute is step 3
            assert header_rules, route["spec"]["rules"]
            assert header_rules[0]["matches"][0]["headers"] == [{"name": "x-beta", "type": "Exact", "value": "yes"}]
            assert [b["name"] for b in header_rules[0]["backendRefs"]] == ["web-canary"]
        elif not status.in_flight:
            assert not header_rules
        checks.append(f"{status.current_step_index}:{got}")

    rec = Reconciler(
        ReconcilerConfig(environment="test"),
        stacks,
        KubeReader(cluster.kubeconfig),
        NoMetrics(),
        clock=clock,
        on_update=check,
    )
    return ns, api, stacks, clock, rec, seen, checks


def ready_times(api, ns: str, revision: str) -> list[datetime]:
    pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"rollouts-pod-template-hash={revision}").items
    out = []
    for p in pods:
        for c in p.status.conditions or []:
            if c.type == "Ready" and c.status == "True":
                out.append(c.last_transition_time)
    return out


def kulta_route_write_time(api, ns: str) -> datetime:
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    times = [m["time"] for m in route["metadata"]["managedFields"] if m["manager"] == "kulta"]
    return max(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for t in times)


def test_each_step_matches_the_plan_and_survives_foreign_edits(env, cluster):
    ns, api, stacks, clock, rec, seen, checks = env
    v1 = load(ns, "v1")
    out = rec.reconcile_rollout(v1.rollouts[0], v1)
    assert out.phase is Phase.HEALTHY and not out.error, out
    # another field manager (e.g. the user's GitOps tool) adds a timeout and a second rule
    live = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    rules = live["spec"]["rules"]
    rules[0]["timeouts"] = {"request": "7s"}
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
    revision = pod_template_hash(resolve_template(rollout, v2.others))
    out = rec.reconcile_rollout(rollout, v2)
    # step 0 (25%) applied, then step 1 (pause 1h) holds
    assert out.phase is Phase.PROGRESSING and out.step == 1, out
    assert kulta_route_write_time(api, ns) >= max(ready_times(api, ns, revision)), "traffic moved before canary Ready"
    status = RolloutStatus.from_outputs(stacks.outputs(rec.stack_name(rollout)))
    assert desired_state(rollout.spec, 1).canary_replicas == status.replicas[f"web-{revision}"] == 1

    # the same pass again changes nothing
    history_len = len(stacks.history(rec.stack_name(rollout)))
    again = rec.reconcile_rollout(rollout, v2)
    assert again.updates == 0 and len(stacks.history(rec.stack_name(rollout))) == history_len

    # re-applying the current step through the engine changes no resource
    same = decide_step(rollout, revision, rollout.spec.template, status, clock(), 1, environment="test")
    inputs = rec.program_inputs(rollout, v2, same, status, status)
    report = stacks.up(rec.stack_name(rollout), lambda: deploy(inputs), "re-apply step 1")
    assert set(report.changes) <= {"same"}, report.changes

    # preview of step 2 shows exactly the canary scale-up and the weight change
    nxt = decide_step(rollout, revision, rollout.spec.template, status, clock(), 2, environment="test")
    preview = stacks.preview(
        rec.stack_name(rollout), lambda: deploy(rec.program_inputs(rollout, v2, nxt, nxt.status, status))
    )
    updates = {c.urn_name: c for c in preview.changes if c.op == "update"}
    assert set(updates) == {f"web-{revision}", f"httproute-{ns}-web"}, {k: v.diffs for k, v in updates.items()}
    rs_diff = updates[f"web-{revision}"].detailed
    assert any(v == (1, 2) for k, v in rs_diff.items() if "replicas" in k), rs_diff

    clock.advance(3601)
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.HEALTHY and out.step == 5, out
    steps_seen = [s.current_step_index for s in seen]
    assert steps_seen[-5:] == [2, 3, 4, 5, 5] or steps_seen[-4:] == [2, 3, 4, 5], steps_seen
    # header route rule existed while in flight, and is gone at rest
    live = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    names = [r.get("name", "") for r in live["spec"]["rules"]]
    assert "kulta-beta" not in names
    assert live["spec"]["rules"][-1]["matches"][0]["path"]["value"] == "/admin"
    assert any(r.get("timeouts") == {"request": "7s"} for r in live["spec"]["rules"])
    assert "kulta.io/canary-in-flight" not in (live["metadata"].get("labels") or {})
    assert route_weights(live["spec"]["rules"], "web-stable", "web-canary") == (100, 0)
    # promotion: the Services select the new revision; the old one waits for scaleDownDelaySeconds
    core = client.CoreV1Api(api)
    assert core.read_namespaced_service("web-stable", ns).spec.selector["rollouts-pod-template-hash"] == revision
    final = RolloutStatus.from_outputs(stacks.outputs(rec.stack_name(rollout)))
    assert final.stable_revision == revision and final.scale_down_revision
    clock.advance(31)
    out = rec.reconcile_rollout(rollout, v2)
    old = client.AppsV1Api(api).read_namespaced_replica_set(f"web-{final.scale_down_revision}", ns)
    assert old.spec.replicas == 0
    assert len(checks) >= 7


def test_abort_returns_all_traffic_to_stable_then_scales_canary_down(env):
    ns, api, stacks, clock, rec, seen, checks = env
    v1 = load(ns, "v1")
    rec.reconcile_rollout(v1.rollouts[0], v1)
    v2 = load(ns, "v2")
    rollout = v2.rollouts[0]
    revision = pod_template_hash(resolve_template(rollout, v2.others))
    out = rec.reconcile_rollout(rollout, v2)
    assert out.step == 1
    stacks.set_tag(rec.stack_name(rollout), TAG_COMMAND, ManualCommand("abort-1", CommandKind.ABORT).to_config())
    out = rec.reconcile_rollout(rollout, v2)
    assert out.phase is Phase.ABORTED, out
    live = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    assert route_weights(live["spec"]["rules"], "web-stable", "web-canary") == (100, 0)
    apps = client.AppsV1Api(api)
    assert apps.read_namespaced_replica_set(f"web-{revision}", ns).spec.replicas == 1  # abort delay
    clock.advance(31)
    rec.reconcile_rollout(rollout, v2)
    assert apps.read_namespaced_replica_set(f"web-{revision}", ns).spec.replicas == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ready_times(api, ns, revision):
        time.sleep(0.5)
    assert not ready_times(api, ns, revision)


def _set_route_status(api, ns: str, generation: int) -> None:
    status = {
        "parents": [
            {
                "parentRef": {"name": "demo-gateway", "namespace": "demo"},
                "controllerName": "kulta.io/demo-gateway-controller",
                "conditions": [
                    {
                        "type": "Accepted",
                        "status": "True",
                        "reason": "Accepted",
                        "message": "test",
                        "observedGeneration": generation,
                        "lastTransitionTime": "2026-11-25T12:00:00Z",
                    }
                ],
            }
        ]
    }
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web", {"status": status}
    )


def test_next_step_waits_until_the_gateway_accepts_the_current_generation(env):
    ns, api, stacks, clock, rec, seen, checks = env
    v1 = load(ns, "v1")
    rec.reconcile_rollout(v1.rollouts[0], v1)
    v2 = load(ns, "v2")
    rollout = v2.rollouts[0]
    out = rec.reconcile_rollout(rollout, v2)
    assert out.step == 1
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    generation = route["metadata"]["generation"]
    _set_route_status(api, ns, generation - 1)  # the Gateway has not seen our weights yet
    clock.advance(3601)
    held = rec.reconcile_rollout(rollout, v2)
    assert held.updates == 0 and held.step == 1 and "waiting for Gateway" in held.message, held
    _set_route_status(api, ns, generation)
    moved = rec.reconcile_rollout(rollout, v2)
    assert moved.updates >= 1 and moved.step > 1, moved


def test_hand_edits_are_put_back_on_the_next_pass(env, cluster):
    ns, api, stacks, clock, rec, seen, checks = env
    v1 = load(ns, "v1")
    rec.reconcile_rollout(v1.rollouts[0], v1)
    v2 = load(ns, "v2")
    rollout = v2.rollouts[0]
    revision = pod_template_hash(resolve_template(rollout, v2.others))
    rec.reconcile_rollout(rollout, v2)
    kubectl(cluster, "scale", "replicaset", f"web-{revision}", "-n", ns, "--replicas=3")
    out = rec.reconcile_rollout(rollout, v2)
    assert out.updates == 1 and out.step == 1, out
    apps = client.AppsV1Api(api)
    assert apps.read_namespaced_replica_set(f"web-{revision}", ns).spec.replicas == 1
    live = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    rules = live["spec"]["rules"]
    rules[0]["backendRefs"][0]["weight"], rules[0]["backendRefs"][1]["weight"] = 10, 90
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web", {"spec": {"rules": rules}}
    )
    out = rec.reconcile_rollout(rollout, v2)
    assert out.updates == 1, out
    live = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    assert route_weights(live["spec"]["rules"], "web-stable", "web-canary") == (75, 25)


NEVER_READY = ROLLOUT.replace(
    "      containers:\n", "      nodeSelector: {{kulta.io/no-such-node: 'true'}}\n      containers:\n", 1
).replace("  replicas: 4\n", "  replicas: 4\n  progressDeadlineSeconds: 8\n  progressDeadlineAbort: true\n", 1)


def test_canary_that_never_becomes_ready_fails_the_step_and_aborts(env):
    ns, api, stacks, clock, rec, seen, checks = env
    v1 = load(ns, "v1")
    rec.reconcile_rollout(v1.rollouts[0], v1)
    bad = load_text(NEVER_READY.format(ns=ns, tag="v2"), f"{ns}.yaml")
    assert not bad.errors, bad.errors
    rollout = bad.rollouts[0]
    started = time.monotonic()
    out = rec.reconcile_rollout(rollout, bad)
    took = time.monotonic() - started
    assert out.phase is Phase.ABORTED, out
    assert "progress-deadline" in out.message, out.message
    assert took < 60, took
    live = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    assert route_weights(live["spec"]["rules"], "web-stable", "web-canary") == (100, 0)


def test_events_of_an_update_survive_a_crash_before_the_outbox_write(env, cluster, tmp_path):
    ns, api, stacks, clock, rec, seen, checks = env
    outbox = Outbox(tmp_path / "outbox")
    crashing = Reconciler(
        ReconcilerConfig(environment="test"), stacks, KubeReader(cluster.kubeconfig), None, outbox=outbox, clock=clock
    )

    class Died(BaseException):
        """The process dies here: not an error the reconciler could catch and report."""

    def crash(*_args, **_kwargs):
        raise Died("process died right after the update")

    outbox.put = crash  # type: ignore[method-assign]
    v1 = load(ns, "v1")
    with pytest.raises(Died):
        crashing.reconcile_rollout(v1.rollouts[0], v1)
    recorded = RolloutStatus.from_outputs(stacks.outputs(crashing.stack_name(v1.rollouts[0])))
    assert recorded.phase is Phase.HEALTHY and recorded.last_event_id
    fresh_outbox = Outbox(tmp_path / "outbox")
    restarted = Reconciler(
        ReconcilerConfig(environment="test"),
        stacks,
        KubeReader(cluster.kubeconfig),
        None,
        outbox=fresh_outbox,
        clock=clock,
    )
    restarted.reconcile_rollout(v1.rollouts[0], v1)
    pending = fresh_outbox.pending()
    assert [e.type.value for e in pending][:1] == ["dev.cdevents.pipelinerun.started.0.3.0"]
    assert pending[-1].id == recorded.last_event_id
    # a second restart adds nothing (same ids, already in the outbox)
    restarted.reconcile_rollout(v1.rollouts[0], v1)
    assert [e.id for e in fresh_outbox.pending()] == [e.id for e in pending]


MULTI_ROUTE = ROLLOUT.replace(
    "        gatewayAPI: {{httpRoute: web}}\n",
    "        plugins:\n"
    "          argoproj-labs/gatewayAPI:\n"
    "            httpRoutes: [{{name: web, useHeaderRoutes: true}}, {{name: web-internal}}]\n",
)


def test_every_route_of_a_multi_route_rollout_gets_the_step_weights(env, cluster):
    ns, api, stacks, clock, rec, seen, checks = env
    kubectl(
        cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="web-internal", stable="web-stable", canary="web-canary")
    )
    v1 = load_text(MULTI_ROUTE.format(ns=ns, tag="v1"), f"{ns}.yaml")
    assert not v1.errors, v1.errors
    rec.reconcile_rollout(v1.rollouts[0], v1)
    v2 = load_text(MULTI_ROUTE.format(ns=ns, tag="v2"), f"{ns}.yaml")
    out = rec.reconcile_rollout(v2.rollouts[0], v2)
    assert out.step == 1, out
    assert [(w.route, w.canary) for w in seen[-1].weights] == [("web", 25), ("web-internal", 25)]
    assert len(checks) >= 3  # every update checked both routes in the API server
    # past the setHeaderRoute step: the header rule is only on the route with useHeaderRoutes
    custom = client.CustomObjectsApi(api)
    named: list[tuple[int, list[str], list[str]]] = []

    def rules_of(name: str) -> list[str]:
        route = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", ns, "httproutes", name)
        return [r["name"] for r in route["spec"]["rules"] if r.get("name")]

    def after_update(status: RolloutStatus) -> None:
        if status.in_flight and status.current_step_index >= 3:
            named.append((status.current_step_index, rules_of("web"), rules_of("web-internal")))

    rec.on_update = after_update
    clock.advance(3601)
    rec.reconcile_rollout(v2.rollouts[0], v2)
    assert named and all(web == ["kulta-beta"] and internal == [] for _, web, internal in named), named


def test_a_replica_whose_git_snapshot_is_behind_the_stack_waits_for_its_fetch(env):
    """After a hand-over the new holder's clone may lack the commit the stack was updated from:
    deciding from its older snapshot would start a canary back to the old template."""
    ns, api, stacks, clock, rec, seen, checks = env
    newer, older = "b" * 40, "a" * 40
    v2 = load(ns, "v2")
    rollout = v2.rollouts[0]
    rec.reconcile_rollout(rollout, v2, commit=newer)  # the previous holder applied v2 from `newer`
    name = rec.stack_name(rollout)
    updates = len(stacks.history(name))
    rec.knows_commit = lambda sha: sha == older  # this replica has fetched only `older`
    v1 = load(ns, "v1")  # what `older` holds
    out = rec.reconcile_rollout(v1.rollouts[0], v1, commit=older)
    assert out.skipped and out.updates == 0, out
    assert out.message == (
        f"the stack was last updated from commit {newer[:12]}, newer than this replica's Git snapshot "
        f"{older[:12]}: waiting for the next fetch"
    )
    assert len(stacks.history(name)) == updates
    # the commit never arrives (force-pushed away): after five minutes the replica decides with what it has
    clock.advance(5 * 60)
    out = rec.reconcile_rollout(v1.rollouts[0], v1, commit=older)
    assert not out.skipped and out.updates >= 1, out
    # once fetched, nothing waits
    rec.knows_commit = lambda sha: True
    assert not rec.reconcile_rollout(v1.rollouts[0], v1, commit=older).skipped
