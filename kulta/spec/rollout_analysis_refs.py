"""A Rollout's references to analysis templates: ``steps[].analysis`` and ``canary.analysis``.

Both name templates (``templates: [{templateName, clusterScope}]`` or Argo's old
``templateName``) and pass ``args``; the background form adds ``startingStep``. Whether
the named templates exist is checked later, across files, by ``kulta.spec.loader``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kulta.model.rollout import AnalysisArg, AnalysisRef, AnalysisTemplateRef, BackgroundAnalysis
from kulta.spec.common import parse_args, unsupported
from kulta.spec.fields import (
    MISSING,
    Issues,
    Shape,
    child,
    index,
    read_bool,
    read_int,
    read_list,
    read_str,
)

__all__ = ["parse_background_analysis", "parse_step_analysis"]

_REFUSED = {
    "dryRun": unsupported("dryRun on a Rollout's analysis", "set dryRun in the AnalysisTemplate instead"),
    "measurementRetention": unsupported("measurementRetention"),
    "analysisRunMetadata": unsupported("analysisRunMetadata"),
}
_STEP_ANALYSIS = Shape(("templates", "templateName", "args"), _REFUSED)
_BACKGROUND_ANALYSIS = Shape(("templates", "templateName", "args", "startingStep"), _REFUSED)
_TEMPLATE_ENTRY = Shape(("templateName", "clusterScope"))


def _template_refs(issues: Issues, data: Mapping[str, Any], path: str) -> tuple[AnalysisTemplateRef, ...]:
    refs: list[AnalysisTemplateRef] = []
    if "templateName" in data:
        name = read_str(issues, data["templateName"], child(path, "templateName"), required=True)
        if name is not None:
            refs.append(AnalysisTemplateRef(name=name, cluster_scope=False))
    items = read_list(issues, data.get("templates", MISSING), child(path, "templates"))
    for position, item in enumerate(items or ()):
        where = index(child(path, "templates"), position)
        entry = _TEMPLATE_ENTRY.read(issues, item, where)
        if entry is None:
            continue
        name = read_str(issues, entry.get("templateName", MISSING), child(where, "templateName"), required=True)
        scope = read_bool(issues, entry.get("clusterScope", MISSING), child(where, "clusterScope"))
        if name is None:
            continue
        ref = AnalysisTemplateRef(name=name, cluster_scope=bool(scope))
        if ref in refs:
            issues.add(child(where, "templateName"), f'template "{name}" is listed twice; keep one')
            continue
        refs.append(ref)
    if not refs and "templates" not in data and "templateName" not in data:
        issues.add(child(path, "templates"), "is required: list at least one {templateName: NAME}")
    elif not refs and items is not None and not items:
        issues.add(child(path, "templates"), "is empty: list at least one {templateName: NAME}")
    return tuple(refs)


def _analysis_args(issues: Issues, data: Mapping[str, Any], path: str) -> tuple[AnalysisArg, ...]:
    specs = parse_args(issues, data.get("args", MISSING), child(path, "args"), value_required=True)
    return tuple(AnalysisArg(name=s.name, value=s.value, value_from=s.value_from) for s in specs)


def parse_step_analysis(issues: Issues, value: Any, path: str) -> AnalysisRef | None:
    """``steps[i].analysis``: the templates run inline, blocking the step until they finish."""
    data = _STEP_ANALYSIS.read(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    refs = _template_refs(issues, data, path)
    args = _analysis_args(issues, data, path)
    return AnalysisRef(templates=refs, args=args) if len(issues) == before else None


def parse_background_analysis(issues: Issues, value: Any, path: str) -> BackgroundAnalysis | None:
    """``canary.analysis``: the templates run in the background from ``startingStep`` on."""
    data = _BACKGROUND_ANALYSIS.read(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    refs = _template_refs(issues, data, path)
    args = _analysis_args(issues, data, path)
    start = read_int(issues, data.get("startingStep", MISSING), child(path, "startingStep"), minimum=0)
    if len(issues) != before:
        return None
    return BackgroundAnalysis(templates=refs, args=args, starting_step=start or 0)
