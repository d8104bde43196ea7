"""The Pulumi program: one rollout step as Kubernetes resources.

``deploy(inputs)`` is the whole program. The reconciler runs it inline through
the Automation API; the top-level ``__main__.py`` runs the very same function
from stack config, so ``pulumi preview --diff`` and ``pulumi up`` work from CI
without the reconciler. Everything it declares comes from ``ProgramInputs``
(computed by the reconciler from Git plus the last stack outputs); even the
live route rules it re-sends (``spec.rules`` is an atomic list) were read
by the caller just before the update, so the program itself does no I/O.

Resources per rollout (all in the rollout's namespace):
- one ReplicaSet per live revision, ``<rollout>-<pod-template-hash>``;
- the stable and canary Services, selectors pinned to a revision's hash;
- one ``CustomResourcePatch`` per HTTPRoute or GRPCRoute, applied server-side with KULTA's
  field manager.

Order inside the update (``ScaleOrder``): ReplicaSets that grow come first and
are waited for until their pods are *available* (``pulumi.com/waitFor`` on
``availableReplicas``, so ``minReadySeconds`` counts, as in Argo); then the
Services and routes move; ReplicaSets that shrink go last, once traffic has
left them. The stack's outputs are the rollout's status
(``RolloutStatus.to_outputs``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from kulta.core.constants import (
    ANNOTATION_PATCH_FIELD_MANAGER,
    ANNOTATION_PATCH_FORCE,
    ANNOTATION_SKIP_AWAIT,
    ANNOTATION_WAIT_FOR,
    FIELD_MANAGER,
    GATEWAY_API_VERSION,
    LABEL_CANARY_IN_FLIGHT,
    LABEL_MANAGED_BY,
    LABEL_POD_TEMPLATE_HASH,
    LABEL_ROLLOUT,
    MANAGED_BY_VALUE,
)
from kulta.core.names import replicaset_name
from kulta.core.routes import rewrite_rules
from kulta.model.program import ProgramInputs, ReplicaSetInput, RouteInput, ScaleOrder, ServiceInput

__all__ = ["deploy", "preload"]

log = logging.getLogger(__name__)


def preload() -> None:
    """Load every pulumi-kubernetes module the program touches, once, in this thread.

    pulumi-kubernetes imports its modules lazily on first attribute access; two
    worker threads doing that at once for the first time have seen a half-loaded
    module (``module 'pulumi_kubernetes.meta.v1' has no attribute
    'ObjectMetaArgs'``). Called at import, before any worker starts.
    """
    for module, names in (
        (k8s.apps.v1, ("ReplicaSet", "ReplicaSetSpecArgs")),
        (k8s.core.v1, ("Service", "ServiceSpecArgs", "PodTemplateSpecArgs", "PodSpecArgs", "ContainerArgs")),
        (k8s.meta.v1, ("ObjectMetaArgs", "LabelSelectorArgs")),
        (k8s.apiextensions, ("CustomResourcePatch",)),
    ):
        for name in names:
            getattr(module, name)


preload()


def _base_labels(inputs: ProgramInputs) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY_VALUE, LABEL_ROLLOUT: inputs.rollout, **dict(inputs.labels)}


def _container_ports(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for container in template.get("spec", {}).get("containers", []) or []:
        for p in container.get("ports", []) or []:
            port: dict[str, Any] = {"port": int(p["containerPort"]), "targetPort": int(p["containerPort"])}
            if p.get("name"):
                port["name"] = str(p["name"])
            if p.get("protocol"):
                port["protocol"] = str(p["protocol"])
            ports.append(port)
    return ports or [{"port": 80, "targetPort": 80}]


def _selector(inputs: ProgramInputs, revision: str) -> dict[str, Any]:
    """The Rollout selector, narrowed to one revision by its pod-template hash."""
    selector: dict[str, Any] = {"matchLabels": {**dict(inputs.selector), LABEL_POD_TEMPLATE_HASH: revision}}
    if inputs.match_expressions:
        selector["matchExpressions"] = [dict(e) for e in inputs.match_expressions]
    return selector


def _replica_set(
    inputs: ProgramInputs, rs: ReplicaSetInput, depends_on: Sequence[pulumi.Resource]
) -> k8s.apps.v1.ReplicaSet:
    name = replicaset_name(inputs.rollout, rs.revision)
    template = copy.deepcopy(dict(rs.template))
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**dict(meta.get("labels") or {}), **dict(rs.pod_labels), LABEL_POD_TEMPLATE_HASH: rs.revision}
    if rs.pod_annotations:
        meta["annotations"] = {**dict(meta.get("annotations") or {}), **dict(rs.pod_annotations)}
    # Force: a hand edit (e.g. `kubectl scale`) takes over spec.replicas; the next
    # update must take it back to put the current step's state back (drift repair).
    annotations: dict[str, str] = {ANNOTATION_PATCH_FORCE: "true"}
    if rs.wait_available and rs.replicas > 0:
        annotations[ANNOTATION_WAIT_FOR] = f"jsonpath={{.status.availableReplicas}}={rs.replicas}"
    deadline = f"{inputs.progress_deadline_seconds}s"
    return k8s.apps.v1.ReplicaSet(
        name,
        metadata={
            "name": name,
            "namespace": inputs.namespace,
            "labels": {**_base_labels(inputs), LABEL_POD_TEMPLATE_HASH: rs.revision, "kulta.io/role": rs.role.value},
            "annotations": annotations,
        },
        spec={
            "replicas": rs.replicas,
            "minReadySeconds": inputs.min_ready_seconds,
            "selector": _selector(inputs, rs.revision),
            "template": template,
        },
        opts=pulumi.ResourceOptions(
            custom_timeouts=pulumi.CustomTimeouts(create=deadline, update=deadline),
            delete_before_replace=True,
            depends_on=list(depends_on),
        ),
    )


def _service(
    inputs: ProgramInputs, svc: ServiceInput, template: Mapping[str, Any], depends_on: Sequence[pulumi.Resource]
) -> k8s.core.v1.Service:
    spec = copy.deepcopy(dict(svc.spec or {}))
    spec.setdefault("ports", _container_ports(template))
    spec["selector"] = {**dict(inputs.selector), LABEL_POD_TEMPLATE_HASH: svc.revision}
    for key in ("clusterIP", "clusterIPs"):
        spec.pop(key, None)
    return k8s.core.v1.Service(
        svc.name,
        metadata={
            "name": svc.name,
            "namespace": inputs.namespace,
            "labels": _base_labels(inputs),
            # A canary Service may have no endpoints (0 replicas): never wait for them.
            "annotations": {ANNOTATION_SKIP_AWAIT: "true", ANNOTATION_PATCH_FORCE: "true"},
        },
        spec=spec,
        # the selector moves to a revision only once its pods are available
        opts=pulumi.ResourceOptions(depends_on=list(depends_on)),
    )


def _route_patch(
    inputs: ProgramInputs, route: RouteInput, depends_on: Sequence[pulumi.Resource]
) -> k8s.apiextensions.CustomResourcePatch:
    rules = rewrite_rules(
        [dict(r) for r in route.live_rules],
        route=f"{route.namespace}/{route.name}",
        stable_service=route.stable_service,
        canary_service=route.canary_service,
        stable_weight=route.stable_weight,
        canary_weight=route.canary_weight,
        header_rules=route.header_rules,
        mirror_rules=route.mirror_rules,
        kind=route.kind,
    )
    labels = {LABEL_CANARY_IN_FLIGHT: "true"} if route.in_flight else {}
    return k8s.apiextensions.CustomResourcePatch(
        f"{route.kind.value.lower()}-{route.namespace}-{route.name}",
        api_version=GATEWAY_API_VERSION,
        kind=route.kind.value,
        metadata={
            "name": route.name,
            "namespace": route.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_PATCH_FIELD_MANAGER: FIELD_MANAGER, ANNOTATION_PATCH_FORCE: "true"},
        },
        spec={"rules": rules},
        # The route is the user's: destroying the stack (`kulta run --prune`) must not
        # take its rules away with KULTA's field manager.
        opts=pulumi.ResourceOptions(depends_on=list(depends_on), retain_on_delete=True),
    )


def _once_applied(applied: pulumi.Output[Any], value: Any) -> pulumi.Output[Any]:
    """``value``, resolved when ``applied`` is (every resource of the step done)."""

    def keep(_ids: Any) -> Any:
        return value

    return applied.apply(keep)


def deploy(inputs: ProgramInputs) -> None:
    """Declare every resource of one rollout step and export the status as outputs.

    Grow, then switch, then shrink: growing ReplicaSets first (waited for until
    available), then Services and routes (depending on them), then shrinking
    ReplicaSets (depending on the Services and routes).
    """
    templates = {rs.revision: rs.template for rs in inputs.replica_sets}
    growing = [rs for rs in inputs.replica_sets if rs.order is ScaleOrder.GROW]
    shrinking = [rs for rs in inputs.replica_sets if rs.order is ScaleOrder.SHRINK]
    grown = [(rs, _replica_set(inputs, rs, ())) for rs in growing]
    waiters = [res for rs, res in grown if rs.wait_available]
    services = [_service(inputs, s, templates.get(s.revision, {}), waiters) for s in inputs.services]
    switched: list[pulumi.CustomResource] = [*services]
    for route in inputs.routes:
        switched.append(_route_patch(inputs, route, [*waiters, *services]))
    shrunk = [_replica_set(inputs, rs, switched) for rs in shrinking]
    # The status is recorded only once every resource of the step is applied: an output
    # resolves when its resource's operation has finished, so the stack outputs wait for
    # all of them. Plain values would be registered at once and checkpointed while the
    # updates still run: a process killed then would leave a status saying "step applied"
    # over a cluster that never got it (seen in the kill -9 test).
    applied = pulumi.Output.all(*(r.id for r in [*(res for _, res in grown), *switched, *shrunk]))
    for key, value in inputs.outputs.items():
        pulumi.export(key, _once_applied(applied, value))
