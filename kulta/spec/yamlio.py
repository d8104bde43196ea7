"""Read a YAML file into documents, safely and within size bounds.

Rollout files come from Git, so anyone who can push can make KULTA read them. PyYAML's
safe loader builds no objects, but aliases still let a few bytes expand into billions
of nodes (a "YAML bomb"), and an anchor may refer to itself. We therefore compose each
document's node graph first (iteratively, ``_compose_document``: never a recursion
that deep nesting could overflow), measure its size and depth *with aliases expanded*
(linear time, memoised per node), refuse recursive aliases, duplicate keys and
scalars that YAML parsers read differently or that Python cannot convert
(``kulta.spec.yaml_scalars``), and only then construct Python values. Files above
``MAX_FILE_BYTES`` are refused before parsing, and so are files holding a character YAML
does not allow (NUL, ESC, ...) or a byte order mark after the start, reported at the
document and field that hold it (``_refused_character``).

Speed: libyaml's parser (PyYAML's ``CSafeLoader``) is used when PyYAML was built with
it: a 1 MiB file (2000 Rollouts, or one document of 30 000 entries) is read in about
0.7 s against 2.4 s with the pure-Python parser. Only its events are used, so every
check above is the same code for both, and what the two parsers read differently is
refused before parsing (an inner byte order mark) or normalised (an empty scalar tagged
``!``). One difference remains: PyYAML's pure-Python scanner refuses a tab after a
value (``a: b<TAB>``), which YAML and libyaml allow. Its syntax error messages are worded
differently, so a file libyaml refuses is read again with the pure-Python parser,
whose result (and wording) is the one reported.
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

from kulta.errors import SpecError
from kulta.spec.fields import child, index
from kulta.spec.yaml_scalars import INT64_MAX, check_scalars

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
#: True when PyYAML has libyaml: its parser is used first (see the module docstring).
FAST_LOADER: bool = bool(getattr(yaml, "__with_libyaml__", False))

_MERGE_TAG = "tag:yaml.org,2002:merge"
#: a scalar event's ``implicit`` for a plain scalar without a tag: resolved from its value.
_PLAIN = (True, False)


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
            # PyYAML's parser resolves a scalar tagged "!" as a plain one, even an empty one
            # (Parser.parse_node); libyaml does not for an empty one: follow PyYAML
            implicit = _PLAIN if tag == "!" else event.implicit
            tag = loader.resolve(yaml.ScalarNode, event.value, implicit)
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


#: the characters a file may not hold: those YAML does not allow (PyYAML's ``Reader.NON_PRINTABLE``),
#: and U+FEFF, a byte order mark, anywhere but first (libyaml and PyYAML read it differently there).
_REFUSED = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_BOM = "\ufeff"
#: what a refused character is replaced with to find where it is: allowed, and no YAML indicator.
_STAND_IN = "\ufffd"


def _path_at(root: yaml.Node, position: int) -> str:
    """The field path of the innermost node of ``root`` spanning ``position`` (a key: its mapping's path)."""

    def spans(node: yaml.Node) -> bool:
        start, end = node.start_mark, node.end_mark
        return start is not None and end is not None and start.index <= position < end.index

    node: yaml.Node | None = root
    path = ""
    visited: set[int] = set()
    while node is not None and id(node) not in visited:
        visited.add(id(node))
        inner: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if spans(value):
                    inner = value
                    path = child(path, key.value if isinstance(key, yaml.ScalarNode) else "?")
                    break
        elif isinstance(node, yaml.SequenceNode):
            for position_in_list, item in enumerate(node.value):
                if spans(item):
                    inner = item
                    path = index(path, position_in_list)
                    break
        node = inner
    return path


def _locate(text: str, start: int, position: int) -> tuple[int, str]:
    """The document (from 1) and field path holding the character at ``position``.

    PyYAML refuses a text holding any character YAML does not allow before parsing it,
    so every refused character (from ``start``) is replaced with U+FFFD and the text
    parsed again: the node spanning ``position`` is where the character is. A comment,
    or a syntax error met before the character, gives the document only (path ``""``).
    """
    loader: Any = yaml.SafeLoader(text[:start] + _REFUSED.sub(_STAND_IN, text[start:]))
    number = 0
    try:
        loader.get_event()  # StreamStartEvent
        while not loader.check_event(yaml.StreamEndEvent):
            number += 1
            try:
                root = _compose_document(loader, MAX_DOCUMENT_NODES, MAX_DOCUMENT_DEPTH)
            except _UnsafeDocumentError as problem:
                log.debug("document %d cannot be searched for the refused character: %s", number, problem)
                continue
            if root.end_mark is not None and position < root.end_mark.index:
                return number, _path_at(root, position)
    except yaml.YAMLError as exc:
        log.debug("the refused character is in document %d, after a YAML error: %s", number, exc)
        return max(number, 1), ""
    finally:
        loader.dispose()
    return max(number, 1), ""


def _refused_character(text: str, file: str) -> SpecError | None:
    """The first character ``text`` may not hold, at its document and field; ``None`` when there is none.

    Checked before any parsing: both parsers then see the same texts (libyaml reads
    some control characters and an inner byte order mark where PyYAML refuses them).
    """
    start = 1 if text.startswith(_BOM) else 0
    found = _REFUSED.search(text, start)
    if found is None:
        return None
    position = found.start()
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    others = len(_REFUSED.findall(text, start)) - 1
    more = f" ({others} more such characters follow)" if others > 0 else ""
    number, path = _locate(text, start, position)
    if found.group() == _BOM:
        reason = "a byte order mark, which is allowed only at the start of a file: remove it"
        message = f"the file holds the character U+FEFF at line {line}, column {column}{more}, {reason}"
    else:
        message = (
            f"the file holds the character U+{ord(found.group()):04X} at line {line}, column {column}{more}, which "
            "YAML does not allow (control characters and NUL): remove it, or write it as an escape in a "
            "double-quoted string"
        )
    return SpecError(file, number, path, message)


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
                problems = check_scalars(loader, node)
                reading.errors.extend(SpecError(file, number, path, message) for path, message in problems)
                if not problems:
                    reading.documents.append(RawDocument(index=number, data=loader.construct_document(node)))
            number += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        stop(f"YAML syntax error{where}: {exc.problem or exc.context or 'invalid YAML'}; fix the YAML")
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
    refused = _refused_character(text, file)
    if refused is not None:
        return [], [refused]
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
