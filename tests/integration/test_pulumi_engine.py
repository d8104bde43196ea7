"""The real Pulumi engine and kubernetes provider against the local control plane."""

from __future__ import annotations

import shutil
import time

import pulumi
import pulumi_kubernetes as k8s
import pytest
from kubernetes import client, config
from pulumi import automation as auto

from tests.integration.conftest import ROOT, kubectl, route_yaml, unique
from tests.integration.pulumi_cli import PulumiRun, cli_env, init_stack, run_pulumi

pytestmark = pytest.mark.cluster

NS = "engine-test"


def _api(cluster):
    return config.new_client_from_config(config_file=cluster.kubeconfig)


def _wait(predicate, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _program():
    ns = k8s.core.v1.Namespace("ns", metadata={"name": NS})
    opts = pulumi.ResourceOptions(depends_on=[ns])
    labels = {"app": "web"}
    k8s.apps.v1.ReplicaSet(
        "web",
        metadata={"name": "web", "namespace": NS},
        spec={
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:v1"}]},
            },
        },
        opts=opts,
    )
    k8s.core.v1.Service(
        "web",
        metadata={"name": "web", "namespace": NS, "annotations": {"pulumi.com/skipAwait": "true"}},
        spec={"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        opts=opts,
    )
    k8s.apiextensions.CustomResource(
        "route",
        api_version="gateway.networking.k8s.io/v1",
        kind="HTTPRoute",
        metadata={"name": "web", "namespace": NS},
        spec={
            "parentRefs": [{"name": "demo-gateway", "namespace": "demo"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "web", "port": 80, "weight": 70},
                        {"name": "web-canary", "port": 80, "weight": 30},
                    ]
                }
            ],
        },
        opts=opts,
    )


def test_automation_api_creates_reads_back_is_idempotent_and_destroys(cluster, tmp_path):
    backend = tmp_path / "backend"
    backend.mkdir()
    stack = auto.create_or_select_stack(
        stack_name="engine",
        project_name="kulta-engine-test",
        program=_program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(tmp_path),
            project_settings=auto.ProjectSettings(
                name="kulta-engine-test", runtime="python", backend=auto.ProjectBackend(url=f"file://{backend}")
            ),
            secrets_provider="passphrase",
            env_vars={"PULUMI_CONFIG_PASSPHRASE": "", "KUBECONFIG": cluster.kubeconfig},
        ),
    )
    up = stack.up(color="never")
    assert up.summary.result == "succeeded"
    assert up.summary.resource_changes.get("create") == 5  # stack + 4 resources

    api = _api(cluster)
    core = client.CoreV1Api(api)

    def ready_pods():
        pods = core.list_namespaced_pod(NS, label_selector="app=web").items
        ready = [p for p in pods if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))]
        return len(ready) == 3 and ready

    _wait(ready_pods, what="3 Ready pods (kwok)")
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NS, "httproutes", "web"
    )
    weights = [(r["name"], r["weight"]) for r in route["spec"]["rules"][0]["backendRefs"]]
    assert weights == [("web", 70), ("web-canary", 30)]

    again = stack.up(color="never")
    assert set(again.summary.resource_changes) == {"same"}

    stack.destroy(color="never")
    _wait(
        lambda: (
            NS not in [n.metadata.name for n in core.list_namespace().items]
            or core.read_namespace(NS).status.phase == "Terminating"
        ),
        what="namespace removed",
    )
    stack.workspace.remove_stack("engine")


@pytest.fixture
def repo_project(cluster, tmp_path):
    """The repository's Pulumi project (Pulumi.yaml + __main__.py) on a fresh stack; returns ``(run, ns)``.

    ``run(*args)`` runs the built ``pulumi`` CLI (and so the toolchain's language host) on it.
    """
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, project / name)
    # examples/ci/ holds CI workflows, not KULTA files: `kulta:rollout examples` reads the rest
    shutil.copytree(ROOT / "examples", project / "examples", ignore=shutil.ignore_patterns("ci"))
    (project / "stacks").mkdir()
    ns = unique("cli-test")
    for name in ("demo-rollout.yaml", "analysis-success-rate.yaml"):
        text = (ROOT / "examples" / name).read_text().replace("namespace: demo", f"namespace: {ns}")
        (project / "examples" / name).write_text(text)
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns))
    env = cli_env(tmp_path, KUBECONFIG=cluster.kubeconfig, KULTA_STATE_DIR=str(tmp_path / "state"))
    stack = f"ci.{ns}.demo"
    init_stack(project, env, stack)

    def run(*args: str) -> PulumiRun:
        return run_pulumi(project, env, stack, *args)

    configured = run("config", "set", "kulta:rollout", "examples")
    assert configured.returncode == 0, configured.output
    return run, ns


def test_preview_of_the_repository_project_ends_without_a_traceback(repo_project):
    """The engine stops the language host with SIGINT: a normal end, not a KeyboardInterrupt traceback."""
    run, _ = repo_project
    preview = run("preview", "--diff")
    output = preview.output
    assert preview.returncode == 0, output
    assert "kubernetes:apps/v1:ReplicaSet" in preview.stdout
    assert "Traceback" not in output
    assert "KeyboardInterrupt" not in output


def test_pulumi_cli_preview_and_up_on_the_repository_project(cluster, repo_project):
    """`pulumi preview` / `pulumi up` on Pulumi.yaml + __main__.py with the built CLI and language host."""
    run, ns = repo_project

    def pulumi_cli(*args):
        result = run(*args)
        assert result.returncode == 0, result.output
        return result.stdout

    preview = pulumi_cli("preview", "--diff")
    assert "kubernetes:apps/v1:ReplicaSet" in preview and "create" in preview
    out = pulumi_cli("up", "--yes")
    assert "Healthy" in out or "phase" in out
    rs = client.AppsV1Api(_api(cluster)).list_namespaced_replica_set(ns).items
    assert [r.spec.replicas for r in rs] == [4]
    again = pulumi_cli("preview", "--diff")
    assert "ReplicaSet" not in again.split("Resources:")[-1] or "4 unchanged" in again or "unchanged" in again
    outputs = pulumi_cli("stack", "output", "phase")
    assert outputs.strip() == "Healthy"
