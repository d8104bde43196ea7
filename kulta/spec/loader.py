"""Load Rollouts and analysis templates from files: YAML in, typed models and errors out.

This is the one entry point from user files to ``kulta.model``. It never raises for a
user's mistake: every problem becomes a ``SpecError`` in ``LoadResult.errors`` and the
reading goes on, so one bad file (or document) never hides the others. Only objects
without errors are returned. Checks that span documents (a template referenced by a
Rollout, a Deployment named by ``workloadRef``, duplicate names) run after all files
are read (``kulta.spec.references``), so a template may live in another file than its
Rollout. Which files are read: the named ones, and with ``siblings`` the other YAML
files of their directories, for references only (docs/spec.md, "Which files are read").
"""

from __future__ import annotations

import dataclasses
import enum
import glob
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kulta.errors import SpecError
from kulta.model.analysis import AnalysisTemplate
from kulta.model.rollout import (
    OtherDocument,
    Rollout,
    SourceRef,
)
from kulta.spec.analysis_parser import parse_analysis_template
from kulta.spec.fields import Issues, SpecWarning, show
from kulta.spec.namespaces import DefaultNamespaces
from kulta.spec.references import (
    KIND_CLUSTER_TEMPLATE,
    KIND_TEMPLATE,
    Documents,
    RefusedDocument,
    check_references,
    find_template,
)
from kulta.spec.rollout_parser import parse_rollout
from kulta.spec.yamlio import MAX_FILE_BYTES, read_documents

__all__ = [
    "API_VERSIONS",
    "KIND_CLUSTER_TEMPLATE",
    "KIND_ROLLOUT",
    "KIND_TEMPLATE",
    "LoadResult",
    "OtherDocument",
    "SpecWarning",
    "find_template",
    "load_paths",
    "load_text",
]

log = logging.getLogger(__name__)

#: Argo's format as-is, and KULTA's own group with the same schema.
API_VERSIONS = ("argoproj.io/v1alpha1", "kulta.io/v1alpha1")
KIND_ROLLOUT = "Rollout"
_KINDS = (KIND_ROLLOUT, KIND_TEMPLATE, KIND_CLUSTER_TEMPLATE)
_GROUPS = tuple(version.split("/")[0] for version in API_VERSIONS)
_REFUSED_KINDS = {
    "AnalysisRun": "KULTA creates analysis runs itself: remove this document",
    "Experiment": "experiments are not supported by KULTA: remove this document",
}
_YAML_SUFFIXES = (".yaml", ".yml")
_DEFAULT_NAMESPACES = DefaultNamespaces()
_GLOB_CHARS = ("*", "?", "[")
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
#: an unexpected exception's text is cut to this many characters in the error.
_MAX_BUG_TEXT = 200


@dataclass(frozen=True)
class LoadResult:
    """What a set of files holds: valid objects, every error, the files read."""

    #: the Rollouts of the named files
    rollouts: tuple[Rollout, ...] = ()
    #: every valid template, of the named files and of the files read for references
    templates: tuple[AnalysisTemplate, ...] = ()
    #: the errors of the named files
    errors: tuple[SpecError, ...] = ()
    #: what the named files hold that KULTA accepts but does not use
    warnings: tuple[SpecWarning, ...] = ()
    #: the named files (what the paths expanded to), in reading order
    files: tuple[str, ...] = ()
    others: tuple[OtherDocument, ...] = ()
    #: files read only to find what the named files refer to (their errors are not reported)
    reference_files: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def templates_of_named_files(self) -> tuple[AnalysisTemplate, ...]:
        named = set(self.files)
        return tuple(template for template in self.templates if template.source.file in named)


@dataclass
class _Collected:
    rollouts: list[Rollout] = dataclasses.field(default_factory=list)
    templates: list[AnalysisTemplate] = dataclasses.field(default_factory=list)
    refused: list[RefusedDocument] = dataclasses.field(default_factory=list)
    others: list[OtherDocument] = dataclasses.field(default_factory=list)
    errors: list[SpecError] = dataclasses.field(default_factory=list)
    warnings: list[SpecWarning] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)
    reference_files: list[str] = dataclasses.field(default_factory=list)
    namespaces: DefaultNamespaces = _DEFAULT_NAMESPACES
    #: documents without metadata.namespace -> why they are in the namespace they got
    namespace_origins: dict[SourceRef, str] = dataclasses.field(default_factory=dict)


def _identity(data: Mapping[str, Any]) -> tuple[str, str | None]:
    """``metadata.name`` (``""`` when absent) and ``metadata.namespace`` (``None`` when absent)."""
    metadata = data.get("metadata")
    meta = metadata if isinstance(metadata, Mapping) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    return (name if isinstance(name, str) else "", namespace if isinstance(namespace, str) and namespace else None)


def _parse_document(data: Any, file: str, number: int, into: _Collected) -> None:
    issues = Issues(file, number)
    source = SourceRef(file=file, document=number)
    if not isinstance(data, Mapping):
        issues.add("", f"must be a Kubernetes object (a mapping with apiVersion and kind), got {show(data)}")
        into.errors.extend(issues.errors)
        return
    kind, api_version = data.get("kind"), data.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        issues.add("kind", "is required (Rollout, AnalysisTemplate, ClusterAnalysisTemplate or any Kubernetes kind)")
    if not isinstance(api_version, str) or not api_version:
        issues.add("apiVersion", f"is required (e.g. {API_VERSIONS[0]})")
    if issues.errors or not isinstance(kind, str) or not isinstance(api_version, str):
        into.errors.extend(issues.errors)
        return
    group = api_version.split("/")[0]
    name, written_namespace = _identity(data)
    default_namespace = into.namespaces.for_file(file)
    namespace = written_namespace or default_namespace
    if written_namespace is None and kind != KIND_CLUSTER_TEMPLATE:
        into.namespace_origins[source] = into.namespaces.origin(file)
    if kind in _KINDS or group in _GROUPS:
        if kind in _REFUSED_KINDS:
            issues.add("kind", _REFUSED_KINDS[kind])
        elif kind not in _KINDS:
            issues.add("kind", f"{show(kind)} is not supported; KULTA reads {', '.join(_KINDS)}")
        elif api_version not in API_VERSIONS:
            issues.add("apiVersion", f"{show(api_version)} is not supported; use {' or '.join(API_VERSIONS)}")
        elif kind == KIND_ROLLOUT:
            rollout = parse_rollout(issues, data, api_version, source, default_namespace=default_namespace)
            if rollout is not None:
                into.rollouts.append(rollout)
        else:
            cluster_scoped = kind == KIND_CLUSTER_TEMPLATE
            template = parse_analysis_template(
                issues, data, cluster_scoped=cluster_scoped, source=source, default_namespace=default_namespace
            )
            if template is not None:
                into.templates.append(template)
            else:
                into.refused.append(
                    RefusedDocument(
                        kind=kind,
                        name=name,
                        namespace="" if cluster_scoped else namespace,
                        source=source,
                        errors=tuple(issues.errors),
                    )
                )
        into.errors.extend(issues.errors)
        into.warnings.extend(issues.warnings)
        return
    into.others.append(
        OtherDocument(
            kind=kind,
            name=name,
            namespace=namespace,
            body=data,
            source=source,
            api_version=api_version,
        )
    )


def _unexpected(file: str, number: int, exc: Exception) -> SpecError:
    """A bug met while reading a file, as that file's error: the other files are still read."""
    text = f"{type(exc).__name__}: {exc}"
    shown = text if len(text) <= _MAX_BUG_TEXT else text[:_MAX_BUG_TEXT] + "..."
    return SpecError(
        file, number, "", f"KULTA failed to read this document ({shown}); this is a bug in KULTA: please report it"
    )


def _parse_text(text: str, file: str, into: _Collected) -> None:
    """Every document of one file into ``into``; whatever happens, only this file's results change."""
    try:
        documents, errors = read_documents(text, file)
    except Exception as exc:
        log.exception("reading %s failed unexpectedly (a bug: please report it)", file)
        into.errors.append(_unexpected(file, 1, exc))
        return
    into.errors.extend(errors)
    for document in documents:
        if document.data is None:
            continue
        try:
            _parse_document(document.data, file, document.index, into)
        except Exception as exc:
            log.exception("parsing %s#%d failed unexpectedly (a bug: please report it)", file, document.index)
            into.errors.append(_unexpected(file, document.index, exc))


def _cross_check(collected: _Collected) -> LoadResult:
    """Checks across documents (``references``); errors end up ordered by file, then document."""
    references = set(collected.reference_files)
    checked = check_references(
        Documents(
            rollouts=tuple(rollout for rollout in collected.rollouts if rollout.source.file not in references),
            templates=tuple(collected.templates),
            refused=tuple(collected.refused),
            others=tuple(collected.others),
            namespace_origins=dict(collected.namespace_origins),
        )
    )
    unique: dict[tuple[str, int, str, str], SpecError] = {}
    for error in (*collected.errors, *checked.errors):
        if error.file in references:
            log.debug("not reported (a file read for references): %s", error)
            continue
        unique.setdefault((error.file, error.document, error.path, error.message), error)
    errors = list(unique.values())
    file_order = {name: position for position, name in enumerate(collected.files)}
    errors.sort(key=lambda error: (file_order.get(error.file, len(file_order)), error.document))
    return LoadResult(
        rollouts=checked.rollouts,
        templates=checked.templates,
        errors=tuple(errors),
        warnings=tuple(
            warning for warning in (*collected.warnings, *checked.warnings) if warning.file not in references
        ),
        files=tuple(collected.files),
        others=tuple(collected.others),
        reference_files=tuple(collected.reference_files),
    )


def load_text(text: str, file: str, *, namespaces: DefaultNamespaces = _DEFAULT_NAMESPACES) -> LoadResult:
    """Everything in one YAML text, named ``file`` in errors."""
    collected = _Collected(files=[file], namespaces=namespaces)
    _parse_text(text, file, collected)
    return _cross_check(collected)


def _real(path: Path) -> Path:
    """``path`` with symlinks resolved; never raises (a symlink loop stays as it is)."""
    return Path(os.path.realpath(path))


def _display_name(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return _real(path).relative_to(_real(base)).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix()


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


class _Kind(enum.Enum):
    """What a path names, found with ``stat`` (never by opening it)."""

    MISSING = "missing"
    DIRECTORY = "directory"
    FILE = "regular file"
    OTHER = "other"


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _special(mode: int) -> str:
    return next((what for test, what in _SPECIAL_FILES if test(mode)), "not a regular file")


def _kind(path: Path) -> tuple[_Kind, str]:
    """The kind of ``path`` (following symlinks) and, for ``OTHER``, why it cannot be read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return _Kind.OTHER, "is a broken symbolic link: fix or remove it"
        return _Kind.MISSING, ""
    except OSError as exc:
        return _Kind.OTHER, f"cannot be read: {exc.strerror or exc}"
    except ValueError:  # an embedded NUL character
        return _Kind.OTHER, "is not a valid file name"
    if stat.S_ISDIR(mode):
        return _Kind.DIRECTORY, ""
    if stat.S_ISREG(mode):
        return _Kind.FILE, ""
    return _Kind.OTHER, f"is not a regular file ({_special(mode)}): KULTA reads regular files only"


def _expand(raw: str | Path, base: Path | None, collected: _Collected) -> list[Path]:
    """The files ``raw`` names: itself, the YAML files below a directory, or a glob's matches.

    An existing path is taken literally first, so ``weird[1].yaml`` is that file, not a
    pattern. Paths that are not regular files are returned too: reading them reports why.
    """
    text = str(raw)
    path = Path(raw)
    kind, _ = _kind(path)
    if kind is _Kind.MISSING and isinstance(raw, str) and any(char in text for char in _GLOB_CHARS):
        matches = sorted(Path(match) for match in glob.glob(text, recursive=True))
        files = [match for match in matches if _kind(match)[0] is not _Kind.DIRECTORY]
        if not files:
            collected.errors.append(SpecError(text, 1, "", "the pattern matched no files: check the path"))
        return files
    if kind is _Kind.DIRECTORY:
        found = sorted(
            candidate
            for candidate in path.rglob("*")
            if candidate.suffix in _YAML_SUFFIXES
            and not _is_hidden(candidate, path)
            and _kind(candidate)[0] is not _Kind.DIRECTORY
        )
        if not found:
            log.info("no YAML files under %s", path)
        return found
    if kind is _Kind.MISSING:
        collected.errors.append(
            SpecError(_display_name(path, base), 1, "", "no such file or directory: check the path")
        )
        return []
    return [path]


def _too_big(name: str, size: int) -> SpecError:
    return SpecError(name, 1, "", f"the file is {size} bytes; KULTA reads files up to {MAX_FILE_BYTES} bytes: split it")


def _read_bytes(path: Path, name: str, collected: _Collected) -> bytes | None:
    """The bytes of a regular file of at most ``MAX_FILE_BYTES``; anything else is an error of ``name``.

    The path is checked with ``stat`` before it is opened (a FIFO or a device is never
    opened), and again on the open descriptor, non-blocking, in case it was swapped
    in between; at most one byte more than the limit is read.
    """
    kind, problem = _kind(path)
    if kind is not _Kind.FILE:
        collected.errors.append(SpecError(name, 1, "", problem or "no such file or directory: check the path"))
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_NOCTTY)
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                message = f"is not a regular file ({_special(status.st_mode)}): KULTA reads regular files only"
                collected.errors.append(SpecError(name, 1, "", message))
                return None
            if status.st_size > MAX_FILE_BYTES:
                collected.errors.append(_too_big(name, status.st_size))
                return None
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        collected.errors.append(SpecError(name, 1, "", f"cannot be read: {exc.strerror or exc}"))
        return None
    if len(raw) > MAX_FILE_BYTES:  # it grew while being read
        collected.errors.append(_too_big(name, len(raw)))
        return None
    return raw


def _read_file(path: Path, name: str, collected: _Collected) -> str | None:
    raw = _read_bytes(path, name, collected)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        collected.errors.append(SpecError(name, 1, "", f"is not UTF-8 text (byte {exc.start}): save the file as UTF-8"))
        return None


def _yaml_files_in(directory: Path) -> list[Path]:
    """The YAML files directly in ``directory`` (not below it), sorted, hidden ones skipped."""
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        log.warning("cannot list %s for referenced templates and Deployments: %s", directory, exc)
        return []
    return [
        entry
        for entry in entries
        if entry.suffix in _YAML_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
    ]


def _read_into(path: Path, name: str, collected: _Collected) -> None:
    text = _read_file(path, name, collected)
    if text is not None:
        _parse_text(text, name, collected)


def load_paths(
    paths: Iterable[str | Path],
    *,
    base: Path | None = None,
    siblings: bool = False,
    namespaces: DefaultNamespaces = _DEFAULT_NAMESPACES,
) -> LoadResult:
    """Read files, directories (``*.yaml``/``*.yml`` below them, sorted) and globs: the named files.

    With ``siblings`` (``kulta validate``, ``plan``, ``preview``), the other YAML files
    directly in each named file's directory are read too, only to find what the named
    files refer to (analysis templates, ``workloadRef`` Deployments): their Rollouts and
    their errors are left out of the result. File names in errors and ``files`` are
    relative to ``base`` when given. A document without ``metadata.namespace`` is in
    the namespace ``namespaces`` gives its file (``default`` unless told otherwise).
    """
    collected = _Collected(namespaces=namespaces)
    seen: set[Path] = set()
    named: list[Path] = []
    for raw in paths:
        for path in _expand(raw, base, collected):
            resolved = _real(path)
            if resolved not in seen:
                seen.add(resolved)
                named.append(path)
    for path in named:
        name = _display_name(path, base)
        collected.files.append(name)
        _read_into(path, name, collected)
    directories = dict.fromkeys(path.parent for path in named) if siblings else {}
    for directory in directories:
        for path in _yaml_files_in(directory):
            resolved = _real(path)
            if resolved in seen:
                continue
            seen.add(resolved)
            name = _display_name(path, base)
            collected.reference_files.append(name)
            _read_into(path, name, collected)
    result = _cross_check(collected)
    log.info(
        "loaded %d files (and %d for references): %d rollouts, %d templates, %d errors, %d warnings",
        len(result.files),
        len(result.reference_files),
        len(result.rollouts),
        len(result.templates),
        len(result.errors),
        len(result.warnings),
    )
    return result
