"""Read a YAML file into documents, safely and within size bounds.

Rollout files come from Git, so anyone who can push can make KULTA read them. PyYAML's
safe loader builds no objects, but aliases still let a few bytes expand into billions
of nodes (a "YAML bomb"), and an anchor may refer to itself. We therefore compose each
document's node graph first (iteratively, ``_compose_document``: never a recursion
that deep nesting could overflow), measure its size and depth *with aliases expanded*
(linear time, memoised per node), refuse recursive aliases, duplicate keys and
scalars that YAML parsers read differently or that Python cannot convert
(``_check_scalars``), and only then construct Python values. Files above
``MAX_FILE_BYTES`` are refused before parsing.

Speed: libyaml's parser (PyYAML's ``CSafeLoader``) is used when PyYAML was built with
it, about five times faster than the pure-Python one; only its events are used, so
every check above is the same code for both. Its syntax error messages are worded
differently, so a file libyaml refuses is read again with the pure-Python parser,
whose result (and wording) is the one reported: both installations give the same
errors for the same file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.reader import ReaderError

from kulta.errors import SpecError
from kulta.spec.fields import child, index, show

__all__ = [
    "FAST_LOADER",
    "INT64_MAX",
    "MAX_DOCUMENT_DEPTH",
    "MAX_DOCUMENT_NODES",
    "MAX_FILE_BYTES",
    "RawDocument",
    "read_documents",
]

log = logging.getLogger(__name__)

#: a Rollout with a large pod template is a few thousand nodes; this leaves room.
MAX_DOCUMENT_NODES = 100_000
#: a pod template nests about 15 levels; deeper documents are refused before they reach
#: code that recurses (``copy.deepcopy``, ``json.dumps``).
MAX_DOCUMENT_DEPTH = 100
#: one MiB of YAML is far more than any real set of Rollouts in one file.
MAX_FILE_BYTES = 1 << 20
#: numbers in Kubernetes objects are 64-bit integers (Go's int64).
INT64_MAX = (1 << 63) - 1
#: True when PyYAML has libyaml: its parser is used first (see the module docstring).
FAST_LOADER: bool = bool(getattr(yaml, "__with_libyaml__", False))

_MERGE_TAG = "tag:yaml.org,2002:merge"
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


@dataclass(frozen=True)
class RawDocument:
    """One YAML document of a file: its number (from 1) and its safe-loaded value."""

    index: int
    data: Any


class _UnsafeDocumentError(Exception):
    """A document is unsafe or ambiguous; the message says why and what to do."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _line(node: yaml.Node | None) -> int:
    mark = None if node is None else node.start_mark
    return 1 if mark is None else mark.line + 1


def _check_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue
        line = _line(key)
        if key.value in seen:
            raise _UnsafeDocumentError(
                f'key "{key.value}" appears twice (lines {seen[key.value]} and {line}); '
                "YAML would silently keep only the last one: remove one of them"
            )
        seen[key.value] = line


def _too_deep(node: yaml.Node, limit: int, *, expanded: bool) -> _UnsafeDocumentError:
    aliases = "anchors and aliases included, " if expanded else ""
    return _UnsafeDocumentError(
        f"the document is nested more than {limit} levels deep ({aliases}near line {_line(node)}); "
        "Kubernetes objects are far shallower: flatten it"
    )


def _check_node_graph(root: yaml.Node, limit: int, max_depth: int = MAX_DOCUMENT_DEPTH) -> int:
    """Return the document's node count with aliases expanded; raise if unsafe."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            in_progress.discard(key)
            children = _children(node)
            size = 1 + sum(sizes[id(child)] for child in children)
            depth = 1 + max((depths[id(child)] for child in children), default=0)
            if size > limit:
                raise _UnsafeDocumentError(
                    f"the document expands to more than {limit} YAML nodes (anchors and aliases "
                    f"included, near line {_line(node)}); refusing it as a possible "
                    "YAML bomb: write the values out or split the document"
                )
            if depth > max_depth:
                raise _too_deep(node, max_depth, expanded=True)
            if isinstance(node, yaml.MappingNode):
                _check_duplicate_keys(node)
            sizes[key] = size
            depths[key] = depth
            continue
        if key in sizes:
            continue
        if key in in_progress:
            raise _UnsafeDocumentError(
                f"an alias at line {_line(node)} refers to its own anchor (a recursive "
                "structure); Kubernetes objects cannot be recursive: remove the alias"
            )
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _compose_document(loader: Any, max_nodes: int, max_depth: int) -> yaml.Node:
    """The node graph of the next document, composed without recursion.

    The same graph PyYAML's ``Composer`` builds (an anchor is registered when its node
    starts, so an alias inside it refers to it: ``_check_node_graph`` refuses that),
    with the same errors for undefined and duplicate anchors. A document with more
    than ``max_nodes`` nodes or nested deeper than ``max_depth`` is read to its end
    without being built, and refused with ``_UnsafeDocumentError``.
    """
    loader.get_event()  # DocumentStartEvent
    anchors: dict[str, yaml.Node] = {}
    stack: list[yaml.CollectionNode] = []
    keys: list[yaml.Node | None] = []
    root: yaml.Node | None = None
    count = 0
    problem: _UnsafeDocumentError | None = None
    while root is None and problem is None:
        event = loader.get_event()
        if isinstance(event, SequenceEndEvent | MappingEndEvent):
            finished = stack.pop()
            keys.pop()
            finished.end_mark = event.end_mark
            if not stack:
                root = finished
            continue
        if isinstance(event, AliasEvent):
            if event.anchor not in anchors:
                mark: Any = event.start_mark  # libyaml's marks are not yaml.error.Mark, but alike
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", mark)
            node = anchors[event.anchor]
        else:
            node = _new_node(loader, event, anchors)
            count += 1
        if stack:
            parent = stack[-1]
            if isinstance(parent, yaml.SequenceNode):
                parent.value.append(node)
            elif keys[-1] is None:
                keys[-1] = node
            else:
                parent.value.append((keys[-1], node))
                keys[-1] = None
        if isinstance(node, yaml.CollectionNode) and not isinstance(event, AliasEvent):
            stack.append(node)
            keys.append(None)
        elif not stack:
            root = node
        if len(stack) > max_depth:
            problem = _too_deep(node, max_depth, expanded=False)
        elif count > max_nodes:
            problem = _too_many(node, max_nodes)
    if problem is not None:
        _skip_document_rest(loader, len(stack))
    loader.get_event()  # DocumentEndEvent
    if root is None:
        raise problem or _UnsafeDocumentError("the document is empty")
    if problem is not None:
        raise problem
    return root


def _skip_document_rest(loader: Any, open_collections: int) -> None:
    """Read the events up to the end of the ``open_collections`` collections being composed."""
    while open_collections:
        event = loader.get_event()
        if isinstance(event, CollectionStartEvent):
            open_collections += 1
        elif isinstance(event, SequenceEndEvent | MappingEndEvent):
            open_collections -= 1


def _too_many(node: yaml.Node, limit: int) -> _UnsafeDocumentError:
    return _UnsafeDocumentError(
        f"the document has more than {limit} YAML nodes (near line {_line(node)}): split it into several documents"
    )


def _new_node(loader: Any, event: Any, anchors: dict[str, yaml.Node]) -> yaml.Node:
    """The node an event starts, with its tag resolved as PyYAML's ``Composer`` does."""
    anchor = event.anchor
    if anchor is not None and anchor in anchors:
        mark: Any = event.start_mark
        first = _line(anchors[anchor])
        raise ComposerError(None, None, f"found duplicate anchor {anchor!r} (first at line {first})", mark)
    tag = event.tag
    start: Any = event.start_mark  # libyaml's marks are not yaml.error.Mark, but alike
    node: yaml.Node
    if isinstance(event, ScalarEvent):
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        end: Any = event.end_mark
        node = yaml.ScalarNode(tag, event.value, start, end, style=event.style)
    elif isinstance(event, SequenceStartEvent):
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.SequenceNode, None, event.implicit)
        node = yaml.SequenceNode(tag, [], start, None, flow_style=event.flow_style)
    else:
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.MappingNode, None, event.implicit)
        node = yaml.MappingNode(tag, [], start, None, flow_style=event.flow_style)
    if anchor is not None:
        anchors[anchor] = node
    return node


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


def _check_scalars(loader: Any, root: yaml.Node) -> list[tuple[str, str]]:
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


def _reader_problem(exc: ReaderError, text: str) -> str:
    """A character YAML does not allow (NUL, a control character): where it is."""
    position = max(0, min(exc.position, len(text)))
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return (
        f"the file holds the character U+{exc.character:04X} at line {line}, column {column}, which YAML does not "
        "allow (control characters and NUL): remove it, or write it as an escape in a double-quoted string"
    )


@dataclass
class _Reading:
    """What one parser made of a file; ``stopped`` when a YAML error ended the reading."""

    documents: list[RawDocument]
    errors: list[SpecError]
    stopped: bool = False


def _read_with(loader_class: Any, text: str, file: str, max_nodes: int) -> _Reading:
    reading = _Reading([], [])
    number = 1
    loader = None

    def stop(message: str) -> None:
        reading.errors.append(SpecError(file, number, "", message))
        reading.stopped = True

    try:
        loader = loader_class(text)
        loader.get_event()  # StreamStartEvent
        while not loader.check_event(yaml.StreamEndEvent):
            try:
                node = _compose_document(loader, max_nodes, MAX_DOCUMENT_DEPTH)
                _check_node_graph(node, max_nodes)
            except _UnsafeDocumentError as problem:
                reading.errors.append(SpecError(file, number, "", str(problem)))
            else:
                problems = _check_scalars(loader, node)
                reading.errors.extend(SpecError(file, number, path, message) for path, message in problems)
                if not problems:
                    reading.documents.append(RawDocument(index=number, data=loader.construct_document(node)))
            number += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        stop(f"YAML syntax error{where}: {exc.problem or exc.context or 'invalid YAML'}; fix the YAML")
    except ReaderError as exc:
        stop(_reader_problem(exc, text))
    except yaml.YAMLError as exc:
        stop(f"YAML error: {exc}; fix the YAML")
    except UnicodeEncodeError as exc:
        # libyaml is given UTF-8: a lone surrogate (only in text that did not come from a file)
        stop(f"the text holds a lone surrogate at character {exc.start}, which is not Unicode text: remove it")
    except RecursionError:
        stop("the YAML is nested too deeply to read; flatten it")
    finally:
        if loader is not None:
            loader.dispose()
    return reading


def read_documents(
    text: str, file: str, *, max_nodes: int = MAX_DOCUMENT_NODES, fast: bool = FAST_LOADER
) -> tuple[list[RawDocument], list[SpecError]]:
    """Split ``text`` into safe-loaded documents; problems become SpecErrors, never exceptions.

    A syntax error stops reading the file (YAML cannot resynchronise); an unsafe
    document is skipped and the following ones are still read. ``fast`` reads with
    libyaml first (the default when PyYAML has it); ``fast=False`` is the pure-Python
    parser, whose results are the reference (see the module docstring).
    """
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_FILE_BYTES:
        message = f"the file is {size} bytes; KULTA reads files up to {MAX_FILE_BYTES} bytes: split it"
        return [], [SpecError(file, 1, "", message)]
    if fast:
        reading = _read_with(yaml.CSafeLoader, text, file, max_nodes)
        if not reading.stopped:
            log.debug(
                "read %d documents from %s with libyaml (%d errors)", len(reading.documents), file, len(reading.errors)
            )
            return reading.documents, reading.errors
        log.debug("libyaml stopped reading %s; reading it again with the pure-Python parser for its message", file)
    reading = _read_with(yaml.SafeLoader, text, file, max_nodes)
    log.debug("read %d documents from %s (%d errors)", len(reading.documents), file, len(reading.errors))
    return reading.documents, reading.errors
