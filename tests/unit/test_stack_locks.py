"""Stale Pulumi locks: removed only when their owner was a process of this host that is gone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kulta.adapters.stacks import StackManager, StackSettings
from kulta.errors import Dependency, DependencyError


def write_lock(manager: StackManager, name: str, pid: int, host: str) -> str:
    directory = manager.lock_dir(name)
    assert directory is not None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"lock-{pid}-{host}.json"
    path.write_text(json.dumps({"pid": pid, "username": "ci", "hostname": host, "timestamp": "2026-11-25T12:00:00Z"}))
    return str(path)


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(proc.stdout)


def manager(tmp_path) -> StackManager:
    return StackManager(StackSettings(state_dir=tmp_path, backend_url=f"file://{tmp_path / 'backend'}"))


def test_lock_of_a_dead_process_on_this_host_is_removed(tmp_path):
    m = manager(tmp_path)
    path = write_lock(m, "dev.shop.web", dead_pid(), socket.gethostname())
    assert m.recover_dead_lock("dev.shop.web") is True
    assert not os.path.exists(path)


def test_lock_of_a_live_process_is_kept(tmp_path):
    m = manager(tmp_path)
    path = write_lock(m, "dev.shop.web", os.getpid(), socket.gethostname())
    assert m.recover_dead_lock("dev.shop.web") is False
    assert os.path.exists(path)


def test_lock_of_another_host_is_kept_even_if_the_pid_is_free_here(tmp_path):
    m = manager(tmp_path)
    path = write_lock(m, "dev.shop.web", dead_pid(), "some-other-host")
    assert m.recover_dead_lock("dev.shop.web") is False
    assert os.path.exists(path)


def test_non_file_backends_are_left_alone(tmp_path):
    m = StackManager(StackSettings(state_dir=tmp_path, backend_url="s3://bucket/kulta"))
    assert m.lock_dir("dev.shop.web") is None
    assert m.recover_dead_lock("dev.shop.web") is False


def test_a_dead_lock_goes_with_its_attrs_file_and_orphaned_attrs_are_removed(tmp_path):
    m = manager(tmp_path)
    path = write_lock(m, "dev.shop.web", dead_pid(), socket.gethostname())
    attrs = path + ".attrs"
    Path(attrs).write_text("{}")  # the blob library's metadata, left beside the lock
    directory = m.lock_dir("dev.shop.web")
    assert directory is not None
    orphan = directory / "lock-gone.json.attrs"  # a kill -9 left only the metadata
    orphan.write_text("{}")
    live = write_lock(m, "dev.shop.web", os.getpid(), socket.gethostname())
    Path(live + ".attrs").write_text("{}")
    assert m.recover_dead_lock("dev.shop.web") is True
    assert not os.path.exists(path) and not os.path.exists(attrs) and not orphan.exists()
    assert os.path.exists(live) and os.path.exists(live + ".attrs")


def test_the_lock_of_a_killed_process_not_yet_reaped_is_removed(tmp_path):
    # a zombie: the child has exited, but nobody has reaped it (as under a PID 1 that does not)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.05)
    assert state == "Z"
    m = manager(tmp_path)
    path = write_lock(m, "dev.shop.web", child.pid, socket.gethostname())
    assert m.recover_dead_lock("dev.shop.web") is True
    assert not os.path.exists(path)
    child.wait()


def test_a_backend_directory_replaced_by_a_file_is_a_backend_outage_not_a_traceback(tmp_path):
    """The default file backend (no URL given) replaced by a file while the loop runs:
    the lock check before an update names the backend as the failing dependency."""
    m = StackManager(StackSettings(state_dir=tmp_path))
    backend = tmp_path / "backend"
    assert backend.is_dir()
    backend.rmdir()
    backend.write_text("not a directory\n")
    with pytest.raises(DependencyError) as caught:
        m.recover_dead_lock("dev.shop.web")
    assert caught.value.dependency is Dependency.PULUMI_BACKEND
    assert "FileExistsError" in str(caught.value) and str(backend) in str(caught.value)


def test_lock_of_another_host_is_judged_by_owner_gone_with_the_locks_own_time(tmp_path):
    """With replicas on Kubernetes the manager asks whether the lock's replica is gone,
    with its hostname and the time the lock was written (2026-11-25T12:00:00Z above)."""
    from datetime import UTC, datetime

    m = manager(tmp_path)
    asked: list[tuple[str, datetime]] = []
    m.owner_gone = lambda host, at: asked.append((host, at)) or host == "kulta-7d9f-gone"
    kept = write_lock(m, "dev.shop.web", 41, "kulta-7d9f-alive")
    removed = write_lock(m, "dev.shop.web", 42, "kulta-7d9f-gone")
    assert m.recover_dead_lock("dev.shop.web") is True
    assert os.path.exists(kept) and not os.path.exists(removed)
    noon = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert sorted(asked) == [("kulta-7d9f-alive", noon), ("kulta-7d9f-gone", noon)]


def test_a_lock_without_a_readable_time_is_never_judged_by_owner_gone(tmp_path):
    m = manager(tmp_path)
    m.owner_gone = lambda host, at: True
    directory = m.lock_dir("dev.shop.web")
    assert directory is not None
    directory.mkdir(parents=True)
    for i, stamp in enumerate(("", "yesterday", "2026-11-25T12:00:00", None)):
        body = {"pid": 50 + i, "hostname": "kulta-7d9f-gone", "timestamp": stamp}
        (directory / f"lock-{i}.json").write_text(json.dumps(body))
    assert m.recover_dead_lock("dev.shop.web") is False  # naive, unparsable or missing times
    assert len(list(directory.glob("lock-*.json"))) == 4
