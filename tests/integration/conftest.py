"""Session fixtures for tests against the real things.

``cluster`` brings up one local control plane (etcd, kube-apiserver,
controller-manager, scheduler, kwok nodes), the Gateway API CRDs and a
Prometheus once per test session, with a name and ports unique to this run so
two runs on one machine don't collide; it is torn down at the end. Set
``KULTA_TEST_KUBECONFIG`` to use a cluster you already have instead (the
Gateway API CRDs must be installed there).

``postgres_backend`` starts one throwaway PostgreSQL server per session
(``kulta.devpostgres``: initdb in a temporary directory, a free loopback port,
run as the ``postgres`` account when the tests run as root) and yields its
``postgres://`` URL, for ``$PULUMI_BACKEND_URL``; any number of processes may
use it at once. ``with_table`` gives a test a table of its own in it.

Tools come from the toolchain cache (``dev/toolchain``); a missing tool fails
loudly with the command to run, never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from kulta.devcluster import DevCluster, cluster_down, cluster_up
from kulta.devpostgres import start_postgres, stop_postgres

ROOT = Path(__file__).resolve().parents[2]


def _toolchain_env() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "dev" / "toolchain"), "--env"], capture_output=True, text=True, check=True).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            value = value.strip('"').replace("$PATH", os.environ.get("PATH", ""))
            env[key] = value
    return env


@pytest.fixture(scope="session")
def toolchain() -> dict[str, str]:
    """Put the cached toolchain on PATH for this process and its children."""
    env = _toolchain_env()
    os.environ.update(env)
    needed = ["pulumi", "kubectl"]
    if not os.environ.get("KULTA_TEST_KUBECONFIG"):
        needed += ["kwokctl", "etcd", "kube-apiserver"]  # the suite starts its own control plane
    missing = [t for t in needed if not shutil.which(t)]
    if missing:
        pytest.fail(f"toolchain incomplete ({', '.join(missing)} missing): run dev/toolchain first")
    return env


@pytest.fixture(scope="session")
def cluster(toolchain: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    existing = os.environ.get("KULTA_TEST_KUBECONFIG")
    if existing:
        yield DevCluster(
            name="external",
            state_dir="",
            kubeconfig=existing,
            apiserver_port=0,
            prometheus_port=0,
            prometheus_pid=0,
            targets_file="",
        )
        return
    name = f"kulta-test-{uuid.uuid4().hex[:6]}"
    state = tmp_path_factory.mktemp("cluster")
    c = cluster_up(name, state_dir=state)
    os.environ["KUBECONFIG"] = c.kubeconfig
    try:
        yield c
    finally:
        cluster_down(name, state_dir=state)


@pytest.fixture(scope="session")
def postgres_backend(toolchain: dict[str, str]) -> Iterator[str]:
    """A ``postgres://user:password@127.0.0.1:<port>/kulta?sslmode=disable`` URL of a
    server started for this session and stopped (its directory removed) at the end."""
    server = start_postgres()
    try:
        yield server.url
    finally:
        stop_postgres(server)


def with_table(url: str, table: str) -> str:
    """``url`` with Pulumi's ``table`` parameter: a test's own state, isolated from the others."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "table"] + [("table", table)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture(autouse=True)
def _delete_namespaces_created_by_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Namespaces a cluster test creates are deleted after it, so a long-lived
    cluster (KULTA_TEST_KUBECONFIG) does not fill its nodes with old Pods."""
    if "cluster" not in request.fixturenames:
        yield
        return
    c: DevCluster = request.getfixturevalue("cluster")
    before = set(kubectl(c, "get", "namespaces", "-o", "name").split())
    yield
    created = set(kubectl(c, "get", "namespaces", "-o", "name").split()) - before
    if created:
        kubectl(c, "delete", "--wait=false", *sorted(created))


def unique(prefix: str) -> str:
    """A namespace name no earlier run on the same cluster has used."""
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def kubectl(cluster: DevCluster, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, *args],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def route_yaml(ns: str, name: str = "demo", stable: str = "demo-stable", canary: str = "demo-canary") -> str:
    """A user's HTTPRoute, as their GitOps tool would apply it: all traffic on stable."""
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {ns}
spec:
  parentRefs:
    - name: demo-gateway
      namespace: demo
  rules:
    - matches:
        - path: {{type: PathPrefix, value: /}}
      backendRefs:
        - {{name: {stable}, port: 8080, weight: 100}}
        - {{name: {canary}, port: 8080, weight: 0}}
"""
