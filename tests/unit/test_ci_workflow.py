"""examples/ci/rollout.yml runs the command sequence tests/integration/test_ci_path.py proves."""

from __future__ import annotations

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "ci" / "rollout.yml"


def commands() -> list[str]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    lines: list[str] = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            lines.extend(line.strip() for line in str(step.get("run", "")).splitlines() if line.strip())
    return lines


def test_the_workflow_runs_pulumi_up_then_kulta_events():
    lines = commands()
    up = [i for i, line in enumerate(lines) if line.startswith("pulumi up --yes")]
    events = [i for i, line in enumerate(lines) if line.startswith("python -m kulta.cli events")]
    assert len(up) == 1 and len(events) == 1, lines
    assert up[0] < events[0]


def test_the_workflow_never_runs_two_jobs_on_one_stack_at_once():
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc["concurrency"]["cancel-in-progress"] is False
    assert "pull_request" not in doc[True]  # `on:` reads as True in YAML 1.1: no `pulumi up` for a PR
