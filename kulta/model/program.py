"""The Pulumi program's inputs: one rollout step as plain, frozen data.

``kulta.core.program_inputs`` builds them from a decision (pure);
``kulta.adapters.program.deploy`` declares them as Kubernetes resources.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kulta.model.rollout import RouteKind

__all__ = [
    "HeaderRule",
    "MirrorMatchInput",
    "MirrorRule",
    "ProgramInputs",
    "ReplicaSetInput",
    "RevisionRole",
    "RouteInput",
    "ScaleOrder",
    "ServiceInput",
]


class RevisionRole(enum.Enum):
    STABLE = "stable"
    CANARY = "canary"
    #: an older revision kept (scaled down or waiting for its scale-down delay)
    OLD = "old"


class ScaleOrder(enum.Enum):
    """When, inside one update, a ReplicaSet changes size.

    Grow first (and wait until the new pods are available), then move Service
    selectors and route weights, then shrink: traffic only ever moves to
    available pods, and pods lose their traffic before they go away.
    """

    GROW = "grow"
    SHRINK = "shrink"


@dataclass(frozen=True)
class HeaderRule:
    """A header match routed wholly to the canary (Argo's ``setHeaderRoute``).

    ``match_type`` is ``exact``, ``prefix`` or ``regex``; Gateway API has no prefix
    header match, so a prefix becomes the regular expression ``^<escaped prefix>.*``.
    """

    name: str
    matches: tuple[tuple[str, str, str], ...]  # (header name, value, match type)


@dataclass(frozen=True)
class MirrorMatchInput:
    """One match of a mirror rule: all given conditions (absent = any).

    ``path`` is (value, match type); ``headers`` are (name, value, match type);
    match types are ``exact``, ``prefix`` or ``regex``, as in ``HeaderRule``.
    """

    method: str | None
    path: tuple[str, str] | None
    headers: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class MirrorRule:
    """Requests matching any of ``matches`` are mirrored to the canary (Argo's ``setMirrorRoute``).

    ``percentage`` is Gateway API's ``requestMirror.percent`` (None: every matched request).
    """

    name: str
    matches: tuple[MirrorMatchInput, ...]
    percentage: int | None = None


@dataclass(frozen=True)
class ReplicaSetInput:
    revision: str
    template: Mapping[str, Any]
    replicas: int
    role: RevisionRole
    #: wait, within the update, until ``availableReplicas`` reaches ``replicas``
    wait_available: bool = False
    order: ScaleOrder = ScaleOrder.GROW
    #: labels / annotations added to this side's pods (canaryMetadata / stableMetadata)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)


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
    #: the route's live ``spec.rules``, read before the update (an atomic list: KULTA
    #: re-sends it whole with only its weights and its own header rules changed)
    live_rules: tuple[Mapping[str, Any], ...] = ()
    kind: RouteKind = RouteKind.HTTP
    mirror_rules: tuple[MirrorRule, ...] = ()


@dataclass(frozen=True)
class ProgramInputs:
    rollout: str
    namespace: str
    #: the Rollout selector's ``matchLabels`` (Services select these plus the revision hash)
    selector: Mapping[str, str]
    replica_sets: tuple[ReplicaSetInput, ...]
    services: tuple[ServiceInput, ...]
    routes: tuple[RouteInput, ...]
    outputs: Mapping[str, Any]
    progress_deadline_seconds: int = 600
    min_ready_seconds: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    #: the Rollout selector's ``matchExpressions``, kept in every ReplicaSet's selector
    #: (a Service selector is a plain map and cannot hold them)
    match_expressions: tuple[Mapping[str, Any], ...] = ()
