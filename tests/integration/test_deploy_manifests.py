"""The manifests in deploy/ against a real API server that enforces RBAC.

Every manifest passes a server-side dry run; the RBAC objects, really applied,
let KULTA's ServiceAccount make every call of ``tests/kube_calls.py`` and
none of the forbidden ones (``kubectl auth can-i``); and a real ``kulta run
--once`` as that ServiceAccount, through the shipped kubeconfig (token file),
takes a rollout on an HTTPRoute and a GRPCRoute from its first revision through
a canary with pod metadata to promotion, then prunes it. The local control plane runs kube-apiserver with
``--authorization-mode=Node,RBAC`` (kwokctl's default, ``--kube-authorization``),
which the first assertions of the RBAC test prove rather than assume.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from kulta.adapters.stacks import StackManager, StackSettings
from kulta.core.constants import FIELD_MANAGER, LABEL_POD_TEMPLATE_HASH
from kulta.core.routes import route_weights
from kulta.devcluster import DevCluster
from kulta.model.status import Phase
from tests.integration.conftest import ROOT, kubectl, unique
from tests.integration.test_gitops import ROLLOUT, git, live_weights, namespace, status_of
from tests.kube_calls import FORBIDDEN, KULTA_CALLS, Scope

pytestmark = pytest.mark.cluster

DEPLOY = ROOT / "deploy"
OWN = "kulta-system"
TARGET_IN_MANIFEST = "demo"
CLUSTER_ROLE = "kulta-rollouts"
SERVICE_ACCOUNT = "kulta"
RBAC_FILES = ("serviceaccount.yaml", "rbac-leases.yaml", "rbac-rollouts.yaml", "rbac-target-namespace.yaml")
MAX_PASSES = 8

#: test_gitops' Rollout with a GRPCRoute beside its HTTPRoute: two steps, then
#: canaryMetadata and stableMetadata (keys of the same ``canary`` mapping, after ``steps``)
ROLLOUT_BOTH_ROUTES = ROLLOUT.replace("{{httpRoute: shop}}", "{{httpRoute: shop, grpcRoute: shop-rpc}}")
STEPS_AND_METADATA = """        - setWeight: 50
        - setWeight: 80
      canaryMetadata:
        labels: {role: canary}
      stableMetadata:
        labels: {role: stable}"""
GRPC_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: shop-rpc, namespace: {ns}}}
spec:
  parentRefs: [{{name: demo-gateway, namespace: demo}}]
  rules:
    - matches: [{{method: {{type: Exact, service: shop.Shop, method: Get}}}}]
      backendRefs:
        - {{name: shop-stable, port: 8080, weight: 100}}
        - {{name: shop-canary, port: 8080, weight: 0}}
"""


def _kubectl(cluster: DevCluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, *args],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
        timeout=120,
    )


def _render(text: str, own: str, target: str, cluster_role: str) -> str:
    """A manifest moved to test namespaces (and a ClusterRole name of this test's own)."""
    for old, new in ((OWN, own), (f"namespace: {TARGET_IN_MANIFEST}", f"namespace: {target}")):
        text = text.replace(old, new)
    return text.replace(f"name: {CLUSTER_ROLE}", f"name: {cluster_role}")


def _apply_rbac(cluster: DevCluster, own: str, target: str, cluster_role: str) -> None:
    kubectl(cluster, "create", "namespace", own)
    for name in RBAC_FILES:
        kubectl(cluster, "apply", "-f", "-", stdin=_render((DEPLOY / name).read_text(), own, target, cluster_role))


def _can_i(cluster: DevCluster, user: str, verb: str, resource: str, ns: str) -> str:
    proc = _kubectl(cluster, "auth", "can-i", f"--as={user}", verb, resource, "-n", ns)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr  # an error is neither
    return answer


def _ref(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def test_every_manifest_passes_a_server_side_dry_run(cluster):
    files = sorted(DEPLOY.glob("*.yaml"))
    assert {f.name for f in files} >= {"namespace.yaml", "deployment.yaml", "cronjob.yaml", *RBAC_FILES}
    # the namespaced dry runs need the namespaces to exist
    kubectl(cluster, "apply", "-f", str(DEPLOY / "namespace.yaml"))
    assert kubectl(cluster, "get", "namespace", TARGET_IN_MANIFEST, "-o", "name").strip()
    for f in files:
        proc = _kubectl(cluster, "apply", "--dry-run=server", "-f", str(f))
        assert proc.returncode == 0, f"{f.name}: {proc.stderr}"
        assert "(server dry run)" in proc.stdout, proc.stdout


def test_the_service_account_can_make_every_call_kulta_makes_and_nothing_else(cluster):
    suffix = uuid.uuid4().hex[:5]
    own, target, other = f"kulta-own-{suffix}", f"kulta-target-{suffix}", f"kulta-other-{suffix}"
    cluster_role = f"{CLUSTER_ROLE}-{suffix}"
    kubectl(cluster, "create", "namespace", target)
    kubectl(cluster, "create", "namespace", other)
    try:
        _apply_rbac(cluster, own, target, cluster_role)
        sa = f"system:serviceaccount:{own}:{SERVICE_ACCOUNT}"
        # the API server enforces RBAC: the tests' admin is system:masters, a ServiceAccount is not
        groups = kubectl(cluster, "auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}")
        assert "system:masters" in groups
        assert _can_i(cluster, f"system:serviceaccount:{own}:nobody", "list", "pods", own) == "no"
        # and a real request, not only the review: denied, then allowed, as the ServiceAccount
        denied = _kubectl(cluster, "get", "secrets", "-n", own, f"--as={sa}")
        assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
        assert _kubectl(cluster, "get", "replicasets", "-n", target, f"--as={sa}").returncode == 0

        wrong: list[tuple[str, str, str, str]] = []
        for call in KULTA_CALLS:
            home = target if call.scope is Scope.TARGET else own
            if _can_i(cluster, sa, call.verb, call.resource_ref, home) != "yes":
                wrong.append(("denied", call.verb, call.resource_ref, home))
            # granted where the rollouts are (or in KULTA's namespace), nowhere else
            elsewhere = (other, "kube-system", own if call.scope is Scope.TARGET else target)
            for ns in elsewhere:
                if _can_i(cluster, sa, call.verb, call.resource_ref, ns) != "no":
                    wrong.append(("allowed", call.verb, call.resource_ref, ns))
        for group, resource, verb, scope in FORBIDDEN:
            ns = target if scope is Scope.TARGET else own
            for where in (ns, "kube-system"):
                if _can_i(cluster, sa, verb, _ref(group, resource), where) != "no":
                    wrong.append(("allowed", verb, _ref(group, resource), where))
        assert wrong == []
    finally:
        kubectl(cluster, "delete", "clusterrole", cluster_role, "--ignore-not-found")


def sa_kubeconfig(cluster: DevCluster, own: str, tmp_path: Path, token_file: Path | None = None) -> Path:
    """The shipped kubeconfig (deploy/kubeconfig.yaml) pointed at this cluster, with a
    token of KULTA's ServiceAccount in the file the pod's token would be in
    (``token_file`` when given: the caller writes it)."""
    token = token_file or tmp_path / "token"
    if token_file is None:
        token.write_text(kubectl(cluster, "create", "token", SERVICE_ACCOUNT, "-n", own, "--duration=1h").strip())
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    admin_cluster = admin["clusters"][0]["cluster"]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(admin_cluster["certificate-authority-data"]))
    (config_map,) = yaml.safe_load_all((DEPLOY / "kubeconfig.yaml").read_text())
    kubeconfig: dict[str, Any] = yaml.safe_load(config_map["data"]["kubeconfig"])
    shipped_cluster = kubeconfig["clusters"][0]["cluster"]
    shipped_cluster["server"] = admin_cluster["server"]
    shipped_cluster["certificate-authority"] = str(ca)
    user = kubeconfig["users"][0]["user"]
    assert set(user) == {"tokenFile"}
    user["tokenFile"] = str(token)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def _commit(work: Path, ns: str, tag: str) -> None:
    (work / "rollouts").mkdir(exist_ok=True)
    (work / "rollouts" / "shop.yaml").write_text(ROLLOUT_BOTH_ROUTES.format(ns=ns, tag=tag, steps=STEPS_AND_METADATA))
    git(work, "add", "-A")
    git(work, "commit", "-m", tag)
    git(work, "push", "origin", "HEAD:main")


def _grpc_route(api: client.ApiClient, ns: str) -> dict[str, Any]:
    route: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "grpcroutes", "shop-rpc"
    )
    return route


def _kulta_as(kubeconfig: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update({"KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT)})
    proc = subprocess.run(
        [sys.executable, "-m", "kulta.cli", *args, "--state-dir", str(state), "--env", "e2e"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "forbidden" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    return proc


def _until_healthy(kubeconfig: Path, state: Path, stacks: StackManager, ns: str, args: tuple[str, ...]) -> str:
    for _ in range(MAX_PASSES):
        _kulta_as(kubeconfig, state, *args)
        st = status_of(stacks, ns)
        if st.phase is Phase.HEALTHY and not st.canary_revision:
            return st.stable_revision
    raise AssertionError(f"not Healthy after {MAX_PASSES} passes: {status_of(stacks, ns)}")


def test_kulta_run_as_the_service_account_walks_a_canary_and_prunes_it(cluster, tmp_path):
    own = unique("kulta-own")
    ns = namespace(cluster, "kulta-sa")  # the user's namespace and routes, made by an admin
    kubectl(cluster, "apply", "-f", "-", stdin=GRPC_ROUTE.format(ns=ns))
    cluster_role = f"{CLUSTER_ROLE}-{own}"
    bare, work = tmp_path / "remote.git", tmp_path / "work"
    git(tmp_path, "init", "--bare", "-b", "main", str(bare))
    git(tmp_path, "clone", str(bare), str(work))
    git(work, "config", "user.email", "ci@example.test")
    git(work, "config", "user.name", "CI")
    try:
        _apply_rbac(cluster, own, ns, cluster_role)
        kubeconfig = sa_kubeconfig(cluster, own, tmp_path)
        whoami = ("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        who = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), *whoami],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert who == f"system:serviceaccount:{own}:{SERVICE_ACCOUNT}"
        state = tmp_path / "state"
        stacks = StackManager(StackSettings(state_dir=state, kubeconfig=cluster.kubeconfig))
        args = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts", "--kubeconfig", str(kubeconfig))

        _commit(work, ns, "v1")
        v1 = _until_healthy(kubeconfig, state, stacks, ns, args)
        _commit(work, ns, "v2")
        v2 = _until_healthy(kubeconfig, state, stacks, ns, args)
        assert v2 != v1
        admin = config.new_client_from_config(config_file=cluster.kubeconfig)
        assert live_weights(admin, ns) == (100, 0)
        # both routes were weighted by KULTA's server-side apply, as the ServiceAccount
        grpc = _grpc_route(admin, ns)
        assert route_weights(grpc["spec"]["rules"], "shop-stable", "shop-canary") == (100, 0)
        assert FIELD_MANAGER in {m["manager"] for m in grpc["metadata"]["managedFields"]}
        # the canary's pods were patched from canaryMetadata to stableMetadata at promotion
        pods = client.CoreV1Api(admin).list_namespaced_pod(ns, label_selector=f"{LABEL_POD_TEMPLATE_HASH}={v2}").items
        assert len(pods) == 2 and all(p.metadata.labels.get("role") == "stable" for p in pods), pods

        # prune: deletes (and waits for) the ReplicaSets and Services, keeps the user's route
        (work / "rollouts" / "shop.yaml").unlink()
        (work / "rollouts" / "README").write_text("nothing here\n")
        git(work, "add", "-A")
        git(work, "commit", "-m", "remove shop")
        git(work, "push", "origin", "HEAD:main")
        out = _kulta_as(kubeconfig, state, *args, "--prune")
        assert "destroying its stack" in out.stdout, out.stdout
        apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and apps.list_namespaced_replica_set(ns).items:
            time.sleep(0.5)
        assert not apps.list_namespaced_replica_set(ns).items
        assert not [s for s in core.list_namespaced_service(ns).items if s.metadata.name.startswith("shop-")]
        assert live_weights(admin, ns) == (100, 0)
    finally:
        kubectl(cluster, "delete", "clusterrole", cluster_role, "--ignore-not-found")
