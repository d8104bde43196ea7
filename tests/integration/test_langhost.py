"""KULTA's language host (kulta/langhost.py) ends quietly when the engine stops it.

The Pulumi engine stops a language host with SIGINT and SIGKILLs it 5 seconds
later if it is still there. These tests run the host as the engine does (its
own process, port on the first stdout line) and through the real ``pulumi``
CLI on a one-file project, so they need neither the cluster nor the provider.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.integration.conftest import ROOT
from tests.integration.pulumi_cli import PulumiRun, cli_env, init_stack, run_pulumi

GRPC_READY_SECONDS = 20.0
PROJECT = "name: langhost-test\nruntime: python\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_the_host_with_exit_0_and_no_traceback(signum: signal.Signals) -> None:
    host = subprocess.Popen(
        [sys.executable, "-m", "kulta.langhost", "127.0.0.1:1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stdout is not None
        port = int(host.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=GRPC_READY_SECONDS)
        host.send_signal(signum)
        _, stderr = host.communicate(timeout=10)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    assert host.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr


def _preview(tmp_path: Path, main: str) -> PulumiRun:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(PROJECT)
    (project / "__main__.py").write_text(main)
    env = cli_env(tmp_path)
    init_stack(project, env, "dev")
    return run_pulumi(project, env, "dev", "preview")


def test_preview_through_the_host_ends_without_a_traceback(toolchain: dict[str, str], tmp_path: Path) -> None:
    preview = _preview(tmp_path, 'import pulumi\npulumi.export("answer", 42)\n')
    output = preview.output
    assert preview.returncode == 0, output
    assert "answer: 42" in output
    assert "Traceback" not in output
    assert "KeyboardInterrupt" not in output


def test_an_error_in_the_program_still_fails_the_preview_with_its_message(
    toolchain: dict[str, str], tmp_path: Path
) -> None:
    preview = _preview(tmp_path, 'raise RuntimeError("kulta-langhost-boom")\n')
    output = preview.output
    assert preview.returncode != 0
    assert "RuntimeError: kulta-langhost-boom" in output
    assert "KeyboardInterrupt" not in output
