"""Typed field readers that collect every problem of a document instead of stopping.

Validation must report ALL errors of a file at once, each naming the field path and
what to do. Each reader therefore records a SpecError in ``Issues`` and returns
``None`` (or the default) when a value is wrong, so parsing continues with the next
field. Unknown keys are errors with a "did you mean" hint; Argo fields KULTA does not
implement are errors that say so, never silently ignored.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kulta.core.durations import DURATION_BEYOND, DURATION_HELP, duration_seconds, format_seconds
from kulta.errors import SpecError, SpecLocation

__all__ = [
    "DURATION_BEYOND",
    "INT32_MAX",
    "INT32_WHY",
    "INT64_MAX",
    "MISSING",
    "Issues",
    "Shape",
    "SpecWarning",
    "check_keys",
    "child",
    "format_seconds",
    "index",
    "parse_duration",
    "read_bool",
    "read_int",
    "read_list",
    "read_mapping",
    "read_str",
    "read_string_map",
    "show",
]


class _Missing:
    """Marker for "the key is absent" (``None`` is a YAML value: ``key: ~``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

#: Kubernetes' and Argo's int32 fields (replicas, ``*Seconds``, ``setWeight``): their largest value.
INT32_MAX = 2_147_483_647
INT32_WHY = "Kubernetes holds this field in 32 bits"
#: Kubernetes' and Argo's int64 fields; numbers in a YAML file are refused beyond it (``yaml_scalars``).
INT64_MAX = (1 << 63) - 1

#: an int shown in a message is written out up to this many digits (``str()`` of more raises).
_SHOWN_DIGITS = 40


@dataclass(frozen=True)
class SpecWarning:
    """Something in a user's file KULTA accepts but does not use; never fails a command.

    ``str(warning)`` reads like an error: ``file#doc field.path: message``.
    """

    location: SpecLocation
    message: str

    @property
    def file(self) -> str:
        return self.location.file

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class Issues:
    """The errors (and warnings) found so far in one YAML document."""

    def __init__(self, file: str, document: int) -> None:
        self.file = file
        self.document = document
        self.errors: list[SpecError] = []
        self.warnings: list[SpecWarning] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(SpecError(self.file, self.document, path, message))

    def warn(self, path: str, message: str) -> None:
        """A field KULTA ignores on purpose: reported by ``kulta validate``, never an error."""
        self.warnings.append(SpecWarning(SpecLocation(self.file, self.document, path), message))

    def __len__(self) -> int:
        return len(self.errors)


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def index(path: str, position: int) -> str:
    return f"{path}[{position}]"


def show(value: Any) -> str:
    """A short, YAML-like rendering of a user's value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _SHOWN_DIGITS * 3:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        text = json.dumps(value)
        return text if len(text) <= 60 else text[:57] + '..."'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def check_keys(
    issues: Issues,
    data: Mapping[Any, Any],
    path: str,
    known: Iterable[str],
    unsupported: Mapping[str, str] | None = None,
) -> None:
    """Report keys that are neither ``known`` nor listed as unsupported Argo fields.

    ``unsupported`` maps an Argo field KULTA refuses to the reason given to the user.
    """
    known_keys = list(known)
    refused = unsupported or {}
    for key in data:
        if not isinstance(key, str):
            issues.add(path, f"field names must be strings, got {show(key)}")
            continue
        if key in known_keys:
            continue
        where = child(path, key)
        if key in refused:
            issues.add(where, refused[key])
            continue
        close = difflib.get_close_matches(key, known_keys, n=1, cutoff=0.6)
        if close:
            issues.add(where, f"unknown field; did you mean {close[0]}?")
        else:
            issues.add(where, f"unknown field; the fields here are: {', '.join(sorted(known_keys))}")


def read_mapping(issues: Issues, value: Any, path: str, *, what: str = "a mapping") -> Mapping[str, Any] | None:
    """``value`` if it is a mapping, else an error; ``None`` for MISSING."""
    if value is MISSING:
        return None
    if isinstance(value, Mapping):
        return value
    issues.add(path, f"must be {what}, got {show(value)}")
    return None


@dataclass(frozen=True)
class Shape:
    """The keys one mapping of a document may hold: the ones KULTA reads and the Argo ones it refuses.

    Every object parser starts the same way: "is it a mapping, and are its keys known?"
    A module declares one ``Shape`` per object it parses, next to the parser, and calls
    ``shape.read``; so the accepted fields of, say, a ``pause`` step are listed in one place.
    """

    known: tuple[str, ...]
    #: an Argo field KULTA refuses -> the message that says so (see ``common.unsupported``)
    refused: Mapping[str, str] = field(default_factory=dict)

    def read(self, issues: Issues, value: Any, path: str) -> Mapping[str, Any] | None:
        """``value`` as a mapping with its unknown and refused keys reported; ``None`` if not a mapping."""
        data = read_mapping(issues, value, path)
        if data is not None:
            check_keys(issues, data, path, self.known, self.refused)
        return data


def read_list(issues: Issues, value: Any, path: str) -> list[Any] | None:
    if value is MISSING:
        return None
    if isinstance(value, list):
        return value
    issues.add(path, f"must be a list, got {show(value)}")
    return None


def read_str(issues: Issues, value: Any, path: str, *, required: bool = False, hint: str = "") -> str | None:
    """A non-empty string. Numbers are refused (Kubernetes would refuse them too)."""
    if value is MISSING or value is None:
        if required:
            issues.add(path, f"is required{hint}")
        return None
    if isinstance(value, str):
        if value == "":
            issues.add(path, f"must not be empty{hint}")
            return None
        return value
    if isinstance(value, bool | int | float):
        issues.add(path, f'must be a string, got {show(value)}: quote it ("{show(value)}")')
        return None
    issues.add(path, f"must be a string, got {show(value)}")
    return None


def read_int(
    issues: Issues,
    value: Any,
    path: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    required: bool = False,
    largest: int = INT32_MAX,
    largest_why: str = INT32_WHY,
) -> int | None:
    """A whole number within ``minimum..maximum`` (booleans and "12" are refused).

    ``largest`` is what the field's type holds (Argo's and Kubernetes' integer fields are
    int32 unless said otherwise); ``largest_why`` says so in the error.
    """
    if value is MISSING or value is None:
        if required:
            issues.add(path, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        issues.add(path, f"must be a whole number, got {show(value)}")
        return None
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        issues.add(path, f"{value} is outside {minimum}..{maximum}")
        return None
    if minimum is not None and value < minimum:
        issues.add(path, f"{value} is below the minimum {minimum}")
        return None
    if maximum is not None and value > maximum:
        issues.add(path, f"{value} is above the maximum {maximum}")
        return None
    if value > largest:
        issues.add(path, f"{show(value)} is above {largest}: {largest_why}")
        return None
    return value


def read_bool(issues: Issues, value: Any, path: str) -> bool | None:
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool):
        return value
    issues.add(path, f"must be true or false, got {show(value)}")
    return None


def read_string_map(issues: Issues, value: Any, path: str) -> dict[str, str]:
    """A label/annotation map: string keys and string values."""
    data = read_mapping(issues, value, path)
    result: dict[str, str] = {}
    if data is None:
        return result
    for key, item in data.items():
        if not isinstance(key, str):
            issues.add(path, f"keys must be strings, got {show(key)}")
            continue
        text = item if isinstance(item, str) else None
        if text is None:
            hint = f': quote it ("{show(item)}")' if isinstance(item, bool | int | float) else ""
            issues.add(child(path, key), f"must be a string, got {show(item)}{hint}")
            continue
        result[key] = text
    return result


def parse_duration(
    issues: Issues, value: Any, path: str, *, maximum: int | None = None, longest: str = ""
) -> int | None:
    """Seconds from an integer (Argo's pause quirk), a digit string or ``1h30m5s``, at most ``maximum``.

    ``longest`` says why ``maximum`` is the limit (it ends the error message). Without
    ``maximum`` the caller bounds the value (analysis metrics: ``analysis_run.check_durations``);
    a duration beyond any int64 is then ``DURATION_BEYOND``.
    """
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool):
        issues.add(path, f"must be a duration, got {show(value)}; {DURATION_HELP}")
        return None
    seconds: int | None = None
    if isinstance(value, int):
        if value < 0:
            issues.add(path, f"{show(value)} is negative; {DURATION_HELP}")
            return None
        seconds = value
    elif isinstance(value, str):
        seconds = duration_seconds(value.strip())
    if seconds is None:
        issues.add(path, f"{show(value)} is not a duration; {DURATION_HELP}")
        return None
    if maximum is not None and seconds > maximum:
        issues.add(path, f"{show(value)} is longer than {maximum}s ({format_seconds(maximum)}), {longest}")
        return None
    return seconds
