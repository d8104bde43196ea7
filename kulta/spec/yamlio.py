"""Read a YAML file into documents, safely and within size bounds.

Rollout files come from Git, so anyone who can push can make KULTA read them. PyYAML's
safe loader builds no objects, but aliases still let a few bytes expand into billions
of nodes (a "YAML bomb"), and an anchor may refer to itself. We therefore compose each
document's node graph first, measure its size *with aliases expanded* (linear time,
memoised per node), refuse recursive aliases and duplicate keys, and only then
construct Python values. Files above ``MAX_FILE_BYTES`` are refused before parsing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import yaml

from kulta.errors import SpecError

__all__ = [
    "MAX_DOCUMENT_NODES",
    "MAX_FILE_BYTES",
    "RawDocument",
    "read_documents",
]

log = logging.getLogger(__name__)

#: a Rollout with a large pod template is a few thousand nodes; this leaves room.
MAX_DOCUMENT_NODES = 100_000
#: one MiB of YAML is far more than any real set of Rollouts in one file.
MAX_FILE_BYTES = 1 << 20

_MERGE_TAG = "tag:yaml.org,2002:merge"


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


def _check_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue
        line = key.start_mark.line + 1
        if key.value in seen:
            raise _UnsafeDocumentError(
                f'key "{key.value}" appears twice (lines {seen[key.value]} and {line}); '
                "YAML would silently keep only the last one: remove one of them"
            )
        seen[key.value] = line


def _check_node_graph(root: yaml.Node, limit: int) -> int:
    """Return the document's node count with aliases expanded; raise if unsafe."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            in_progress.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > limit:
                raise _UnsafeDocumentError(
                    f"the document expands to more than {limit} YAML nodes (anchors and aliases "
                    f"included, near line {node.start_mark.line + 1}); refusing it as a possible "
                    "YAML bomb: write the values out or split the document"
                )
            if isinstance(node, yaml.MappingNode):
                _check_duplicate_keys(node)
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in in_progress:
            raise _UnsafeDocumentError(
                f"an alias at line {node.start_mark.line + 1} refers to its own anchor (a recursive "
                "structure); Kubernetes objects cannot be recursive: remove the alias"
            )
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def read_documents(
    text: str, file: str, *, max_nodes: int = MAX_DOCUMENT_NODES
) -> tuple[list[RawDocument], list[SpecError]]:
    """Split ``text`` into safe-loaded documents; problems become SpecErrors.

    A syntax error stops reading the file (YAML cannot resynchronise); an unsafe
    document is skipped and the following ones are still read.
    """
    documents: list[RawDocument] = []
    errors: list[SpecError] = []
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        errors.append(
            SpecError(
                file, 1, "", f"the file is {size} bytes; KULTA reads files up to {MAX_FILE_BYTES} bytes: split it"
            )
        )
        return documents, errors
    loader = yaml.SafeLoader(text)
    index = 1
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            try:
                _check_node_graph(node, max_nodes)
            except _UnsafeDocumentError as problem:
                errors.append(SpecError(file, index, "", str(problem)))
            else:
                documents.append(RawDocument(index=index, data=loader.construct_document(node)))
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "invalid YAML"
        errors.append(SpecError(file, index, "", f"YAML syntax error{where}: {what}; fix the YAML"))
    except yaml.YAMLError as exc:
        errors.append(SpecError(file, index, "", f"YAML error: {exc}; fix the YAML"))
    except RecursionError:
        errors.append(SpecError(file, index, "", "the YAML is nested too deeply to read; flatten it"))
    finally:
        loader.dispose()
    log.debug("read %d documents from %s (%d errors)", len(documents), file, len(errors))
    return documents, errors
