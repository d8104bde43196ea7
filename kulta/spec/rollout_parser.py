"""Turn one ``Rollout`` document into a ``kulta.model.rollout.Rollout``, or into errors.

The accepted schema is Argo Rollouts' canary strategy with the Gateway API traffic
router, and its blue-green strategy (docs/spec.md). Every field is checked and every problem recorded, so a user
fixes a file in one pass. Argo's quirks are kept (integer pause durations, the old
``analysis.templateName``), Argo's silent ignores are not (unknown ``trafficRouting``
keys, ``setCanaryScale`` without traffic routing are errors here).

This module reads the document and ``spec`` itself; each section has its own module,
named for what it parses (each declares the keys it accepts as a ``fields.Shape``):

- ``rollout_workload``: ``spec.selector``, ``spec.template``, ``spec.workloadRef``
- ``rollout_canary``: the fields of ``spec.strategy.canary`` and the rules across them
- ``rollout_bluegreen``: ``spec.strategy.blueGreen``
- ``rollout_steps``: one entry of ``canary.steps`` (setWeight, pause, setCanaryScale, ...)
- ``rollout_traffic``: ``canary.trafficRouting`` (the Gateway API plugin, managedRoutes)
- ``rollout_analysis_refs``: ``steps[].analysis`` and the background ``canary.analysis``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kulta.core.plan import weighted_steps_without_canary_pods
from kulta.model.rollout import (
    DEFAULT_NAMESPACE,
    BlueGreenStrategy,
    CanaryStrategy,
    Rollout,
    RolloutSpec,
    SourceRef,
)
from kulta.spec.common import parse_metadata, unsupported
from kulta.spec.fields import MISSING, Issues, Shape, check_keys, child, index, read_bool, read_int
from kulta.spec.rollout_bluegreen import parse_blue_green
from kulta.spec.rollout_canary import parse_canary
from kulta.spec.rollout_workload import (
    check_pod_template,
    parse_selector,
    parse_workload_ref,
    selector_matches,
    template_labels,
)

__all__ = ["MAX_ROLLOUT_NAME", "NOTIFICATIONS_ANNOTATION_PREFIX", "parse_rollout"]

#: Argo Rollouts' notification subscriptions: ``notifications.argoproj.io/subscribe.<trigger>.<service>``.
NOTIFICATIONS_ANNOTATION_PREFIX = "notifications.argoproj.io/"
_NOTIFICATIONS_UNUSED = (
    "Argo Rollouts notifications are not sent by KULTA; it emits CDEvents for every rollout instead "
    "(docs/events.md): subscribe a CloudEvents sink (kulta run --sink-url) and remove this annotation"
)

_SPEC = Shape(
    (
        "replicas",
        "selector",
        "template",
        "workloadRef",
        "revisionHistoryLimit",
        "minReadySeconds",
        "progressDeadlineSeconds",
        "progressDeadlineAbort",
        "paused",
        "strategy",
    ),
    {
        "analysis": unsupported("spec.analysis (AnalysisRun history limits)"),
        "restartAt": unsupported("restartAt"),
        "rollbackWindow": unsupported("rollbackWindow"),
    },
)
_STRATEGY = Shape(("canary", "blueGreen"))


def _parse_spec(issues: Issues, value: Any) -> RolloutSpec | None:
    path = "spec"
    before = len(issues)
    data = _SPEC.read(issues, value, path)
    if data is None:
        if value is MISSING:
            issues.add(path, "is required")
        return None
    # Argo's (and Kubernetes') int32 fields: RolloutSpec.Replicas, RevisionHistoryLimit, MinReadySeconds, ...
    replicas = read_int(issues, data.get("replicas", MISSING), child(path, "replicas"), minimum=0)
    replicas = 1 if replicas is None else replicas
    history = read_int(
        issues,
        data.get("revisionHistoryLimit", MISSING),
        child(path, "revisionHistoryLimit"),
        minimum=0,
    )
    min_ready = read_int(issues, data.get("minReadySeconds", MISSING), child(path, "minReadySeconds"), minimum=0)
    deadline = read_int(
        issues,
        data.get("progressDeadlineSeconds", MISSING),
        child(path, "progressDeadlineSeconds"),
        minimum=1,
    )
    if deadline is not None and min_ready is not None and deadline <= min_ready:
        issues.add(
            child(path, "progressDeadlineSeconds"),
            f"{deadline} must be greater than minReadySeconds ({min_ready})",
        )
    elif "progressDeadlineSeconds" not in data and min_ready is not None and min_ready >= 600:
        issues.add(
            child(path, "minReadySeconds"),
            f"{min_ready} must be below progressDeadlineSeconds (600 by default): lower it or set "
            "progressDeadlineSeconds",
        )
    deadline_abort = read_bool(issues, data.get("progressDeadlineAbort", MISSING), child(path, "progressDeadlineAbort"))
    paused = read_bool(issues, data.get("paused", MISSING), child(path, "paused"))
    workload_ref = None
    template = None
    has_template = data.get("template") not in (None, {}) and "template" in data
    if "workloadRef" in data:
        workload_ref = parse_workload_ref(issues, data["workloadRef"], child(path, "workloadRef"))
        if has_template:
            issues.add(
                child(path, "template"),
                "set either template or workloadRef, not both: the template comes from the referenced Deployment",
            )
    elif "template" not in data:
        issues.add(child(path, "template"), "is required (or refer to a Deployment's template with workloadRef)")
    else:
        template = check_pod_template(issues, data["template"], child(path, "template"))
    selector: dict[str, Any] | None = {}
    if "selector" in data:
        selector = parse_selector(issues, data["selector"], child(path, "selector"))
    elif "workloadRef" not in data:
        issues.add(child(path, "selector"), "is required: add selector.matchLabels matching the template's labels")
    if template is not None and selector and not selector_matches(selector, template_labels(template)):
        issues.add(
            child(path, "selector"),
            "does not match spec.template.metadata.labels: the ReplicaSets would not own their pods; "
            "make the template's labels satisfy the selector",
        )
    strategy_data = _STRATEGY.read(issues, data.get("strategy", MISSING), child(path, "strategy"))
    canary = None
    blue_green: BlueGreenStrategy | None = None
    strategy_path = child(path, "strategy")
    if strategy_data is None:
        if "strategy" not in data:
            issues.add(strategy_path, "is required: add strategy.canary with its steps, or strategy.blueGreen")
    elif "canary" in strategy_data and "blueGreen" in strategy_data:
        # Argo's ValidateRolloutStrategy: exactly one of them
        issues.add(strategy_path, "sets both canary and blueGreen: keep one of them")
    elif "blueGreen" in strategy_data:
        blue_green = parse_blue_green(issues, strategy_data["blueGreen"], child(strategy_path, "blueGreen"))
        canary = CanaryStrategy()
    elif "canary" not in strategy_data:
        issues.add(child(strategy_path, "canary"), "is required (or strategy.blueGreen)")
    elif strategy_data["canary"] is None:
        canary = CanaryStrategy()
    else:
        canary = parse_canary(issues, strategy_data["canary"], child(strategy_path, "canary"))
    if len(issues) != before or canary is None or selector is None:
        return None
    return RolloutSpec(
        replicas=replicas,
        selector=selector,
        template=template,
        workload_ref=workload_ref,
        revision_history_limit=10 if history is None else history,
        min_ready_seconds=0 if min_ready is None else min_ready,
        progress_deadline_seconds=600 if deadline is None else deadline,
        progress_deadline_abort=bool(deadline_abort),
        paused=bool(paused),
        strategy=canary,
        blue_green=blue_green,
    )


#: a ReplicaSet is named ``<rollout>-<hash>`` and the hash has up to 10 characters.
MAX_ROLLOUT_NAME = 253 - 11


def parse_rollout(
    issues: Issues,
    data: Mapping[str, Any],
    api_version: str,
    source: SourceRef,
    *,
    default_namespace: str = DEFAULT_NAMESPACE,
) -> Rollout | None:
    """A Rollout from a document whose apiVersion and kind were already checked.

    Without ``metadata.namespace`` it is in ``default_namespace`` (``kulta.spec.namespaces``).
    """
    before = len(issues)
    check_keys(
        issues,
        data,
        "",
        ("apiVersion", "kind", "metadata", "spec"),
        {"status": "is written by the controller, not by users; remove it from the file"},
    )
    metadata = parse_metadata(
        issues, data.get("metadata", MISSING), max_name_length=MAX_ROLLOUT_NAME, default_namespace=default_namespace
    )
    for key in metadata.annotations:
        if key.startswith(NOTIFICATIONS_ANNOTATION_PREFIX):
            issues.warn(child(child("metadata", "annotations"), key), _NOTIFICATIONS_UNUSED)
    spec = _parse_spec(issues, data.get("spec", MISSING))
    if len(issues) != before or spec is None or metadata.name is None:
        return None
    for step in weighted_steps_without_canary_pods(spec):
        if spec.strategy.steps[step].set_weight is None and spec.strategy.steps[step].set_canary_scale is None:
            continue  # the weight was set by an earlier step: warned there
        issues.warn(
            index(child(child(child("spec", "strategy"), "canary"), "steps"), step),
            f"runs no canary pod: Argo's replica arithmetic finds no split of {spec.replicas} pod(s) for this "
            "weight (as Argo, the step sends no traffic to the canary); add replicas or maxSurge, or choose "
            "another weight",
        )
    return Rollout(
        name=metadata.name,
        namespace=metadata.namespace,
        api_version=api_version,
        labels=metadata.labels,
        annotations=metadata.annotations,
        spec=spec,
        source=source,
    )
