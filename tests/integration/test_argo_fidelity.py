"""Argo fidelity on the real engine and cluster: order inside an update, delays, pod metadata.

A watcher records every change of the namespace's ReplicaSets, Services and
HTTPRoutes with its resourceVersion (etcd's global revision, so the order of
writes is exact), and the tests check what happened *between* the halves of
one Pulumi update, as issue 10 asks: traffic and Service selectors move only
to available pods, and a ReplicaSet shrinks only after traffic has left it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch

from kulta.adapters.kube import KubeReader
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.constants import TAG_COMMAND
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.core.routes import route_weights
from kulta.model.status import Phase, RolloutStatus
from kulta.spec.loader import LoadResult, load_text
from tests.integration.conftest import kubectl, route_yaml, unique

pytestmark = pytest.mark.cluster

BASIC = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 4
  minReadySeconds: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "registry.local/web:{tag}", ports: [{{containerPort: 8080}}]}}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {{}}
"""

ROUTED = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 4
  minReadySeconds: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "registry.local/web:{tag}", ports: [{{containerPort: 8080}}]}}]
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      dynamicStableScale: true
      abortScaleDownDelaySeconds: {abort_delay}
      canaryMetadata:
        labels: {{role: canary}}
        annotations: {{scrape: "true"}}
      stableMetadata:
        labels: {{role: stable}}
      trafficRouting: {{gatewayAPI: {{httpRoute: web}}}}
      steps:
        - setWeight: 50
        - pause: {{}}
"""


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Change:
    """One write the API server reported: its global revision, kind, name and the fields we look at."""

    rv: int
    kind: str
    name: str
    spec_replicas: int | None = None
    available: int | None = None
    selector_hash: str | None = None
    weights: tuple[int, int] | None = None
    canary_header_rule: bool = False


class Watcher:
    """Every change of ReplicaSets, Services and HTTPRoutes in one namespace, in etcd order."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.api, self.ns = api, ns
        self.changes: list[Change] = []
        self._lock = threading.Lock()
        self._watches: list[watch.Watch] = []
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def _run(self, lister: Callable[..., Any], convert: Callable[[Any], Change], *args: Any) -> None:
        w = watch.Watch()
        self._watches.append(w)
        try:
            for event in w.stream(lister, *args, timeout_seconds=600):
                change = convert(event["object"])
                with self._lock:
                    self.changes.append(change)
        except (urllib3.exceptions.HTTPError, OSError):
            if not self._stopped:
                raise  # a watch that breaks during the test is a failure; at stop it is expected

    def start(self) -> None:
        apps, core = client.AppsV1Api(self.api), client.CoreV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        targets: list[tuple[Callable[..., Any], Callable[[Any], Change], tuple[Any, ...]]] = [
            (apps.list_namespaced_replica_set, self._rs, (self.ns,)),
            (core.list_namespaced_service, self._svc, (self.ns,)),
            (
                custom.list_namespaced_custom_object,
                self._route,
                ("gateway.networking.k8s.io", "v1", self.ns, "httproutes"),
            ),
        ]
        for lister, convert, args in targets:
            t = threading.Thread(target=self._run, args=(lister, convert, *args), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stopped = True
        for w in self._watches:
            w.stop()

    def snapshot(self) -> list[Change]:
        with self._lock:
            return sorted(self.changes, key=lambda c: c.rv)

    @staticmethod
    def _rs(obj: Any) -> Change:
        return Change(
            int(obj.metadata.resource_version),
            "ReplicaSet",
            obj.metadata.name,
            spec_replicas=obj.spec.replicas,
            available=(obj.status.available_replicas or 0) if obj.status else 0,
        )

    @staticmethod
    def _svc(obj: Any) -> Change:
        selector = obj.spec.selector or {}
        return Change(
            int(obj.metadata.resource_version),
            "Service",
            obj.metadata.name,
            selector_hash=selector.get("rollouts-pod-template-hash"),
        )

    @staticmethod
    def _route(obj: dict[str, Any]) -> Change:
        rules = obj["spec"].get("rules", [])
        return Change(
            int(obj["metadata"]["resourceVersion"]),
            "HTTPRoute",
            obj["metadata"]["name"],
            weights=route_weights(rules, "web-stable", "web-canary"),
        )


def first(changes: list[Change], test: Callable[[Change], bool], what: str) -> Change:
    for c in changes:
        if test(c):
            return c
    raise AssertionError(f"never saw: {what}; changes: {changes}")


@pytest.fixture
def world(cluster, tmp_path) -> Iterator[tuple[str, client.ApiClient, StackManager, Clock, Reconciler, Watcher]]:
    ns = unique("fidelity")
    kubectl(cluster, "create", "namespace", ns)
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
    clock = Clock()
    rec = Reconciler(
        ReconcilerConfig(environment="fidelity"), stacks, KubeReader(cluster.kubeconfig), None, clock=clock
    )
    watcher = Watcher(api, ns)
    watcher.start()
    try:
        yield ns, api, stacks, clock, rec, watcher
    finally:
        watcher.stop()


def load(doc: str, ns: str, tag: str, **fields: object) -> tuple[LoadResult, str]:
    loaded = load_text(doc.format(ns=ns, tag=tag, **fields), f"{ns}.yaml")
    assert not loaded.errors, loaded.errors
    return loaded, pod_template_hash(resolve_template(loaded.rollouts[0], loaded.others))


def promote(stacks: StackManager, rec: Reconciler, loaded: LoadResult, command_id: str) -> None:
    stacks.set_tag(
        rec.stack_name(loaded.rollouts[0]), TAG_COMMAND, ManualCommand(command_id, CommandKind.PROMOTE).to_config()
    )


def pods(api: client.ApiClient, ns: str, revision: str) -> list[Any]:
    return client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"rollouts-pod-template-hash={revision}").items


def test_basic_promotion_switches_services_only_to_available_pods_then_scales_the_old_stable_down(world):
    """Issue 10, item 2 and Argo's scaleDownDelaySeconds default of 0 without trafficRouting."""
    ns, api, stacks, clock, rec, watcher = world
    v1, h1 = load(BASIC, ns, "v1")
    assert rec.reconcile_rollout(v1.rollouts[0], v1).phase is Phase.HEALTHY
    v2, h2 = load(BASIC, ns, "v2")
    out = rec.reconcile_rollout(v2.rollouts[0], v2)
    assert (out.phase, out.step) == (Phase.PAUSED, 1)  # 50%: two pods a side
    promote(stacks, rec, v2, "promote-1")
    before = max((c.rv for c in watcher.snapshot()), default=0)
    out = rec.reconcile_rollout(v2.rollouts[0], v2)
    assert out.phase is Phase.HEALTHY, out
    changes = [c for c in watcher.snapshot() if c.rv > before]
    new_rs, old_rs = f"web-{h2}", f"web-{h1}"
    all_available = first(
        changes, lambda c: c.name == new_rs and c.available == 4, "the new ReplicaSet with 4 available pods"
    )
    switched = first(
        changes, lambda c: c.kind == "Service" and c.name == "web-stable" and c.selector_hash == h2, "stable switch"
    )
    shrunk = first(changes, lambda c: c.name == old_rs and c.spec_replicas == 0, "the old stable at 0")
    # selectors move only once every new pod is available (minReadySeconds 2 counted) ...
    assert all_available.rv < switched.rv, changes
    # ... and the old stable goes to 0 in the same update, after the switch (no 30 s delay without routing)
    assert switched.rv < shrunk.rv, changes
    assert not [c for c in changes if c.name == old_rs and c.spec_replicas == 4]


def test_dynamic_stable_scale_shrinks_the_stable_only_after_traffic_left_it_and_moves_pod_metadata(world, cluster):
    """Issue 10, items 2 and 3: dynamicStableScale order, availableReplicas, canary/stable metadata."""
    ns, api, stacks, clock, rec, watcher = world
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="web", stable="web-stable", canary="web-canary"))
    v1, h1 = load(ROUTED, ns, "v1", abort_delay=30)
    rec.reconcile_rollout(v1.rollouts[0], v1)
    assert {p.metadata.labels.get("role") for p in pods(api, ns, h1)} == {"stable"}
    before = max((c.rv for c in watcher.snapshot()), default=0)
    v2, h2 = load(ROUTED, ns, "v2", abort_delay=30)
    out = rec.reconcile_rollout(v2.rollouts[0], v2)
    assert (out.phase, out.step) == (Phase.PAUSED, 1), out
    changes = [c for c in watcher.snapshot() if c.rv > before]
    canary_ready = first(changes, lambda c: c.name == f"web-{h2}" and c.available == 2, "2 available canary pods")
    weighted = first(changes, lambda c: c.kind == "HTTPRoute" and c.weights == (50, 50), "route at 50/50")
    shrunk = first(changes, lambda c: c.name == f"web-{h1}" and c.spec_replicas == 2, "stable shrunk to 2")
    assert canary_ready.rv < weighted.rv < shrunk.rv, changes
    # canaryMetadata on the canary's pods, stableMetadata on the stable's
    canary_pods = pods(api, ns, h2)
    assert canary_pods and all(p.metadata.labels.get("role") == "canary" for p in canary_pods)
    assert all((p.metadata.annotations or {}).get("scrape") == "true" for p in canary_pods)
    # promotion: the canary's pods become stable pods: canary keys removed, stable ones set
    promote(stacks, rec, v2, "promote-1")
    before = max(c.rv for c in watcher.snapshot())
    out = rec.reconcile_rollout(v2.rollouts[0], v2)
    assert out.phase is Phase.HEALTHY
    changes = [c for c in watcher.snapshot() if c.rv > before]
    full = first(changes, lambda c: c.name == f"web-{h2}" and c.available == 4, "4 available new pods")
    switched = first(changes, lambda c: c.kind == "Service" and c.name == "web-stable" and c.selector_hash == h2, "sw")
    assert full.rv < switched.rv, changes
    promoted_pods = pods(api, ns, h2)
    assert len(promoted_pods) == 4
    assert all(p.metadata.labels.get("role") == "stable" for p in promoted_pods)
    assert all("scrape" not in (p.metadata.annotations or {}) for p in promoted_pods)


def test_abort_scale_down_delay_zero_leaves_the_aborted_canary_running(world, cluster):
    """Argo: abortScaleDownDelaySeconds: 0 with trafficRouting means never scale the canary down."""
    ns, api, stacks, clock, rec, watcher = world
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="web", stable="web-stable", canary="web-canary"))
    v1, h1 = load(ROUTED, ns, "v1", abort_delay=0)
    rec.reconcile_rollout(v1.rollouts[0], v1)
    v2, h2 = load(ROUTED, ns, "v2", abort_delay=0)
    rec.reconcile_rollout(v2.rollouts[0], v2)
    stacks.set_tag(rec.stack_name(v2.rollouts[0]), TAG_COMMAND, ManualCommand("abort-1", CommandKind.ABORT).to_config())
    out = rec.reconcile_rollout(v2.rollouts[0], v2)
    assert out.phase is Phase.ABORTED and out.next_due is None
    apps = client.AppsV1Api(api)
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
    )
    assert route_weights(route["spec"]["rules"], "web-stable", "web-canary") == (100, 0)
    assert apps.read_namespaced_replica_set(f"web-{h1}", ns).spec.replicas == 4
    clock.advance(24 * 3600)
    again = rec.reconcile_rollout(v2.rollouts[0], v2)
    assert again.updates == 0 and again.phase is Phase.ABORTED
    assert apps.read_namespaced_replica_set(f"web-{h2}", ns).spec.replicas == 2


NO_STEPS = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "registry.local/web:{tag}", ports: [{{containerPort: 8080}}]}}]
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
"""


def test_no_steps_replaces_pods_within_max_surge_and_max_unavailable(world):
    """Issue 10, item 3: Argo never runs more than replicas+maxSurge pods nor fewer than
    replicas-maxUnavailable available; KULTA used to run both revisions at full size."""
    ns, api, stacks, clock, rec, watcher = world
    v1, h1 = load(NO_STEPS, ns, "v1")
    rec.reconcile_rollout(v1.rollouts[0], v1)
    before = max((c.rv for c in watcher.snapshot()), default=0)
    v2, h2 = load(NO_STEPS, ns, "v2")
    for _ in range(6):  # each turn makes up to 4 moves; 9 updates in all
        out = rec.reconcile_rollout(v2.rollouts[0], v2, max_updates=4)
        if out.phase is Phase.HEALTHY and out.updates == 0:
            break
    assert out.phase is Phase.HEALTHY
    assert RolloutStatus.from_outputs(stacks.outputs(rec.stack_name(v2.rollouts[0]))).stable_revision == h2
    # replay the ReplicaSet writes in etcd order: declared pods and available pods at every instant
    declared = {f"web-{h1}": 4, f"web-{h2}": 0}
    available = {f"web-{h1}": 4, f"web-{h2}": 0}
    peaks, floors = [], []
    for change in watcher.snapshot():
        if change.rv <= before or change.kind != "ReplicaSet" or change.name not in declared:
            continue
        declared[change.name] = change.spec_replicas or 0
        available[change.name] = change.available or 0
        peaks.append(sum(declared.values()))
        floors.append(sum(available.values()))
    assert peaks and max(peaks) <= 5, peaks  # replicas + maxSurge
    assert min(floors) >= 4, floors  # replicas - maxUnavailable, available
    assert declared == {f"web-{h1}": 0, f"web-{h2}": 4}
