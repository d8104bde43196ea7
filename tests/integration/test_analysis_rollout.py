"""Analysis decides the rollout: real cluster, engine, Prometheus, traffic simulator and event sink.

The simulator reads the HTTPRoute weights KULTA writes, so the canary only
gets traffic (and errors) once KULTA shifts it; Prometheus scrapes the
simulator; the reconciler queries Prometheus between steps; every CDEvent goes
through the durable outbox to a real HTTP receiver and is schema-checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config

from kulta.adapters.cdevents_schema import validate_event
from kulta.adapters.kube import KubeReader
from kulta.adapters.metrics import ReconcilerMetrics
from kulta.adapters.outbox import Deliverer, Outbox
from kulta.adapters.prometheus import PrometheusClient
from kulta.adapters.sinks import HttpSink, SinkConfig
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.core.routes import route_weights
from kulta.core.times import parse_time
from kulta.model.status import AnalysisPhase, MeasurementPhase, Phase, RolloutStatus
from kulta.spec.loader import load_text
from tests.integration.conftest import ROOT, kubectl, route_yaml, unique
from tests.integration.eventsink import EventReceiver
from tests.integration.promserver import free_port, running_prometheus, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

DOCS = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: errors, namespace: {ns}}}
spec:
  args: [{{name: canary-hash, valueFrom: {{podTemplateHashValue: Latest}}}}]
  metrics:
    - name: error-ratio
      interval: 1s
      count: 4
      initialDelay: 3s
      failureLimit: 1
      consecutiveErrorLimit: 2
      successCondition: result[0] <= 0.05
      provider:
        prometheus:
          address: {prom}
          timeout: 10
          query: >-
            (sum(rate(http_requests_total{{revision="{{{{args.canary-hash}}}}",code=~"5.."}}[5s])) or vector(0))
            / sum(rate(http_requests_total{{revision="{{{{args.canary-hash}}}}"}}[5s]))
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: pay, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: pay}}}}
  template:
    metadata: {{labels: {{app: pay}}}}
    spec:
      containers: [{{name: pay, image: "registry.local/pay:{tag}", ports: [{{containerPort: 8080}}]}}]
  strategy:
    canary:
      canaryService: pay-canary
      stableService: pay-stable
      scaleDownDelaySeconds: 0
      abortScaleDownDelaySeconds: 0
      trafficRouting: {{gatewayAPI: {{httpRoute: pay}}}}
      steps:
        - setWeight: 50
        - analysis: {{templates: [{{templateName: errors}}]}}
        - setWeight: 80
"""


@contextmanager
def simulator(cluster, ns: str, workdir: Path) -> Iterator[tuple[str, Path]]:
    """The traffic simulator following the live HTTPRoute; yields its target and profile file."""
    workdir.mkdir(parents=True, exist_ok=True)
    profile = workdir / "profile.json"
    profile.write_text(
        json.dumps({"stable": {"hash": "none", "weight": 100}, "canary": {"hash": "none-c", "weight": 0}})
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kulta.adapters.trafficsim",
            "--port",
            str(port),
            "--weights-file",
            str(profile),
            "--kubeconfig",
            cluster.kubeconfig,
            "--namespace",
            ns,
            "--route",
            "pay",
            "--stable-service",
            "pay-stable",
            "--canary-service",
            "pay-canary",
            "--tick",
            "0.2",
        ],
        stdout=(workdir / "sim.log").open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_until(lambda: _serving(port), 20, "traffic simulator")
        yield f"127.0.0.1:{port}", profile
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _serving(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def set_profile(profile: Path, stable: str, canary: str, canary_errors: float) -> None:
    tmp = profile.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "stable": {"hash": stable, "weight": 100, "errorRate": 0.0},
                "canary": {"hash": canary, "weight": 0, "errorRate": canary_errors},
            }
        )
    )
    tmp.replace(profile)


@pytest.fixture
def world(cluster, tmp_path):
    ns = unique("analysis")
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="pay", stable="pay-stable", canary="pay-canary"))
    receiver = EventReceiver()
    receiver.start()
    with (
        simulator(cluster, ns, tmp_path / "sim") as (target, profile),
        running_prometheus([target], tmp_path / "prom") as prom,
    ):
        outbox = Outbox(tmp_path / "outbox")
        stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
        rec = Reconciler(
            ReconcilerConfig(environment="e2e", cluster="kwok"),
            stacks,
            KubeReader(cluster.kubeconfig),
            PrometheusClient(),
            outbox=outbox,
            deliverer=Deliverer(outbox, HttpSink(SinkConfig(url=receiver.url)), base_delay=0.1, max_delay=1.0),
            metrics=ReconcilerMetrics(),
        )
        api = config.new_client_from_config(config_file=cluster.kubeconfig)
        yield ns, prom, profile, rec, stacks, receiver, api
    receiver.stop()


def load(ns: str, prom_url: str, tag: str):
    loaded = load_text(DOCS.format(ns=ns, prom=prom_url, tag=tag), f"{ns}.yaml")
    assert not loaded.errors, loaded.errors
    rollout = loaded.rollouts[0]
    return loaded, rollout, pod_template_hash(resolve_template(rollout, loaded.others))


def drive(rec: Reconciler, loaded, rollout, until, timeout: float = 120.0) -> RolloutStatus:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        rec.reconcile_rollout(rollout, loaded)
        rec.deliver_events()
        status = RolloutStatus.from_outputs(rec.stacks.outputs(rec.stack_name(rollout)))
        if until(status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"timed out; last status: {status}")


def event_types(receiver: EventReceiver) -> list[str]:
    out = []
    for r in receiver.accepted():
        body = r.json()
        validate_event(body)
        assert r.headers["ce-id"] == body["context"]["id"]
        out.append(body["context"]["type"].split(".")[2] + "." + body["context"]["type"].split(".")[3])
    return out


def start_canary(world, errors: float):
    ns, prom, profile, rec, stacks, receiver, api = world
    v1, r1, h1 = load(ns, prom.url, "v1")
    drive(rec, v1, r1, lambda s: s.phase is Phase.HEALTHY)
    v2, r2, h2 = load(ns, prom.url, "v2")
    set_profile(profile, h1, h2, errors)
    return v2, r2, h1, h2


def healthy_then_good_canary(world, docs: str):
    """v1 of ``docs`` driven to Healthy, then v2 loaded with a canary answering without errors."""
    ns, prom, profile, rec, stacks, receiver, api = world
    v1 = load_text(docs.format(ns=ns, prom=prom.url, tag="v1"), f"{ns}.yaml")
    assert not v1.errors, v1.errors
    drive(rec, v1, v1.rollouts[0], lambda s: s.phase is Phase.HEALTHY)
    v2 = load_text(docs.format(ns=ns, prom=prom.url, tag="v2"), f"{ns}.yaml")
    rollout = v2.rollouts[0]
    h1 = RolloutStatus.from_outputs(stacks.outputs(rec.stack_name(rollout))).stable_revision
    h2 = pod_template_hash(resolve_template(rollout, v2.others))
    set_profile(profile, h1, h2, 0.0)
    return v2, rollout, h2


def test_good_canary_is_promoted_and_tells_its_story(world):
    ns, prom, profile, rec, stacks, receiver, api = world
    v2, r2, h1, h2 = start_canary(world, 0.0)
    st = drive(rec, v2, r2, lambda s: s.phase is Phase.HEALTHY and s.stable_revision == h2)
    run = next(r for r in st.analysis_runs if r.step_index == 1)
    assert run.phase is AnalysisPhase.SUCCESSFUL
    assert [m.phase for m in run.measurements].count(MeasurementPhase.SUCCESSFUL) == 4
    counted = rec.metrics.registry.get_sample_value("kulta_analysis_measurements_total", {"phase": "Successful"})
    assert counted == 4
    wait_until(lambda: rec.deliver_events() is not None and rec.outbox.count() == 0, 20, "events delivered")
    types = event_types(receiver)
    assert types[:3] == ["pipelinerun.started", "service.deployed", "pipelinerun.finished"], types
    rest = types[3:]
    assert rest[0] == "pipelinerun.started" and rest[-2:] == ["service.upgraded", "pipelinerun.finished"], rest
    assert "incident.detected" not in rest
    chain = {r.json()["context"].get("chainId") for r in receiver.accepted()[3:]}
    assert len(chain) == 1
    finished = receiver.accepted()[-1].json()
    assert finished["subject"]["content"]["outcome"] == "success"


def test_canary_with_20_percent_errors_is_aborted_by_analysis(world):
    ns, prom, profile, rec, stacks, receiver, api = world
    v2, r2, h1, h2 = start_canary(world, 0.2)
    st = drive(rec, v2, r2, lambda s: s.phase is Phase.ABORTED)
    run = next(r for r in st.analysis_runs if r.step_index == 1)
    assert run.phase is AnalysisPhase.FAILED
    failed = [m for m in run.measurements if m.phase is MeasurementPhase.FAILED]
    judged = [m for m in run.measurements if m.phase is not MeasurementPhase.ERROR]
    # failureLimit + 1 failures end it; an Error (no data yet on a loaded machine) is not a judgement
    assert len(failed) == 2 and len(judged) <= 2 + 1, run.measurements
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "pay"
    )
    assert route_weights(route["spec"]["rules"], "pay-stable", "pay-canary") == (100, 0)
    assert st.stable_revision == h1
    wait_until(lambda: rec.deliver_events() is not None and rec.outbox.count() == 0, 20, "events delivered")
    types = event_types(receiver)
    assert types[-3:] == ["incident.detected", "service.rolledback", "pipelinerun.finished"], types
    assert receiver.accepted()[-1].json()["subject"]["content"]["outcome"] == "failure"


def test_prometheus_killed_mid_analysis_aborts_never_promotes(world):
    ns, prom, profile, rec, stacks, receiver, api = world
    v2, r2, h1, h2 = start_canary(world, 0.0)
    drive(rec, v2, r2, lambda s: any(r.measurements for r in s.analysis_runs))
    prom.kill()
    st = drive(
        rec,
        v2,
        r2,
        lambda s: s.aborted or (s.phase is Phase.HEALTHY and not s.in_flight),
    )
    assert st.phase is Phase.ABORTED and st.stable_revision == h1
    run = next(r for r in st.analysis_runs if r.step_index == 1)
    assert run.phase is AnalysisPhase.ERROR
    errors = [m for m in run.measurements if m.phase is MeasurementPhase.ERROR]
    assert len(errors) == 3  # consecutiveErrorLimit 2 exceeded


def test_a_strategy_edit_during_analysis_lets_it_finish_then_restarts_from_step_0(world):
    """Issue 10, item 1: shortening the steps while the canary sits on an analysis step."""
    ns, prom, profile, rec, stacks, receiver, api = world
    v2, r2, h1, h2 = start_canary(world, 0.0)
    running = drive(rec, v2, r2, lambda s: any(r.measurements and not r.phase.completed for r in s.analysis_runs))
    assert running.current_step_index == 1 and running.stable_revision == h1
    # the same revision, the analysis step and everything after it removed, a pause added
    shortened_doc = DOCS.replace(
        "        - analysis: {{templates: [{{templateName: errors}}]}}\n        - setWeight: 80\n",
        "        - pause: {{}}\n",
    )
    assert shortened_doc != DOCS
    loaded = load_text(shortened_doc.format(ns=ns, prom=prom.url, tag="v2"), f"{ns}.yaml")
    assert not loaded.errors, loaded.errors
    rollout = loaded.rollouts[0]
    seen: list[RolloutStatus] = []
    rec.on_update = seen.append
    st = drive(rec, loaded, rollout, lambda s: s.phase is Phase.PAUSED, timeout=60)
    # never promoted: paused at the new step 1 with the new step 0's weight
    assert st.stable_revision == h1 and st.canary_revision == h2 and st.current_step_index == 1
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "pay"
    )
    assert route_weights(route["spec"]["rules"], "pay-stable", "pay-canary") == (50, 50)
    # the recorded sequence: the analysis ran to its end, then stable weights, then step 0
    restart = next(i for i, s in enumerate(seen) if s.restart_reason)
    assert [(w.stable, w.canary) for w in seen[restart].weights] == [(100, 0)]
    assert seen[restart].current_step_index == 0 and "strategy changed in Git" in seen[restart].message
    assert seen[restart + 1].current_step_index == 0 and seen[restart + 1].weights[0].canary == 50
    assert restart > 0, seen
    before = seen[restart - 1]  # recorded just before the restart: how the analysis ended
    old_run = next(r for r in before.analysis_runs if r.step_index == 1)
    successful = [m for m in old_run.measurements if m.phase is MeasurementPhase.SUCCESSFUL]
    assert old_run.phase is AnalysisPhase.SUCCESSFUL and len(successful) == 4, old_run
    messages = [h.message for h in reversed(stacks.history(rec.stack_name(rollout)))]
    assert any("strategy changed in Git" in m and "canary=0%" in m for m in messages), messages


def test_an_analysis_failing_after_a_strategy_edit_aborts(world):
    ns, prom, profile, rec, stacks, receiver, api = world
    v2, r2, h1, h2 = start_canary(world, 0.2)
    drive(rec, v2, r2, lambda s: any(r.measurements and not r.phase.completed for r in s.analysis_runs))
    shortened_doc = DOCS.replace(
        "        - analysis: {{templates: [{{templateName: errors}}]}}\n        - setWeight: 80\n", ""
    )
    loaded = load_text(shortened_doc.format(ns=ns, prom=prom.url, tag="v2"), f"{ns}.yaml")
    assert not loaded.errors, loaded.errors
    st = drive(rec, loaded, loaded.rollouts[0], lambda s: s.phase in (Phase.ABORTED, Phase.HEALTHY), timeout=60)
    assert st.phase is Phase.ABORTED and st.stable_revision == h1


BACKGROUND_DOCS = (
    DOCS.replace(
        "      steps:\n"
        "        - setWeight: 50\n"
        "        - analysis: {{templates: [{{templateName: errors}}]}}\n"
        "        - setWeight: 80\n",
        "      analysis:\n"
        "        templates: [{{templateName: errors-forever}}]\n"
        "        startingStep: 1\n"
        "      steps:\n"
        "        - setWeight: 50\n"
        "        - pause: {{duration: 6s}}\n"
        "        - setWeight: 80\n",
    )
    + """---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: errors-forever, namespace: {ns}}}
spec:
  args: [{{name: canary-hash, valueFrom: {{podTemplateHashValue: Latest}}}}]
  metrics:
    - name: error-ratio
      interval: 1s
      failureLimit: 1
      consecutiveErrorLimit: 4
      successCondition: result[0] <= 0.05
      provider:
        prometheus:
          address: {prom}
          timeout: 10
          query: >-
            (sum(rate(http_requests_total{{revision="{{{{args.canary-hash}}}}",code=~"5.."}}[5s])) or vector(0))
            / sum(rate(http_requests_total{{revision="{{{{args.canary-hash}}}}"}}[5s]))
"""
)


def test_background_analysis_starts_at_its_step_and_is_terminated_at_promotion(world):
    """Issue 10, item 3: a background run without a count runs until the rollout ends it."""
    ns, prom, profile, rec, stacks, receiver, api = world
    assert BACKGROUND_DOCS.count("errors-forever") == 2
    v2, rollout, h2 = healthy_then_good_canary(world, BACKGROUND_DOCS)
    seen: list[RolloutStatus] = []
    rec.on_update = seen.append
    st = drive(rec, v2, rollout, lambda s: s.phase is Phase.HEALTHY and s.stable_revision == h2, timeout=120)
    # no background run at step 0 (startingStep: 1); one from step 1 on
    assert all(not s.analysis_runs for s in seen if s.in_flight and s.current_step_index == 0), seen
    running = [s for s in seen if s.in_flight and any(r.step_index is None for r in s.analysis_runs)]
    assert running and all(s.current_step_index >= 1 for s in running)
    (background,) = [r for r in st.analysis_runs if r.step_index is None]
    assert background.phase is AnalysisPhase.SUCCESSFUL, background
    assert background.message == "Run Terminated: rollout promoted", background
    assert background.measurements  # it measured while the canary was in flight


#: the step's analysis with Argo's templated pace (rollout-secret.yaml: ``count: "{{args.analysis-runs}}"``,
#: ``interval: "{{args.analysis-interval}}"``): the template's defaults (1s, 9 runs) are overridden
#: by the Rollout's values (3s, 3 runs), so the pace seen is the Rollout's.
TEMPLATED_DOCS = (
    DOCS.replace(
        "  args: [{{name: canary-hash, valueFrom: {{podTemplateHashValue: Latest}}}}]",
        "  args:\n"
        "    - {{name: canary-hash, valueFrom: {{podTemplateHashValue: Latest}}}}\n"
        '    - {{name: analysis-interval, value: "1s"}}\n'
        '    - {{name: analysis-runs, value: "9"}}',
    )
    .replace(
        "      interval: 1s\n      count: 4\n",
        '      interval: "{{{{args.analysis-interval}}}}"\n      count: "{{{{ args.analysis-runs }}}}"\n',
    )
    .replace(
        "        - analysis: {{templates: [{{templateName: errors}}]}}",
        "        - analysis:\n"
        "            templates: [{{templateName: errors}}]\n"
        '            args: [{{name: analysis-interval, value: "3s"}}, {{name: analysis-runs, value: "3"}}]',
    )
)
TEMPLATED_INTERVAL = 3


def test_a_templated_interval_and_count_measure_at_the_rendered_pace(world):
    """Issue 13: the reconciler measures and schedules with ``interval: "{{args.analysis-interval}}"``
    rendered (3s), not the template's default (1s), and stops after the rendered count (3)."""
    ns, prom, profile, rec, stacks, receiver, api = world
    assert TEMPLATED_DOCS.count("args.analysis-interval") == 1 and TEMPLATED_DOCS.count('value: "3s"') == 1
    v2, rollout, h2 = healthy_then_good_canary(world, TEMPLATED_DOCS)
    assert v2.warnings == (), v2.warnings  # every templated value is a literal: all checked
    # the loop's way: the next turn comes when the outcome says it is due, never earlier
    deadline = time.monotonic() + 120
    dues: list[tuple[int, datetime]] = []  # (measurements taken, next due) after each turn of the analysis
    status = None
    while time.monotonic() < deadline:
        outcome = rec.reconcile_rollout(rollout, v2)
        status = RolloutStatus.from_outputs(stacks.outputs(rec.stack_name(rollout)))
        if status.phase is Phase.HEALTHY and status.stable_revision == h2:
            break
        run = next((r for r in status.analysis_runs if r.step_index == 1), None)
        assert outcome.next_due is not None, outcome
        if run is not None and not run.phase.completed:
            dues.append((len(run.measurements), outcome.next_due))
        time.sleep(max(0.0, min(10.0, (outcome.next_due - rec.clock()).total_seconds())))
    else:
        raise AssertionError(f"timed out; last status: {status}")
    run = next(r for r in status.analysis_runs if r.step_index == 1)
    assert run.phase is AnalysisPhase.SUCCESSFUL, run
    # the rendered count of judged measurements; an Error first (Prometheus has no data yet
    # on a loaded machine) is no judgement and is not counted
    judged = [m.phase for m in run.measurements if m.phase is not MeasurementPhase.ERROR]
    assert judged == [MeasurementPhase.SUCCESSFUL] * 3, run.measurements
    taken = len(run.measurements)
    started = [parse_time(m.started_at) for m in run.measurements]
    finished = [parse_time(m.finished_at or m.started_at) for m in run.measurements]
    # Argo's generateMetricTasks: next measurement once lastMeasurement.FinishedAt + interval has passed
    gaps = [(started[i + 1] - finished[i]).total_seconds() for i in range(taken - 1)]
    assert all(TEMPLATED_INTERVAL <= gap < TEMPLATED_INTERVAL + 5 for gap in gaps), gaps
    # after each measurement the turn asked to come back exactly one rendered interval later
    after_measurement = {n: due for n, due in dues if 1 <= n < taken}
    assert after_measurement == {n: finished[n - 1] + timedelta(seconds=TEMPLATED_INTERVAL) for n in range(1, taken)}, (
        dues
    )
