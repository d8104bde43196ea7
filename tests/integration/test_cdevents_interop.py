"""KULTA's CDEvents as a consumer on the official CDEvents Go SDK sees them.

The consumer (dev/cdevents-consumer, built by ``dev/toolchain``) is
github.com/cdevents/sdk-go v0.5.1 behind the CloudEvents Go SDK's HTTP
protocol: ``v05.NewFromJsonBytes`` then ``api.Validate``, as the SDK's docs
show. KULTA's real outbox, deliverer and HTTP sink send it every event of a
full and of an aborted rollout, in binary and in structured mode: the status
sequences of tests/event_scenarios.py, and the events the real reconciler
derives from real Pulumi updates on the local cluster. The negative test proves
the oracle bites: an event whose link has no ``tags`` (what KULTA emitted
before, and what KULTA's own JSON-schema check accepts) is rejected.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kulta.adapters.cdevents_schema import validate_event
from kulta.adapters.kube import KubeReader
from kulta.adapters.outbox import Deliverer, DeliveryReport, Outbox
from kulta.adapters.sinks import HttpSink, SinkConfig, SinkMode
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.commands import send_command
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.commands import CommandKind
from kulta.core.events import CDEvent, EventType
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.devcluster import DevCluster
from kulta.errors import TemporaryError
from kulta.model.status import Phase, RolloutStatus
from kulta.spec.loader import LoadResult, load_text
from tests.event_scenarios import aborted_rollout_events, full_rollout_events
from tests.integration.cdevents_consumer import GoConsumer
from tests.integration.conftest import kubectl, route_yaml, unique

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
MODES = [SinkMode.BINARY, SinkMode.STRUCTURED]


@pytest.fixture
def consumer(toolchain: dict[str, str], tmp_path: Path) -> Iterator[GoConsumer]:
    """The Go consumer on a free loopback port (the toolchain fixture puts it on PATH)."""
    go = GoConsumer(tmp_path / "consumer")
    go.start()
    try:
        yield go
    finally:
        code = go.stop()
    assert code == 0, f"the consumer did not stop cleanly ({code}): {go.stderr()}"


def linked(events: list[CDEvent]) -> list[CDEvent]:
    return [e for e in events if e.body["context"].get("links")]


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_every_event_of_a_full_and_an_aborted_rollout_is_accepted(
    consumer: GoConsumer, tmp_path: Path, mode: SinkMode
) -> None:
    web, api = full_rollout_events(), aborted_rollout_events()
    # 7 + 6 events; every one but the two pipelinerun.started carries a PATH link
    assert (len(web), len(api)) == (7, 6)
    assert len(linked(web + api)) == 11
    box = Outbox(tmp_path / "box")
    box.put(web, "prod/shop/web")
    box.put(api, "prod/shop/api")
    with HttpSink(SinkConfig(url=consumer.url, mode=mode)) as sink:
        report = Deliverer(box, sink).deliver_due(T0)
    assert report == DeliveryReport(sent=13, failed=0, pending=0)
    verdicts = consumer.wait_for(13)
    rejected = [(v.type, v.error) for v in verdicts if not v.accepted]
    assert rejected == []
    assert sorted(v.id for v in verdicts) == sorted(e.id for e in web + api)
    assert [v.id for v in verdicts if v.id in {e.id for e in web}] == [e.id for e in web]
    assert [v.id for v in verdicts if v.id in {e.id for e in api}] == [e.id for e in api]
    assert {v.mode for v in verdicts} == {mode.value}
    assert all(v.cdevent_id == v.id for v in verdicts)
    assert {v.type for v in verdicts} == {
        EventType.PIPELINERUN_STARTED.value,
        EventType.ROLLOUT_PROGRESSED.value,
        EventType.SERVICE_UPGRADED.value,
        EventType.INCIDENT_DETECTED.value,
        EventType.SERVICE_ROLLEDBACK.value,
        EventType.PIPELINERUN_FINISHED.value,
    }


def without_tags(ev: CDEvent) -> CDEvent:
    """``ev`` with its link as KULTA built it before: no ``tags``."""
    body = copy.deepcopy(dict(ev.body))
    for link in body["context"]["links"]:
        del link["tags"]
    return dataclasses.replace(ev, body=body)


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_a_link_without_tags_is_rejected_by_the_sdk(consumer: GoConsumer, mode: SinkMode) -> None:
    good = linked(full_rollout_events())[0]
    bad = without_tags(good)
    assert "tags" not in bad.body["context"]["links"][0]
    validate_event(bad.body)  # the spec's JSON schema alone does not catch it
    with HttpSink(SinkConfig(url=consumer.url, mode=mode)) as sink:
        with pytest.raises(TemporaryError, match="rejected with HTTP 400"):
            sink.send(bad)
        sink.send(good)
    verdicts = consumer.wait_for(2)
    assert [(v.id, v.accepted, v.mode) for v in verdicts] == [(good.id, False, mode.value), (good.id, True, mode.value)]
    assert verdicts[0].error.startswith("Validate: jsonschema validation failed")
    assert "at '/context/links/0/tags': got null, want object" in verdicts[0].error
    assert verdicts[1].error == ""


ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: registry.local/web:{tag}
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      scaleDownDelaySeconds: 0
      abortScaleDownDelaySeconds: 0
      trafficRouting:
        gatewayAPI: {{httpRoute: web}}
      steps:
        - setWeight: 50
        - pause: {{duration: 3s}}
        - setWeight: 75
"""
MAX_PASSES = 20
PASS_INTERVAL_SECONDS = 1.0


def load(ns: str, tag: str) -> LoadResult:
    loaded = load_text(ROLLOUT.format(ns=ns, tag=tag), f"{ns}.yaml")
    assert not loaded.errors, loaded.errors
    return loaded


def reconcile_until(rec: Reconciler, loaded: LoadResult, done: Callable[[RolloutStatus], bool]) -> RolloutStatus:
    rollout = loaded.rollouts[0]
    status = None
    for _ in range(MAX_PASSES):
        rec.reconcile_rollout(rollout, loaded)
        status = RolloutStatus.from_outputs(rec.stacks.outputs(rec.stack_name(rollout)))
        if done(status):
            return status
        time.sleep(PASS_INTERVAL_SECONDS)
    raise AssertionError(f"not done after {MAX_PASSES} passes; last status: {status}")


@pytest.mark.cluster
def test_the_events_of_real_updates_are_accepted_in_both_modes(
    cluster: DevCluster, consumer: GoConsumer, tmp_path: Path
) -> None:
    """v1 deployed, v2 promoted through every step, v3 aborted by `kulta abort` during its pause."""
    ns = unique("interop")
    kubeconfig = cluster.kubeconfig
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="web", stable="web-stable", canary="web-canary"))
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=kubeconfig))
    outbox = Outbox(tmp_path / "outbox")
    rec = Reconciler(ReconcilerConfig(environment="interop"), stacks, KubeReader(kubeconfig), None, outbox=outbox)

    v1, v2, v3 = load(ns, "v1"), load(ns, "v2"), load(ns, "v3")
    reconcile_until(rec, v1, lambda s: s.phase is Phase.HEALTHY)
    h2 = pod_template_hash(resolve_template(v2.rollouts[0], v2.others))
    reconcile_until(rec, v2, lambda s: s.phase is Phase.HEALTHY and s.stable_revision == h2)
    reconcile_until(rec, v3, lambda s: s.in_flight)
    send_command(stacks, rec.stack_name(v3.rollouts[0]), CommandKind.ABORT, datetime.now(UTC))
    reconcile_until(rec, v3, lambda s: s.phase is Phase.ABORTED)

    events = outbox.pending()
    types = [e.type for e in events]
    for expected in (EventType.SERVICE_DEPLOYED, EventType.SERVICE_UPGRADED, EventType.SERVICE_ROLLEDBACK):
        assert types.count(expected) == 1, types
    assert types.count(EventType.PIPELINERUN_STARTED) == 3, types
    assert types.count(EventType.PIPELINERUN_FINISHED) == 3, types
    assert EventType.ROLLOUT_PROGRESSED in types
    assert linked(events), "the real updates' events carry PATH links"

    structured = Outbox(tmp_path / "structured")  # the same events again, for the other mode
    structured.put(events, "interop")
    everything = DeliveryReport(sent=len(events), failed=0, pending=0)
    for box, mode in ((outbox, SinkMode.BINARY), (structured, SinkMode.STRUCTURED)):
        with HttpSink(SinkConfig(url=consumer.url, mode=mode)) as sink:
            assert Deliverer(box, sink).deliver_due(datetime.now(UTC)) == everything

    verdicts = consumer.wait_for(2 * len(events))
    assert [(v.type, v.error) for v in verdicts if not v.accepted] == []
    assert [(v.id, v.mode) for v in verdicts] == [(e.id, "binary") for e in events] + [
        (e.id, "structured") for e in events
    ]
