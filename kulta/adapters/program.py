"""The Pulumi program: one rollout step as Kubernetes resources.

``deploy(inputs)`` is the whole program. The reconciler runs it inline through
the Automation API; the top-level ``__main__.py`` runs the very same function
from stack config, so ``pulumi preview --diff`` and ``pulumi up`` work from CI
without the reconciler. Everything it declares comes from ``ProgramInputs``
(computed by the reconciler from Git plus the last stack outputs); the only
thing it reads at run time is the live HTTPRoute, because ``spec.rules`` is an
atomic list and must be re-sent whole with only the weights changed.

Resources per rollout (all in the rollout's namespace):
- one ReplicaSet per live revision, ``<rollout>-<pod-template-hash>``;
- the stable and canary Services, selectors pinned to a revision's hash;
- one ``CustomResourcePatch`` per HTTPRoute, applied server-side with KULTA's
  field manager, depending on the canary ReplicaSet so traffic only moves once
  the canary's Pods are Ready (``pulumi.com/waitFor`` on ``readyReplicas``).
The stack's outputs are the rollout's status (``RolloutStatus.to_outputs``).
"""

from __future__ import annotations

import copy
import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    HTTPROUTE_KIND,
    LABEL_CANARY_IN_FLIGHT,
    LABEL_MANAGED_BY,
    LABEL_POD_TEMPLATE_HASH,
    LABEL_ROLLOUT,
    MANAGED_BY_VALUE,
)
from kulta.core.reconcile import replicaset_name
from kulta.core.routes import HeaderRule, rewrite_rules

__all__ = [
    "ProgramInputs",
    "ReplicaSetInput",
    "RevisionRole",
    "RouteInput",
    "RouteReader",
    "ServiceInput",
    "deploy",
    "replicaset_name",
]

log = logging.getLogger(__name__)

#: reads the live ``spec.rules`` of an HTTPRoute: (namespace, name) -> rules
RouteReader = Callable[[str, str], list[dict[str, Any]]]


class RevisionRole(enum.Enum):
    STABLE = "stable"
    CANARY = "canary"
    #: an older revision kept (scaled down or waiting for its scale-down delay)
    OLD = "old"


@dataclass(frozen=True)
class ReplicaSetInput:
    revision: str
    template: Mapping[str, Any]
    replicas: int
    role: RevisionRole
    #: wait, within the update, until ``readyReplicas`` reaches ``replicas``
    wait_ready: bool = False


@dataclass(frozen=True)
class ServiceInput:
    name: str
    revision: str
    #: the Service document from the user's Git files, if any (its spec is kept, selector pinned)
    spec: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RouteInput:
    name: str
    namespace: str
    stable_service: str
    canary_service: str
    stable_weight: int
    canary_weight: int
    header_rules: tuple[HeaderRule, ...] = ()
    in_flight: bool = False


@dataclass(frozen=True)
class ProgramInputs:
    rollout: str
    namespace: str
    selector: Mapping[str, str]
    replica_sets: tuple[ReplicaSetInput, ...]
    services: tuple[ServiceInput, ...]
    routes: tuple[RouteInput, ...]
    outputs: Mapping[str, Any]
    progress_deadline_seconds: int = 600
    min_ready_seconds: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)


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


def _replica_set(inputs: ProgramInputs, rs: ReplicaSetInput) -> k8s.apps.v1.ReplicaSet:
    name = replicaset_name(inputs.rollout, rs.revision)
    template = copy.deepcopy(dict(rs.template))
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**dict(meta.get("labels") or {}), LABEL_POD_TEMPLATE_HASH: rs.revision}
    # Force: a hand edit (e.g. `kubectl scale`) takes over spec.replicas; the next
    # update must take it back to put the current step's state back (drift repair).
    annotations: dict[str, str] = {ANNOTATION_PATCH_FORCE: "true"}
    if rs.wait_ready and rs.replicas > 0:
        annotations[ANNOTATION_WAIT_FOR] = f"jsonpath={{.status.readyReplicas}}={rs.replicas}"
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
            "selector": {"matchLabels": {**dict(inputs.selector), LABEL_POD_TEMPLATE_HASH: rs.revision}},
            "template": template,
        },
        opts=pulumi.ResourceOptions(
            custom_timeouts=pulumi.CustomTimeouts(create=deadline, update=deadline),
            delete_before_replace=True,
        ),
    )


def _service(inputs: ProgramInputs, svc: ServiceInput, template: Mapping[str, Any]) -> k8s.core.v1.Service:
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
    )


def _route_patch(
    inputs: ProgramInputs, route: RouteInput, read_route: RouteReader, depends_on: Sequence[pulumi.Resource]
) -> k8s.apiextensions.CustomResourcePatch:
    live_rules = read_route(route.namespace, route.name)
    rules = rewrite_rules(
        live_rules,
        route=f"{route.namespace}/{route.name}",
        stable_service=route.stable_service,
        canary_service=route.canary_service,
        stable_weight=route.stable_weight,
        canary_weight=route.canary_weight,
        header_rules=route.header_rules,
    )
    labels = {LABEL_CANARY_IN_FLIGHT: "true"} if route.in_flight else {}
    return k8s.apiextensions.CustomResourcePatch(
        f"httproute-{route.namespace}-{route.name}",
        api_version=GATEWAY_API_VERSION,
        kind=HTTPROUTE_KIND,
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


def deploy(inputs: ProgramInputs, read_route: RouteReader) -> None:
    """Declare every resource of one rollout step and export the status as outputs."""
    by_revision: dict[str, k8s.apps.v1.ReplicaSet] = {}
    templates: dict[str, Mapping[str, Any]] = {}
    for rs in inputs.replica_sets:
        by_revision[rs.revision] = _replica_set(inputs, rs)
        templates[rs.revision] = rs.template
    waiters = [by_revision[rs.revision] for rs in inputs.replica_sets if rs.wait_ready]
    services = [_service(inputs, s, templates.get(s.revision, {})) for s in inputs.services]
    for route in inputs.routes:
        _route_patch(inputs, route, read_route, [*waiters, *services])
    for key, value in inputs.outputs.items():
        pulumi.export(key, value)
