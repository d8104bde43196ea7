"""One reconcile pass of an analysis run: resolve, render, measure what is due, record.

The reconciler calls ``advance_analysis`` once per pass for each inline step
analysis (``step_index`` set: the step waits until the run completes) and for
the background analysis (``step_index=None``: the rollout aborts as soon as the
run is Failed or Error, and pauses for a person when it is Inconclusive). Everything that decides the outcome is in
``kulta.core``; this module only wires it to a ``MetricProvider`` and turns setup
problems (a missing argument, template or secret, duplicate metric names, a
condition that does not parse) into a run that ends Error with a message saying
what to fix. A run that cannot be set up is never Successful, so a rollout is
never promoted because its analysis could not start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from kulta.adapters.prometheus import MetricProvider
from kulta.core.analysis_run import (
    AnalysisSetupError,
    ResolvedArgs,
    builtin_values,
    due_metrics,
    failed_setup,
    record,
    render_metric,
    resolve_args,
    start_run,
)
from kulta.model.analysis import AnalysisTemplate, Metric, PrometheusMetricProvider
from kulta.model.rollout import AnalysisArg, AnalysisTemplateRef
from kulta.model.status import AnalysisRunStatus, Measurement

__all__ = ["AnalysisRefLike", "advance_analysis", "run_metrics", "select_templates"]

log = logging.getLogger(__name__)


class AnalysisRefLike(Protocol):
    """An inline ``AnalysisRef`` or the background analysis: templates and args."""

    @property
    def templates(self) -> tuple[AnalysisTemplateRef, ...]: ...

    @property
    def args(self) -> tuple[AnalysisArg, ...]: ...


def select_templates(
    available: Sequence[AnalysisTemplate], refs: Sequence[AnalysisTemplateRef], namespace: str
) -> tuple[AnalysisTemplate, ...]:
    """The templates ``refs`` name, in order; a missing one is an AnalysisSetupError.

    A namespaced reference matches an AnalysisTemplate of the rollout's namespace
    (or one with no namespace); ``clusterScope: true`` matches a ClusterAnalysisTemplate.
    """
    chosen: list[AnalysisTemplate] = []
    for ref in refs:
        for template in available:
            if template.name != ref.name or template.cluster_scoped != ref.cluster_scope:
                continue
            if not ref.cluster_scope and template.namespace not in (namespace, ""):
                continue
            chosen.append(template)
            break
        else:
            kind = "ClusterAnalysisTemplate" if ref.cluster_scope else f"AnalysisTemplate in namespace {namespace!r}"
            raise AnalysisSetupError(f"{kind} {ref.name!r} is not defined in the repository")
    return tuple(chosen)


def _merged_metrics(templates: Sequence[AnalysisTemplate]) -> tuple[Metric, ...]:
    owner: dict[str, AnalysisTemplate] = {}
    metrics: list[Metric] = []
    for template in templates:
        for metric in template.metrics:
            first = owner.get(metric.name)
            if first is not None:
                raise AnalysisSetupError(
                    f"metric {metric.name!r} is defined by template {first.name!r} "
                    f"({first.source.file}#{first.source.document}) and by {template.name!r} "
                    f"({template.source.file}#{template.source.document}); metric names must be unique in a run"
                )
            owner[metric.name] = template
            metrics.append(metric)
    return tuple(metrics)


def _measure(provider: MetricProvider, metric: Metric, args: ResolvedArgs, now: datetime) -> Measurement:
    headers = dict(metric.provider.headers)
    # secret argument values go in so they are redacted before the provider logs anything
    spec = metric.provider
    query = spec.query if isinstance(spec, PrometheusMetricProvider) else spec.url
    measurement = provider.measure(metric, query, headers, now, secrets=args.secret_values)
    # the provider redacts header values; secret arguments may appear anywhere else too
    return replace(measurement, message=args.redact(measurement.message, extra=list(headers.values())))


def advance_analysis(
    run: AnalysisRunStatus | None,
    *,
    name: str,
    templates: Sequence[AnalysisTemplate],
    ref: AnalysisRefLike,
    step_index: int | None,
    stable_hash: str,
    canary_hash: str,
    rollout: str,
    namespace: str,
    now: datetime,
    provider: MetricProvider,
    environ: Mapping[str, str],
) -> AnalysisRunStatus:
    """Start the run if ``run`` is None, take every due measurement, return the new status.

    ``templates`` are the repository's templates (those ``ref`` names are
    selected). A completed run is returned unchanged. Never raises for problems
    in the user's templates or environment: the run ends Error with the reason.
    """
    current = run if run is not None else start_run(name, step_index=step_index, now=now)
    if current.phase.completed:
        return current
    try:
        rendered, args = run_metrics(
            templates,
            ref,
            stable_hash=stable_hash,
            canary_hash=canary_hash,
            rollout=rollout,
            namespace=namespace,
            environ=environ,
        )
    except AnalysisSetupError as err:
        log.warning("analysis %s of rollout %s/%s cannot run: %s", name, namespace, rollout, err)
        return failed_setup(current, err)
    if run is None:
        log.info("analysis %s of rollout %s/%s started with %d metrics", name, namespace, rollout, len(rendered))
    taken = [_measure(provider, metric, args, now) for metric in due_metrics(current, rendered, now)]
    return record(current, rendered, taken)


def run_metrics(
    templates: Sequence[AnalysisTemplate],
    ref: AnalysisRefLike,
    *,
    stable_hash: str,
    canary_hash: str,
    rollout: str,
    namespace: str,
    environ: Mapping[str, str],
) -> tuple[tuple[Metric, ...], ResolvedArgs]:
    """The run's metrics as measured and scheduled: templates selected, arguments resolved, every
    placeholder rendered (queries, conditions, and a templated ``interval``, ``count`` or limit);
    AnalysisSetupError when that cannot be done.

    Argo schedules with the resolved metrics too (``getResolvedMetricsWithoutSecrets`` before
    ``generateMetricTasks`` and ``calculateNextReconcileTime``, analysis/analysis.go).
    """
    selected = select_templates(templates, ref.templates, namespace)
    metrics = _merged_metrics(selected)
    args = resolve_args(
        [arg for t in selected for arg in t.args],
        ref.args,
        stable_hash=stable_hash,
        canary_hash=canary_hash,
        rollout=rollout,
        namespace=namespace,
        environ=environ,
    )
    builtins = builtin_values(rollout=rollout, namespace=namespace, stable_hash=stable_hash, canary_hash=canary_hash)
    return tuple(render_metric(m, args, builtins) for m in metrics), args
