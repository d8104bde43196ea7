"""Choose the Rollout files of a checked-out repository without trusting the repository.

A Git repository can hold symbolic links, odd file names and any number of
files, and whoever can push to the branch decides what they are. This module
walks a checkout for ``GitSource`` under four rules:

* **Confined before walked.** Every symbolic link is resolved one component at
  a time, by reading links (``readlink``) and never asking the host about a
  path outside the checkout: a link whose resolution leaves the work tree (an
  absolute target, or ``..`` above the root) or enters ``.git`` is refused
  before anything behind it is looked at, and a directory is never walked
  through such a link. Links that stay inside are followed; each real
  directory is walked once, so link loops end.
* **Literal first.** ``--path`` names an existing file or directory literally
  (``weird[1].yaml`` is that file); only a path that does not exist is tried
  as a glob.
* **Regular files only.** A FIFO, socket or device is never opened: entries
  are classified with ``lstat`` and anything that is not a regular file or a
  directory is skipped and reported.
* **Bounded.** At most ``max_entries`` directory entries are looked at and at
  most ``max_total_bytes`` bytes of YAML are handed to the loader per call;
  past either limit the whole selection fails (``TreeError``) rather than
  returning part of the files, because a missing file reads as a deleted
  rollout.

Refused entries are reported by their path in the repository (never by the
host path a link points to), once per call.
"""

from __future__ import annotations

import enum
import fnmatch
import os
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeAlias

from kulta.spec.yamlio import MAX_FILE_BYTES

__all__ = [
    "GIT_DIR_NAME",
    "MAX_TOTAL_BYTES",
    "MAX_WALK_ENTRIES",
    "ROLLOUT_SUFFIXES",
    "Refusal",
    "RefusalReason",
    "TreeError",
    "TreeLimits",
    "TreeProblem",
    "TreeSelection",
    "acceptable_name",
    "printable",
    "select_files",
]

#: Directory entries (files, directories, links) looked at per selection.
MAX_WALK_ENTRIES = 10_000
#: Bytes of YAML handed to the loader per selection (files above the loader's
#: per-file limit are not read by it and do not count).
MAX_TOTAL_BYTES = 64 * 1024 * 1024
ROLLOUT_SUFFIXES = frozenset({".yaml", ".yml"})
GIT_DIR_NAME = ".git"

# Linux gives up after 40 links in one path (MAXSYMLINKS); so do we.
_MAX_LINK_HOPS = 40
_GLOB_CHARS = frozenset("*?[")
_RECURSIVE = "**"
_PARENT = ".."
_CURRENT = "."
# Python decodes a byte that is not UTF-8 (0x80-0xFF) as U+DC80-U+DCFF (PEP 383).
_ESCAPED_BYTE_OFFSET = 0xDC00
_ESCAPED_BYTE_FIRST = 0xDC80
_ESCAPED_BYTE_LAST = 0xDCFF


class RefusalReason(enum.Enum):
    """Why an entry of the repository is not read."""

    OUTSIDE = "a symbolic link that leads outside the repository"
    INTO_GIT = "inside .git (or a symbolic link into it)"
    BROKEN = "a symbolic link that cannot be followed (its target is missing or it loops)"
    NOT_REGULAR = "not a regular file (a FIFO, socket or device)"
    BAD_NAME = "its name is not UTF-8 text or holds control or invisible characters"


# Refusals worth a warning even for entries whose name does not end in .yaml/.yml:
# a link that leaves the repository could have been a directory full of them.
_ALWAYS_REPORTED = frozenset({RefusalReason.OUTSIDE, RefusalReason.INTO_GIT, RefusalReason.BAD_NAME})


@dataclass(frozen=True)
class Refusal:
    """An entry that was not read: its (printable) path in the repository and why."""

    path: str
    reason: RefusalReason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason.value}; ignored"


class TreeProblem(enum.Enum):
    """Why no selection could be made at all."""

    MISSING = "missing"
    REFUSED = "refused"
    TOO_MANY_ENTRIES = "too many entries"
    TOO_MANY_BYTES = "too many bytes"
    UNREADABLE = "unreadable"


class TreeError(Exception):
    """The selection failed as a whole; ``GitSource`` translates it into KULTA's error tree."""

    def __init__(self, problem: TreeProblem, message: str) -> None:
        self.problem = problem
        super().__init__(message)


@dataclass(frozen=True)
class TreeLimits:
    """Per-selection bounds; see the module docstring."""

    max_entries: int = MAX_WALK_ENTRIES
    max_total_bytes: int = MAX_TOTAL_BYTES
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass(frozen=True)
class TreeSelection:
    """The chosen files (absolute paths under the root, as the repository names them) and what was refused."""

    files: tuple[Path, ...]
    refused: tuple[Refusal, ...]
    entries: int
    total_bytes: int


def printable(text: str) -> str:
    """``text`` safe for one log line: undecodable bytes and non-printable characters escaped.

    A byte that was not UTF-8 (decoded by Python as a lone surrogate,
    ``surrogateescape``) shows as ``\\xNN``, other non-printable characters as
    ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN``. Printable text comes back unchanged.
    """
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char.isprintable():
            out.append(char)
        elif _ESCAPED_BYTE_FIRST <= code <= _ESCAPED_BYTE_LAST:
            out.append(f"\\x{code - _ESCAPED_BYTE_OFFSET:02x}")
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def acceptable_name(name: str) -> bool:
    """Whether a file name can be read and reported as it is: UTF-8 text of printable characters only."""
    return printable(name) == name


def _has_glob(part: str) -> bool:
    return any(char in _GLOB_CHARS for char in part)


def _is_yaml(name: str) -> bool:
    return PurePosixPath(name).suffix in ROLLOUT_SUFFIXES


class _Kind(enum.Enum):
    DIRECTORY = "directory"
    FILE = "file"
    OTHER = "other"


@dataclass(frozen=True)
class _Node:
    """An entry after resolution: its real path (inside the root, outside .git), kind and size."""

    real: str
    kind: _Kind
    size: int


_Outcome: TypeAlias = _Node | RefusalReason


class _Missing(Exception):  # noqa: N818 (control flow inside this module, never raised out of it)
    """Nothing at the path; ``through_link`` when a symbolic link on the way pointed at nothing."""

    def __init__(self, origin: int, *, through_link: bool) -> None:
        self.origin = origin
        self.through_link = through_link


class _Refused(Exception):  # noqa: N818 (control flow inside this module, never raised out of it)
    def __init__(self, reason: RefusalReason, origin: int) -> None:
        self.reason = reason
        self.origin = origin


@dataclass
class _State:
    entries: int = 0
    total_bytes: int = 0
    files: dict[PurePosixPath, None] = field(default_factory=dict)
    counted: set[str] = field(default_factory=set)
    walked: set[str] = field(default_factory=set)
    listings: dict[str, tuple[tuple[str, _Outcome], ...]] = field(default_factory=dict)
    refused: dict[str, Refusal] = field(default_factory=dict)


class _Selector:
    def __init__(self, root: Path, pattern: str, limits: TreeLimits) -> None:
        self._pattern = pattern
        self._limits = limits
        self._root = root
        try:
            self._real_root = os.path.realpath(root)
            self._root_stat = os.stat(self._real_root)
        except OSError as exc:
            raise TreeError(TreeProblem.UNREADABLE, f"cannot read the checkout: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(self._root_stat.st_mode):
            raise TreeError(TreeProblem.UNREADABLE, "the checkout is not a directory")
        self._state = _State()

    # -- resolution ---------------------------------------------------------------------

    def _is_git_dir(self, parent: str, name: str) -> bool:
        # Every path we hold is real (links already resolved), so .git can only be reached by name
        # from the root. Case-folded: on a case-insensitive file system .GIT is the same directory.
        return parent == self._real_root and name.casefold() == GIT_DIR_NAME

    def _resolve(self, start: str, components: list[str]) -> tuple[str, os.stat_result]:
        """Resolve ``components`` from the real directory ``start`` as the kernel would, but confined.

        Only paths inside the root are ever looked at: an absolute link target
        or a ``..`` above the root is refused before it is followed. Raises
        ``_Refused`` and ``_Missing`` with the index of the component refused
        (or of the link through which it was reached).
        """
        pending: deque[tuple[str, int]] = deque((part, index) for index, part in enumerate(components))
        current = start
        current_stat: os.stat_result | None = None
        hops = 0
        while pending:
            part, origin = pending.popleft()
            if part in ("", _CURRENT):
                continue
            if part == _PARENT:
                if current == self._real_root:
                    raise _Refused(RefusalReason.OUTSIDE, origin)
                current, current_stat = os.path.dirname(current), None
                continue
            if self._is_git_dir(current, part):
                raise _Refused(RefusalReason.INTO_GIT, origin)
            candidate = os.path.join(current, part)
            try:
                st = os.lstat(candidate)
            except (FileNotFoundError, NotADirectoryError):
                raise _Missing(origin, through_link=hops > 0) from None
            except OSError as exc:
                raise self._unreadable(self._route_text(components, origin), exc) from None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    raise _Refused(RefusalReason.BROKEN, origin)
                try:
                    target = os.readlink(candidate)
                except OSError as exc:
                    raise self._unreadable(self._route_text(components, origin), exc) from None
                if target.startswith("/"):
                    raise _Refused(RefusalReason.OUTSIDE, origin)
                pending.extendleft(reversed([(piece, origin) for piece in target.split("/")]))
                continue
            if not stat.S_ISDIR(st.st_mode) and any(p not in ("", _CURRENT) for p, _ in pending):
                raise _Missing(origin, through_link=hops > 0)
            current, current_stat = candidate, st
        if current_stat is None:
            try:
                current_stat = os.lstat(current)
            except OSError as exc:
                raise self._unreadable(printable("/".join(components)), exc) from None
        return current, current_stat

    @staticmethod
    def _unreadable(where: str, exc: OSError) -> TreeError:
        return TreeError(TreeProblem.UNREADABLE, f"cannot look at {where!r}: {exc.strerror or exc}")

    def _route_text(self, components: list[str], origin: int) -> str:
        return printable("/".join(components[: origin + 1]))

    @staticmethod
    def _node(real: str, st: os.stat_result) -> _Node:
        if stat.S_ISDIR(st.st_mode):
            return _Node(real, _Kind.DIRECTORY, 0)
        if stat.S_ISREG(st.st_mode):
            return _Node(real, _Kind.FILE, st.st_size)
        return _Node(real, _Kind.OTHER, 0)

    def _entry(self, parent: str, name: str) -> _Outcome | None:
        """What the entry ``name`` of the real directory ``parent`` is, or None when there is no such entry."""
        if not acceptable_name(name):
            return RefusalReason.BAD_NAME
        try:
            real, st = self._resolve(parent, [name])
        except _Refused as refused:
            return refused.reason
        except _Missing as missing:
            return RefusalReason.BROKEN if missing.through_link else None
        return self._node(real, st)

    # -- listing and walking ------------------------------------------------------------------

    def _count(self) -> None:
        self._state.entries += 1
        if self._state.entries > self._limits.max_entries:
            raise TreeError(
                TreeProblem.TOO_MANY_ENTRIES,
                f"reaches more than {self._limits.max_entries} files, directories and links "
                f"(KULTA's limit per sync): narrow --path or move other files out of the repository",
            )

    def _list(self, real: str) -> tuple[tuple[str, _Outcome], ...]:
        cached = self._state.listings.get(real)
        if cached is not None:
            return cached
        names: list[str] = []
        try:
            with os.scandir(real) as entries:
                for entry in entries:
                    if real == self._real_root and entry.name == GIT_DIR_NAME:
                        continue
                    self._count()
                    names.append(entry.name)
        except OSError as exc:
            where = printable(os.path.relpath(real, self._real_root))
            raise TreeError(TreeProblem.UNREADABLE, f"cannot list {where!r}: {exc.strerror or exc}") from None
        listing: list[tuple[str, _Outcome]] = []
        for name in sorted(names):
            outcome = self._entry(real, name)
            if outcome is not None:  # None: the entry vanished between scandir and lstat
                listing.append((name, outcome))
        self._state.listings[real] = tuple(listing)
        return self._state.listings[real]

    def _refuse(self, route: PurePosixPath, reason: RefusalReason) -> None:
        if reason in _ALWAYS_REPORTED or _is_yaml(route.name):
            text = printable(route.as_posix())
            self._state.refused.setdefault(text, Refusal(text, reason))

    def _add_file(self, route: PurePosixPath, node: _Node) -> None:
        state = self._state
        if route in state.files:
            return
        state.files[route] = None
        if node.real in state.counted or node.size > self._limits.max_file_bytes:
            # The loader reads a file once, and refuses (by its size alone) one above its limit.
            return
        state.counted.add(node.real)
        state.total_bytes += node.size
        if state.total_bytes > self._limits.max_total_bytes:
            raise TreeError(
                TreeProblem.TOO_MANY_BYTES,
                f"selects YAML files holding more than {self._limits.max_total_bytes} bytes "
                f"(KULTA's limit per sync): narrow --path or split the repository",
            )

    def _take(self, route: PurePosixPath, outcome: _Outcome) -> None:
        if isinstance(outcome, RefusalReason):
            self._refuse(route, outcome)
        elif outcome.kind is _Kind.DIRECTORY:
            self._walk(route, outcome.real)
        elif outcome.kind is _Kind.FILE:
            if _is_yaml(route.name):
                self._add_file(route, outcome)
        else:
            self._refuse(route, RefusalReason.NOT_REGULAR)

    def _walk(self, route: PurePosixPath, real: str) -> None:
        stack = [(route, real)]
        while stack:
            here, here_real = stack.pop()
            if here_real in self._state.walked:
                continue
            self._state.walked.add(here_real)
            for name, outcome in self._list(here_real):
                child = here / name
                if isinstance(outcome, _Node) and outcome.kind is _Kind.DIRECTORY:
                    stack.append((child, outcome.real))
                else:
                    self._take(child, outcome)

    def _directories_below(self, route: PurePosixPath, real: str) -> Iterator[tuple[PurePosixPath, str]]:
        """``route`` and every directory below it (what ``**`` matches), each real directory once."""
        seen: set[str] = set()
        stack = [(route, real)]
        while stack:
            here, here_real = stack.pop()
            if here_real in seen:
                continue
            seen.add(here_real)
            yield here, here_real
            for name, outcome in reversed(self._list(here_real)):
                if isinstance(outcome, _Node) and outcome.kind is _Kind.DIRECTORY:
                    stack.append((here / name, outcome.real))
                elif isinstance(outcome, RefusalReason):
                    self._refuse(here / name, outcome)

    # -- the two ways to read --path ------------------------------------------------------------

    def _literal(self, parts: list[str]) -> _Node | None:
        """The node ``parts`` name literally, or None when it does not exist."""
        if not parts:
            return _Node(self._real_root, _Kind.DIRECTORY, 0)
        for index, part in enumerate(parts):
            if not acceptable_name(part):
                raise self._refused_path(parts, index, RefusalReason.BAD_NAME)
        try:
            real, st = self._resolve(self._real_root, parts)
        except _Missing:
            return None
        except _Refused as refused:
            raise self._refused_path(parts, refused.origin, refused.reason) from None
        node = self._node(real, st)
        if node.kind is _Kind.OTHER:
            raise self._refused_path(parts, len(parts) - 1, RefusalReason.NOT_REGULAR)
        return node

    def _refused_path(self, parts: list[str], origin: int, reason: RefusalReason) -> TreeError:
        return TreeError(TreeProblem.REFUSED, f"is refused: {self._route_text(parts, origin)}: {reason.value}")

    def _glob(self, parts: list[str]) -> list[tuple[PurePosixPath, _Outcome]]:
        """Entries ``parts`` match, with ``pathlib`` semantics (``*`` within a name, ``**`` any depth)."""
        current: list[tuple[PurePosixPath, str]] = [(PurePosixPath(), self._real_root)]
        matches: list[tuple[PurePosixPath, _Outcome]] = []
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            found: list[tuple[PurePosixPath, _Outcome]] = []
            for route, real in current:
                if part == _RECURSIVE:
                    found.extend((r, _Node(d, _Kind.DIRECTORY, 0)) for r, d in self._directories_below(route, real))
                elif _has_glob(part):
                    found.extend((route / n, o) for n, o in self._list(real) if fnmatch.fnmatchcase(n, part))
                else:
                    outcome = self._entry(real, part)
                    if outcome is not None:
                        found.append((route / part, outcome))
            if last:
                matches = found
                break
            current = []
            for route, outcome in found:
                if isinstance(outcome, RefusalReason):
                    self._refuse(route, outcome)
                elif outcome.kind is _Kind.DIRECTORY:
                    current.append((route, outcome.real))
        unique = dict(matches)
        return sorted(unique.items(), key=lambda item: item[0])

    def select(self) -> TreeSelection:
        parts = [part for part in PurePosixPath(self._pattern).parts if part != _CURRENT]
        node = self._literal(parts)
        if node is not None:
            self._take(PurePosixPath(*parts), node)
        elif _has_glob(self._pattern):
            for route, outcome in self._glob(parts):
                self._take(route, outcome)
        else:
            raise TreeError(TreeProblem.MISSING, "does not exist")
        state = self._state
        return TreeSelection(
            files=tuple(self._root / route for route in sorted(state.files)),
            refused=tuple(state.refused[path] for path in sorted(state.refused)),
            entries=state.entries,
            total_bytes=state.total_bytes,
        )


def select_files(root: Path, pattern: str, limits: TreeLimits | None = None) -> TreeSelection:
    """The ``*.yaml``/``*.yml`` files ``pattern`` selects under ``root``, confined to it (module docstring).

    ``pattern`` is relative to ``root`` and has no ``..`` (``GitSourceConfig``
    checks). Raises ``TreeError`` when nothing can be selected: the literal
    path and no glob match is MISSING, a literal path that is refused is
    REFUSED, a limit reached is TOO_MANY_*, and an OS error is UNREADABLE.
    """
    return _Selector(root, pattern, limits or TreeLimits()).select()
