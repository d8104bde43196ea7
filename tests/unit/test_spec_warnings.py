"""Warnings: what KULTA accepts but does not use is said by `kulta validate`, without failing it."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kulta.app.spec_commands import validate_command
from tests.unit.spec_helpers import FILE, dump, error_lines, load, with_steps

#: the subscription example of Argo Rollouts' docs/features/notifications.md
SLACK = "notifications.argoproj.io/subscribe.on-rollout-step-completed.slack"
MESSAGE = (
    "Argo Rollouts notifications are not sent by KULTA; it emits CDEvents for every rollout instead "
    "(docs/events.md): subscribe a CloudEvents sink (kulta run --sink-url) and remove this annotation"
)


def annotated(**annotations: str) -> dict[str, Any]:
    doc = with_steps({"setWeight": 20})
    doc["metadata"]["annotations"] = dict(annotations)
    return doc


def test_notification_annotations_are_warnings_not_errors() -> None:
    result = load(annotated(**{SLACK: "my-channel1;my-channel2", "team": "shop"}))
    assert error_lines(result) == []
    assert [str(warning) for warning in result.warnings] == [f"{FILE}#1 metadata.annotations.{SLACK}: {MESSAGE}"]
    (rollout,) = result.rollouts
    assert rollout.annotations[SLACK] == "my-channel1;my-channel2"


def test_other_annotations_give_no_warning() -> None:
    assert load(annotated(team="shop", **{"argocd.argoproj.io/sync-wave": "1"})).warnings == ()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


def test_validate_prints_warnings_and_keeps_its_exit_status(workdir: Path) -> None:
    other = "notifications.argoproj.io/subscribe.on-rollout-aborted.slack"
    (workdir / "web.yaml").write_text(dump(annotated(**{SLACK: "a", other: "b"})))
    out = io.StringIO()
    assert validate_command(["web.yaml"], out) == 0
    assert out.getvalue().splitlines() == [
        f"warning: web.yaml#1 metadata.annotations.{SLACK}: {MESSAGE}",
        f"warning: web.yaml#1 metadata.annotations.{other}: {MESSAGE}",
        "OK: 1 file(s): 1 rollout(s), 0 analysis template(s), 0 error(s), 2 warning(s)",
    ]


def test_warnings_are_printed_with_errors(workdir: Path) -> None:
    bad = annotated(**{SLACK: "a"})
    bad["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 101}]
    (workdir / "web.yaml").write_text(dump(bad))
    out = io.StringIO()
    assert validate_command(["web.yaml"], out) == 1
    assert out.getvalue().splitlines() == [
        "web.yaml#1 spec.strategy.canary.steps[0].setWeight: 101 is outside 0..100",
        f"warning: web.yaml#1 metadata.annotations.{SLACK}: {MESSAGE}",
        "FAILED: 1 file(s): 0 rollout(s), 0 analysis template(s), 1 error(s), 1 warning(s)",
    ]


def test_warnings_of_files_read_for_references_are_not_reported(workdir: Path) -> None:
    (workdir / "web.yaml").write_text(dump(with_steps({"setWeight": 20})))
    other = annotated(**{SLACK: "a"})
    other["metadata"]["name"] = "other"
    (workdir / "other.yaml").write_text(dump(other))
    out = io.StringIO()
    assert validate_command(["web.yaml"], out) == 0
    assert "warning" not in out.getvalue()


def test_a_weight_argo_finds_no_canary_pod_for_is_a_warning() -> None:
    # Argo's approximation: 75 % of 2 pods without surge has no split (1+1 is 50 %, 2+0 is 0 %);
    # the step then runs no canary pod (utils/replicaset/canary.go)
    from kulta.spec.loader import load_text

    text = """apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.local/web:1"}]
  strategy:
    canary:
      maxSurge: 0
      steps:
        - setWeight: 50
        - setWeight: 75
        - pause: {}
"""
    result = load_text(text, "w.yaml")
    assert not result.errors
    assert [str(w).split(": runs no canary pod")[0] for w in result.warnings] == [
        "w.yaml#1 spec.strategy.canary.steps[1]"
    ]
