"""Blue-green rollouts end to end: real cluster, engine, Prometheus, traffic simulator and event sink.

A watcher (``test_argo_fidelity.Watcher``) records every write of the
namespace's ReplicaSets and Services in etcd order, so the tests check what Argo's
``rollout/bluegreen.go`` promises between the halves of one Pulumi update: the
active Service moves only to a ReplicaSet whose pods are all available, the
preview Service moves first, and the old ReplicaSet goes only after
``scaleDownDelaySeconds`` (on the reconciler's fake clock). The analyses query a
real Prometheus scraping the traffic simulator, which labels the preview
revision's requests with the error rate each test sets.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from kulta.adapters.kube import KubeReader
from kulta.adapters.outbox import Deliverer, Outbox
from kulta.adapters.prometheus import PrometheusClient
from kulta.adapters.sinks import HttpSink, SinkConfig
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.commands import format_history
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.model.status import AnalysisPhase, Phase, RolloutStatus
from kulta.spec.loader import LoadResult
from tests.integration.conftest import kubectl, unique
from tests.integration.eventsink import EventReceiver
from tests.integration.promserver import PromServer, TrafficSim, running_prometheus, running_trafficsim, wait_until
from tests.integration.test_analysis_rollout import event_types
from tests.integration.test_argo_fidelity import Change, Clock, Watcher, first, load, pods, promote

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

DOCS = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: preview-errors, namespace: {ns}}}
spec:
  args: [{{name: preview-hash}}]
  metrics:
    - name: error-ratio
      interval: 1s
      count: 2
      failureLimit: 0
      successCondition: result[0] <= 0.05
      provider:
        prometheus:
          address: {prom}
          timeout: 10
          query: >-
            (sum(rate(http_requests_total{{revision="{{{{args.preview-hash}}}}",code=~"5.."}}[5s])) or vector(0))
            / sum(rate(http_requests_total{{revision="{{{{args.preview-hash}}}}"}}[5s]))
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 3
  minReadySeconds: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "registry.local/web:{tag}", ports: [{{containerPort: 8080}}]}}]
  strategy:
    blueGreen:
      activeService: web-active
      previewService: web-preview
      previewReplicaCount: 1
      scaleDownDelaySeconds: 20
      abortScaleDownDelaySeconds: 0
      previewMetadata:
        labels: {{role: preview}}
      activeMetadata:
        labels: {{role: active}}
{analysis}
"""
ANALYSIS = """      {stage}PromotionAnalysis:
        templates: [{{templateName: preview-errors}}]
        args: [{{name: preview-hash, valueFrom: {{podTemplateHashValue: Latest}}}}]
"""
PRE = "      autoPromotionEnabled: false\n" + ANALYSIS.format(stage="pre")
POST = ANALYSIS.format(stage="post")


@dataclass
class World:
    ns: str
    api: client.ApiClient
    stacks: StackManager
    clock: Clock
    rec: Reconciler
    watcher: Watcher
    sim: TrafficSim
    prom: PromServer
    receiver: EventReceiver


@pytest.fixture
def world(cluster, tmp_path: Path) -> Iterator[World]:
    ns = unique("bluegreen")
    kubectl(cluster, "create", "namespace", ns)
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
    clock = Clock()
    receiver = EventReceiver()
    receiver.start()
    outbox = Outbox(tmp_path / "outbox")
    rec = Reconciler(
        ReconcilerConfig(environment="bluegreen", cluster="kwok"),
        stacks,
        KubeReader(cluster.kubeconfig),
        PrometheusClient(),
        clock=clock,
        outbox=outbox,
        deliverer=Deliverer(outbox, HttpSink(SinkConfig(url=receiver.url)), base_delay=0.1, max_delay=1.0),
    )
    watcher = Watcher(api, ns)
    watcher.start()
    idle = {"active": {"hash": "none-a", "weight": 1}}
    try:
        with (
            running_trafficsim(tmp_path / "sim", idle) as sim,
            running_prometheus([sim.target], tmp_path / "prom") as prom,
        ):
            yield World(ns, api, stacks, clock, rec, watcher, sim, prom, receiver)
    finally:
        watcher.stop()
        receiver.stop()


def revisions(w: World, analysis: str) -> tuple[LoadResult, str, LoadResult, str]:
    v1, h1 = load(DOCS, w.ns, "v1", prom=w.prom.url, analysis=analysis)
    v2, h2 = load(DOCS, w.ns, "v2", prom=w.prom.url, analysis=analysis)
    return v1, h1, v2, h2


def serve(w: World, h1: str, h2: str, preview_errors: float) -> None:
    """Half the requests to each revision (testers on the preview); wait for a full 5 s window in Prometheus."""
    w.sim.set_weights(
        {
            "active": {"hash": h1, "weight": 50, "errorRate": 0.0},
            "preview": {"hash": h2, "weight": 50, "errorRate": preview_errors},
        }
    )
    full = f'count_over_time(http_requests_total{{revision="{h2}",code="200"}}[5s]) >= 5'
    wait_until(lambda: len(w.prom.query(full)) == 1, 40, "a full 5s window of preview traffic in prometheus")


def status(w: World, loaded: LoadResult) -> RolloutStatus:
    return RolloutStatus.from_outputs(w.stacks.outputs(w.rec.stack_name(loaded.rollouts[0])))


def drive(w: World, loaded: LoadResult, until, timeout: float = 90.0) -> RolloutStatus:
    """Turns of the reconciler, the fake clock 1 s on per turn (the metrics' interval), real time for Prometheus."""
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        w.rec.reconcile_rollout(loaded.rollouts[0], loaded)
        st = status(w, loaded)
        if until(st):
            return st
        w.clock.advance(1)
        time.sleep(1)
    raise AssertionError(f"timed out; last status: {st}")


def selector(w: World, name: str) -> str:
    svc = client.CoreV1Api(w.api).read_namespaced_service(name, w.ns)
    return str((svc.spec.selector or {}).get("rollouts-pod-template-hash"))


def replicas(w: World, rs: str) -> int:
    return int(client.AppsV1Api(w.api).read_namespaced_replica_set(rs, w.ns).spec.replicas)


def service_writes(changes: list[Change], name: str) -> list[str | None]:
    """The hash each write of Service ``name`` selected, repeats collapsed."""
    seen: list[str | None] = []
    for c in changes:
        if c.kind == "Service" and c.name == name and (not seen or seen[-1] != c.selector_hash):
            seen.append(c.selector_hash)
    return seen


def delivered(w: World) -> list[str]:
    wait_until(lambda: w.rec.deliver_events() is not None and w.rec.outbox.count() == 0, 20, "events delivered")
    return event_types(w.receiver)


def test_good_revision_previews_pauses_and_switches_only_once_available(world: World) -> None:
    w = world
    v1, h1, v2, h2 = revisions(w, PRE)
    assert w.rec.reconcile_rollout(v1.rollouts[0], v1).phase is Phase.HEALTHY
    assert (selector(w, "web-active"), selector(w, "web-preview")) == (h1, h1)
    serve(w, h1, h2, preview_errors=0.0)
    before = max((c.rv for c in w.watcher.snapshot()), default=0)
    st = drive(w, v2, lambda s: s.phase is Phase.PAUSED)
    # preview: 1 pod of v2 beside 3 of v1, the preview Service on v2, the active one still on v1
    assert (st.current_step_index, st.canary_revision, st.stable_revision) == (0, h2, h1)
    assert (replicas(w, f"web-{h2}"), replicas(w, f"web-{h1}")) == (1, 3)
    assert (selector(w, "web-active"), selector(w, "web-preview")) == (h1, h2)
    (pre,) = [r for r in st.analysis_runs if r.name == f"web-{h2}-prepromotion"]
    assert pre.phase is AnalysisPhase.SUCCESSFUL and len(pre.measurements) == 2, pre
    assert {p.metadata.labels.get("role") for p in pods(w.api, w.ns, h2)} == {"preview"}
    # paused (autoPromotionEnabled: false): more turns change nothing
    w.clock.advance(600)
    assert w.rec.reconcile_rollout(v2.rollouts[0], v2).phase is Phase.PAUSED
    assert selector(w, "web-active") == h1
    promote(w.stacks, w.rec, v2, "promote-1")
    out = w.rec.reconcile_rollout(v2.rollouts[0], v2)
    assert out.phase is Phase.HEALTHY, out
    changes = [c for c in w.watcher.snapshot() if c.rv > before]
    preview_moved = first(changes, lambda c: c.name == "web-preview" and c.selector_hash == h2, "preview on v2")
    preview_ready = first(changes, lambda c: c.name == f"web-{h2}" and c.available == 1, "one available preview pod")
    full = first(changes, lambda c: c.name == f"web-{h2}" and c.available == 3, "three available v2 pods")
    switched = first(changes, lambda c: c.name == "web-active" and c.selector_hash == h2, "active on v2")
    assert preview_ready.rv < full.rv < switched.rv, changes
    assert preview_moved.rv < switched.rv
    assert service_writes(changes, "web-active") == [h2], changes
    # the old ReplicaSet keeps its pods for scaleDownDelaySeconds (20 s), then goes to 0
    assert replicas(w, f"web-{h1}") == 3
    w.clock.advance(19)
    w.rec.reconcile_rollout(v2.rollouts[0], v2)
    assert replicas(w, f"web-{h1}") == 3
    w.clock.advance(2)
    w.rec.reconcile_rollout(v2.rollouts[0], v2)
    assert replicas(w, f"web-{h1}") == 0
    assert {p.metadata.labels.get("role") for p in pods(w.api, w.ns, h2)} == {"active"}
    # kulta history: each update names the revision the active Service selected
    out = io.StringIO()
    format_history(w.stacks.history(w.rec.stack_name(v2.rollouts[0])), out)
    header, *rows = out.getvalue().splitlines()
    assert header.split()[:4] == ["#", "TIME", "STEP", "ACTIVE"], header
    actives = [(row.split()[4], row.split()[5]) for row in rows]  # (ACTIVE, PHASE); TIME is two words
    assert actives[0] == (h1, "Healthy") and (h1, "Paused") in actives and actives[-1] == (h2, "Healthy"), actives
    types = delivered(w)
    assert types[:3] == ["pipelinerun.started", "service.deployed", "pipelinerun.finished"], types
    assert types[3] == "pipelinerun.started" and types[-2:] == ["service.upgraded", "pipelinerun.finished"], types


def test_failing_pre_promotion_analysis_never_switches_the_active_service(world: World) -> None:
    w = world
    v1, h1, v2, h2 = revisions(w, PRE)
    w.rec.reconcile_rollout(v1.rollouts[0], v1)
    serve(w, h1, h2, preview_errors=0.5)
    before = max((c.rv for c in w.watcher.snapshot()), default=0)
    st = drive(w, v2, lambda s: s.phase in (Phase.ABORTED, Phase.PAUSED, Phase.HEALTHY))
    assert st.phase is Phase.ABORTED and st.stable_revision == h1, st
    (pre,) = [r for r in st.analysis_runs if r.name == f"web-{h2}-prepromotion"]
    assert pre.phase is AnalysisPhase.FAILED, pre
    assert "prePromotionAnalysis" in st.message
    changes = [c for c in w.watcher.snapshot() if c.rv > before]
    assert h2 not in service_writes(changes, "web-active"), changes
    assert selector(w, "web-active") == h1
    # abortScaleDownDelaySeconds: 0 leaves the preview pod running; the stable keeps all its pods
    assert (replicas(w, f"web-{h1}"), replicas(w, f"web-{h2}")) == (3, 1)
    types = delivered(w)
    assert types[-3:] == ["incident.detected", "service.rolledback", "pipelinerun.finished"], types


def test_failing_post_promotion_analysis_switches_back_and_aborts(world: World) -> None:
    w = world
    v1, h1, v2, h2 = revisions(w, POST)
    w.rec.reconcile_rollout(v1.rollouts[0], v1)
    serve(w, h1, h2, preview_errors=0.5)
    before = max((c.rv for c in w.watcher.snapshot()), default=0)
    seen: list[RolloutStatus] = []
    w.rec.on_update = seen.append
    st = drive(w, v2, lambda s: s.phase in (Phase.ABORTED, Phase.HEALTHY))
    assert st.phase is Phase.ABORTED and st.stable_revision == h1, st
    (post,) = [r for r in st.analysis_runs if r.name == f"web-{h2}-postpromotion"]
    assert post.phase is AnalysisPhase.FAILED, post
    # the switch was recorded at stage 1 with v2 still not stable
    assert any(s.current_step_index == 1 and s.canary_revision == h2 and s.stable_revision == h1 for s in seen)
    changes = [c for c in w.watcher.snapshot() if c.rv > before]
    # active: v2 only once all 3 of its pods were available, then back to v1
    assert service_writes(changes, "web-active") == [h2, h1], changes
    full = first(changes, lambda c: c.name == f"web-{h2}" and c.available == 3, "three available v2 pods")
    switched = first(changes, lambda c: c.name == "web-active" and c.selector_hash == h2, "active on v2")
    assert full.rv < switched.rv
    # the old ReplicaSet never lost a pod, so the switch back had somewhere to go
    assert not [c for c in changes if c.name == f"web-{h1}" and c.spec_replicas != 3], changes
    assert selector(w, "web-active") == h1
    types = delivered(w)
    assert types[-3:] == ["incident.detected", "service.rolledback", "pipelinerun.finished"], types
