"""Rollouts whose Pulumi state lives in PostgreSQL: real server, engine, git and cluster.

Every `kulta` process here gets a state directory of its own, as replicas that
share only the backend and the cluster would: whatever a step needs must come
from PostgreSQL. Each test has its own table (Pulumi's ``table`` parameter) in
the session's server (``postgres_backend``). The table's rows are read with
``psql`` here, not with KULTA's reader, and Pulumi's own ``stack export`` is the
oracle for what KULTA reads directly.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pytest
from kubernetes import config

from kulta.adapters.postgres_backend import PostgresBackend
from kulta.adapters.stacks import StackManager, StackSettings, stack_name_for
from kulta.model.status import Phase, RolloutStatus, RouteWeight
from tests.integration.conftest import ROOT, with_table
from tests.integration.test_gitops import HOLD_STEPS, WALK_STEPS, commit, kulta, live_weights, namespace, repo
from tests.unit.test_stack_locks import dead_pid

pytestmark = pytest.mark.cluster

__all__ = ["repo"]  # the git fixture, shared with test_gitops


def psql(url: str, sql: str) -> str:
    """One statement through ``psql`` (the test's own access to the table, not KULTA's reader)."""
    parts = urlsplit(url)
    target = ["-h", parts.hostname or "", "-p", str(parts.port), "-U", parts.username or "", "-d", parts.path[1:]]
    return subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *target, "-c", sql],
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSWORD": parts.password or ""},
        check=True,
        timeout=60,
    ).stdout


def psql_rows(url: str, table: str) -> dict[str, bytes]:
    """Every row of ``table``: key → the blob Pulumi stored (base64 in ``{"data": ...}``)."""
    out = psql(url, f"SELECT coalesce(json_object_agg(key, data), '{{}}'::json) FROM {table}")
    return {k: base64.b64decode(v["data"]) for k, v in json.loads(out).items()}


def kulta_status(url: str, state: Path) -> subprocess.CompletedProcess[str]:
    """`kulta status` with no cluster at hand: it reads only the backend."""
    return subprocess.run(
        [sys.executable, "-m", "kulta.cli", "status", "--state-dir", str(state), "--env", "e2e"],
        capture_output=True,
        text=True,
        env={**os.environ, "PULUMI_BACKEND_URL": url, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


@pytest.fixture
def backend(postgres_backend: str) -> tuple[str, str]:
    """(URL, table): a table of this test's own in the session's server."""
    table = f"kulta_{uuid.uuid4().hex[:8]}"
    return with_table(postgres_backend, table), table


def manager(url: str, state: Path, kubeconfig: str) -> StackManager:
    return StackManager(StackSettings(state_dir=state, backend_url=url, kubeconfig=kubeconfig))


def test_a_canary_walks_to_healthy_on_postgres_and_status_and_history_read_it(cluster, repo, backend, tmp_path):
    bare, work = repo
    url, table = backend
    password = urlsplit(url).password or ""
    assert len(password) >= 16
    ns = namespace(cluster, "pg-walk")
    run = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts")
    outputs = []

    c1 = commit(work, ns, "v1", WALK_STEPS, "v1")
    outputs.append(kulta(cluster, tmp_path / "replica-a", *run, backend=url))
    assert outputs[-1].returncode == 0, outputs[-1].stdout + outputs[-1].stderr
    c2 = commit(work, ns, "v2", WALK_STEPS, "v2")
    # another "replica": nothing of replica-a's disk, only the backend and the cluster
    outputs.append(kulta(cluster, tmp_path / "replica-b", *run, backend=url))
    assert outputs[-1].returncode == 0, outputs[-1].stdout + outputs[-1].stderr

    stack = stack_name_for("e2e", ns, "shop")
    direct = manager(url, tmp_path / "reader", cluster.kubeconfig)
    assert direct.direct is not None  # psql is on PATH: the PostgreSQL rows are read directly
    st = RolloutStatus.from_outputs(direct.outputs(stack))
    assert st.phase is Phase.HEALTHY and st.git_commit == c2 and not st.in_flight
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    assert live_weights(api, ns) == (100, 0)

    # Pulumi's own `stack export` is the oracle for the direct read
    through_cli = manager(url, tmp_path / "cli-reader", cluster.kubeconfig)
    through_cli.direct = None  # read through the CLI instead
    assert through_cli.outputs(stack) == direct.outputs(stack)
    assert direct.list_stacks() == through_cli.list_stacks() == [stack]

    outputs.append(kulta(cluster, tmp_path / "laptop", "status", backend=url))
    status = outputs[-1]
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if f"{ns}/shop" in line)
    assert "Healthy" in row, status.stdout
    outputs.append(kulta(cluster, tmp_path / "laptop", "history", f"{ns}/shop", backend=url))
    history = outputs[-1]
    assert history.returncode == 0, history.stderr
    # v1 went straight to stable (one update); v2 walked 20, 50, 80, then was promoted
    assert [ln.split()[3] for ln in history.stdout.splitlines()[2:] if c2[:7] in ln] == ["0/3", "1/3", "2/3", "3/3"]
    assert any(c1[:7] in ln for ln in history.stdout.splitlines()), history.stdout

    # the password is in no output, no row (history, checkpoints, tags), no local file (Pulumi.yaml)
    rows = psql_rows(url, table)
    assert any("/.pulumi/history/" in key for key in rows)
    assert not [k for k, blob in rows.items() if password.encode() in blob]
    assert not [r for r in outputs if password in r.stdout + r.stderr]
    local = [f for d in ("replica-a", "replica-b", "laptop") for f in files_under(tmp_path / d)]
    assert any(f.name == "Pulumi.yaml" for f in local)
    assert not [f for f in local if password.encode() in f.read_bytes()]
    assert not [k for k in rows if "/.pulumi/locks/" in k]


def test_an_abort_from_another_machine_is_applied_on_postgres(cluster, repo, backend, tmp_path):
    bare, work = repo
    url, _table = backend
    ns = namespace(cluster, "pg-abort")
    run = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts")
    commit(work, ns, "v1", HOLD_STEPS, "v1")
    assert kulta(cluster, tmp_path / "a", *run, backend=url).returncode == 0
    commit(work, ns, "v2", HOLD_STEPS, "v2")
    paused = kulta(cluster, tmp_path / "b", *run, backend=url)
    assert paused.returncode == 0, paused.stdout + paused.stderr
    stacks = manager(url, tmp_path / "reader", cluster.kubeconfig)
    stack = stack_name_for("e2e", ns, "shop")
    st = RolloutStatus.from_outputs(stacks.outputs(stack))
    assert st.phase is Phase.PAUSED and st.current_step_index == 1
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    assert live_weights(api, ns) == (50, 50)

    done = kulta(cluster, tmp_path / "laptop", "abort", f"{ns}/shop", backend=url)
    assert done.returncode == 0, done.stderr
    assert stacks.get_tag(stack, "kulta-command") is not None
    applied = kulta(cluster, tmp_path / "c", *run, backend=url)
    # `--once` exits 1 while a rollout is Aborted (README: kulta run flags)
    assert applied.returncode == 1 and "Aborted" in applied.stdout, applied.stdout + applied.stderr
    ab = RolloutStatus.from_outputs(stacks.outputs(stack))
    assert ab.phase is Phase.ABORTED and ab.stable_revision == st.stable_revision
    assert live_weights(api, ns) == (100, 0)


def lock_row(url: str, table: str, stack: str, host: str, pid: int) -> str:
    """A lock as Pulumi's DIY backend writes it (diy/lock.go: pid, username, hostname, timestamp)."""
    database = urlsplit(url).path.lstrip("/")
    key = f"{database}/.pulumi/locks/organization/kulta/{stack}/{uuid.uuid4()}.json"
    info = {"pid": pid, "username": "ci", "hostname": host, "timestamp": "2026-12-01T12:00:00Z"}
    blob = base64.b64encode(json.dumps(info).encode()).decode()
    psql(url, f"INSERT INTO {table} (key, data) VALUES ('{key}', '{json.dumps({'data': blob})}')")
    return key


def test_a_lock_of_a_dead_process_of_this_host_is_removed_another_hosts_is_kept(cluster, repo, backend, tmp_path):
    bare, work = repo
    url, table = backend
    ns = namespace(cluster, "pg-lock")
    run = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts")
    commit(work, ns, "v1", WALK_STEPS, "v1")
    assert kulta(cluster, tmp_path / "a", *run, backend=url).returncode == 0
    stack = stack_name_for("e2e", ns, "shop")
    stacks = manager(url, tmp_path / "reader", cluster.kubeconfig)
    before = RolloutStatus.from_outputs(stacks.outputs(stack))
    commit(work, ns, "v2", WALK_STEPS, "v2")

    # a lock of another host: Pulumi itself refuses the update (so the row is a real
    # lock to the engine), and KULTA leaves it alone and skips the rollout
    other = lock_row(url, table, stack, "replica-on-another-node", 4242)
    skipped = kulta(cluster, tmp_path / "b", *run, backend=url)
    assert "skipped" in skipped.stdout, skipped.stdout + skipped.stderr
    assert other in psql_rows(url, table)
    assert RolloutStatus.from_outputs(stacks.outputs(stack)).stable_revision == before.stable_revision

    # the same lock left by a process of this host that is gone: removed, the walk goes on
    psql(url, f"DELETE FROM {table} WHERE key = '{other}'")
    dead = lock_row(url, table, stack, socket.gethostname(), dead_pid())
    resumed = kulta(cluster, tmp_path / "c", *run, backend=url)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert dead not in psql_rows(url, table)
    after = RolloutStatus.from_outputs(stacks.outputs(stack))
    assert after.phase is Phase.HEALTHY and after.stable_revision != before.stable_revision


def test_an_unreadable_lock_row_is_skipped_and_a_dead_one_still_removed(backend, toolchain, tmp_path):
    """One lock row that is no Pulumi blob must not make the recovery a backend outage
    (an unreadable lock file is skipped the same way): the dead lock beside it goes."""
    url, table = backend
    stack = "e2e.locks.web"
    stacks = manager(url, tmp_path / "state", "")
    stacks.up(stack, exporting({"phase": "Healthy"}), message="creates the table")
    dead = lock_row(url, table, stack, socket.gethostname(), dead_pid())
    database = urlsplit(url).path.lstrip("/")
    garbage = f"{database}/.pulumi/locks/organization/kulta/{stack}/garbage.json"
    psql(url, f"""INSERT INTO {table} (key, data) VALUES ('{garbage}', '{{"data": "not base64!"}}')""")
    assert isinstance(stacks.direct, PostgresBackend)
    assert stacks.recover_dead_lock(stack) is True
    rows = psql_rows_raw(url, table)
    assert dead not in rows and garbage in rows


def psql_rows_raw(url: str, table: str) -> set[str]:
    return set(psql(url, f"SELECT key FROM {table}").split())


def test_a_wrong_password_is_named_as_a_backend_outage_and_never_shown(cluster, backend, tmp_path):
    url, _table = backend
    real = urlsplit(url).password or ""
    wrong_password = "Wr0ng-" + uuid.uuid4().hex
    wrong = url.replace(f":{real}@", f":{wrong_password}@")
    for args in (("status",), ("history", "demo/shop")):
        done = kulta(cluster, tmp_path / "laptop", *args, backend=wrong)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Pulumi backend" in done.stderr and "password authentication failed" in done.stderr, done.stderr
        assert wrong_password not in done.stdout + done.stderr
        assert real not in done.stdout + done.stderr


def exporting(outputs: dict[str, Any]) -> Callable[[], None]:
    """A Pulumi program with no resources whose outputs are ``outputs``."""

    def program() -> None:
        for key, value in outputs.items():
            pulumi.export(key, value)

    return program


def test_direct_reads_of_several_stacks_equal_pulumis_own_export(backend, toolchain, tmp_path):
    """No cluster: stacks whose program only exports outputs. One `psql` for all of them
    (what `kulta status` does) gives what `pulumi stack export` gives for each."""
    url, table = backend
    direct = manager(url, tmp_path / "a", "")
    # before Pulumi's first use there is no table: no stack, not an error
    assert psql(url, f"SELECT to_regclass('{table}') IS NULL").strip() == "t"
    assert direct.list_stacks() == [] and direct.outputs(stack_name_for("e2e", "reads", "web0")) == {}
    status = kulta_status(url, tmp_path / "laptop")
    assert status.returncode == 0 and "reads/web0" not in status.stdout, status.stdout + status.stderr
    names = [stack_name_for("e2e", "reads", f"web{i}") for i in range(3)]
    for i, name in enumerate(names):
        status = RolloutStatus(
            rollout=f"web{i}",
            namespace="reads",
            environment="e2e",
            phase=Phase.PROGRESSING,
            current_step_index=i,
            step_count=3,
            stable_revision="5d8c7b9f4",
            canary_revision="6f7a8b9c1",
            weights=(RouteWeight(route="web", namespace="reads", stable=100 - 10 * i, canary=10 * i),),
        )

        direct.up(name, exporting(status.to_outputs()), message=f"step={i}")
    direct.set_tag(names[1], "kulta-command", '{"id":"c1","kind":"abort"}')
    through_cli = manager(url, tmp_path / "b", "")
    through_cli.direct = None
    missing = stack_name_for("e2e", "reads", "never-created")
    every = direct.outputs_of([*names, missing])
    assert every == {**{n: through_cli.outputs(n) for n in names}, missing: {}}
    assert RolloutStatus.from_outputs(every[names[2]]).weights[0].canary == 20
    assert direct.get_tag(names[1], "kulta-command") == through_cli.get_tag(names[1], "kulta-command")
    assert direct.get_tag(names[0], "kulta-command") is None
    assert direct.list_stacks() == sorted(names)
    status = kulta_status(url, tmp_path / "laptop")
    assert status.returncode == 0, status.stderr
    assert [ln.split()[0] for ln in status.stdout.splitlines() if "reads/" in ln] == [
        "reads/web0",
        "reads/web1",
        "reads/web2",
    ], status.stdout
