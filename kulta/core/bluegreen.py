"""Argo Rollouts' blue-green promotion as pure functions (``rollout/bluegreen.go``).

A blue-green rollout in flight is recorded with the same status as a canary:
``canary_revision`` is the new (preview) revision, ``stable_revision`` the one
the active Service selected before. Its "steps" are the two stages Argo walks:

- ``PRE_PROMOTION`` (step 0): the new ReplicaSet runs ``previewReplicaCount``
  pods (else ``spec.replicas``: Argo's ``NewRSNewReplicas``), the preview
  Service selects it, the active Service still selects the stable one. The
  update that records this step waits until the new pods are available, so the
  ReplicaSet is saturated (``ReadyForPause``) whenever the step is recorded.
  Then ``prePromotionAnalysis`` runs, then the pause (``reconcileBlueGreenPause``:
  only after the analysis succeeded), then the promotion.
- ``POST_PROMOTION`` (step 1, only with ``postPromotionAnalysis``): the new
  ReplicaSet has ``spec.replicas`` pods and the active Service selects it; the
  old ReplicaSet keeps its pods. The new revision becomes stable only once the
  analysis succeeded (``shouldFullPromote``); a failure aborts, and the active
  Service selects the stable revision again (``reconcileActiveService`` with
  ``Status.Abort``).

The promotion itself (new ReplicaSet at ``spec.replicas``, available, then the
active Service switched in the same update, the old ReplicaSet scaled down
``scaleDownDelaySeconds`` later) is the canary's promotion in
``kulta.core.reconcile``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kulta.core.names import POST_PROMOTION, PRE_PROMOTION
from kulta.model.rollout import AnalysisRef, BlueGreenStrategy, PodMetadata, Rollout, RolloutSpec
from kulta.model.status import RolloutStatus

__all__ = [
    "POST_PROMOTION",
    "PRE_PROMOTION",
    "active_revision",
    "needs_controller_pause",
    "pause_completed",
    "pause_due",
    "pod_metadata",
    "preview_replicas",
    "promotion_analysis",
    "stage_label",
    "step_count",
]


def step_count(spec: RolloutSpec) -> int:
    """The steps a status records: a canary's steps; blue-green's one or two stages."""
    blue_green = spec.blue_green
    if blue_green is None:
        return len(spec.strategy.steps)
    return 2 if blue_green.post_promotion_analysis is not None else 1


def stage_label(stage: int) -> str:
    """What a stage is called in ``kulta status`` and ``kulta preview``."""
    if stage == PRE_PROMOTION:
        return "preview (prePromotionAnalysis, pause)"
    return "switched (postPromotionAnalysis)"


def preview_replicas(spec: RolloutSpec, blue_green: BlueGreenStrategy) -> int:
    """Pods of the new ReplicaSet before the promotion: Argo's ``NewRSNewReplicas``.

    ``previewReplicaCount`` when set (e.g. 1 of 3 replicas: one preview pod),
    else ``spec.replicas`` (the whole new colour runs before the switch).
    """
    if blue_green.preview_replica_count is None:
        return spec.replicas
    return blue_green.preview_replica_count


def needs_controller_pause(blue_green: BlueGreenStrategy) -> bool:
    """Argo's ``needsBlueGreenControllerPause``: autoPromotionEnabled false, or autoPromotionSeconds > 0."""
    return not blue_green.auto_promotion_enabled or blue_green.auto_promotion_seconds > 0


def pause_due(blue_green: BlueGreenStrategy, started: datetime) -> datetime | None:
    """When a pause that began at ``started`` ends by itself; ``None``: only ``kulta promote`` ends it."""
    if not blue_green.auto_promotion_enabled:
        return None
    return started + timedelta(seconds=blue_green.auto_promotion_seconds)


def pause_completed(blue_green: BlueGreenStrategy, started: datetime | None, now: datetime) -> bool:
    """Argo's ``CompletedBlueGreenPause`` (without a person's promote).

    With autoPromotionEnabled (the default): done at once when
    autoPromotionSeconds is 0; else done once ``now`` is after the pause start
    plus autoPromotionSeconds (``switchDeadline``), never before the pause began.
    With autoPromotionEnabled false: never (autoPromotionSeconds is ignored).
    """
    if not blue_green.auto_promotion_enabled:
        return False
    if blue_green.auto_promotion_seconds == 0:
        return True
    if started is None:
        return False
    due = pause_due(blue_green, started)
    return due is not None and now > due


def promotion_analysis(blue_green: BlueGreenStrategy, stage: int) -> AnalysisRef | None:
    """The analysis of a stage: prePromotionAnalysis at step 0, postPromotionAnalysis at step 1."""
    if stage == PRE_PROMOTION:
        return blue_green.pre_promotion_analysis
    if stage == POST_PROMOTION:
        return blue_green.post_promotion_analysis
    return None


def active_revision(rollout: Rollout, status: RolloutStatus) -> str:
    """The revision the active (stable) Service selects for ``status``.

    The stable revision, except while a blue-green rollout runs its
    postPromotionAnalysis: then the new one (Argo switched the active Service
    before that analysis starts: ``skipPostPromotionAnalysisRun``). An abort
    switches it back (``reconcileActiveService`` selects ``StableRS``).
    """
    in_post = (
        rollout.spec.blue_green is not None
        and status.in_flight
        and not status.aborted
        and status.current_step_index >= POST_PROMOTION
    )
    return status.canary_revision if in_post else status.stable_revision


def pod_metadata(rollout: Rollout) -> tuple[PodMetadata, PodMetadata]:
    """(new side, stable side) pod metadata: canary/stableMetadata, or blue-green's preview/activeMetadata."""
    blue_green = rollout.spec.blue_green
    if blue_green is not None:
        return blue_green.preview_metadata, blue_green.active_metadata
    return rollout.spec.strategy.canary_metadata, rollout.spec.strategy.stable_metadata
