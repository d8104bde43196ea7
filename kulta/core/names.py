"""Names derived from a rollout: its ReplicaSets, analysis runs and routed HTTPRoutes."""

from __future__ import annotations

from kulta.model.rollout import Rollout

__all__ = ["background_run_name", "inline_run_name", "replicaset_name", "route_targets"]


def replicaset_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}"


def inline_run_name(rollout: str, revision: str, step: int) -> str:
    return f"{rollout}-{revision}-step{step}"


def background_run_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}-background"


def route_targets(rollout: Rollout) -> tuple[tuple[str, str], ...]:
    """(namespace, name) of every HTTPRoute the rollout weights."""
    tr = rollout.spec.strategy.traffic_routing
    if tr is None:
        return ()
    return tuple((r.namespace or tr.namespace or rollout.namespace, r.name) for r in tr.http_routes)
