"""The file backend read directly: outputs and tags as the Pulumi CLI wrote them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from kulta.adapters.file_backend import FileBackend, file_backend_root
from kulta.errors import DependencyError

# The layout and format the Pulumi CLI 3.260 writes (seen with `pulumi stack init` +
# `pulumi stack tag set` on a file:// backend).
CHECKPOINT = {
    "version": 3,
    "checkpoint": {
        "stack": "organization/kulta/dev.ns.web",
        "latest": {
            "manifest": {"time": "2026-12-01T15:28:57Z", "version": "v3.260.0"},
            "resources": [
                {
                    "urn": "urn:pulumi:dev.ns.web::kulta::pulumi:providers:kubernetes::default",
                    "type": "pulumi:providers:kubernetes",
                },
                {
                    "urn": "urn:pulumi:dev.ns.web::kulta::pulumi:pulumi:Stack::kulta-dev.ns.web",
                    "type": "pulumi:pulumi:Stack",
                    "outputs": {"phase": "Healthy", "currentStepIndex": 3},
                },
            ],
        },
    },
}
TAGS = {"version": 1, "tags": {"kulta-command": '{"id":"x","kind":"promote"}'}}


def backend(tmp_path: Path) -> FileBackend:
    return FileBackend(tmp_path, "kulta")


def write(tmp_path: Path, name: str, data: object, gz: bool = False) -> None:
    d = tmp_path / ".pulumi" / "stacks" / "kulta"
    d.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data).encode()
    (d / name).write_bytes(gzip.compress(raw) if gz else raw)


def test_outputs_and_tags_are_read_from_the_files(tmp_path):
    write(tmp_path, "dev.ns.web.json", CHECKPOINT)
    write(tmp_path, "dev.ns.web.pulumi-tags", TAGS)
    write(tmp_path, "dev.ns.web.json.bak", {"version": 3, "checkpoint": {}})
    b = backend(tmp_path)
    assert b.outputs("dev.ns.web") == {"phase": "Healthy", "currentStepIndex": 3}
    assert b.tags("dev.ns.web") == {"kulta-command": '{"id":"x","kind":"promote"}'}
    assert b.stack_names() == ["dev.ns.web"]


def test_a_gzipped_checkpoint_is_read(tmp_path):
    write(tmp_path, "dev.ns.web.json.gz", CHECKPOINT, gz=True)
    assert backend(tmp_path).outputs("dev.ns.web")["phase"] == "Healthy"


def test_a_missing_stack_has_no_outputs_and_no_tags(tmp_path):
    b = backend(tmp_path)
    assert (b.outputs("dev.ns.none"), b.tags("dev.ns.none"), b.stack_names()) == ({}, {}, [])


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_checkpoint_that_does_not_parse_is_a_dependency_error(tmp_path, content):
    d = tmp_path / ".pulumi" / "stacks" / "kulta"
    d.mkdir(parents=True)
    (d / "dev.ns.web.json").write_bytes(content)
    with pytest.raises(DependencyError, match="Pulumi backend unreachable"):
        backend(tmp_path).outputs("dev.ns.web")


def test_only_file_urls_are_file_backends():
    assert file_backend_root("file:///var/lib/kulta/backend") == Path("/var/lib/kulta/backend")
    assert file_backend_root("s3://bucket/kulta") is None
    assert file_backend_root("postgres://u@h/db") is None


@pytest.mark.parametrize(
    "document",
    [
        {"checkpoint": "x"},
        {"checkpoint": {"latest": ["not", "an", "object"]}},
    ],
)
def test_a_checkpoint_of_the_wrong_shape_is_a_backend_error(document: object) -> None:
    from kulta.adapters.diy_state import checkpoint_latest

    with pytest.raises(DependencyError, match=r"checkpoint of dev\.shop\.web"):
        checkpoint_latest("dev.shop.web", document)


def test_resources_that_are_no_list_hold_no_outputs() -> None:
    from kulta.adapters.diy_state import stack_outputs

    assert stack_outputs({"resources": 5}) == {}
    assert stack_outputs({"resources": {"type": "pulumi:pulumi:Stack"}}) == {}
