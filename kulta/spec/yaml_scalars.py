"""Scalars a YAML file may hold: read the same by every YAML parser, and convertible.

PyYAML reads YAML 1.1, Kubernetes (sigs.k8s.io/yaml) and most tools YAML 1.2: ``010`` is
8 in one and 10 in the other, ``1:30`` is 90 or a string. Integers outside 64 bits are
refused before ``int()`` is called (Python refuses to convert more than 4300 decimal
digits, and Kubernetes numbers are int64). A scalar an explicit or resolved tag makes
unconvertible (``!!float x``, ``2024-13-01``) is refused by name. ``check_scalars`` runs
on a composed node graph, before any Python value is built (``kulta.spec.yamlio``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from kulta.spec.fields import INT64_MAX, child, index, show

__all__ = ["INT64_MAX", "check_scalars"]


_INT_TAG = "tag:yaml.org,2002:int"
#: scalar tags whose constructor may fail on a value the resolver (or an explicit tag) gave it.
_CHECKED_TAGS = {
    "tag:yaml.org,2002:bool": ("a boolean", "write true or false"),
    "tag:yaml.org,2002:float": ("a number", "write digits, a '.' and an exponent"),
    "tag:yaml.org,2002:timestamp": ("a date", "write YYYY-MM-DD"),
    "tag:yaml.org,2002:binary": ("base64 binary data", "write base64"),
}
#: a constructor's own reason is quoted up to this many characters.
_MAX_REASON = 100
_CONSTRUCTOR_FAILURES = (ValueError, KeyError, AttributeError, TypeError, OverflowError, IndexError, yaml.YAMLError)
#: the integer forms of YAML 1.1 (PyYAML's resolver); digits only, ``_`` as a separator.
_DECIMAL = re.compile(r"(?P<sign>[-+]?)(?P<digits>0|[1-9][0-9_]*)")
_LEADING_ZERO = re.compile(r"(?P<sign>[-+]?)(?P<digits>0[0-9_]+)")
_HEX = re.compile(r"(?P<sign>[-+]?)0x(?P<digits>[0-9a-fA-F_]+)")
_BINARY = re.compile(r"(?P<sign>[-+]?)0b(?P<digits>[01_]+)")
_SEXAGESIMAL = re.compile(r"[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+")
#: how many digits fit in 64 bits, per base; longer literals are refused before ``int()``.
_MAX_DIGITS = {10: 19, 16: 16, 2: 64}
#: a literal is shown whole up to this many characters, else cut with its digit count.
_SHOWN_NUMBER = 40


def _shown_number(text: str, digits: str) -> str:
    if len(text) <= _SHOWN_NUMBER:
        return text
    return f"{text[:20]}... ({len(digits)} digits)"


def _int_value(digits: str, base: int, sign: str) -> int | None:
    """The value of a literal's digits, or ``None`` when it does not fit in 64 bits."""
    significant = digits.lstrip("0")
    if len(significant) > _MAX_DIGITS[base]:
        return None
    value = int(significant or "0", base)
    value = -value if sign == "-" else value
    return value if -INT64_MAX - 1 <= value <= INT64_MAX else None


def _sexagesimal_value(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    value = 0
    for part in text.lstrip("+-").replace("_", "").split(":"):
        value = value * 60 + int(part)
    return sign * value


def _int_problem(text: str) -> str | None:
    """Why an integer scalar is refused, or ``None`` (YAML 1.1 forms, as PyYAML resolves them).

    Refused: literals outside 64 bits (Kubernetes numbers are int64; Python cannot even
    convert a decimal literal of more than 4300 digits), a leading zero (``010`` is the
    octal 8 in YAML 1.1 and 10 in YAML 1.2: ambiguous between parsers), base-60 numbers
    (``1:30`` is 90 in YAML 1.1 and a string in YAML 1.2), and anything else tagged
    ``!!int``.
    """
    found = _DECIMAL.fullmatch(text)
    base = 10
    if found is None:
        found = _HEX.fullmatch(text)
        base = 16
    if found is None:
        found = _BINARY.fullmatch(text)
        base = 2
    if found is not None:
        digits = found["digits"].replace("_", "")
        if not digits:
            return f"{show(text)} is not a whole number"
        if _int_value(digits, base, found["sign"]) is None:
            return (
                f"{_shown_number(text, digits)} is too large: numbers in Kubernetes objects are 64-bit "
                f"(at most {INT64_MAX})"
            )
        return None
    zero = _LEADING_ZERO.fullmatch(text)
    if zero is not None:
        digits = zero["digits"].replace("_", "")
        decimal = digits.lstrip("0") or "0"
        if len(decimal) > _MAX_DIGITS[10]:
            return f"{_shown_number(text, digits)} is too large: numbers in Kubernetes objects are 64-bit"
        wanted = f"{zero['sign'] if zero['sign'] == '-' else ''}{decimal}"
        octal = ""
        if all(char in "01234567" for char in digits):
            octal = f" ({zero['sign'] if zero['sign'] == '-' else ''}{int(digits, 8)})"
        return (
            f"{text} has a leading zero: YAML 1.1 reads it as an octal number{octal}, YAML 1.2 as the "
            f"decimal {wanted}; write {wanted} (without the leading zero)"
        )
    if _SEXAGESIMAL.fullmatch(text) and len(text) <= _SHOWN_NUMBER:
        value = _sexagesimal_value(text)
        return (
            f"{text} is a base-60 number in YAML 1.1 ({value}) and a string in YAML 1.2: write {value}, "
            f'or quote it ("{text}") if it is text'
        )
    return f"{show(text)} is not a whole number"


def _scalar_problem(loader: Any, node: yaml.ScalarNode) -> str | None:
    """Why a scalar cannot be constructed as its tag says, or ``None``."""
    if node.tag == _INT_TAG:
        return _int_problem(node.value)
    known = _CHECKED_TAGS.get(node.tag)
    constructor = loader.yaml_constructors.get(node.tag)
    if known is None or constructor is None:
        return None
    what, fix = known
    try:
        constructor(loader, node)
    except _CONSTRUCTOR_FAILURES as exc:
        # a ValueError says what is wrong ("month must be in 1..12"); the others only that it failed
        reason = str(exc)[:_MAX_REASON] if isinstance(exc, ValueError) else fix
        return f"{show(node.value)} is read as {what} but is not a valid one ({reason}): quote it if it is text"
    return None


def check_scalars(loader: Any, root: yaml.Node) -> list[tuple[str, str]]:
    """(field path, problem) for each scalar that cannot be read safely and unambiguously.

    Each node is visited once, at the first path that reaches it (an aliased node is
    reported where its anchor is), in document order.
    """
    problems: list[tuple[str, str]] = []
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, is_key = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            problem = _scalar_problem(loader, node)
            if problem is not None:
                problems.append((path, f"the key {problem}" if is_key else problem))
        elif isinstance(node, yaml.SequenceNode):
            items = [(item, index(path, position), False) for position, item in enumerate(node.value)]
            stack.extend(reversed(items))
        elif isinstance(node, yaml.MappingNode):
            pairs: list[tuple[yaml.Node, str, bool]] = []
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                pairs.extend(((key, path, True), (value, child(path, name), False)))
            stack.extend(reversed(pairs))
    return problems
