"""CDEvents (spec v0.5.1) derived from what a Pulumi update actually did.

Events are never built from intent: ``build_events(prev, new, ctx)`` compares
two ``RolloutStatus`` values read from stack outputs and says what happened in
between. It is a pure function, so a reconciler that crashes after the update
and replays it derives byte-for-byte the same event ids; the durable outbox
then refuses the duplicates. Every event of one rollout of one revision shares
a ``context.chainId`` and links to the event before it with a PATH link, so a
consumer can rebuild the rollout's story without KULTA.

This module builds plain JSON-ready dicts; schema validation and transport live
in ``kulta.adapters`` (core imports no HTTP or CloudEvents library).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kulta.core.purl import oci_purl
from kulta.errors import PermanentError
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase, RolloutStatus

__all__ = [
    "CDEVENTS_SPEC_VERSION",
    "CDEvent",
    "EndReason",
    "EventBuildError",
    "EventContext",
    "EventType",
    "Outcome",
    "build_events",
    "chain_id_for",
    "event_id_for",
    "last_event_id",
    "record_events",
]

#: ``context.specversion`` of every event: the CDEvents spec release we follow.
CDEVENTS_SPEC_VERSION = "0.5.1"

#: uuid5 namespaces, fixed forever: changing them would change every id.
_CHAIN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://kulta.dev/cdevents/chain")
_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://kulta.dev/cdevents/event")
_KEY_SEPARATOR = "\x1f"

_LINK_PATH = "PATH"


class EventType(enum.Enum):
    """The CDEvents KULTA emits, valued by their full ``context.type``."""

    PIPELINERUN_STARTED = "dev.cdevents.pipelinerun.started.0.3.0"
    PIPELINERUN_FINISHED = "dev.cdevents.pipelinerun.finished.0.3.0"
    SERVICE_DEPLOYED = "dev.cdevents.service.deployed.0.3.0"
    SERVICE_UPGRADED = "dev.cdevents.service.upgraded.0.3.0"
    SERVICE_ROLLEDBACK = "dev.cdevents.service.rolledback.0.3.0"
    INCIDENT_DETECTED = "dev.cdevents.incident.detected.0.3.0"
    ROLLOUT_PROGRESSED = "dev.cdeventsx.kulta-rollout.progressed.0.1.0"

    @property
    def predicate(self) -> str:
        """``<subject>.<predicate>`` without the namespace and version (stable id input)."""
        parts = self.value.split(".")
        return f"{parts[2]}.{parts[3]}"


class Outcome(enum.Enum):
    """``pipelinerun.finished`` outcomes KULTA uses (the schema's enum values)."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCEL = "cancel"


class EndReason(enum.Enum):
    """Why a rollout of a revision ended; decides the pipeline run's outcome."""

    PROMOTED = "Promoted"
    ANALYSIS_FAILED = "AnalysisFailed"
    PROGRESS_DEADLINE = "ProgressDeadlineExceeded"
    MANUAL_ABORT = "ManualAbort"
    SUPERSEDED = "Superseded"

    @property
    def outcome(self) -> Outcome:
        if self is EndReason.PROMOTED:
            return Outcome.SUCCESS
        if self in (EndReason.ANALYSIS_FAILED, EndReason.PROGRESS_DEADLINE):
            return Outcome.FAILURE
        return Outcome.CANCEL


class EventBuildError(PermanentError):
    """The inputs of ``build_events`` cannot produce a valid event (a caller bug)."""


@dataclass(frozen=True)
class EventContext:
    """What the status does not know: who emits, where to look, why it ended, when.

    ``source`` is ``context.source`` (a URI reference, e.g. ``/kulta/prod``);
    ``uri`` is where a human sees the rollout (an absolute URI);
    ``environment_id`` is the CDEvents environment (``cluster/namespace``; built
    from ``cluster`` and the status namespace when empty); ``end_reason`` says why
    an abort happened (the status only says *that* it did); ``now`` is the RFC 3339
    time of the observation, used as ``context.timestamp`` (falls back to the
    status' ``step_started_at``); ``stable_images`` name the stable revision's
    artifact in ``service.rolledback`` when the status' pod templates do not
    hold it (last resort: the status' ``images``).
    """

    source: str
    uri: str
    environment_id: str
    cluster: str
    end_reason: EndReason | None = None
    now: str = ""
    stable_images: tuple[str, ...] = ()


@dataclass(frozen=True)
class CDEvent:
    """One CDEvent: the CloudEvents attributes plus the whole CDEvent JSON ``body``."""

    id: str
    type: EventType
    source: str
    subject_id: str
    timestamp: str
    body: Mapping[str, Any] = field(hash=False)

    @property
    def chain_id(self) -> str:
        return str(self.body["context"].get("chainId", ""))

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that ``from_json_dict`` reads back (the outbox format)."""
        return {
            "id": self.id,
            "type": self.type.value,
            "source": self.source,
            "subjectId": self.subject_id,
            "timestamp": self.timestamp,
            "body": _plain(self.body),
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> CDEvent:
        return cls(
            id=str(data["id"]),
            type=EventType(data["type"]),
            source=str(data["source"]),
            subject_id=str(data["subjectId"]),
            timestamp=str(data["timestamp"]),
            body=dict(data["body"]),
        )


def _plain(value: Any) -> Any:
    """Deep copy of mappings/sequences into plain dicts/lists (JSON-ready)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def chain_id_for(environment: str, namespace: str, rollout: str, revision: str) -> str:
    """The ``context.chainId`` of the rollout of ``revision``: a uuid5, stable across restarts.

    The reconciler stores it in ``RolloutStatus.chain_id`` when a rollout starts;
    ``build_events`` derives the same value itself, so both always agree.
    """
    key = _KEY_SEPARATOR.join(("chain", environment, namespace, rollout, revision))
    return str(uuid.uuid5(_CHAIN_NAMESPACE, key))


def event_id_for(
    environment: str, namespace: str, rollout: str, revision: str, *, step: str, predicate: str, attempt: str = ""
) -> str:
    """A deterministic ``context.id``: uuid5 over what identifies the occurrence.

    ``attempt`` (the status' ``rollout_started_at``) separates a retry of an
    aborted revision from the first attempt; a replay of the same update keeps it.
    """
    key = _KEY_SEPARATOR.join(("event", environment, namespace, rollout, revision, attempt, step, predicate))
    return str(uuid.uuid5(_EVENT_NAMESPACE, key))


def last_event_id(prev_last_event_id: str, events: Sequence[CDEvent]) -> str:
    """What the reconciler stores in ``RolloutStatus.last_event_id`` after emitting ``events``."""
    return events[-1].id if events else prev_last_event_id


def record_events(new: RolloutStatus, events: Sequence[CDEvent]) -> RolloutStatus:
    """``new`` with ``last_event_id`` and ``chain_id`` updated to follow ``events``."""
    if not events:
        return new
    return new.with_changes(last_event_id=events[-1].id, chain_id=events[-1].chain_id)


# --------------------------------------------------------------------------- helpers


def _is_aborted(status: RolloutStatus) -> bool:
    return status.aborted or status.phase is Phase.ABORTED


def _has_reached_environment(status: RolloutStatus | None) -> bool:
    return status is not None and (status.deployed_once or status.phase is Phase.HEALTHY)


def _run_revision(status: RolloutStatus) -> str:
    """The revision whose rollout the status describes (canary while in flight)."""
    return status.canary_revision if status.in_flight else status.stable_revision


def _chain_of(status: RolloutStatus, revision: str) -> str:
    return chain_id_for(status.environment, status.namespace, status.rollout, revision)


_FAILED_ANALYSIS = (AnalysisPhase.FAILED, AnalysisPhase.ERROR)


def _newly_failed_runs(prev: RolloutStatus | None, new: RolloutStatus) -> list[AnalysisRunStatus]:
    before = {} if prev is None else {run.name: run.phase for run in prev.analysis_runs}
    return [
        run
        for run in new.analysis_runs
        if run.phase in _FAILED_ANALYSIS and before.get(run.name) not in _FAILED_ANALYSIS
    ]


def _template_images(status: RolloutStatus, revision: str) -> tuple[str, ...]:
    """Container images of a revision's pod template kept in the status (may be empty)."""
    template = status.templates.get(revision)
    spec = template.get("spec") if isinstance(template, Mapping) else None
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    if not isinstance(containers, Sequence):
        return ()
    return tuple(
        str(c["image"]) for c in containers if isinstance(c, Mapping) and isinstance(c.get("image"), str) and c["image"]
    )


def _weights_key(status: RolloutStatus) -> tuple[tuple[str, str, int, int], ...]:
    return tuple(sorted((w.namespace, w.route, w.stable, w.canary) for w in status.weights))


class _Builder:
    """Accumulates events in order, keeping one PATH link chain per chain id."""

    def __init__(self, prev: RolloutStatus | None, new: RolloutStatus, ctx: EventContext) -> None:
        self.prev = prev
        self.new = new
        self.ctx = ctx
        self.events: list[CDEvent] = []
        self._last_in_chain: dict[str, str] = {}
        if prev is not None and prev.last_event_id:
            prev_chain = prev.chain_id or _chain_of(prev, _run_revision(prev))
            self._last_in_chain[prev_chain] = prev.last_event_id
        self.timestamp = ctx.now or new.step_started_at or new.rollout_started_at
        if not self.timestamp:
            raise EventBuildError(
                f"rollout {new.namespace}/{new.rollout}: no event time: set EventContext.now "
                "(or the status' stepStartedAt)"
            )
        self.environment_id = ctx.environment_id or f"{ctx.cluster}/{new.namespace}"

    # -- ids and subjects

    def service_id(self) -> str:
        return f"{self.new.namespace}/{self.new.rollout}"

    def run_subject_id(self, revision: str) -> str:
        return f"{self.new.namespace}/{self.new.rollout}/{revision}"

    def artifact_id(self, revision: str, fallback_images: Sequence[str]) -> str:
        """The purl of the revision's first container image.

        Looked up in the status' pod templates by revision hash first (exact), then
        in ``fallback_images``; with no image at all, a generic purl of the revision.
        """
        images = _template_images(self.new, revision) or tuple(fallback_images)
        if images:
            return oci_purl(images[0])
        return f"pkg:generic/{self.new.rollout}@{revision}"

    def custom_data(self, revision: str, end_reason: EndReason | None = None) -> dict[str, Any]:
        new = self.new
        data: dict[str, Any] = {
            "rollout": new.rollout,
            "namespace": new.namespace,
            "environment": new.environment,
            "cluster": self.ctx.cluster,
            "revision": revision,
            "stableRevision": new.stable_revision,
            "canaryRevision": new.canary_revision,
            "gitCommit": new.git_commit,
            "step": new.current_step_index,
            "stepCount": new.step_count,
            "phase": new.phase.value,
        }
        if new.message:
            data["message"] = new.message
        if end_reason is not None:
            data["endReason"] = end_reason.value
        return data

    # -- emission

    def emit(
        self,
        event_type: EventType,
        *,
        status: RolloutStatus,
        revision: str,
        subject_id: str,
        content: Mapping[str, Any],
        custom_data: Mapping[str, Any],
        step: str = "",
        predicate_suffix: str = "",
        starts_chain: bool = False,
    ) -> None:
        chain = _chain_of(status, revision)
        event_id = event_id_for(
            status.environment,
            status.namespace,
            status.rollout,
            revision,
            step=step,
            predicate=event_type.predicate + predicate_suffix,
            attempt=status.rollout_started_at,
        )
        context: dict[str, Any] = {
            "specversion": CDEVENTS_SPEC_VERSION,
            "id": event_id,
            "source": self.ctx.source,
            "type": event_type.value,
            "timestamp": self.timestamp,
            "chainId": chain,
        }
        previous = None if starts_chain else self._last_in_chain.get(chain)
        if previous:
            # ``tags`` is always present, even empty: the CDEvents Go SDK (sdk-go v0.5.1,
            # ``embeddedLinkPath.Tags`` is ``json:"tags"`` without omitempty) reads a link
            # without it into a nil map, re-marshals that as ``"tags": null`` in
            # ``api.Validate`` and rejects the event against its own schema. Every
            # conformance example of the spec carries ``tags`` too.
            context["links"] = [{"linkType": _LINK_PATH, "from": {"contextId": previous}, "tags": {}}]
        body = {
            "context": context,
            "subject": {"id": subject_id, "source": self.ctx.source, "content": dict(content)},
            "customData": dict(custom_data),
            "customDataContentType": "application/json",
        }
        self._last_in_chain[chain] = event_id
        self.events.append(
            CDEvent(
                id=event_id,
                type=event_type,
                source=self.ctx.source,
                subject_id=subject_id,
                timestamp=self.timestamp,
                body=body,
            )
        )

    def run_started(self, status: RolloutStatus, revision: str) -> None:
        self.emit(
            EventType.PIPELINERUN_STARTED,
            status=status,
            revision=revision,
            subject_id=self.run_subject_id(revision),
            content={"pipelineName": status.rollout, "uri": self.ctx.uri},
            custom_data=self.custom_data(revision),
            starts_chain=True,
        )

    def run_finished(
        self, status: RolloutStatus, revision: str, reason: EndReason | None, failed: bool, errors: str = ""
    ) -> None:
        outcome = reason.outcome if reason is not None else (Outcome.FAILURE if failed else Outcome.SUCCESS)
        content: dict[str, Any] = {"pipelineName": status.rollout, "uri": self.ctx.uri, "outcome": outcome.value}
        if outcome is not Outcome.SUCCESS and errors:
            content["errors"] = errors
        self.emit(
            EventType.PIPELINERUN_FINISHED,
            status=status,
            revision=revision,
            subject_id=self.run_subject_id(revision),
            content=content,
            custom_data=self.custom_data(revision, reason),
        )

    def service_event(
        self, event_type: EventType, revision: str, artifact_revision: str, fallback_images: Sequence[str]
    ) -> None:
        """A service event of the run of ``revision`` naming the artifact of ``artifact_revision``."""
        self.emit(
            event_type,
            status=self.new,
            revision=revision,
            subject_id=self.service_id(),
            content={
                "environment": {"id": self.environment_id},
                "artifactId": self.artifact_id(artifact_revision, fallback_images),
            },
            custom_data=self.custom_data(revision),
        )

    def progressed(self, revision: str) -> None:
        new = self.new
        weights = [w.to_outputs() for w in new.weights]
        canary_weights = ",".join(str(w.canary) for w in sorted(new.weights, key=lambda w: (w.namespace, w.route)))
        self.emit(
            EventType.ROLLOUT_PROGRESSED,
            status=new,
            revision=revision,
            subject_id=self.run_subject_id(revision),
            content={
                "stepIndex": new.current_step_index,
                "stepCount": new.step_count,
                "phase": new.phase.value,
                "revision": revision,
                "weights": weights,
                "replicas": dict(sorted(new.replicas.items())),
            },
            custom_data=self.custom_data(revision),
            step=str(new.current_step_index),
            predicate_suffix=f"/{canary_weights}",
        )

    def incident(self, run: AnalysisRunStatus, revision: str) -> None:
        description = f"analysis run {run.name} is {run.phase.value}"
        if run.message:
            description += f": {run.message}"
        content: dict[str, Any] = {
            "description": description,
            "environment": {"id": self.environment_id},
            "service": {"id": self.service_id()},
            "artifactId": self.artifact_id(revision, self.new.images),
        }
        data = self.custom_data(revision)
        data["analysisRun"] = run.name
        if run.step_index is not None:
            data["analysisStep"] = run.step_index
        self.emit(
            EventType.INCIDENT_DETECTED,
            status=self.new,
            revision=revision,
            subject_id=f"{self.new.namespace}/{run.name}",
            content=content,
            custom_data=data,
            step="" if run.step_index is None else str(run.step_index),
            predicate_suffix=f"/{run.name}",
        )


def build_events(prev: RolloutStatus | None, new: RolloutStatus, ctx: EventContext) -> list[CDEvent]:
    """The CDEvents that the change ``prev`` → ``new`` tells, in the order they happened.

    ``prev`` is the status before the Pulumi update (``None`` for a new stack),
    ``new`` the status the update produced. Order within one call: a superseded
    run's ``pipelinerun.finished``; ``pipelinerun.started``; the step's
    ``kulta-rollout.progressed``; ``incident.detected`` per newly failed analysis;
    then ``service.deployed|upgraded`` + ``pipelinerun.finished`` (promotion) or
    ``service.rolledback`` + ``pipelinerun.finished`` (abort).
    """
    b = _Builder(prev, new, ctx)
    prev_aborted = prev is not None and _is_aborted(prev)
    new_aborted = _is_aborted(new)
    # The stable revision changed; on a new stack only if nothing is in flight (else it predates KULTA).
    promoted = bool(new.stable_revision) and (
        new.stable_revision != prev.stable_revision if prev is not None else not new.in_flight
    )

    # 1. A run still in flight before is gone without promotion or abort: superseded.
    if (
        prev is not None
        and prev.in_flight
        and not prev_aborted
        and prev.canary_revision not in (new.canary_revision, new.stable_revision)
    ):
        replaced_by = new.canary_revision if new.in_flight else new.stable_revision
        b.run_finished(
            prev,
            prev.canary_revision,
            EndReason.SUPERSEDED,
            failed=False,
            errors=f"superseded by revision {replaced_by}",
        )

    # 2. A run of a new revision starts (or a retry of an aborted one).
    if new.in_flight and not new_aborted:
        same_run_before = (
            prev is not None and prev.in_flight and prev.canary_revision == new.canary_revision and not prev_aborted
        )
        if not same_run_before:
            b.run_started(new, new.canary_revision)
        # 3. The step moved or the weights changed.
        if (
            not same_run_before
            or prev is None
            or prev.current_step_index != new.current_step_index
            or _weights_key(prev) != _weights_key(new)
        ):
            b.progressed(new.canary_revision)
    elif promoted and not (
        prev is not None and prev.in_flight and prev.canary_revision == new.stable_revision and not prev_aborted
    ):
        # A revision went live in one update (first deploy, or a rollout without steps).
        b.run_started(new, new.stable_revision)

    # 4. Analyses that turned Failed/Error in this update.
    for run in _newly_failed_runs(prev, new):
        b.incident(run, _run_revision(new))

    first_deploy = _has_reached_environment(new) and not _has_reached_environment(prev)
    if promoted:
        # 5. Promotion: the revision is now stable.
        kind = EventType.SERVICE_DEPLOYED if first_deploy else EventType.SERVICE_UPGRADED
        b.service_event(kind, new.stable_revision, new.stable_revision, new.images)
        b.run_finished(new, new.stable_revision, EndReason.PROMOTED, failed=False)
    elif first_deploy and new.stable_revision:
        b.service_event(EventType.SERVICE_DEPLOYED, new.stable_revision, new.stable_revision, new.images)

    # 6. Abort: traffic went back to stable.
    already_aborted = prev_aborted and prev is not None and prev.canary_revision == new.canary_revision
    newly_aborted = new_aborted and not already_aborted
    if newly_aborted and new.canary_revision and new.canary_revision != new.stable_revision:
        reason = ctx.end_reason if ctx.end_reason is not EndReason.PROMOTED else None
        if reason is None and any(run.phase in _FAILED_ANALYSIS for run in new.analysis_runs):
            reason = EndReason.ANALYSIS_FAILED
        # The artifact of a rollback is the one traffic went back to: the stable revision's.
        b.service_event(
            EventType.SERVICE_ROLLEDBACK, new.canary_revision, new.stable_revision, ctx.stable_images or new.images
        )
        b.run_finished(new, new.canary_revision, reason, failed=True, errors=new.message)

    return b.events
