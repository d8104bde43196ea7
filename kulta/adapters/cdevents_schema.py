"""Validate CDEvents against the official v0.5.1 JSON schemas, offline.

Consumers trust events only if they follow the spec, so every event KULTA builds
is checked against the schemas published with the spec (the event type's own
schema, the ``links/`` schemas it references, and the ``dev.cdeventsx`` custom
schema). The schemas are read from disk and ``$ref``s resolve by ``$id`` through
a ``referencing`` registry: nothing is fetched from the network. ``uri`` and
``uri-reference`` formats are asserted too (jsonschema skips them without
optional packages), so a relative ``subject.content.uri`` is caught.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from kulta.errors import ConfigError, PermanentError

__all__ = [
    "CUSTOM_TYPE_PREFIX",
    "SPEC_DIR_ENV",
    "SchemaViolationError",
    "load_registry",
    "spec_dir",
    "validate_event",
]

log = logging.getLogger(__name__)

#: Environment variable naming the directory of the CDEvents spec files.
SPEC_DIR_ENV = "KULTA_CDEVENTS_SPEC_DIR"
#: Event types in this namespace validate against ``custom/schema.json``.
CUSTOM_TYPE_PREFIX = "dev.cdeventsx."
_DEFAULT_SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "cdevents-spec-0.5.1"

# RFC 3986 character set; '%' only as a %XX escape.
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


class SchemaViolationError(PermanentError):
    """An event does not validate against the CDEvents schema of its type."""

    def __init__(self, event_type: str, event_id: str, violations: list[str]) -> None:
        self.event_type = event_type
        self.event_id = event_id
        self.violations = list(violations)
        listed = "\n".join(f"  - {v}" for v in self.violations)
        what = f"CDEvent {event_id or '<no id>'} ({event_type or '<no type>'})"
        super().__init__(f"{what} violates its schema:\n{listed}")


def spec_dir() -> Path:
    """The CDEvents spec directory: ``$KULTA_CDEVENTS_SPEC_DIR`` or ``../shared/cdevents-spec-0.5.1``."""
    configured = os.environ.get(SPEC_DIR_ENV, "")
    return Path(configured) if configured else _DEFAULT_SPEC_DIR


def _is_uri_reference(value: object) -> bool:
    return not isinstance(value, str) or _URI_CHARS.fullmatch(value) is not None


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or (_is_uri_reference(value) and _URI_SCHEME.match(value) is not None)


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    checker.checks("uri")(_is_uri)
    checker.checks("uri-reference")(_is_uri_reference)
    return checker


def _schema_files(root: Path) -> list[Path]:
    files = sorted((root / "schemas").glob("*.json")) + sorted((root / "schemas" / "links").glob("*.json"))
    files.append(root / "custom" / "schema.json")
    return files


@functools.cache
def load_registry(root: Path) -> tuple[Registry, dict[str, dict[str, Any]]]:
    """All schemas under ``root`` by ``$id``, and event schemas by the ``context.type`` they accept."""
    if not (root / "schemas").is_dir():
        raise ConfigError(f"CDEvents spec directory {root} has no schemas/ folder: set {SPEC_DIR_ENV} to the spec dir")
    resources: list[tuple[str, Resource[Any]]] = []
    by_type: dict[str, dict[str, Any]] = {}
    for path in _schema_files(root):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{path}: cannot read CDEvents schema: {err}") from err
        schema_id = schema.get("$id")
        if not isinstance(schema_id, str):
            raise ConfigError(f"{path}: schema has no $id")
        resources.append((schema_id, Resource.from_contents(schema, default_specification=DRAFT202012)))
        type_enum = schema.get("properties", {}).get("context", {}).get("properties", {}).get("type", {}).get("enum")
        for event_type in type_enum or ():
            by_type[str(event_type)] = schema
        if path.parent.name == "custom":
            by_type[CUSTOM_TYPE_PREFIX] = schema
    log.debug("loaded %d CDEvents schemas from %s", len(resources), root)
    return Registry().with_resources(resources), by_type


def _where(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "<root>"


def validate_event(body: Mapping[str, Any]) -> None:
    """Raise :class:`SchemaViolationError` listing every violation of ``body``'s schema."""
    registry, by_type = load_registry(spec_dir())
    context = body.get("context") if isinstance(body, Mapping) else None
    event_type = str(context.get("type", "")) if isinstance(context, Mapping) else ""
    event_id = str(context.get("id", "")) if isinstance(context, Mapping) else ""
    if event_type.startswith(CUSTOM_TYPE_PREFIX):
        schema = by_type[CUSTOM_TYPE_PREFIX]
    elif event_type in by_type:
        schema = by_type[event_type]
    else:
        raise SchemaViolationError(event_type, event_id, [f"context.type: {event_type!r} is not a CDEvents 0.5.1 type"])
    validator = Draft202012Validator(schema, registry=registry, format_checker=_format_checker())
    errors = sorted(validator.iter_errors(dict(body)), key=lambda e: list(e.absolute_path))
    if errors:
        raise SchemaViolationError(event_type, event_id, [f"{_where(e.absolute_path)}: {e.message}" for e in errors])
