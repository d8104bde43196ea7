"""A Rollout as KULTA understands it: the typed form of Argo Rollouts' canary spec.

Users keep their Argo Rollouts YAML; ``kulta.spec`` turns each ``Rollout`` document
into these frozen types once, after validation, so every later layer (plan, reconciler,
Pulumi program) works with checked values and never with raw YAML. Field names follow
Argo's (snake_case); defaults are Argo's defaults.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AnalysisArg",
    "AnalysisRef",
    "AnalysisTemplateRef",
    "ArgValueFrom",
    "BackgroundAnalysis",
    "BlueGreenStrategy",
    "CanaryStrategy",
    "GRPCRouteRef",
    "HTTPRouteRef",
    "HeaderMatch",
    "HeaderMatchType",
    "OtherDocument",
    "Pause",
    "PodMetadata",
    "PodTemplateHashValue",
    "Rollout",
    "RouteKind",
    "RolloutSpec",
    "SetCanaryScale",
    "SetHeaderRoute",
    "SetMirrorRoute",
    "MirrorMatch",
    "MIRROR_METHODS",
    "SourceRef",
    "Step",
    "StepKind",
    "TrafficRouting",
    "WorkloadRef",
    "DEFAULT_NAMESPACE",
]

#: the namespace of a document whose metadata names none (as ``kubectl apply`` does).
DEFAULT_NAMESPACE = "default"


class StepKind(enum.Enum):
    """The step kinds KULTA runs; the value is the YAML key."""

    SET_WEIGHT = "setWeight"
    PAUSE = "pause"
    SET_CANARY_SCALE = "setCanaryScale"
    ANALYSIS = "analysis"
    SET_HEADER_ROUTE = "setHeaderRoute"
    SET_MIRROR_ROUTE = "setMirrorRoute"


#: a step has at most one of these (Argo's rule); the others may ride along.
PRIMARY_STEP_KINDS = (StepKind.SET_WEIGHT, StepKind.PAUSE, StepKind.ANALYSIS)


@dataclass(frozen=True)
class SourceRef:
    """Where a parsed object came from: file and YAML document (counting from 1)."""

    file: str
    document: int

    def __str__(self) -> str:
        return f"{self.file}#{self.document}"


class HeaderMatchType(enum.Enum):
    """How a header value is compared (Argo's StringMatch keys)."""

    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"


@dataclass(frozen=True)
class HeaderMatch:
    """One request header condition of a header route."""

    name: str
    value: str
    match_type: HeaderMatchType


@dataclass(frozen=True)
class SetHeaderRoute:
    """Route requests matching all ``matches`` to the canary; no matches = remove the route."""

    name: str
    matches: tuple[HeaderMatch, ...] = ()

    @property
    def removes(self) -> bool:
        return not self.matches


@dataclass(frozen=True)
class SetCanaryScale:
    """Scale the canary independently of its traffic weight (exactly one field is set)."""

    replicas: int | None = None
    weight: int | None = None
    match_traffic_weight: bool = False


@dataclass(frozen=True)
class Pause:
    """Wait ``duration_seconds``, or until a human promotes when ``None``."""

    duration_seconds: int | None = None

    @property
    def until_promoted(self) -> bool:
        return self.duration_seconds is None


@dataclass(frozen=True)
class AnalysisTemplateRef:
    """A reference to an AnalysisTemplate (or a ClusterAnalysisTemplate when ``cluster_scope``)."""

    name: str
    cluster_scope: bool = False


class PodTemplateHashValue(enum.Enum):
    """Which revision's pod-template hash an analysis argument takes."""

    STABLE = "Stable"
    LATEST = "Latest"


@dataclass(frozen=True)
class ArgValueFrom:
    """Where an argument's value comes from (exactly one field is set).

    ``secret_key_ref`` is ``(secret name, key)``; ``field_ref`` is a field path of the
    Rollout such as ``metadata.name``.
    """

    pod_template_hash_value: PodTemplateHashValue | None = None
    field_ref: str | None = None
    secret_key_ref: tuple[str, str] | None = None


@dataclass(frozen=True)
class AnalysisArg:
    """An argument passed from a Rollout to its analysis templates."""

    name: str
    value: str | None = None
    value_from: ArgValueFrom | None = None


@dataclass(frozen=True)
class AnalysisRef:
    """An analysis step: the templates to run together and their arguments."""

    templates: tuple[AnalysisTemplateRef, ...]
    args: tuple[AnalysisArg, ...] = ()


@dataclass(frozen=True)
class BackgroundAnalysis:
    """Analysis that runs for the whole rollout, from step ``starting_step`` on."""

    templates: tuple[AnalysisTemplateRef, ...]
    args: tuple[AnalysisArg, ...] = ()
    starting_step: int = 0


#: the HTTP methods a Gateway API ``HTTPRouteMatch.method`` accepts (its CRD enum)
MIRROR_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


@dataclass(frozen=True)
class MirrorMatch:
    """One of Argo's ``RouteMatch`` entries: all given conditions must hold (absent = any).

    ``method`` is exact (Gateway API matches methods only exactly); ``path`` and
    ``headers`` carry Argo's ``StringMatch`` kind (exact, prefix or regex).
    """

    method: str | None = None
    path: tuple[str, HeaderMatchType] | None = None
    headers: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True)
class SetMirrorRoute:
    """Mirror requests matching any of ``matches`` to the canary (Argo's ``SetMirrorRoute``).

    ``percentage`` is the share of matched requests mirrored (None: all of them, as
    Gateway API's ``requestMirror`` without ``percent``); no matches = remove the route.
    """

    name: str
    matches: tuple[MirrorMatch, ...] = ()
    percentage: int | None = None

    @property
    def removes(self) -> bool:
        return not self.matches


@dataclass(frozen=True)
class Step:
    """One canary step. ``kinds`` lists every action in it (at most one primary kind)."""

    index: int
    kinds: frozenset[StepKind]
    set_weight: int | None = None
    pause: Pause | None = None
    analysis: AnalysisRef | None = None
    set_canary_scale: SetCanaryScale | None = None
    set_header_route: SetHeaderRoute | None = None
    set_mirror_route: SetMirrorRoute | None = None

    @property
    def kind(self) -> StepKind:
        """The step's main action: setWeight/pause/analysis if present, else the other one."""
        for candidate in (
            *PRIMARY_STEP_KINDS,
            StepKind.SET_CANARY_SCALE,
            StepKind.SET_HEADER_ROUTE,
            StepKind.SET_MIRROR_ROUTE,
        ):
            if candidate in self.kinds:
                return candidate
        raise ValueError(f"step {self.index} has no kind")


class RouteKind(enum.Enum):
    """The Gateway API route kinds whose backendRef weights KULTA sets (value = the kind)."""

    HTTP = "HTTPRoute"
    GRPC = "GRPCRoute"


@dataclass(frozen=True)
class HTTPRouteRef:
    """A Gateway API HTTPRoute whose backend weights KULTA sets."""

    name: str
    namespace: str | None = None
    use_header_routes: bool = True


@dataclass(frozen=True)
class GRPCRouteRef:
    """A Gateway API GRPCRoute whose backend weights KULTA sets (the plugin's ``grpcRoutes``)."""

    name: str
    namespace: str | None = None
    use_header_routes: bool = True


@dataclass(frozen=True)
class TrafficRouting:
    """Gateway API routing: the HTTPRoutes and GRPCRoutes to weight and the header routes KULTA manages."""

    http_routes: tuple[HTTPRouteRef, ...]
    namespace: str | None = None
    managed_routes: tuple[str, ...] = ()
    grpc_routes: tuple[GRPCRouteRef, ...] = ()

    @property
    def routes(self) -> tuple[tuple[RouteKind, HTTPRouteRef | GRPCRouteRef], ...]:
        """Every weighted route with its kind: the HTTPRoutes first, then the GRPCRoutes."""
        return (
            *((RouteKind.HTTP, r) for r in self.http_routes),
            *((RouteKind.GRPC, r) for r in self.grpc_routes),
        )


@dataclass(frozen=True)
class PodMetadata:
    """Labels and annotations added to the canary's or the stable's pods only."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CanaryStrategy:
    """``spec.strategy.canary`` with Argo's defaults."""

    canary_service: str | None = None
    stable_service: str | None = None
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    dynamic_stable_scale: bool = False
    #: ``None`` when the file does not set it: Argo's default depends on trafficRouting
    #: (``kulta.core.defaults``); never read these two directly for a delay
    scale_down_delay_seconds: int | None = None
    abort_scale_down_delay_seconds: int | None = None
    canary_metadata: PodMetadata = field(default_factory=PodMetadata)
    stable_metadata: PodMetadata = field(default_factory=PodMetadata)
    analysis: BackgroundAnalysis | None = None
    steps: tuple[Step, ...] = ()
    traffic_routing: TrafficRouting | None = None


@dataclass(frozen=True)
class BlueGreenStrategy:
    """``spec.strategy.blueGreen`` (Argo's ``BlueGreenStrategy``); ``None`` = unset in the file.

    The defaults that depend on the field being unset are Argo's ``Get…OrDefault``
    helpers in ``kulta.core.defaults``; the promotion logic is ``kulta.core.bluegreen``.
    """

    active_service: str
    preview_service: str | None = None
    preview_replica_count: int | None = None
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: int = 0
    pre_promotion_analysis: AnalysisRef | None = None
    post_promotion_analysis: AnalysisRef | None = None
    scale_down_delay_seconds: int | None = None
    abort_scale_down_delay_seconds: int | None = None
    preview_metadata: PodMetadata = field(default_factory=PodMetadata)
    active_metadata: PodMetadata = field(default_factory=PodMetadata)


@dataclass(frozen=True)
class WorkloadRef:
    """Take the pod template from an existing Deployment instead of ``template``."""

    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class RolloutSpec:
    """``spec`` of a Rollout: exactly one of ``template`` / ``workload_ref`` is set."""

    replicas: int = 1
    selector: Mapping[str, Any] = field(default_factory=dict)
    template: Mapping[str, Any] | None = None
    workload_ref: WorkloadRef | None = None
    revision_history_limit: int = 10
    min_ready_seconds: int = 0
    progress_deadline_seconds: int = 600
    progress_deadline_abort: bool = False
    paused: bool = False
    #: the canary strategy; an empty one (no steps, no routing) when ``blue_green`` is set
    strategy: CanaryStrategy = field(default_factory=CanaryStrategy)
    #: ``spec.strategy.blueGreen``: set instead of ``strategy.canary``
    blue_green: BlueGreenStrategy | None = None


@dataclass(frozen=True)
class Rollout:
    """A validated Rollout document."""

    name: str
    namespace: str
    api_version: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: RolloutSpec
    source: SourceRef


@dataclass(frozen=True)
class OtherDocument:
    """A document of a kind KULTA does not interpret (Service, HTTPRoute, Deployment, ...).

    Kept untouched: a Deployment here can provide a Rollout's ``workloadRef`` template.
    """

    kind: str
    name: str
    namespace: str
    body: Mapping[str, Any]
    source: SourceRef
    api_version: str = ""
