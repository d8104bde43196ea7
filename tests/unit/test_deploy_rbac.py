"""The deploy manifests grant exactly the Kubernetes calls KULTA makes, read from the code.

``tests/kube_calls.py`` is the table (written by reading the code); these tests
hold it to the code (every Kubernetes client call in ``kulta/``, every
resource class in ``kulta/adapters/program.py``) and to the RBAC in
``deploy/`` (granted == table, rule by rule). The API server's own answer is
in ``tests/integration/test_deploy_manifests.py``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

from kulta.cli import _parser
from tests.kube_calls import (
    FORBIDDEN,
    KUBE_CLIENT_METHODS,
    KULTA_CALLS,
    LEASE_CLIENT_METHODS,
    PROGRAM_RESOURCES,
    Scope,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OWN_NAMESPACE = "kulta-system"
SERVICE_ACCOUNT = "kulta"
#: `kulta run` flags of the lease-based work sharing
LEASE_FLAGS = frozenset({"--lease-namespace", "--identity"})

#: ``<name> = client.SomethingApi(``: a Kubernetes API client held in ``<name>``
_CLIENT_OBJECT = re.compile(r"([\w.]+) = client\.\w+Api\(")
#: modules with a Kubernetes client that `kulta run` never imports
NOT_IN_THE_RECONCILER = {
    "kulta/adapters/trafficsim.py": "the demo's traffic simulator, started by dev/demo with the developer's kubeconfig",
}
_PROGRAM_RESOURCE = re.compile(r"k8s\.((?:\w+\.)*[A-Z]\w+)\(")


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _all_docs() -> list[dict[str, Any]]:
    return [d for f in sorted(DEPLOY.glob("*.yaml")) for d in _docs(f.name)]


def _granted() -> set[tuple[str, str, str, Scope]]:
    """Every (group, resource, verb, scope) the RBAC manifests give KULTA's ServiceAccount."""
    docs = _all_docs()
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("Role", "ClusterRole")}
    granted: set[tuple[str, str, str, Scope]] = set()
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["kind"] == "RoleBinding", "no ClusterRoleBinding: KULTA is bound per namespace"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": OWN_NAMESPACE}]
        ns = binding["metadata"]["namespace"]
        scope = Scope.OWN if ns == OWN_NAMESPACE else Scope.TARGET
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, f"no resourceNames or wildcards: {rule}"
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (group, resource, verb)
                        granted.add((group, resource, verb, scope))
    return granted


def _table() -> set[tuple[str, str, str, Scope]]:
    return {(c.group, c.resource, c.verb, c.scope) for c in KULTA_CALLS}


def test_the_table_has_no_duplicate_rows():
    assert len(_table()) == len(KULTA_CALLS)


def _client_calls() -> dict[str, set[str]]:
    """Per module of kulta/, the methods called on each Kubernetes API client it builds."""
    calls: dict[str, set[str]] = {}
    for path in sorted((ROOT / "kulta").rglob("*.py")):
        text = path.read_text()
        for holder in _CLIENT_OBJECT.findall(text):
            found = re.findall(re.escape(holder) + r"\.(\w+)\(", text)
            calls.setdefault(path.relative_to(ROOT).as_posix(), set()).update(found)
    return calls


def test_every_kubernetes_client_call_in_kulta_has_rbac_rows():
    calls = _client_calls()
    assert set(calls) - set(NOT_IN_THE_RECONCILER) == {
        "kulta/adapters/kube.py",
        "kulta/adapters/leases.py",
    }, "a new module calls the API"
    leases = calls["kulta/adapters/leases.py"]
    assert leases == set(LEASE_CLIENT_METHODS), "a lease call without a row in tests/kube_calls.py"
    for rows in LEASE_CLIENT_METHODS.values():
        for group, resource, verb in rows:
            assert (group, resource, verb, Scope.OWN) in _table(), (resource, verb)
    called = calls["kulta/adapters/kube.py"]
    # the module's calls as read on 2026-12-01: a scan that finds nothing proves nothing
    assert {"get_namespaced_custom_object", "read_namespaced_replica_set", "list_namespaced_pod"} <= called
    assert called == set(KUBE_CLIENT_METHODS), "a client call without a row in tests/kube_calls.py"
    for method, rows in KUBE_CLIENT_METHODS.items():
        for group, resource, verb in rows:
            assert (group, resource, verb, Scope.TARGET) in _table(), (method, resource, verb)


def test_every_resource_the_program_declares_has_rbac_rows():
    declared = set(_PROGRAM_RESOURCE.findall((ROOT / "kulta" / "adapters" / "program.py").read_text()))
    assert "apps.v1.ReplicaSet" in declared
    assert declared == set(PROGRAM_RESOURCES), "a resource in program.py without a row in tests/kube_calls.py"
    for rows in PROGRAM_RESOURCES.values():
        for group, resource in rows:
            # whatever Pulumi creates it must also read back (refresh) and apply to
            assert {(group, resource, "get", Scope.TARGET), (group, resource, "patch", Scope.TARGET)} <= _table()


def test_route_patches_cover_every_route_kind_kulta_weights():
    from kulta.adapters.kube import _ROUTE_PLURALS
    from kulta.core.constants import GATEWAY_API_VERSION
    from kulta.model.rollout import RouteKind

    group = GATEWAY_API_VERSION.split("/")[0]
    assert set(_ROUTE_PLURALS) == set(RouteKind)
    assert set(PROGRAM_RESOURCES["apiextensions.CustomResourcePatch"]) == {(group, p) for p in _ROUTE_PLURALS.values()}
    assert {(group, p, "get", Scope.TARGET) for p in _ROUTE_PLURALS.values()} <= _table()


def test_the_manifests_grant_exactly_the_table():
    granted = _granted()
    assert granted - _table() == set(), "granted but KULTA never calls it"
    assert _table() - granted == set(), "KULTA calls it but the manifests do not grant it"


def test_nothing_forbidden_is_granted():
    granted = _granted()
    assert {f for f in FORBIDDEN if f in granted} == set()


def _container(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _all_docs() if d["kind"] == kind]
    spec = doc["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else doc["spec"]
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    (container,) = pod["containers"]
    return dict(container)


def _run_flags(args: list[str]) -> set[str]:
    """The flags of the `run` subcommand in ``args`` (global flags come before ``run``)."""
    assert "run" in args
    return {a.split("=", 1)[0] for a in args[args.index("run") + 1 :] if a.startswith("--")}


def _known_run_flags() -> set[str]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {opt for action in sub.choices["run"]._actions for opt in action.option_strings}


def test_the_cronjob_runs_one_pass_with_flags_kulta_run_knows():
    container = _container("CronJob")
    flags = _run_flags(container["args"])
    assert "--once" in flags
    assert flags <= _known_run_flags()
    assert not flags & LEASE_FLAGS, "a CronJob with Forbid runs one pass at a time: no leases"
    (cron,) = [d for d in _all_docs() if d["kind"] == "CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_the_deployment_loops_with_leases_and_flags_kulta_run_knows():
    container = _container("Deployment")
    args = container["args"]
    flags = _run_flags(args)
    assert "--once" not in flags
    assert flags >= LEASE_FLAGS
    assert flags <= _known_run_flags()
    assert f"--lease-namespace={OWN_NAMESPACE}" in args
    assert "--identity=$(POD_NAME)" in args
    pod_name = next(e for e in container["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_workloads_read_the_backend_url_from_a_secret_and_use_the_mounted_kubeconfig():
    (config_map,) = [d for d in _all_docs() if d["kind"] == "ConfigMap"]
    kubeconfig = yaml.safe_load(config_map["data"]["kubeconfig"])
    assert kubeconfig["users"][0]["user"] == {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    for kind in ("Deployment", "CronJob"):
        container = _container(kind)
        backend = next(e for e in container["env"] if e["name"] == "PULUMI_BACKEND_URL")
        assert set(backend["valueFrom"]) == {"secretKeyRef"}
        assert "--kubeconfig=/etc/kulta/kubeconfig" in container["args"]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/kulta")
        assert mount["readOnly"] is True
