"""The CDEvents schema validator: official conformance examples pass, broken events fail."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kulta.adapters.cdevents_schema import SPEC_DIR_ENV, SchemaViolationError, spec_dir, validate_event
from kulta.errors import ConfigError
from tests.event_scenarios import full_rollout, replay, stable_a

SPEC = spec_dir()
CONFORMANCE = [*sorted((SPEC / "conformance").glob("*.json")), SPEC / "custom" / "conformance.json"]


def test_default_spec_dir_is_the_shared_spec_next_to_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPEC_DIR_ENV, raising=False)
    repo_root = Path(__file__).resolve().parents[2]
    default = spec_dir()
    assert repo_root.parent / "shared" / "cdevents-spec-0.5.1" == default
    assert (default / "schemas" / "pipelinerunstarted.json").is_file()


def test_conformance_examples_cover_every_event_type_we_emit() -> None:
    names = {p.stem for p in CONFORMANCE}
    for needed in (
        "pipelinerun_started",
        "pipelinerun_finished",
        "service_deployed",
        "service_upgraded",
        "service_rolledback",
        "incident_detected",
        "conformance",
    ):
        assert needed in names
    assert len(CONFORMANCE) > 40


@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.name)
def test_official_conformance_example_is_valid(path: Path) -> None:
    validate_event(json.loads(path.read_text(encoding="utf-8")))


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SPEC / "conformance" / name).read_text(encoding="utf-8"))
    return data


BREAKAGES = [
    ("missing_subject", lambda e: e.pop("subject"), "'subject' is a required property"),
    ("bad_timestamp", lambda e: e["context"].update(timestamp="yesterday"), "context.timestamp"),
    ("relative_uri", lambda e: e["subject"]["content"].update(uri="rollouts/web"), "subject.content.uri"),
    ("bad_outcome", lambda e: e["subject"]["content"].update(outcome="promoted"), "subject.content.outcome"),
    ("unknown_field", lambda e: e["context"].update(color="red"), "context"),
    ("empty_path_link", lambda e: e["context"]["links"][1].update({"from": {}}), "context.links[1]"),
    ("space_in_source", lambda e: e["context"].update(source="/a b"), "context.source"),
]


@pytest.mark.parametrize(("name", "breaker", "where"), BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_broken_event_is_rejected_with_the_violation_listed(name: str, breaker: Any, where: str) -> None:
    event = copy.deepcopy(_load("pipelinerun_finished.json"))
    breaker(event)
    with pytest.raises(SchemaViolationError) as info:
        validate_event(event)
    assert info.value.violations
    assert any(where in v for v in info.value.violations), info.value.violations
    assert info.value.event_type == "dev.cdevents.pipelinerun.finished.0.3.0"


def test_unknown_type_is_rejected() -> None:
    event = _load("pipelinerun_finished.json")
    event["context"]["type"] = "dev.cdevents.pipelinerun.finished.9.9.9"
    with pytest.raises(SchemaViolationError, match=r"not a CDEvents 0\.5\.1 type"):
        validate_event(event)


def test_custom_type_must_match_the_cdeventsx_pattern() -> None:
    event = json.loads((SPEC / "custom" / "conformance.json").read_text(encoding="utf-8"))
    event["context"]["type"] = "dev.cdeventsx.kulta.progressed.0.1.0"
    with pytest.raises(SchemaViolationError, match=r"context\.type"):
        validate_event(event)


def test_our_events_fail_when_broken() -> None:
    started = replay(full_rollout()[:1], stable_a())[0][0]
    body = copy.deepcopy(dict(started.body))
    del body["subject"]["content"]["pipelineName"]
    with pytest.raises(SchemaViolationError, match="pipelineName"):
        validate_event(body)


def test_spec_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_dir = tmp_path / "spec"
    shutil.copytree(SPEC, copy_dir)
    monkeypatch.setenv(SPEC_DIR_ENV, str(copy_dir))
    assert spec_dir() == copy_dir
    validate_event(_load("service_deployed.json"))
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=SPEC_DIR_ENV):
        validate_event(_load("service_deployed.json"))
