"""A web metric decides the rollout: real cluster and engine, a real HTTP endpoint on 127.0.0.1.

The canary's analysis step uses ``provider.web`` (Argo's docs/analysis/web.md example:
``jsonPath: "{$.data.ok}"``, ``successCondition: result == true``) against a local
server. The reconciler runs in-process with the production ``ProviderDispatcher``.
An endpoint answering ``ok: true`` promotes the canary; ``ok: false`` aborts it and
traffic goes back to stable. The bearer token is a secret argument
(``KULTA_SECRET_SCORES_AUTH_TOKEN``): it reaches the endpoint and never the status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from kulta.adapters.kube import KubeReader
from kulta.adapters.metric_providers import ProviderDispatcher
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.core.routes import route_weights
from kulta.core.times import parse_time
from kulta.model.status import AnalysisPhase, MeasurementPhase, Phase, RolloutStatus
from kulta.spec.loader import load_text
from kulta.spec.namespaces import DefaultNamespaces
from tests.integration.conftest import kubectl, route_yaml, unique
from tests.unit.web_server import Answer, WebServer, serving

pytestmark = [pytest.mark.cluster]

TOKEN = "s3cr3t-web-token"
SERVICE = "pay & co/eu"  # percent-encoded into the URL: %26, %2F

DOCS = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: web-score, namespace: {ns}}}
spec:
  args:
    - name: service-name
    - name: api-token
      valueFrom: {{secretKeyRef: {{name: scores-auth, key: token}}}}
  metrics:
    - name: score-ok
      interval: 1s
      count: 2
      successCondition: result == true
      provider:
        web:
          url: "{url}?service={{{{ args.service-name }}}}"
          timeoutSeconds: 5
          headers:
            - key: Authorization
              value: "Bearer {{{{ args.api-token }}}}"
          jsonPath: "{{$.data.ok}}"
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
        - analysis:
            templates: [{{templateName: web-score}}]
            args: [{{name: service-name, value: "{service}"}}]
        - setWeight: 80
"""


@pytest.fixture
def world(cluster, tmp_path) -> Iterator[tuple[str, WebServer, Reconciler, object]]:
    ns = unique("webmetric")
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="pay", stable="pay-stable", canary="pay-canary"))
    with serving() as server:
        stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
        rec = Reconciler(
            ReconcilerConfig(environment="e2e", cluster="kwok", environ={"KULTA_SECRET_SCORES_AUTH_TOKEN": TOKEN}),
            stacks,
            KubeReader(cluster.kubeconfig),
            ProviderDispatcher(),
        )
        api = config.new_client_from_config(config_file=cluster.kubeconfig)
        yield ns, server, rec, api


def load(ns: str, server: WebServer, tag: str):
    text = DOCS.format(ns=ns, url=server.url("/api/v1/measurement"), tag=tag, service=SERVICE)
    loaded = load_text(text, f"{ns}.yaml")
    assert not loaded.errors, loaded.errors
    rollout = loaded.rollouts[0]
    return loaded, rollout, pod_template_hash(resolve_template(rollout, loaded.others))


def drive(rec: Reconciler, loaded, rollout, until, timeout: float = 120.0) -> RolloutStatus:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        rec.reconcile_rollout(rollout, loaded)
        status = RolloutStatus.from_outputs(rec.stacks.outputs(rec.stack_name(rollout)))
        if until(status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"timed out; last status: {status}")


def start_canary(world, ok: bool):
    ns, server, rec, _api = world
    server.answers["/api/v1/measurement"] = Answer(json.dumps({"data": {"ok": ok, "successPercent": 0.95}}).encode())
    v1, r1, h1 = load(ns, server, "v1")
    drive(rec, v1, r1, lambda s: s.phase is Phase.HEALTHY)
    v2, r2, h2 = load(ns, server, "v2")
    return v2, r2, h1, h2


def assert_requests_carried_the_rendered_values(server: WebServer) -> None:
    assert server.received, "the endpoint was never called"
    for request in server.received:
        assert (request.method, request.path) == ("GET", "/api/v1/measurement?service=pay%20%26%20co%2Feu")
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_endpoint_answering_ok_promotes_the_canary(world):
    ns, server, rec, _api = world
    v2, r2, _h1, h2 = start_canary(world, ok=True)
    st = drive(rec, v2, r2, lambda s: s.phase is Phase.HEALTHY and s.stable_revision == h2)
    run = next(r for r in st.analysis_runs if r.step_index == 1)
    assert run.phase is AnalysisPhase.SUCCESSFUL
    assert [(m.phase, m.value) for m in run.measurements] == [(MeasurementPhase.SUCCESSFUL, "true")] * 2
    assert_requests_carried_the_rendered_values(server)
    assert TOKEN not in json.dumps(rec.stacks.outputs(rec.stack_name(r2)), default=str)


def test_endpoint_answering_not_ok_aborts_the_canary(world):
    ns, server, rec, api = world
    v2, r2, h1, _h2 = start_canary(world, ok=False)
    st = drive(rec, v2, r2, lambda s: s.phase is Phase.ABORTED)
    run = next(r for r in st.analysis_runs if r.step_index == 1)
    assert run.phase is AnalysisPhase.FAILED
    assert [(m.phase, m.value) for m in run.measurements] == [(MeasurementPhase.FAILED, "false")]
    assert st.stable_revision == h1
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "pay"
    )
    assert route_weights(route["spec"]["rules"], "pay-stable", "pay-canary") == (100, 0)
    assert_requests_carried_the_rendered_values(server)
    assert TOKEN not in json.dumps(rec.stacks.outputs(rec.stack_name(r2)), default=str)


#: argoproj/argo-rollouts test/e2e/functional/rollout-secret.yaml, as copied (header names the commit)
ARGO_SECRET_FILE = Path(__file__).resolve().parents[1] / "corpus_upstream" / "argo-rollout-secret.yaml"
ARGO_IMAGE = "nginx:1.19-alpine"


def test_argos_rollout_secret_file_measures_the_url_from_its_secret_at_the_templated_pace(cluster, tmp_path):
    """Argo's own e2e file, unedited: the web URL is the whole ``{{args.secret-url}}`` (a Secret,
    here ``KULTA_SECRET_EXAMPLE_SECRET_SECRETURL``), measured ``count: "{{args.analysis-runs}}"`` (2)
    times ``interval: "{{args.analysis-interval}}"`` (5s) apart; ``It worked!`` passes, then the
    Rollout waits at its ``pause: {}``."""
    ns = unique("argosecret")
    kubectl(cluster, "create", "namespace", ns)
    text = ARGO_SECRET_FILE.read_text()
    assert text.count(ARGO_IMAGE) == 1
    with serving() as server:
        server.answers["/raw/example.json"] = Answer(json.dumps({"message": "It worked!"}).encode())
        secret_url = server.url("/raw/example.json")
        stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
        environ = {"KULTA_SECRET_EXAMPLE_SECRET_SECRETURL": secret_url}
        rec = Reconciler(
            ReconcilerConfig(environment="e2e", cluster="kwok", environ=environ),
            stacks,
            KubeReader(cluster.kubeconfig),
            ProviderDispatcher(),
        )
        namespaces = DefaultNamespaces(default=ns)
        v1 = load_text(text, "rollout-secret.yaml", namespaces=namespaces)
        assert (v1.errors, v1.warnings) == ((), ())
        drive(rec, v1, v1.rollouts[0], lambda s: s.phase is Phase.HEALTHY)
        v2 = load_text(text.replace(ARGO_IMAGE, "nginx:1.20-alpine"), "rollout-secret.yaml", namespaces=namespaces)
        rollout = v2.rollouts[0]
        st = drive(rec, v2, rollout, lambda s: s.phase is Phase.PAUSED and s.current_step_index == 2)
        run = next(r for r in st.analysis_runs if r.step_index == 1)
        assert run.phase is AnalysisPhase.SUCCESSFUL, run
        assert [(m.phase, m.value) for m in run.measurements] == [(MeasurementPhase.SUCCESSFUL, "It worked!")] * 2
        first, second = run.measurements
        gap = (parse_time(second.started_at) - parse_time(first.finished_at or first.started_at)).total_seconds()
        assert gap >= 5, gap
        # the whole URL is the secret's value, not percent-encoded, and never in the status
        assert [(r.method, r.path) for r in server.received] == [("GET", "/raw/example.json")] * 2
        assert secret_url not in json.dumps(stacks.outputs(rec.stack_name(rollout)), default=str)
