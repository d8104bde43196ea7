"""An update killed after it recorded its outputs and before Pulumi wrote its history.

Pulumi checkpoints the stack's outputs as the program registers them, then shuts
the kubernetes provider down, and only then writes the update's history entry.
Here a real ``pulumi up`` (in a process of its own, with the kubernetes provider
and a ConfigMap on the local control plane) is killed with SIGKILL the instant
its outputs appear, on the file backend and on PostgreSQL. ``pulumi stack
history`` (Pulumi's own CLI, not KULTA's reader) is the oracle that the entry is
missing; ``StackManager.up`` must then refuse the next update with
``UnrecordedUpdateError`` naming the lost update, once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kulta.adapters.stacks import StackManager, StackSettings
from kulta.core.constants import OUTPUT_UPDATE_MESSAGE
from kulta.errors import UnrecordedUpdateError
from tests.integration.conftest import ROOT, kubectl, unique, with_table

pytestmark = pytest.mark.cluster

STACK = "dev.faults.unrecorded"
#: a child process running one update: argv = state dir, backend URL, kubeconfig, namespace, stack, message
CHILD = """
import sys
from pathlib import Path
import pulumi
import pulumi_kubernetes as k8s
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.core.constants import OUTPUT_UPDATE_MESSAGE

state, backend, kubeconfig, namespace, stack, message = sys.argv[1:7]

def program() -> None:
    provider = k8s.Provider("cluster", kubeconfig=Path(kubeconfig).read_text())
    cm = k8s.core.v1.ConfigMap(
        "cm",
        metadata={"name": "unrecorded", "namespace": namespace},
        data={"message": message},
        opts=pulumi.ResourceOptions(provider=provider),
    )
    pulumi.export(OUTPUT_UPDATE_MESSAGE, cm.id.apply(lambda _: message))

StackManager(StackSettings(state_dir=Path(state), backend_url=backend)).up(stack, program, message)
"""

MAX_TRIES = 8


def child(state: Path, backend: str, kubeconfig: str, namespace: str, message: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state), backend, kubeconfig, namespace, STACK, message],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,  # its own process group: pulumi, the language host, the provider
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def pulumi_history(manager: StackManager) -> list[tuple[str, str]]:
    """(result, message) per update, newest first, from Pulumi's own ``stack history``."""
    env = {**os.environ, **manager.settings.env()}
    work = manager.settings.state_dir / "workspaces" / STACK
    out = subprocess.run(
        ["pulumi", "stack", "history", "--stack", STACK, "--json", "--non-interactive"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [(h["result"], h.get("message", "")) for h in json.loads(out)]


@pytest.fixture(params=["file", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'backend'}"
    url: str = request.getfixturevalue("postgres_backend")
    return with_table(url, f"unrecorded_{uuid.uuid4().hex[:8]}")


def test_a_kill_between_outputs_and_history_refuses_the_next_update_once(backend_url, cluster, tmp_path):
    namespace = unique("unrec")
    kubectl(cluster, "create", "namespace", namespace)
    (tmp_path / "backend").mkdir()
    manager = StackManager(StackSettings(state_dir=tmp_path, backend_url=backend_url, kubeconfig=cluster.kubeconfig))
    first = child(tmp_path, backend_url, cluster.kubeconfig, namespace, "update 0")
    assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
    lost = ""
    for attempt in range(1, MAX_TRIES + 1):
        message = f"update {attempt}"
        proc = child(tmp_path, backend_url, cluster.kubeconfig, namespace, message)
        deadline = time.monotonic() + 300
        while manager.outputs(STACK).get(OUTPUT_UPDATE_MESSAGE) != message:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, f"{message} never recorded its outputs"
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        if message not in [m for _result, m in pulumi_history(manager)]:
            lost = message
            break
        manager.recover_dead_lock(STACK)  # the kill came after the history entry: only the lock is left
    assert lost, f"no kill landed between the outputs and the history entry in {MAX_TRIES} tries"
    assert manager.unrecorded_update(STACK) == lost

    with pytest.raises(UnrecordedUpdateError) as refused:
        manager.up(STACK, lambda: None, "the next step")
    assert refused.value.message == lost
    # the refused update changed nothing: no entry, the same outputs
    assert "the next step" not in [m for _r, m in pulumi_history(manager)]
    assert manager.outputs(STACK)[OUTPUT_UPDATE_MESSAGE] == lost
    # the lock is gone: the caller's next update (recording the same state again) runs
    again = child(tmp_path, backend_url, cluster.kubeconfig, namespace, f"{lost} (recorded again)")
    assert again.wait(timeout=300) == 0, again.stderr.read() if again.stderr else ""
    assert pulumi_history(manager)[0] == ("succeeded", f"{lost} (recorded again)")
    assert manager.unrecorded_update(STACK) == ""
