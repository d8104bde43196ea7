"""A decision → the Pulumi program's inputs, in one pure function.

Everything the program declares is decided here: each ReplicaSet's size, role,
pod metadata (Argo's ``canaryMetadata`` / ``stableMetadata``) and when it
changes size inside the update (``ScaleOrder``); which revision each Service
selects; each HTTPRoute's weights, header rules and mirror rules (only on
routes that ask for them: ``useHeaderRoutes``; mirror rules on HTTPRoutes
only). The reconciler, ``kulta preview`` and the CI
program (``__main__.py``) all call ``build_program_inputs``, so the three ways
in declare the same resources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kulta.core.bluegreen import active_revision, pod_metadata
from kulta.core.decision import Decision
from kulta.core.names import replicaset_name, route_targets
from kulta.core.routes import route_weights
from kulta.model.program import (
    HeaderRule,
    MirrorMatchInput,
    MirrorRule,
    ProgramInputs,
    ReplicaSetInput,
    RevisionRole,
    RouteInput,
    ScaleOrder,
    ServiceInput,
)
from kulta.model.rollout import OtherDocument, PodMetadata, Rollout, RouteKind, SetHeaderRoute, SetMirrorRoute
from kulta.model.status import RolloutStatus

__all__ = ["LiveRules", "build_program_inputs", "canary_service_name", "stable_service_name"]

_SERVICE_KIND = "Service"


def stable_service_name(rollout: Rollout) -> str:
    """The stable Service, or a blue-green rollout's ``activeService``."""
    if rollout.spec.blue_green is not None:
        return rollout.spec.blue_green.active_service
    return rollout.spec.strategy.stable_service or f"{rollout.name}-stable"


def canary_service_name(rollout: Rollout) -> str | None:
    """The canary Service, or a blue-green rollout's ``previewService`` (``None`` when it names none)."""
    if rollout.spec.blue_green is not None:
        return rollout.spec.blue_green.preview_service
    return rollout.spec.strategy.canary_service or f"{rollout.name}-canary"


def _role(revision: str, status: RolloutStatus) -> RevisionRole:
    if revision == status.stable_revision:
        return RevisionRole.STABLE
    if revision == status.canary_revision:
        # an aborted canary keeps its role (and metadata) until it is retried or dropped
        return RevisionRole.CANARY
    return RevisionRole.OLD


def _pod_metadata(rollout: Rollout, role: RevisionRole) -> PodMetadata:
    new_side, stable_side = pod_metadata(rollout)
    if role is RevisionRole.CANARY:
        return new_side
    if role is RevisionRole.STABLE:
        return stable_side
    return PodMetadata()


def _order(rollout: Rollout, revision: str, replicas: int, prev: RolloutStatus | None) -> ScaleOrder:
    """Shrink after traffic moved; everything else grows (or stays) before it moves."""
    if prev is None:
        return ScaleOrder.GROW
    before = prev.replicas.get(replicaset_name(rollout.name, revision))
    return ScaleOrder.SHRINK if before is not None and replicas < before else ScaleOrder.GROW


def _header_rules(routes: Sequence[SetHeaderRoute]) -> tuple[HeaderRule, ...]:
    return tuple(
        HeaderRule(name=r.name, matches=tuple((m.name, m.value, m.match_type.value) for m in r.matches))
        for r in routes
        if r.matches
    )


def _mirror_rules(routes: Sequence[SetMirrorRoute]) -> tuple[MirrorRule, ...]:
    return tuple(
        MirrorRule(
            name=r.name,
            matches=tuple(
                MirrorMatchInput(
                    method=m.method,
                    path=(m.path[0], m.path[1].value) if m.path else None,
                    headers=tuple((h.name, h.value, h.match_type.value) for h in m.headers),
                )
                for m in r.matches
            ),
            percentage=r.percentage,
        )
        for r in routes
        if r.matches
    )


def _git_service(others: Sequence[OtherDocument], rollout: Rollout, name: str) -> Mapping[str, Any] | None:
    for doc in others:
        if doc.kind == _SERVICE_KIND and doc.name == name and doc.namespace == rollout.namespace:
            spec = doc.body.get("spec")
            return dict(spec) if isinstance(spec, Mapping) else None
    return None


def _git_route_weights(
    others: Sequence[OtherDocument], kind: RouteKind, ns: str, name: str, stable: str, canary: str
) -> tuple[int, int] | None:
    for doc in others:
        if doc.kind == kind.value and doc.name == name and doc.namespace == ns:
            spec = doc.body.get("spec")
            rules = (spec.get("rules") if isinstance(spec, Mapping) else None) or []
            return route_weights(rules, stable, canary)
    return None


#: the live ``spec.rules`` of each routed HTTPRoute / GRPCRoute, by (kind, namespace, name)
LiveRules = Mapping[tuple[RouteKind, str, str], Sequence[Mapping[str, Any]]]


def build_program_inputs(
    rollout: Rollout,
    others: Sequence[OtherDocument],
    decision: Decision,
    status: RolloutStatus,
    prev: RolloutStatus | None,
    live_rules: LiveRules,
) -> ProgramInputs:
    """The program's inputs for recording ``status`` (the decision's, with its event ids).

    ``prev`` is the status before this update: a ReplicaSet smaller than it was
    shrinks only after the Services and routes have moved. ``live_rules`` are
    read by the caller before the update, so an unreachable API server fails
    the pass before Pulumi starts.
    """
    replica_sets = []
    for rev, n in decision.replicas.items():
        role = _role(rev, status)
        metadata = _pod_metadata(rollout, role)
        replica_sets.append(
            ReplicaSetInput(
                revision=rev,
                template=decision.templates[rev],
                replicas=n,
                role=role,
                wait_available=rev in decision.wait_ready and n > 0,
                order=_order(rollout, rev, n, prev),
                pod_labels=dict(metadata.labels),
                pod_annotations=dict(metadata.annotations),
            )
        )
    stable_svc, preview_svc = stable_service_name(rollout), canary_service_name(rollout)
    # the active Service of a blue-green rollout selects the new revision during postPromotionAnalysis
    services = [ServiceInput(stable_svc, active_revision(rollout, status), _git_service(others, rollout, stable_svc))]
    if preview_svc is not None:
        services.append(
            ServiceInput(preview_svc, decision.canary_service_revision, _git_service(others, rollout, preview_svc))
        )
    canary_svc = preview_svc or ""
    in_flight = status.in_flight and not status.aborted
    header_rules = _header_rules(decision.header_routes) if in_flight else ()
    mirror_rules = _mirror_rules(decision.mirror_routes) if in_flight else ()
    routing = rollout.spec.strategy.traffic_routing
    wants_headers = (
        {
            (kind, r.namespace or routing.namespace or rollout.namespace, r.name)
            for kind, r in routing.routes
            if r.use_header_routes
        }
        if routing is not None
        else set()
    )
    routes = []
    for kind, ns, route in route_targets(rollout):
        if in_flight:
            stable_w, canary_w = 100 - decision.canary_weight, decision.canary_weight
        else:
            declared = _git_route_weights(others, kind, ns, route, stable_svc, canary_svc)
            stable_w, canary_w = declared if declared else (100, 0)
        routes.append(
            RouteInput(
                name=route,
                namespace=ns,
                stable_service=stable_svc,
                canary_service=canary_svc,
                stable_weight=stable_w,
                canary_weight=canary_w,
                header_rules=header_rules if (kind, ns, route) in wants_headers else (),
                in_flight=in_flight,
                live_rules=tuple(dict(r) for r in live_rules.get((kind, ns, route), ())),
                kind=kind,
                mirror_rules=mirror_rules if kind is RouteKind.HTTP and (kind, ns, route) in wants_headers else (),
            )
        )
    return ProgramInputs(
        rollout=rollout.name,
        namespace=rollout.namespace,
        selector=dict(rollout.spec.selector.get("matchLabels", {}) or {}),
        match_expressions=tuple(dict(e) for e in rollout.spec.selector.get("matchExpressions", []) or []),
        replica_sets=tuple(replica_sets),
        services=tuple(services),
        routes=tuple(routes),
        outputs=status.to_outputs(),
        progress_deadline_seconds=rollout.spec.progress_deadline_seconds,
        min_ready_seconds=rollout.spec.min_ready_seconds,
    )
