"""Load Rollouts and analysis templates from files: YAML in, typed models and errors out.

This is the one entry point from user files to ``kulta.model``. It never raises for a
user's mistake: every problem becomes a ``SpecError`` in ``LoadResult.errors`` and the
reading goes on, so one bad file (or document) never hides the others. Only objects
without errors are returned. Checks that span documents (a template referenced by a
Rollout, a Deployment named by ``workloadRef``, duplicate names) run after all files
are read, so a template may live in another file than its Rollout.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kulta.core.analysis_run import ARGS_PREFIX, BUILTIN_NAME, BUILTIN_NAMESPACE
from kulta.errors import SpecError
from kulta.model.analysis import AnalysisTemplate
from kulta.model.rollout import (
    DEFAULT_NAMESPACE,
    AnalysisArg,
    AnalysisTemplateRef,
    OtherDocument,
    Rollout,
    SourceRef,
)
from kulta.spec.analysis_parser import ANY_PLACEHOLDER, condition_problem, parse_analysis_template
from kulta.spec.fields import Issues, show
from kulta.spec.rollout_parser import parse_rollout
from kulta.spec.rollout_workload import check_pod_template, selector_matches
from kulta.spec.yamlio import MAX_FILE_BYTES, read_documents

__all__ = [
    "API_VERSIONS",
    "KIND_CLUSTER_TEMPLATE",
    "KIND_ROLLOUT",
    "KIND_TEMPLATE",
    "LoadResult",
    "OtherDocument",
    "find_template",
    "load_paths",
    "load_text",
]

log = logging.getLogger(__name__)

#: Argo's format as-is, and KULTA's own group with the same schema.
API_VERSIONS = ("argoproj.io/v1alpha1", "kulta.io/v1alpha1")
KIND_ROLLOUT = "Rollout"
KIND_TEMPLATE = "AnalysisTemplate"
KIND_CLUSTER_TEMPLATE = "ClusterAnalysisTemplate"
_KINDS = (KIND_ROLLOUT, KIND_TEMPLATE, KIND_CLUSTER_TEMPLATE)
_GROUPS = tuple(version.split("/")[0] for version in API_VERSIONS)
_REFUSED_KINDS = {
    "AnalysisRun": "KULTA creates analysis runs itself: remove this document",
    "Experiment": "experiments are not supported by KULTA: remove this document",
}
_YAML_SUFFIXES = (".yaml", ".yml")
_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class LoadResult:
    """What a set of files holds: valid objects, every error, the files read."""

    rollouts: tuple[Rollout, ...] = ()
    templates: tuple[AnalysisTemplate, ...] = ()
    errors: tuple[SpecError, ...] = ()
    files: tuple[str, ...] = ()
    others: tuple[OtherDocument, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Collected:
    rollouts: list[Rollout] = dataclasses.field(default_factory=list)
    templates: list[AnalysisTemplate] = dataclasses.field(default_factory=list)
    others: list[OtherDocument] = dataclasses.field(default_factory=list)
    errors: list[SpecError] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)


def find_template(
    templates: Sequence[AnalysisTemplate], ref: AnalysisTemplateRef, namespace: str
) -> AnalysisTemplate | None:
    """The template ``ref`` names for a Rollout in ``namespace`` (cluster-scoped when asked)."""
    for template in templates:
        if template.name != ref.name or template.cluster_scoped != ref.cluster_scope:
            continue
        if ref.cluster_scope or template.namespace == namespace:
            return template
    return None


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
    if kind in _KINDS or group in _GROUPS:
        if kind in _REFUSED_KINDS:
            issues.add("kind", _REFUSED_KINDS[kind])
        elif kind not in _KINDS:
            issues.add("kind", f"{show(kind)} is not supported; KULTA reads {', '.join(_KINDS)}")
        elif api_version not in API_VERSIONS:
            issues.add("apiVersion", f"{show(api_version)} is not supported; use {' or '.join(API_VERSIONS)}")
        elif kind == KIND_ROLLOUT:
            rollout = parse_rollout(issues, data, api_version, source)
            if rollout is not None:
                into.rollouts.append(rollout)
        else:
            template = parse_analysis_template(
                issues, data, cluster_scoped=kind == KIND_CLUSTER_TEMPLATE, source=source
            )
            if template is not None:
                into.templates.append(template)
        into.errors.extend(issues.errors)
        return
    metadata = data.get("metadata")
    meta = metadata if isinstance(metadata, Mapping) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    into.others.append(
        OtherDocument(
            kind=kind,
            name=name if isinstance(name, str) else "",
            namespace=namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE,
            body=data,
            source=source,
            api_version=api_version,
        )
    )


def _parse_text(text: str, file: str, into: _Collected) -> None:
    documents, errors = read_documents(text, file)
    into.errors.extend(errors)
    for document in documents:
        if document.data is None:
            continue
        _parse_document(document.data, file, document.index, into)


def _error_at(source: SourceRef, path: str, message: str) -> SpecError:
    return SpecError(source.file, source.document, path, message)


_CANARY = "spec.strategy.canary"
_CONDITION_KEYS = ("successCondition", "failureCondition")


def _literal_values(rollout: Rollout, template: AnalysisTemplate, args: Sequence[AnalysisArg]) -> dict[str, str]:
    """The placeholder values known from the files alone: literal ``value``s and the Rollout's name.

    A Rollout's argument replaces the template's default (``analysis_run.resolve_args``);
    ``valueFrom`` and the revision hashes are only known when the run starts.
    """
    values = {BUILTIN_NAME: rollout.name, BUILTIN_NAMESPACE: rollout.namespace}
    for template_arg in template.args:
        if template_arg.value is not None:
            values[ARGS_PREFIX + template_arg.name] = template_arg.value
    for arg in args:
        values.pop(ARGS_PREFIX + arg.name, None)
        if arg.value is not None:
            values[ARGS_PREFIX + arg.name] = arg.value
    return values


def _rendered_condition_errors(
    rollout: Rollout, template: AnalysisTemplate, args: Sequence[AnalysisArg], path: str
) -> list[SpecError]:
    """Conditions with placeholders, parsed with this Rollout's literal arguments filled in.

    A condition whose placeholders are not all known here is parsed when the run starts.
    """
    values = _literal_values(rollout, template, args)
    errors: list[SpecError] = []
    for position, metric in enumerate(template.metrics):
        for key, condition in zip(_CONDITION_KEYS, (metric.success_condition, metric.failure_condition), strict=True):
            if condition is None or not ANY_PLACEHOLDER.search(condition):
                continue
            names = ANY_PLACEHOLDER.findall(condition)
            if not all(name in values for name in names):
                continue
            rendered = ANY_PLACEHOLDER.sub(lambda match: values[match.group(1)], condition)
            problem = condition_problem(rendered)
            if problem is not None:
                errors.append(
                    _error_at(
                        rollout.source,
                        f"{path}.args",
                        f'with these arguments, {key} of metric "{metric.name}" in template "{template.name}" '
                        f"({template.source} spec.metrics[{position}]) is {show(rendered)}, not a valid "
                        f"condition: {problem}",
                    )
                )
    return errors


def _check_analysis_refs(
    rollout: Rollout,
    refs: Sequence[AnalysisTemplateRef],
    args: Sequence[AnalysisArg],
    path: str,
    templates: Sequence[AnalysisTemplate],
) -> list[SpecError]:
    errors: list[SpecError] = []
    given = {arg.name for arg in args}
    for ref in refs:
        template = find_template(templates, ref, rollout.namespace)
        if template is None:
            if ref.cluster_scope:
                what = f'ClusterAnalysisTemplate "{ref.name}"'
            else:
                what = f'AnalysisTemplate "{ref.name}" in namespace "{rollout.namespace}"'
            errors.append(
                _error_at(rollout.source, path, f"{what} is not in the files KULTA read: add it or fix the name")
            )
            continue
        errors += _rendered_condition_errors(rollout, template, args, path)
        for arg in template.args:
            if not arg.has_default and arg.name not in given:
                errors.append(
                    _error_at(
                        rollout.source,
                        f"{path}.args",
                        f'template "{template.name}" needs argument "{arg.name}" ({template.source}): '
                        f"add {{name: {arg.name}, value: ...}}",
                    )
                )
    return errors


def _resolve_workload(rollout: Rollout, others: Sequence[OtherDocument]) -> tuple[Rollout | None, list[SpecError]]:
    ref = rollout.spec.workload_ref
    if ref is None:
        return rollout, []
    for other in others:
        if other.kind == ref.kind and other.name == ref.name and other.namespace == rollout.namespace:
            break
    else:
        return None, [
            _error_at(
                rollout.source,
                "spec.workloadRef.name",
                f'{ref.kind} "{ref.name}" in namespace "{rollout.namespace}" is not in the files KULTA read: '
                "add it, or put the pod template in spec.template",
            )
        ]
    issues = Issues(other.source.file, other.source.document)
    spec = other.body.get("spec")
    spec_map: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
    template = check_pod_template(issues, spec_map.get("template"), "spec.template")
    selector: Mapping[str, Any] = rollout.spec.selector
    if not selector:
        raw = spec_map.get("selector")
        if isinstance(raw, Mapping) and raw:
            selector = dict(raw)
        else:
            issues.add("spec.selector", f"is required: Rollout {rollout.name} ({rollout.source}) takes it from here")
    if template is not None and selector:
        metadata = template.get("metadata")
        labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
        if not selector_matches(selector, labels if isinstance(labels, Mapping) else {}):
            issues.add(
                "spec.template.metadata.labels",
                f"do not satisfy the selector of Rollout {rollout.name} ({rollout.source}): make them match",
            )
    if issues.errors:
        return None, issues.errors
    spec_with_selector = dataclasses.replace(rollout.spec, selector=selector)
    return dataclasses.replace(rollout, spec=spec_with_selector), []


def _cross_check(collected: _Collected) -> LoadResult:
    """Checks across documents; errors end up ordered by file, then document."""
    errors = list(collected.errors)
    templates: list[AnalysisTemplate] = []
    seen_templates: dict[tuple[bool, str, str], AnalysisTemplate] = {}
    for template in collected.templates:
        template_key = (template.cluster_scoped, template.namespace, template.name)
        if template_key in seen_templates:
            first = seen_templates[template_key].source
            errors.append(
                _error_at(
                    template.source,
                    "metadata.name",
                    f'"{template.name}" is already defined in {first}: rename or remove one',
                )
            )
            continue
        seen_templates[template_key] = template
        templates.append(template)
    rollouts: list[Rollout] = []
    seen_rollouts: dict[tuple[str, str], Rollout] = {}
    for rollout in collected.rollouts:
        key = (rollout.namespace, rollout.name)
        problems: list[SpecError] = []
        if key in seen_rollouts:
            problems.append(
                _error_at(
                    rollout.source,
                    "metadata.name",
                    f'Rollout "{rollout.namespace}/{rollout.name}" is already defined in '
                    f"{seen_rollouts[key].source}: rename or remove one",
                )
            )
        strategy = rollout.spec.strategy
        if strategy.analysis is not None:
            problems += _check_analysis_refs(
                rollout, strategy.analysis.templates, strategy.analysis.args, f"{_CANARY}.analysis", templates
            )
        for step in strategy.steps:
            if step.analysis is not None:
                problems += _check_analysis_refs(
                    rollout,
                    step.analysis.templates,
                    step.analysis.args,
                    f"{_CANARY}.steps[{step.index}].analysis",
                    templates,
                )
        resolved, workload_errors = _resolve_workload(rollout, collected.others)
        problems += workload_errors
        if problems or resolved is None:
            errors += problems
            continue
        seen_rollouts[key] = resolved
        rollouts.append(resolved)
    file_order = {name: position for position, name in enumerate(collected.files)}
    errors.sort(key=lambda error: (file_order.get(error.file, len(file_order)), error.document))
    return LoadResult(
        rollouts=tuple(rollouts),
        templates=tuple(templates),
        errors=tuple(errors),
        files=tuple(collected.files),
        others=tuple(collected.others),
    )


def load_text(text: str, file: str) -> LoadResult:
    """Everything in one YAML text, named ``file`` in errors."""
    collected = _Collected(files=[file])
    _parse_text(text, file, collected)
    return _cross_check(collected)


def _display_name(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix()


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _expand(raw: str | Path, base: Path | None, collected: _Collected) -> list[Path]:
    text = str(raw)
    if isinstance(raw, str) and any(char in text for char in _GLOB_CHARS):
        matches = sorted(Path(match) for match in glob.glob(text, recursive=True))
        files = [match for match in matches if match.is_file()]
        if not files:
            collected.errors.append(SpecError(text, 1, "", "the pattern matched no files: check the path"))
        return files
    path = Path(raw)
    if path.is_dir():
        found = sorted(
            candidate
            for candidate in path.rglob("*")
            if candidate.suffix in _YAML_SUFFIXES and candidate.is_file() and not _is_hidden(candidate, path)
        )
        if not found:
            log.info("no YAML files under %s", path)
        return found
    if path.is_file():
        return [path]
    collected.errors.append(SpecError(_display_name(path, base), 1, "", "no such file or directory: check the path"))
    return []


def _read_file(path: Path, name: str, collected: _Collected) -> str | None:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            collected.errors.append(
                SpecError(
                    name, 1, "", f"the file is {size} bytes; KULTA reads files up to {MAX_FILE_BYTES} bytes: split it"
                )
            )
            return None
        raw = path.read_bytes()
    except OSError as exc:
        collected.errors.append(SpecError(name, 1, "", f"cannot be read: {exc.strerror or exc}"))
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        collected.errors.append(SpecError(name, 1, "", f"is not UTF-8 text (byte {exc.start}): save the file as UTF-8"))
        return None


def load_paths(paths: Iterable[str | Path], *, base: Path | None = None) -> LoadResult:
    """Read files, directories (``*.yaml``/``*.yml`` below them, sorted) and globs.

    File names in errors and ``files`` are relative to ``base`` when given.
    """
    collected = _Collected()
    seen: set[Path] = set()
    for raw in paths:
        for path in _expand(raw, base, collected):
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            name = _display_name(path, base)
            collected.files.append(name)
            text = _read_file(path, name, collected)
            if text is not None:
                _parse_text(text, name, collected)
    result = _cross_check(collected)
    log.info(
        "loaded %d files: %d rollouts, %d templates, %d errors",
        len(result.files),
        len(result.rollouts),
        len(result.templates),
        len(result.errors),
    )
    return result
