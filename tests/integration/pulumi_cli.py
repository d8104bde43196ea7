"""Running the built ``pulumi`` CLI on a project directory, as CI does."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import ROOT

__all__ = ["PulumiRun", "cli_env", "init_stack", "run_pulumi"]

_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class PulumiRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A file backend under ``tmp_path``, an empty passphrase and ``kulta`` importable."""
    backend = tmp_path / "backend"
    backend.mkdir(exist_ok=True)
    return {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def init_stack(project: Path, env: dict[str, str], stack: str) -> None:
    subprocess.run(["pulumi", "stack", "init", stack], cwd=project, env=env, check=True, capture_output=True)


def run_pulumi(project: Path, env: dict[str, str], stack: str, *args: str) -> PulumiRun:
    """``pulumi ARGS --stack STACK`` without prompts or colours; never raises on a failure."""
    proc = subprocess.run(
        ["pulumi", *args, "--stack", stack, "--non-interactive", "--color", "never"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    return PulumiRun(proc.returncode, proc.stdout, proc.stderr)
