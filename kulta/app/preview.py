"""``kulta preview``: the real Pulumi preview of each step a Rollout file would run.

``preview_file`` loads the file (as ``validate`` does), reads each rollout's stack, and
previews the update of every requested step with the engine (``stack.preview``); the
result is data (``PreviewResult``) that the text, markdown and JSON renderers format
(``kulta.app.commands.format_preview``, ``kulta.app.preview_render``). Nothing is changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from kulta.adapters.kube import KubeReader
from kulta.adapters.program import deploy
from kulta.adapters.stacks import PreviewReport, StackManager
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.app.spec_commands import describe_action, load_with_references
from kulta.core.bluegreen import stage_label, step_count
from kulta.core.preview import ChangeKind, ChangeSummary, classify_change
from kulta.core.reconcile import decide_step
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.errors import SpecError
from kulta.model.program import ProgramInputs
from kulta.model.rollout import DEFAULT_NAMESPACE
from kulta.model.status import RolloutStatus

__all__ = ["PreviewResult", "RolloutPreview", "StepPreview", "StepRole", "StepSelection", "preview_file"]

log = logging.getLogger(__name__)

#: the action of the update that follows the last step
PROMOTE_ACTION = "promote"
#: the action of a rollout's first update
FIRST_DEPLOYMENT_ACTION = "deploy as stable"


@dataclass(frozen=True)
class StepSelection:
    """Which steps to preview: ``all`` of them, one ``step``, or (neither) the next one."""

    all: bool = False
    step: int | None = None


class StepRole(Enum):
    """Which update a step preview is."""

    #: no stack yet: the revision is deployed as stable
    FIRST_DEPLOYMENT = "first-deployment"
    #: one step of the canary
    STEP = "step"
    #: the update after the last step
    PROMOTION = "promotion"


@dataclass(frozen=True)
class StepPreview:
    """One update's preview: what the step sets, and what the engine would change."""

    #: the step index; ``len(steps)`` is the promotion; None for the first deployment
    step: int | None
    role: StepRole
    #: ``step 0: setWeight``, ``promotion`` or ``first deployment`` (the text format's heading)
    label: str
    #: the step's action as ``kulta plan`` writes it (``setWeight 25``, ``promote``)
    action: str
    canary_weight: int
    stable_pods: int
    canary_pods: int
    report: PreviewReport


@dataclass(frozen=True)
class RolloutPreview:
    namespace: str
    name: str
    #: ``file#document`` of the Rollout
    source: str
    change: ChangeSummary
    steps: tuple[StepPreview, ...]


@dataclass(frozen=True)
class PreviewResult:
    """Everything ``kulta preview`` found in one file: its errors, or each rollout's previews."""

    file: str
    errors: tuple[SpecError, ...] = ()
    rollouts: tuple[RolloutPreview, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors and bool(self.rollouts)


def preview_file(
    file: str,
    selection: StepSelection,
    *,
    connect: Callable[[], tuple[StackManager, KubeReader]],
    environment: str,
    now: datetime,
    namespace: str = DEFAULT_NAMESPACE,
) -> PreviewResult:
    """Preview the steps ``selection`` names of every Rollout in ``file``.

    With no stack yet only the first deployment is previewed, whatever the selection:
    the steps apply to the next revision. ``connect`` opens the backend and the cluster;
    it is called only for a valid file (an invalid one is reported without either).
    """
    loaded = load_with_references([file], namespace=namespace)
    if loaded.errors or not loaded.rollouts:
        return PreviewResult(file=file, errors=tuple(loaded.errors))
    stacks, kube = connect()
    rec = Reconciler(ReconcilerConfig(environment=environment), stacks, kube, provider=None)
    previews: list[RolloutPreview] = []
    for rollout in loaded.rollouts:
        name = rec.stack_name(rollout)
        template = resolve_template(rollout, loaded.others)
        revision = pod_template_hash(template)
        outputs = stacks.outputs(name)
        prev = RolloutStatus.from_outputs(outputs) if outputs.get("phase") else None
        change = classify_change(rollout, revision, prev)
        steps = rollout.spec.strategy.steps
        n = step_count(rollout.spec)
        if prev is None or change.kind is ChangeKind.FIRST_DEPLOYMENT:
            indexes = [0]
        elif selection.all:
            indexes = list(range(n + 1))
        elif selection.step is not None:
            indexes = [selection.step]
        elif prev.canary_revision == revision:
            indexes = [min(prev.current_step_index + 1, n)]
        else:
            indexes = [0]
        step_previews: list[StepPreview] = []
        for index in indexes:
            decision = decide_step(rollout, revision, template, prev, now, index, environment=environment)
            inputs = rec.program_inputs(rollout, loaded, decision, decision.status, prev)
            report = stacks.preview(name, _program(inputs))
            if change.kind is ChangeKind.FIRST_DEPLOYMENT:
                step, role, label, action = None, StepRole.FIRST_DEPLOYMENT, "first deployment", FIRST_DEPLOYMENT_ACTION
            elif index >= n:
                step, role, label, action = n, StepRole.PROMOTION, "promotion", PROMOTE_ACTION
            elif rollout.spec.blue_green is not None:
                step, role, label = index, StepRole.STEP, f"stage {index}: {stage_label(index)}"
                action = stage_label(index)
            else:
                step, role, label = index, StepRole.STEP, f"step {index}: {steps[index].kind.value}"
                action = describe_action(steps[index])
            status = decision.status
            canary = status.canary_revision if status.in_flight else ""
            step_previews.append(
                StepPreview(
                    step=step,
                    role=role,
                    label=label,
                    action=action,
                    canary_weight=decision.canary_weight,
                    stable_pods=decision.replicas.get(status.stable_revision, 0),
                    canary_pods=decision.replicas.get(canary, 0) if canary else 0,
                    report=report,
                )
            )
        log.debug("previewed %d update(s) of %s", len(step_previews), name)
        previews.append(
            RolloutPreview(rollout.namespace, rollout.name, str(rollout.source), change, tuple(step_previews))
        )
    return PreviewResult(file=file, rollouts=tuple(previews))


def _program(inputs: ProgramInputs) -> Callable[[], None]:
    return lambda: deploy(inputs)
