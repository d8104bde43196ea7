"""Checks across documents: what a Rollout refers to must be in the files read, and usable.

A Rollout names analysis templates (``steps[].analysis``, ``canary.analysis``,
``blueGreen.pre/postPromotionAnalysis``) and
maybe a Deployment (``workloadRef``). Each is looked up among the documents of every
file read, in the Rollout's namespace. When the lookup fails, the error names the
real blocker: the object was read but refused (and why), or it is in another
namespace (both messages say where each namespace came from: ``metadata.namespace``
or the default of ``kulta.spec.namespaces``), or it is not in the files at all.
Duplicate names are reported on the second definition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kulta.errors import SpecError
from kulta.model.analysis import AnalysisTemplate
from kulta.model.rollout import (
    AnalysisArg,
    AnalysisRef,
    AnalysisTemplateRef,
    BackgroundAnalysis,
    OtherDocument,
    Rollout,
    SourceRef,
)
from kulta.spec.argument_checks import rendered_condition_errors, rendered_field_problems
from kulta.spec.fields import Issues, SpecWarning
from kulta.spec.rollout_workload import check_pod_template, selector_matches

__all__ = [
    "KIND_CLUSTER_TEMPLATE",
    "KIND_TEMPLATE",
    "Checked",
    "Documents",
    "RefusedDocument",
    "check_references",
    "find_template",
]

KIND_TEMPLATE = "AnalysisTemplate"
KIND_CLUSTER_TEMPLATE = "ClusterAnalysisTemplate"

_CANARY = "spec.strategy.canary"
_BLUE_GREEN = "spec.strategy.blueGreen"
_WORKLOAD_NAME = "spec.workloadRef.name"


@dataclass(frozen=True)
class RefusedDocument:
    """An AnalysisTemplate or ClusterAnalysisTemplate that was read but had errors."""

    kind: str
    name: str
    namespace: str
    source: SourceRef
    errors: tuple[SpecError, ...]


@dataclass(frozen=True)
class Documents:
    """Everything parsed from the files, before the checks across documents."""

    rollouts: tuple[Rollout, ...] = ()
    templates: tuple[AnalysisTemplate, ...] = ()
    refused: tuple[RefusedDocument, ...] = ()
    others: tuple[OtherDocument, ...] = ()
    #: documents without ``metadata.namespace`` -> why they are in the namespace they got
    namespace_origins: Mapping[SourceRef, str] = dataclasses.field(default_factory=dict)

    def in_namespace(self, namespace: str, source: SourceRef, *, located: bool = False) -> str:
        """``in namespace "NS"``, with the document's place (``located``) and where NS came from.

        Where NS came from is said only for a document without ``metadata.namespace``.
        """
        notes = [str(source)] if located else []
        origin = self.namespace_origins.get(source)
        if origin:
            notes.append(origin)
        return f'in namespace "{namespace}"' + (f" ({', '.join(notes)})" if notes else "")


@dataclass(frozen=True)
class Checked:
    """The Rollouts and templates that passed, and the errors found across documents."""

    rollouts: tuple[Rollout, ...]
    templates: tuple[AnalysisTemplate, ...]
    errors: tuple[SpecError, ...]
    #: what could not be checked across documents (a templated field whose value comes from valueFrom)
    warnings: tuple[SpecWarning, ...] = ()


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


def _error_at(source: SourceRef, path: str, message: str) -> SpecError:
    return SpecError(source.file, source.document, path, message)


def _blocker(errors: Sequence[SpecError]) -> str:
    """The first error of a refused object, and how many more it has."""
    first = errors[0]
    where = f"{first.path}: " if first.path else ""
    more = len(errors) - 1
    tail = f" (and {more} more error{'s' if more > 1 else ''} there)" if more else ""
    return f"{where}{first.message}{tail}"


def _template_kind(cluster_scope: bool) -> str:
    return KIND_CLUSTER_TEMPLATE if cluster_scope else KIND_TEMPLATE


def _not_found(
    what: str, rollout: Rollout, documents: Documents, elsewhere: Sequence[tuple[str, SourceRef]], fix: str
) -> str:
    """``what`` is not in the Rollout's namespace: name that namespace, and any same-named object elsewhere."""
    text = f"{what} {documents.in_namespace(rollout.namespace, rollout.source)} is not in the files KULTA read"
    found = [documents.in_namespace(namespace, source, located=True) for namespace, source in elsewhere]
    if found:
        return f"{text}, but one is {' and one '.join(found)}: put them in the same namespace"
    return f"{text}: {fix}"


def _missing_template(rollout: Rollout, ref: AnalysisTemplateRef, documents: Documents) -> str:
    """Why no usable template answers ``ref``: refused (and why), in another namespace, or not in the files."""
    kind = _template_kind(ref.cluster_scope)
    for document in documents.refused:
        if document.kind != kind or document.name != ref.name:
            continue
        if ref.cluster_scope or document.namespace == rollout.namespace:
            return f'{kind} "{ref.name}" ({document.source}) cannot be used: {_blocker(document.errors)}'
    what = f'{kind} "{ref.name}"'
    if ref.cluster_scope:
        return f"{what} is not in the files KULTA read: add it or fix the name"
    elsewhere = [
        (template.namespace, template.source)
        for template in documents.templates
        if template.name == ref.name and not template.cluster_scoped
    ] + [(document.namespace, document.source) for document in documents.refused if document.kind == kind]
    elsewhere = [(namespace, source) for namespace, source in elsewhere if namespace != rollout.namespace]
    return _not_found(what, rollout, documents, sorted(elsewhere, key=str), "add it or fix the name")


def _check_analysis_refs(
    rollout: Rollout,
    refs: Sequence[AnalysisTemplateRef],
    args: Sequence[AnalysisArg],
    path: str,
    documents: Documents,
) -> tuple[list[SpecError], list[SpecWarning]]:
    errors: list[SpecError] = []
    warnings: list[SpecWarning] = []
    given = {arg.name for arg in args}
    for ref in refs:
        template = find_template(documents.templates, ref, rollout.namespace)
        if template is None:
            errors.append(_error_at(rollout.source, path, _missing_template(rollout, ref, documents)))
            continue
        errors += rendered_condition_errors(rollout, template, args, path)
        missing = [arg.name for arg in template.args if not arg.has_default and arg.name not in given]
        for name in missing:
            errors.append(
                _error_at(
                    rollout.source,
                    f"{path}.args",
                    f'template "{template.name}" needs argument "{name}" ({template.source}): '
                    f"add {{name: {name}, value: ...}}",
                )
            )
        if not missing:
            field_errors, field_warnings = rendered_field_problems(rollout, template, args, path)
            errors += field_errors
            warnings += field_warnings
    return errors, warnings


def _resolve_workload(rollout: Rollout, documents: Documents) -> tuple[Rollout | None, list[SpecError]]:
    """The Rollout with the selector of its ``workloadRef`` Deployment, or the errors that prevent it.

    When the Deployment is found but unusable, its own errors are reported at the
    Deployment and one error at the Rollout's ``workloadRef`` names the first of them.
    """
    ref = rollout.spec.workload_ref
    if ref is None:
        return rollout, []
    same_name = [other for other in documents.others if other.kind == ref.kind and other.name == ref.name]
    for other in same_name:
        if other.namespace == rollout.namespace:
            break
    else:
        elsewhere = [(other.namespace, other.source) for other in same_name]
        message = _not_found(
            f'{ref.kind} "{ref.name}"',
            rollout,
            documents,
            elsewhere,
            "add it, or put the pod template in spec.template",
        )
        return None, [_error_at(rollout.source, _WORKLOAD_NAME, message)]
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
        blocker = _error_at(
            rollout.source,
            _WORKLOAD_NAME,
            f'{ref.kind} "{ref.name}" ({other.source}) cannot be used: {_blocker(issues.errors)}',
        )
        return None, [blocker, *issues.errors]
    spec_with_selector = dataclasses.replace(rollout.spec, selector=selector)
    return dataclasses.replace(rollout, spec=spec_with_selector), []


def _unique_templates(templates: Sequence[AnalysisTemplate]) -> tuple[list[AnalysisTemplate], list[SpecError]]:
    kept: list[AnalysisTemplate] = []
    errors: list[SpecError] = []
    seen: dict[tuple[bool, str, str], AnalysisTemplate] = {}
    for template in templates:
        key = (template.cluster_scoped, template.namespace, template.name)
        if key in seen:
            errors.append(
                _error_at(
                    template.source,
                    "metadata.name",
                    f'"{template.name}" is already defined in {seen[key].source}: rename or remove one',
                )
            )
            continue
        seen[key] = template
        kept.append(template)
    return kept, errors


def check_references(documents: Documents) -> Checked:
    """Every Rollout's templates and workload looked up; the Rollouts that pass, with their selector."""
    templates, errors = _unique_templates(documents.templates)
    warnings: list[SpecWarning] = []
    usable = dataclasses.replace(documents, templates=tuple(templates))
    rollouts: list[Rollout] = []
    seen_rollouts: dict[tuple[str, str], Rollout] = {}
    for rollout in documents.rollouts:
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
        refs: list[tuple[AnalysisRef | BackgroundAnalysis, str]] = []
        if strategy.analysis is not None:
            refs.append((strategy.analysis, f"{_CANARY}.analysis"))
        refs += [(s.analysis, f"{_CANARY}.steps[{s.index}].analysis") for s in strategy.steps if s.analysis]
        blue_green = rollout.spec.blue_green
        if blue_green is not None:
            for field_name, bg_ref in (
                ("prePromotionAnalysis", blue_green.pre_promotion_analysis),
                ("postPromotionAnalysis", blue_green.post_promotion_analysis),
            ):
                if bg_ref is not None:
                    refs.append((bg_ref, f"{_BLUE_GREEN}.{field_name}"))
        for ref, ref_path in refs:
            ref_errors, ref_warnings = _check_analysis_refs(rollout, ref.templates, ref.args, ref_path, usable)
            problems += ref_errors
            warnings += ref_warnings
        resolved, workload_errors = _resolve_workload(rollout, documents)
        problems += workload_errors
        if problems or resolved is None:
            errors += problems
            continue
        seen_rollouts[key] = resolved
        rollouts.append(resolved)
    return Checked(rollouts=tuple(rollouts), templates=tuple(templates), errors=tuple(errors), warnings=tuple(warnings))
