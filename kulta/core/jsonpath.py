"""The subset of Kubernetes JSONPath that Argo Rollouts' web metric ``jsonPath`` is written in.

Argo parses ``provider.web.jsonPath`` with ``k8s.io/client-go/util/jsonpath``
(``NewWebMetricJsonParser`` in metricproviders/webmetric/webmetric.go; an empty
path is ``{$}``) and takes the first value it finds (``getValue``). KULTA reads
the part templates use, and refuses the rest when the file is read:

* one ``{...}`` expression and nothing outside it;
* an optional ``$`` root, then any number of ``.field``, ``['field']`` /
  ``["field"]`` and ``[N]`` (``N`` may be negative: from the end, as in Kubernetes).

Filters, wildcards, ranges, unions and recursive descent are refused. The path is
bounded (``MAX_PATH_LENGTH`` characters, ``MAX_SEGMENTS`` steps), so selecting is
linear in the path and never walks the document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kulta.errors import KultaError

__all__ = [
    "DEFAULT_JSON_PATH",
    "MAX_PATH_LENGTH",
    "MAX_SEGMENTS",
    "JsonPath",
    "JsonPathError",
    "parse_json_path",
    "select",
]

#: Argo's path when ``jsonPath`` is empty: the whole document.
DEFAULT_JSON_PATH = "{$}"
MAX_PATH_LENGTH = 512
MAX_SEGMENTS = 32

_FIELD = re.compile(r"\.([A-Za-z0-9_-]+)")
_INDEX = re.compile(r"\[\s*(-?[0-9]{1,9})\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'([^'\\]*)'|"([^"\\]*)")\s*\]""")


class JsonPathError(KultaError):
    """A path outside the supported subset, or a document the path does not fit."""


@dataclass(frozen=True)
class JsonPath:
    """A parsed path: each step is a field name (``str``) or a list index (``int``)."""

    text: str
    steps: tuple[str | int, ...]


def parse_json_path(text: str) -> JsonPath:
    """Parse ``{$.data.ok}``-style paths; JsonPathError says what is not supported."""
    if len(text) > MAX_PATH_LENGTH:
        raise JsonPathError(f"is longer than {MAX_PATH_LENGTH} characters")
    stripped = text.strip() or DEFAULT_JSON_PATH
    if not (stripped.startswith("{") and stripped.endswith("}")):
        raise JsonPathError("must be one {...} expression, e.g. {$.data.ok}")
    body = stripped[1:-1].strip()
    position = 1 if body.startswith("$") else 0
    steps: list[str | int] = []
    while position < len(body):
        if len(steps) >= MAX_SEGMENTS:
            raise JsonPathError(f"has more than {MAX_SEGMENTS} steps")
        if body.startswith("..", position):
            raise JsonPathError("recursive descent (..) is not supported; write the full path")
        field = _FIELD.match(body, position)
        if field is not None:
            steps.append(field.group(1))
            position = field.end()
            continue
        index = _INDEX.match(body, position)
        if index is not None:
            steps.append(int(index.group(1)))
            position = index.end()
            continue
        quoted = _QUOTED.match(body, position)
        if quoted is not None:
            steps.append(quoted.group(1) if quoted.group(1) is not None else quoted.group(2))
            position = quoted.end()
            continue
        rest = body[position : position + 20]
        raise JsonPathError(
            f"{rest!r} at character {position + 1} is not supported: KULTA reads $, .field, ['field'] and [N] "
            "(no filters, wildcards, slices or unions)"
        )
    return JsonPath(text=text, steps=tuple(steps))


def select(path: JsonPath, document: object) -> object:
    """The value ``path`` names in a decoded JSON ``document``; JsonPathError when it is absent."""
    current = document
    walked = "$"
    for step in path.steps:
        if isinstance(step, int):
            if not isinstance(current, list):
                raise JsonPathError(f"{walked} is not a list, cannot take [{step}]")
            if not -len(current) <= step < len(current):
                raise JsonPathError(f"{walked} has {len(current)} elements, [{step}] is out of range")
            current = current[step]
            walked += f"[{step}]"
        else:
            if not isinstance(current, dict):
                raise JsonPathError(f"{walked} is not an object, cannot take field {step!r}")
            if step not in current:
                raise JsonPathError(f"{walked} has no field {step!r}")
            current = current[step]
            walked += f".{step}"
    return current
