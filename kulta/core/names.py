"""Names derived from a rollout: its ReplicaSets, analysis runs and routed HTTPRoutes / GRPCRoutes."""

from __future__ import annotations

from kulta.model.rollout import Rollout, RouteKind

__all__ = ["background_run_name", "inline_run_name", "replicaset_name", "route_targets"]


def replicaset_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}"


def inline_run_name(rollout: str, revision: str, step: int) -> str:
    return f"{rollout}-{revision}-step{step}"


def background_run_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}-background"


def route_targets(rollout: Rollout) -> tuple[tuple[RouteKind, str, str], ...]:
    """(kind, namespace, name) of every route the rollout weights: HTTPRoutes, then GRPCRoutes."""
    tr = rollout.spec.strategy.traffic_routing
    if tr is None:
        return ()
    return tuple((kind, r.namespace or tr.namespace or rollout.namespace, r.name) for kind, r in tr.routes)
