"""What a change to a Rollout file does to the live rollout: the headline of a PR preview.

A reviewer of a pull request wants to know first whether merging it starts a canary,
restarts the one in flight, or changes nothing. ``classify_change`` answers that from the
file (its pod-template hash and strategy hash) and the stack's recorded status, by the
same rules the reconciler applies (``kulta.core.reconcile.classify``), which follow Argo
Rollouts: in ``rollout/canary.go`` ``syncRolloutStatusCanary``, when
``replicasetutil.PodTemplateOrStepsChanged`` (a new pod template, or ``checkStepHashChange``:
other steps) holds, ``ResetCurrentStepIndex`` puts the canary back at step 0; a new
ReplicaSet that is the stable one skips all steps ("Skipping all steps because the newRS is
the stableRS"): traffic goes back to stable (KULTA ends the canary as an abort, ``_at_stable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kulta.core.revision import strategy_hash
from kulta.model.rollout import Rollout
from kulta.model.status import RolloutStatus

__all__ = ["ChangeKind", "ChangeSummary", "classify_change"]


class ChangeKind(Enum):
    """What merging the file does, as seen against the live stack."""

    #: no stack yet: the first update deploys the file's revision as stable
    FIRST_DEPLOYMENT = "first-deployment"
    #: a pod template that is neither stable nor the canary in flight: a new canary from step 0
    NEW_REVISION = "new-revision"
    #: the canary in flight, with other steps/analysis/routes: it restarts from step 0
    STRATEGY_CHANGED = "strategy-changed"
    #: the stable revision again while a canary is in flight: the canary is aborted
    BACK_TO_STABLE = "back-to-stable"
    #: the canary in flight is aborted; the file does not change that (``kulta retry`` does)
    ABORTED = "aborted"
    #: nothing the reconciler acts on (the strategy may differ: it applies to the next canary)
    NO_CHANGE = "no-change"


@dataclass(frozen=True)
class ChangeSummary:
    """``kind`` with the facts a reviewer reads next to it."""

    kind: ChangeKind
    #: the file's pod-template hash
    revision: str
    #: the live stable revision ("" with no stack yet)
    stable_revision: str
    #: the live canary in flight ("" when none)
    canary_revision: str
    #: the live canary's current step (None when none is in flight)
    current_step: int | None
    #: the file's strategy hash differs from the one the live stack recorded
    strategy_changed: bool


def classify_change(rollout: Rollout, revision: str, prev: RolloutStatus | None) -> ChangeSummary:
    """The change the file ``rollout`` (whose template hashes to ``revision``) makes to ``prev``.

    Worked examples (stable ``a``, canary ``b`` in flight at step 2):

    - file revision ``c`` -> ``NEW_REVISION`` (the canary of ``b`` is superseded);
    - file revision ``b``, other steps -> ``STRATEGY_CHANGED``;
    - file revision ``b``, same steps -> ``NO_CHANGE``;
    - file revision ``a`` -> ``BACK_TO_STABLE``.

    A blue-green rollout restarts nothing on a strategy edit (Argo; ``_blue_green``
    declares the stage again): ``NO_CHANGE`` with ``strategy_changed``.
    """
    if prev is None or not prev.stable_revision:
        return ChangeSummary(ChangeKind.FIRST_DEPLOYMENT, revision, "", "", None, False)
    in_flight = prev.in_flight
    changed = bool(prev.strategy_hash) and prev.strategy_hash != strategy_hash(rollout)
    if revision == prev.stable_revision:
        kind = ChangeKind.BACK_TO_STABLE if in_flight and not prev.aborted else ChangeKind.NO_CHANGE
    elif revision != prev.canary_revision:
        kind = ChangeKind.NEW_REVISION
    elif prev.aborted:
        kind = ChangeKind.ABORTED
    elif changed and rollout.spec.blue_green is None:
        kind = ChangeKind.STRATEGY_CHANGED
    else:
        kind = ChangeKind.NO_CHANGE
    return ChangeSummary(
        kind,
        revision,
        prev.stable_revision,
        prev.canary_revision if in_flight else "",
        prev.current_step_index if in_flight else None,
        changed,
    )
