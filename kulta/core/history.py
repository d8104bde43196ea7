"""Revision history: which old ReplicaSets a rollout keeps (Argo's revisionHistoryLimit).

The status lists the revisions seen, newest last. Live revisions (stable, canary,
one waiting for its scale-down delay) always stay; of the others the newest
``revisionHistoryLimit`` are kept at 0 replicas and older ones are no longer
declared, so the update that drops them deletes their ReplicaSets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kulta.model.status import RolloutStatus

__all__ = ["extend_history", "keep_old_revisions", "live_templates", "prune_history"]


def extend_history(prev: RolloutStatus | None, *revisions: str, limit: int) -> tuple[str, ...]:
    """``prev``'s history with ``revisions`` moved to the end (newest), trimmed to what may be kept."""
    seen = [r for r in (prev.revision_history if prev else ()) if r not in revisions]
    seen.extend(r for r in revisions if r)
    keep = max(limit, 0) + len([r for r in revisions if r])
    return tuple(seen[-keep:])


def keep_old_revisions(prev: RolloutStatus | None, history: tuple[str, ...], *live: str) -> dict[str, int]:
    """Older revisions kept at 0 replicas so their ReplicaSets remain for history."""
    if prev is None:
        return {}
    return {r: 0 for r in history if r not in live and r in prev.templates}


def live_templates(
    prev: RolloutStatus | None, replicas: Mapping[str, int], revision: str, template: Mapping[str, Any]
) -> dict[str, Mapping[str, Any]]:
    """The pod template of every declared revision (the stable one is no longer in Git)."""
    known: dict[str, Mapping[str, Any]] = dict(prev.templates) if prev else {}
    known[revision] = template
    return {r: known[r] for r in replicas if r in known}


def prune_history(
    status: RolloutStatus, replicas: dict[str, int], limit: int
) -> tuple[dict[str, int], tuple[str, ...]]:
    """Keep the live revisions and the newest ``limit`` old ones; returns (replicas, history)."""
    live = {status.stable_revision, status.canary_revision, status.scale_down_revision} - {""}
    order = [r for r in status.revision_history if r in replicas]
    order += [r for r in replicas if r not in order]
    old = [r for r in order if r not in live]
    keep = set(old[-limit:]) if limit > 0 else set()
    kept = {r: n for r, n in replicas.items() if r in live or r in keep}
    history = tuple(r for r in order if r in kept)
    return kept, history
