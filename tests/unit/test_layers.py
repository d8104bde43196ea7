"""The layers hold: cli -> app -> adapters -> core -> model (see docs/architecture.md).

``core``, ``model`` and ``spec`` are pure: no engine, HTTP, Git or Kubernetes
client, and nothing from the layers above them. ``adapters`` never reach up
into ``app`` or the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "kulta"
IO_LIBRARIES = {"pulumi", "pulumi_kubernetes", "httpx", "git", "kubernetes", "cloudevents", "prometheus_client", "grpc"}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).glob("*.py"))


@pytest.mark.parametrize("path", [p for layer in ("core", "model", "spec") for p in modules(layer)], ids=str)
def test_pure_layers_import_no_io_library_and_nothing_above(path: Path) -> None:
    bad = sorted(
        name
        for name in imports_of(path)
        if name.split(".")[0] in IO_LIBRARIES or name.startswith(("kulta.adapters", "kulta.app", "kulta.cli"))
    )
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}"


@pytest.mark.parametrize("path", modules("adapters"), ids=str)
def test_adapters_do_not_reach_up(path: Path) -> None:
    bad = sorted(name for name in imports_of(path) if name.startswith(("kulta.app", "kulta.cli")))
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}"


def test_every_module_declares_its_public_surface() -> None:
    missing = [
        str(p.relative_to(ROOT.parent))
        for p in sorted(ROOT.rglob("*.py"))
        if p.name not in ("__init__.py", "__main__.py") and "__all__" not in p.read_text()
    ]
    assert not missing, missing
