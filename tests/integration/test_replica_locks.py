"""A Pulumi lock left in PostgreSQL by a replica that died with its pod.

On Kubernetes each replica of ``kulta run --lease-namespace`` runs in a pod of
its own, so a lock it leaves when killed mid-update names a host no survivor is
on: the pid check cannot judge it. Real parts: a real ``pulumi up`` (kubernetes
provider, a ConfigMap) in a process given another hostname (``unshare --uts``,
as a pod has its own), killed with SIGKILL while its lock row is in the
PostgreSQL table; the local API server with a heartbeat Lease and a Pod named
like that host (kwok runs it). The rows are read with ``psql`` (the test's own
access), not KULTA's reader.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from kulta.adapters.leases import LeaseApi, ReplicaPods
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.core.leases import LeaseKind
from kulta.errors import StackLockedError
from tests.integration.conftest import ROOT, kubectl, unique, with_table
from tests.integration.test_postgres_backend import psql, psql_rows
from tests.integration.test_unrecorded_update import CHILD, STACK

pytestmark = pytest.mark.cluster

ENV = "locks"
POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}}}
spec:
  containers: [{{name: kulta, image: registry.local/kulta:test}}]
"""


def lock_rows(url: str, table: str) -> dict[str, dict[str, object]]:
    return {k: json.loads(v) for k, v in psql_rows(url, table).items() if "/.pulumi/locks/" in f"/{k}"}


def killed_mid_update(state: Path, url: str, table: str, cluster, namespace: str, hostname: str) -> dict[str, object]:
    """Run an update as host ``hostname``, kill it (its whole process group) while it holds
    the stack's lock; return the lock row it left."""
    assert shutil.which("unshare"), "util-linux unshare is needed for a second hostname"
    script = 'hostname "$0" && exec "$@"'
    for _attempt in range(5):
        proc = subprocess.Popen(
            [
                *("unshare", "--uts", "sh", "-c", script, hostname),
                *(sys.executable, "-c", CHILD, str(state), url, cluster.kubeconfig, namespace, STACK, "killed"),
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            rows = lock_rows(url, table)
            if rows:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
                (row,) = rows.values()
                assert row["hostname"] == hostname, row
                return row
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=60)
    raise AssertionError("the update never held its lock long enough to be killed")


def test_a_lock_of_a_replica_whose_pod_is_gone_is_removed_and_no_other(cluster, postgres_backend, tmp_path):
    table = f"replica_locks_{uuid.uuid4().hex[:8]}"
    url = with_table(postgres_backend, table)
    ns = unique("locks")
    kubectl(cluster, "create", "namespace", ns)
    leases = LeaseApi(ns, cluster.kubeconfig, timeout=5.0)
    manager = StackManager(StackSettings(state_dir=tmp_path, backend_url=url, kubeconfig=cluster.kubeconfig))
    manager.owner_gone = ReplicaPods(leases, ENV, cluster.kubeconfig)
    manager.up(STACK, lambda: None, "first")

    # 1. a host that is no replica (a laptop, a CI job): never judged
    laptop = f"laptop-{uuid.uuid4().hex[:5]}"
    left = killed_mid_update(tmp_path, url, table, cluster, ns, laptop)
    with pytest.raises(StackLockedError):
        manager.up(STACK, lambda: None, "blocked by the laptop")
    assert [r["hostname"] for r in lock_rows(url, table).values()] == [laptop]
    psql(postgres_backend, f"DELETE FROM {table} WHERE key LIKE '%.pulumi/locks/%'")  # by hand, as a person would

    # 2. a replica (heartbeat Lease) whose pod runs since before its lock: alive, kept
    replica = f"kulta-{uuid.uuid4().hex[:5]}"
    assert leases.create(LeaseKind.REPLICA, replica, ENV, replica, 15.0) is not None
    kubectl(cluster, "apply", "-f", "-", stdin=POD.format(name=replica, ns=ns))
    core = client.CoreV1Api(config.new_client_from_config(config_file=cluster.kubeconfig))
    deadline = time.monotonic() + 60
    while not [c for c in core.read_namespaced_pod(replica, ns).status.container_statuses or [] if c.state.running]:
        assert time.monotonic() < deadline, "kwok never ran the replica's pod"
        time.sleep(0.5)
    time.sleep(1.0)  # a lock in a later second than the container's start (startedAt has seconds)
    left = killed_mid_update(tmp_path, url, table, cluster, ns, replica)
    with pytest.raises(StackLockedError):
        manager.up(STACK, lambda: None, "blocked by a live replica")
    assert [r["hostname"] for r in lock_rows(url, table).values()] == [replica]

    # 3. its pod is deleted (the replica died with it): the lock is dead, the update runs
    kubectl(cluster, "delete", "pod", replica, "-n", ns, "--wait=true", "--timeout=60s")
    manager.up(STACK, lambda: None, "after the replica's pod is gone")
    assert lock_rows(url, table) == {}
    assert manager.history(STACK, page_size=1)[0].message == "after the replica's pod is gone"
    assert left["hostname"] == replica
