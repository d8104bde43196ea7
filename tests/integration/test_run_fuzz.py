"""Fuzzing one ``kulta run --once`` pass with hostile repositories (issue 11, Done when).

The generated files are the spec fuzzer's (``tests/unit/test_spec_fuzz.py``): random
bytes, NUL and control characters, deep nesting, huge numbers, mutated corpus files.
Each example commits them to a real bare Git repository and runs one pass in-process
with the real Pulumi engine (file backend) against an API server address nobody
listens on. Whatever the input: the exit status is 0, 1 or 2, no ``Traceback`` is
printed or logged, every ``spec error`` line names a file, and the pass takes bounded
time.
"""

from __future__ import annotations

import io
import logging
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kulta.app.runner import RunOptions, run
from kulta.devcluster import free_port
from tests.unit.test_spec_fuzz import HOSTILE_FILE, mutated_corpus_file

pytestmark = pytest.mark.cluster  # needs the toolchain's pulumi, not a cluster

#: one pass, hostile files included, on a loaded 2-core machine: generous, the point is "bounded"
MAX_SECONDS = 60.0


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def dead_kubeconfig(path: Path) -> Path:
    port = free_port()  # nothing listens there: every API call fails at once
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        f"clusters: [{{name: dead, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n"
        "users: [{name: dead, user: {token: not-a-secret}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: dead}}]\n"
    )
    return path


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(HOSTILE_FILE | mutated_corpus_file(), min_size=1, max_size=3))
def test_one_run_once_pass_survives_any_repository(toolchain, tmp_path_factory, files: list[bytes]) -> None:
    root = tmp_path_factory.mktemp("fuzz-run")
    bare, work = root / "remote.git", root / "work"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(root, "clone", "-q", str(bare), str(work))
    git(work, "config", "user.email", "ci@example.test")
    git(work, "config", "user.name", "CI")
    (work / "rollouts").mkdir()
    for number, data in enumerate(files):
        (work / "rollouts" / f"file{number}.yaml").write_bytes(data)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "hostile")
    git(work, "push", "-q", "origin", "HEAD:main")
    options = RunOptions(
        repo=f"file://{bare}",
        path="rollouts",
        once=True,
        state_dir=root / "state",
        environment="fuzz",
        kubeconfig=str(dead_kubeconfig(root / "kubeconfig.yaml")),
    )
    out = io.StringIO()
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    logging.getLogger().addHandler(handler)
    started = time.monotonic()
    try:
        status = run(options, out)
    finally:
        logging.getLogger().removeHandler(handler)
    elapsed = time.monotonic() - started
    text = out.getvalue()
    assert status in (0, 1, 2), text
    assert "Traceback" not in text and "Traceback" not in logged.getvalue(), text + logged.getvalue()
    for line in text.splitlines():
        if line.startswith("spec error: "):
            assert "rollouts/file" in line, line
    assert elapsed < MAX_SECONDS, (elapsed, text)
