"""Names derived from a rollout: its ReplicaSets, analysis runs and routed HTTPRoutes / GRPCRoutes."""

from __future__ import annotations

from kulta.model.rollout import Rollout, RouteKind

__all__ = [
    "POST_PROMOTION",
    "PRE_PROMOTION",
    "background_run_name",
    "inline_run_name",
    "promotion_run_name",
    "replicaset_name",
    "route_targets",
    "step_run_name",
]

#: a blue-green rollout's stage before the active Service switches (preview, prePromotionAnalysis, pause)
PRE_PROMOTION = 0
#: its stage after the switch, while postPromotionAnalysis runs
POST_PROMOTION = 1
_PROMOTION_RUN_SUFFIX = {PRE_PROMOTION: "prepromotion", POST_PROMOTION: "postpromotion"}


def replicaset_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}"


def inline_run_name(rollout: str, revision: str, step: int) -> str:
    return f"{rollout}-{revision}-step{step}"


def promotion_run_name(rollout: str, revision: str, stage: int) -> str:
    """``<rollout>-<revision>-prepromotion`` / ``-postpromotion``: a blue-green stage's analysis run."""
    return f"{rollout}-{revision}-{_PROMOTION_RUN_SUFFIX.get(stage, f'stage{stage}')}"


def step_run_name(rollout: Rollout, revision: str, step: int) -> str:
    """The analysis run of the current step: a canary step's inline run, or a blue-green stage's."""
    if rollout.spec.blue_green is not None:
        return promotion_run_name(rollout.name, revision, step)
    return inline_run_name(rollout.name, revision, step)


def background_run_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}-background"


def route_targets(rollout: Rollout) -> tuple[tuple[RouteKind, str, str], ...]:
    """(kind, namespace, name) of every route the rollout weights: HTTPRoutes, then GRPCRoutes."""
    tr = rollout.spec.strategy.traffic_routing
    if tr is None:
        return ()
    return tuple((kind, r.namespace or tr.namespace or rollout.namespace, r.name) for kind, r in tr.routes)
