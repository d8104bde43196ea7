"""A rollout's status: what the Pulumi stack's outputs hold after each update.

"The status is the brain": everything the reconciler needs to resume after a
crash lives here and is persisted as stack outputs, never in process memory.
``RolloutStatus.to_outputs`` / ``from_outputs`` are the only (de)serialisers;
the output keys are camelCase like Argo Rollouts' status.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kulta.model.rollout import (
    AnalysisArg,
    AnalysisRef,
    AnalysisTemplateRef,
    ArgValueFrom,
    PodTemplateHashValue,
    RouteKind,
)

__all__ = [
    "AnalysisPhase",
    "AnalysisRunStatus",
    "Measurement",
    "MeasurementPhase",
    "Phase",
    "RolloutStatus",
    "RouteWeight",
]


class Phase(enum.Enum):
    """Argo Rollouts' phases, plus Aborted (Argo shows it as Degraded + abort)."""

    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    ABORTED = "Aborted"


class MeasurementPhase(enum.Enum):
    """One measurement's result, with Argo Rollouts' names."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class AnalysisPhase(enum.Enum):
    """An analysis run's outcome, with Argo Rollouts' names."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    ERROR = "Error"
    INCONCLUSIVE = "Inconclusive"

    @property
    def completed(self) -> bool:
        return self not in (AnalysisPhase.PENDING, AnalysisPhase.RUNNING)


@dataclass(frozen=True)
class Measurement:
    """One query of one metric: when, what value, what it meant."""

    metric: str
    phase: MeasurementPhase
    started_at: str
    finished_at: str
    value: str = ""
    message: str = ""

    def to_outputs(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "phase": self.phase.value,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "value": self.value,
            "message": self.message,
        }

    @classmethod
    def from_outputs(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(
            metric=str(data["metric"]),
            phase=MeasurementPhase(data["phase"]),
            started_at=str(data["startedAt"]),
            finished_at=str(data["finishedAt"]),
            value=str(data.get("value", "")),
            message=str(data.get("message", "")),
        )


def _ref_to_outputs(ref: AnalysisRef) -> dict[str, Any]:
    def arg(a: AnalysisArg) -> dict[str, Any]:
        out: dict[str, Any] = {"name": a.name}
        if a.value is not None:
            out["value"] = a.value
        vf = a.value_from
        if vf is not None:
            source: dict[str, Any] = {}
            if vf.pod_template_hash_value is not None:
                source["podTemplateHashValue"] = vf.pod_template_hash_value.value
            if vf.field_ref is not None:
                source["fieldRef"] = {"fieldPath": vf.field_ref}
            if vf.secret_key_ref is not None:
                source["secretKeyRef"] = {"name": vf.secret_key_ref[0], "key": vf.secret_key_ref[1]}
            out["valueFrom"] = source
        return out

    return {
        "templates": [{"templateName": t.name, "clusterScope": t.cluster_scope} for t in ref.templates],
        "args": [arg(a) for a in ref.args],
    }


def _ref_from_outputs(data: Mapping[str, Any]) -> AnalysisRef:
    def arg(a: Mapping[str, Any]) -> AnalysisArg:
        vf = a.get("valueFrom")
        value_from = None
        if isinstance(vf, Mapping):
            hash_value = vf.get("podTemplateHashValue")
            field_ref = vf.get("fieldRef")
            secret = vf.get("secretKeyRef")
            value_from = ArgValueFrom(
                pod_template_hash_value=PodTemplateHashValue(hash_value) if hash_value else None,
                field_ref=str(field_ref["fieldPath"]) if isinstance(field_ref, Mapping) else None,
                secret_key_ref=(str(secret["name"]), str(secret["key"])) if isinstance(secret, Mapping) else None,
            )
        value = a.get("value")
        return AnalysisArg(name=str(a["name"]), value=None if value is None else str(value), value_from=value_from)

    return AnalysisRef(
        templates=tuple(
            AnalysisTemplateRef(str(t["templateName"]), bool(t.get("clusterScope", False)))
            for t in data.get("templates", [])
        ),
        args=tuple(arg(a) for a in data.get("args", [])),
    )


@dataclass(frozen=True)
class AnalysisRunStatus:
    """An analysis run: an inline step (``step_index``) or background (``None``).

    ``ref`` is the analysis the run measures (templates and arguments, never
    secret values), so a run started under one strategy can finish after the
    strategy in Git changed.
    """

    name: str
    phase: AnalysisPhase
    step_index: int | None = None
    started_at: str = ""
    measurements: tuple[Measurement, ...] = ()
    message: str = ""
    ref: AnalysisRef | None = None

    def to_outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "phase": self.phase.value,
            "stepIndex": self.step_index,
            "startedAt": self.started_at,
            "measurements": [m.to_outputs() for m in self.measurements],
            "message": self.message,
        }
        if self.ref is not None:
            out["analysis"] = _ref_to_outputs(self.ref)
        return out

    @classmethod
    def from_outputs(cls, data: Mapping[str, Any]) -> AnalysisRunStatus:
        step = data.get("stepIndex")
        ref = data.get("analysis")
        return cls(
            name=str(data["name"]),
            phase=AnalysisPhase(data["phase"]),
            step_index=None if step is None else int(step),
            started_at=str(data.get("startedAt", "")),
            measurements=tuple(Measurement.from_outputs(m) for m in data.get("measurements", [])),
            message=str(data.get("message", "")),
            ref=_ref_from_outputs(ref) if isinstance(ref, Mapping) else None,
        )


@dataclass(frozen=True)
class RouteWeight:
    """Weights of one HTTPRoute or GRPCRoute: percent of traffic on stable and on canary.

    In the outputs ``kind`` is written only for a GRPCRoute: outputs of earlier
    KULTA versions (HTTPRoutes only, no ``kind``) read back as HTTPRoutes, and an
    HTTPRoute's entry stays byte-for-byte what those versions wrote.
    """

    route: str
    namespace: str
    stable: int
    canary: int
    kind: RouteKind = RouteKind.HTTP

    def to_outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "route": self.route,
            "namespace": self.namespace,
            "stable": self.stable,
            "canary": self.canary,
        }
        if self.kind is not RouteKind.HTTP:
            out["kind"] = self.kind.value
        return out

    @classmethod
    def from_outputs(cls, data: Mapping[str, Any]) -> RouteWeight:
        return cls(
            route=str(data["route"]),
            namespace=str(data["namespace"]),
            stable=int(data["stable"]),
            canary=int(data["canary"]),
            kind=RouteKind(str(data.get("kind", RouteKind.HTTP.value))),
        )


@dataclass(frozen=True)
class RolloutStatus:
    """Everything known about one rollout after the last Pulumi update.

    ``current_step_index`` counts from 0; ``step_count`` means "all steps done".
    Times are RFC 3339 UTC strings (``2026-11-25T14:00:00Z``) or ``""``.
    ``stable_revision`` / ``canary_revision`` are pod-template hashes.
    """

    rollout: str
    namespace: str
    environment: str
    phase: Phase
    current_step_index: int
    step_count: int
    stable_revision: str
    canary_revision: str = ""
    weights: tuple[RouteWeight, ...] = ()
    replicas: Mapping[str, int] = field(default_factory=dict)
    step_started_at: str = ""
    pause_started_at: str = ""
    git_commit: str = ""
    images: tuple[str, ...] = ()
    message: str = ""
    analysis_runs: tuple[AnalysisRunStatus, ...] = ()
    aborted: bool = False
    #: set once the first revision of this rollout ever reached Healthy here.
    deployed_once: bool = False
    #: revisions seen, newest last: kept for ReplicaSet pruning and history.
    revision_history: tuple[str, ...] = ()
    #: when the rollout of ``canary_revision`` started (progress deadline base).
    rollout_started_at: str = ""
    #: when the previous stable was replaced or the canary aborted (scale-down delays).
    scale_down_at: str = ""
    #: the revision waiting for its scale-down delay to pass ("" when none).
    scale_down_revision: str = ""
    #: CDEvents context.chainId shared by every event of the current revision's rollout.
    chain_id: str = ""
    #: id of the last CDEvent derived for this rollout (the next event links to it).
    last_event_id: str = ""
    #: pod templates of the live revisions by hash: the stable one is no longer in
    #: Git once a new revision is committed, but every update must redeclare it.
    templates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: id of the last manual command (promote/abort/retry) the reconciler applied.
    last_command_id: str = ""
    #: hash of the strategy the canary runs (steps, background analysis, traffic
    #: routing): a different one in Git restarts the canary from step 0 (as Argo).
    strategy_hash: str = ""
    #: why the canary was reset to stable weights; step 0 is applied next ("" when not).
    restart_reason: str = ""

    def with_changes(self, **changes: Any) -> RolloutStatus:
        """A copy with the given fields changed (the dataclass is frozen)."""
        return replace(self, **changes)

    @property
    def in_flight(self) -> bool:
        """True while a canary revision exists that is not yet stable."""
        return bool(self.canary_revision) and self.canary_revision != self.stable_revision

    def to_outputs(self) -> dict[str, Any]:
        return {
            "rollout": self.rollout,
            "namespace": self.namespace,
            "environment": self.environment,
            "phase": self.phase.value,
            "currentStepIndex": self.current_step_index,
            "stepCount": self.step_count,
            "stableRevision": self.stable_revision,
            "canaryRevision": self.canary_revision,
            "weights": [w.to_outputs() for w in self.weights],
            "replicas": dict(self.replicas),
            "stepStartedAt": self.step_started_at,
            "pauseStartedAt": self.pause_started_at,
            "gitCommit": self.git_commit,
            "images": list(self.images),
            "message": self.message,
            "analysisRuns": [a.to_outputs() for a in self.analysis_runs],
            "aborted": self.aborted,
            "deployedOnce": self.deployed_once,
            "revisionHistory": list(self.revision_history),
            "rolloutStartedAt": self.rollout_started_at,
            "scaleDownAt": self.scale_down_at,
            "scaleDownRevision": self.scale_down_revision,
            "chainId": self.chain_id,
            "lastEventId": self.last_event_id,
            "templates": {k: dict(v) for k, v in self.templates.items()},
            "lastCommandId": self.last_command_id,
            "strategyHash": self.strategy_hash,
            "restartReason": self.restart_reason,
        }

    @classmethod
    def from_outputs(cls, data: Mapping[str, Any]) -> RolloutStatus:
        return cls(
            rollout=str(data["rollout"]),
            namespace=str(data["namespace"]),
            environment=str(data.get("environment", "")),
            phase=Phase(data["phase"]),
            current_step_index=int(data["currentStepIndex"]),
            step_count=int(data["stepCount"]),
            stable_revision=str(data["stableRevision"]),
            canary_revision=str(data.get("canaryRevision", "")),
            weights=tuple(RouteWeight.from_outputs(w) for w in data.get("weights", [])),
            replicas={str(k): int(v) for k, v in dict(data.get("replicas", {})).items()},
            step_started_at=str(data.get("stepStartedAt", "")),
            pause_started_at=str(data.get("pauseStartedAt", "")),
            git_commit=str(data.get("gitCommit", "")),
            images=tuple(str(i) for i in data.get("images", [])),
            message=str(data.get("message", "")),
            analysis_runs=tuple(AnalysisRunStatus.from_outputs(a) for a in data.get("analysisRuns", [])),
            aborted=bool(data.get("aborted", False)),
            deployed_once=bool(data.get("deployedOnce", False)),
            revision_history=tuple(str(r) for r in data.get("revisionHistory", [])),
            rollout_started_at=str(data.get("rolloutStartedAt", "")),
            scale_down_at=str(data.get("scaleDownAt", "")),
            scale_down_revision=str(data.get("scaleDownRevision", "")),
            chain_id=str(data.get("chainId", "")),
            last_event_id=str(data.get("lastEventId", "")),
            templates={str(k): dict(v) for k, v in dict(data.get("templates", {})).items()},
            last_command_id=str(data.get("lastCommandId", "")),
            strategy_hash=str(data.get("strategyHash", "")),
            restart_reason=str(data.get("restartReason", "")),
        )
