"""The rollout state machine: (spec, last status, what was observed, now) -> next status.

A straight-line, pure decision in the manner of Argo Rollouts'
``syncRolloutStatusCanary``: classify the situation once (``classify`` →
``Situation``), then one handler computes the whole new status; the caller
persists it as one Pulumi update whose outputs *are* that status, and derives
events from the (previous, new) pair. Because the status a step writes is
recorded by the same update that applies the step, a crash at any moment leaves
either the old status (the update did not finish: the same decision is made
again and converges) or the new one (the step is done): never a skipped or
doubled advance.

Phases follow Argo Rollouts: Progressing while stepping, Paused at an
indefinite pause (or an inconclusive analysis), Healthy once promoted,
Degraded when the progress deadline passes, plus Aborted.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from kulta.core.analysis_run import TerminationReason, terminate_run
from kulta.core.bluegreen import (
    POST_PROMOTION,
    PRE_PROMOTION,
    needs_controller_pause,
    pause_completed,
    pause_due,
    preview_replicas,
    promotion_analysis,
    step_count,
)
from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.decision import AbortReason, Decision, Observation, WaitOutcome, WaitResult
from kulta.core.defaults import abort_scale_down_delay_seconds, scale_down_delay_seconds
from kulta.core.history import extend_history, keep_old_revisions, live_templates, prune_history
from kulta.core.names import (
    background_run_name,
    inline_run_name,
    promotion_run_name,
    replicaset_name,
    route_targets,
    step_run_name,
)
from kulta.core.plan import DesiredState, PlanMode, WaitKind, desired_state, rolling_update
from kulta.core.revision import strategy_hash
from kulta.core.times import format_time, parse_status_time
from kulta.model.rollout import BlueGreenStrategy, CanaryStrategy, Rollout, RolloutSpec
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase, RolloutStatus, RouteWeight
from kulta.redact import safe_text

__all__ = ["Situation", "classify", "decide", "decide_step"]

_FAILED_ANALYSIS = (AnalysisPhase.FAILED, AnalysisPhase.ERROR)
#: added to the reason of a state recorded again after its update was killed
RECORDED_AGAIN = " (recorded again: its first update was killed before Pulumi wrote its history entry)"


class Situation(enum.Enum):
    """What kind of pass this is; ``classify`` picks exactly one, in this order."""

    #: no stable revision recorded yet: deploy straight to stable
    FIRST_DEPLOYMENT = "first-deployment"
    #: the last update of this pass failed (fed back by the caller)
    UPDATE_FAILED = "update-failed"
    #: Git names the stable revision (at rest, or back from a canary)
    AT_STABLE = "at-stable"
    #: Git names a revision that is neither stable nor the canary in flight
    NEW_REVISION = "new-revision"
    #: the canary was aborted; only retry (or a new revision) moves it
    ABORTED = "aborted"
    #: a person asked for an abort
    MANUAL_ABORT = "manual-abort"
    #: the current step's analysis or the background analysis failed
    ANALYSIS_FAILED = "analysis-failed"
    #: the strategy in Git changed while the current step's analysis runs: it finishes first
    STRATEGY_CHANGED_ANALYSIS_RUNNING = "strategy-changed-analysis-running"
    #: the strategy in Git differs from the one the canary runs: restart from step 0
    STRATEGY_CHANGED = "strategy-changed"
    #: weights are back at stable after a restart: apply step 0
    RESTART_PENDING = "restart-pending"
    #: the progress deadline passed on the current step: try it again
    DEGRADED = "degraded"
    #: no steps, no traffic routing: pods replaced in moves paced by maxSurge / maxUnavailable
    ROLLING = "rolling"
    #: walk the steps
    STEPPING = "stepping"
    #: a blue-green rollout in flight: preview, prePromotionAnalysis, pause, switch, postPromotionAnalysis
    BLUE_GREEN = "blue-green"


@dataclass(frozen=True)
class _Ctx:
    rollout: Rollout
    revision: str
    template: Mapping[str, Any]
    prev: RolloutStatus | None
    now: datetime
    environment: str
    git_commit: str
    chain_id: str
    strategy: str
    obs: Observation


def _images(template: Mapping[str, Any]) -> tuple[str, ...]:
    containers = template.get("spec", {}).get("containers", []) or []
    return tuple(str(c.get("image", "")) for c in containers if c.get("image"))


def _weights(rollout: Rollout, canary_weight: int) -> tuple[RouteWeight, ...]:
    return tuple(
        RouteWeight(route=name, namespace=ns, stable=100 - canary_weight, canary=canary_weight, kind=kind)
        for kind, ns, name in route_targets(rollout)
    )


def _merge_runs(
    old: tuple[AnalysisRunStatus, ...], new: tuple[AnalysisRunStatus, ...]
) -> tuple[AnalysisRunStatus, ...]:
    by_name = {r.name: r for r in old}
    for r in new:
        by_name[r.name] = r
    return tuple(by_name.values())


def _replicas_status(rollout: Rollout, replicas: Mapping[str, int]) -> dict[str, int]:
    return {replicaset_name(rollout.name, rev): n for rev, n in replicas.items()}


def _finish(
    ctx: _Ctx,
    status: RolloutStatus,
    replicas: dict[str, int],
    desired: DesiredState | None,
    canary_weight: int,
    *,
    canary_svc: str,
    wait_ready: frozenset[str],
    apply: bool,
    next_due: datetime | None,
    reason: str,
    abort_reason: AbortReason | None = None,
    command: ManualCommand | None = None,
) -> Decision:
    replicas, history = prune_history(status, replicas, ctx.rollout.spec.revision_history_limit)
    templates = live_templates(ctx.prev, replicas, ctx.revision, ctx.template)
    status = status.with_changes(
        revision_history=history,
        replicas=_replicas_status(ctx.rollout, replicas),
        weights=_weights(ctx.rollout, canary_weight),
        templates=templates,
        last_command_id=command.id if command else (ctx.prev.last_command_id if ctx.prev else ""),
        # a reason can carry an engine's or a dependency's error text: redacted and capped
        message=safe_text(reason),
    )
    return Decision(
        status=status,
        replicas=replicas,
        canary_weight=canary_weight,
        header_routes=desired.header_routes if desired else (),
        mirror_routes=desired.mirror_routes if desired else (),
        wait_ready=wait_ready,
        canary_service_revision=canary_svc,
        apply=apply,
        next_due=next_due,
        reason=safe_text(reason),
        abort_reason=abort_reason,
        command_applied=command,
        templates=templates,
    )


# --------------------------------------------------------------------------- handlers


def _strategy_of(spec: RolloutSpec) -> CanaryStrategy | BlueGreenStrategy:
    """The strategy whose Argo defaults apply (``kulta.core.defaults``)."""
    return spec.blue_green if spec.blue_green is not None else spec.strategy


def _initial(ctx: _Ctx) -> Decision:
    spec = ctx.rollout.spec
    n = step_count(spec)
    now = format_time(ctx.now)
    history = extend_history(None, ctx.revision, limit=spec.revision_history_limit)
    status = RolloutStatus(
        rollout=ctx.rollout.name,
        namespace=ctx.rollout.namespace,
        environment=ctx.environment,
        phase=Phase.HEALTHY,
        current_step_index=n,
        step_count=n,
        stable_revision=ctx.revision,
        step_started_at=now,
        git_commit=ctx.git_commit,
        images=_images(ctx.template),
        deployed_once=True,
        revision_history=history,
        rollout_started_at=now,
        chain_id=ctx.chain_id,
        strategy_hash=ctx.strategy,
    )
    replicas = {ctx.revision: spec.replicas}
    return _finish(
        ctx,
        status,
        replicas,
        None,
        0,
        canary_svc=ctx.revision,
        wait_ready=frozenset({ctx.revision}),
        apply=True,
        next_due=None,
        reason=f"first revision {ctx.revision} deployed as stable ({spec.replicas} replicas)",
    )


def _step_status(ctx: _Ctx, prev: RolloutStatus, index: int, desired: DesiredState, **changes: Any) -> RolloutStatus:
    paused = desired.wait.kind is WaitKind.PAUSE_UNTIL_PROMOTED
    pausing = desired.wait.kind in (WaitKind.PAUSE_DURATION, WaitKind.PAUSE_UNTIL_PROMOTED)
    return _entered(ctx, prev, index, paused=paused, pausing=pausing, **changes)


def _entered(
    ctx: _Ctx, prev: RolloutStatus, index: int, *, paused: bool = False, pausing: bool = False, **changes: Any
) -> RolloutStatus:
    """The status of a step (or blue-green stage) being entered now."""
    now = format_time(ctx.now)
    base = {
        "phase": Phase.PAUSED if paused else Phase.PROGRESSING,
        "current_step_index": index,
        "step_count": step_count(ctx.rollout.spec),
        "step_started_at": now,
        "pause_started_at": now if pausing else "",
        "git_commit": ctx.git_commit,
        "images": _images(ctx.template),
        "aborted": False,
        "strategy_hash": ctx.strategy,
        "restart_reason": "",
    }
    base.update(changes)
    return prev.with_changes(**base)


def _apply_step(
    ctx: _Ctx, prev: RolloutStatus, index: int, reason: str, command: ManualCommand | None, **changes: Any
) -> Decision:
    spec = ctx.rollout.spec
    desired = desired_state(spec, index)
    history = extend_history(prev, prev.stable_revision, ctx.revision, limit=spec.revision_history_limit)
    replicas = keep_old_revisions(prev, history, prev.stable_revision, ctx.revision)
    if prev.scale_down_revision and prev.scale_down_revision not in (prev.stable_revision, ctx.revision):
        replicas[prev.scale_down_revision] = 0
    replicas[prev.stable_revision] = desired.stable_replicas
    replicas[ctx.revision] = desired.canary_replicas
    status = _step_status(ctx, prev, index, desired, revision_history=history, **changes)
    wait = {ctx.revision} if desired.canary_replicas > 0 else set()
    stable_before = prev.replicas.get(replicaset_name(ctx.rollout.name, prev.stable_revision), 0)
    if desired.stable_replicas > stable_before:
        wait.add(prev.stable_revision)  # e.g. dynamicStableScale coming back up: traffic waits for it
    return _finish(
        ctx,
        status,
        replicas,
        desired,
        desired.canary_weight,
        canary_svc=ctx.revision,
        wait_ready=frozenset(wait),
        apply=True,
        next_due=_pause_due(ctx, status, desired),
        reason=reason,
        command=command,
    )


def _pause_due(ctx: _Ctx, status: RolloutStatus, desired: DesiredState) -> datetime | None:
    if desired.wait.kind is WaitKind.PAUSE_DURATION and desired.wait.seconds is not None:
        started = parse_status_time(status.pause_started_at) or ctx.now
        return started + timedelta(seconds=desired.wait.seconds)
    return None


def _start_canary(ctx: _Ctx, prev: RolloutStatus, command: ManualCommand | None, reason: str) -> Decision:
    now = format_time(ctx.now)
    changes: dict[str, Any] = {
        "canary_revision": ctx.revision,
        "rollout_started_at": now,
        "analysis_runs": (),
        "chain_id": ctx.chain_id,
        "scale_down_revision": "",
        "scale_down_at": "",
    }
    if prev.in_flight and prev.canary_revision != ctx.revision:
        # the superseded canary is scaled down at once (Argo does the same)
        changes["scale_down_revision"] = prev.canary_revision
    if ctx.rollout.spec.blue_green is not None:
        return _bg_apply(ctx, prev, PRE_PROMOTION, reason, command, **changes)
    if not ctx.rollout.spec.strategy.steps:
        staged = prev.with_changes(**changes)
        if ctx.rollout.spec.strategy.traffic_routing is None:
            return _rolling(ctx, staged, command, reason + "; no steps: ")
        return _promote(ctx, staged, command, reason + "; no steps: promoting")
    return _apply_step(ctx, prev, 0, reason, command, **changes)


def _rolling(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None, reason: str = "") -> Decision:
    """A Rollout without steps and without traffic routing: Argo's paced replacement.

    Each update makes Argo's next move (``rolling_update``: ``reconcileCanaryReplicaSets``
    at weight 100, one ReplicaSet at a time, within maxSurge and maxUnavailable),
    waiting until new pods are available; at (0, replicas) the revision is promoted.
    """
    spec = ctx.rollout.spec
    if spec.paused and prev.in_flight:
        return _hold(ctx, prev, "spec.paused is true: holding the rolling update", phase=Phase.PAUSED)
    stable_now = prev.replicas.get(replicaset_name(ctx.rollout.name, prev.stable_revision), spec.replicas)
    canary_now = prev.replicas.get(replicaset_name(ctx.rollout.name, ctx.revision), 0) if prev.in_flight else 0
    move = rolling_update(spec, stable_now, canary_now)
    if move is None:
        return _promote(ctx, prev, cmd, f"{reason}rolling update done: promoted {ctx.revision}")
    stable, canary = move
    history = extend_history(prev, prev.stable_revision, ctx.revision, limit=spec.revision_history_limit)
    replicas = keep_old_revisions(prev, history, prev.stable_revision, ctx.revision)
    if prev.scale_down_revision and prev.scale_down_revision not in (prev.stable_revision, ctx.revision):
        replicas[prev.scale_down_revision] = 0
    replicas[prev.stable_revision] = stable
    replicas[ctx.revision] = canary
    now = format_time(ctx.now)
    status = prev.with_changes(
        phase=Phase.PROGRESSING,
        canary_revision=ctx.revision,
        current_step_index=0,
        step_count=0,
        step_started_at=now,
        pause_started_at="",
        git_commit=ctx.git_commit,
        images=_images(ctx.template),
        aborted=False,
        revision_history=history,
        strategy_hash=ctx.strategy,
        restart_reason="",
    )
    limits = f"maxSurge {spec.strategy.max_surge}, maxUnavailable {spec.strategy.max_unavailable}"
    return _finish(
        ctx,
        status,
        replicas,
        None,
        0,
        canary_svc=ctx.revision,
        wait_ready=frozenset({ctx.revision}) if canary > canary_now else frozenset(),
        apply=True,
        next_due=None,
        reason=f"{reason}rolling update ({limits}): {stable} old + {canary} new pods",
        command=cmd,
    )


def _stopped_background(
    ctx: _Ctx, runs: tuple[AnalysisRunStatus, ...], why: TerminationReason
) -> tuple[AnalysisRunStatus, ...]:
    """The background run ends with the rollout: Argo terminates it at promotion and abort."""
    name = background_run_name(ctx.rollout.name, ctx.revision)
    return tuple(terminate_run(run, why) if run.name == name else run for run in runs)


def _promote(ctx: _Ctx, prev: RolloutStatus, command: ManualCommand | None, reason: str) -> Decision:
    spec = ctx.rollout.spec
    n = len(spec.strategy.steps)
    count = step_count(spec)
    now = format_time(ctx.now)
    old_stable = prev.stable_revision
    history = extend_history(prev, old_stable, ctx.revision, limit=spec.revision_history_limit)
    replicas = keep_old_revisions(prev, history, old_stable, ctx.revision)
    delay = scale_down_delay_seconds(_strategy_of(spec))
    scale_down_at = ctx.now + timedelta(seconds=delay)
    replicas[old_stable] = spec.replicas if delay > 0 else 0
    replicas[ctx.revision] = spec.replicas
    status = prev.with_changes(
        phase=Phase.HEALTHY,
        current_step_index=count,
        step_count=count,
        stable_revision=ctx.revision,
        canary_revision="",
        step_started_at=now,
        pause_started_at="",
        git_commit=ctx.git_commit,
        images=_images(ctx.template),
        aborted=False,
        deployed_once=True,
        revision_history=history,
        scale_down_revision=old_stable if delay > 0 else "",
        scale_down_at=format_time(scale_down_at) if delay > 0 else "",
        analysis_runs=_stopped_background(ctx, prev.analysis_runs, TerminationReason.PROMOTED),
        strategy_hash=ctx.strategy,
        restart_reason="",
    )
    desired = desired_state(spec, n, PlanMode.PROMOTED)
    return _finish(
        ctx,
        status,
        replicas,
        desired,
        0,
        canary_svc=ctx.revision,
        wait_ready=frozenset({ctx.revision}),
        apply=True,
        next_due=scale_down_at if delay > 0 else None,
        reason=reason,
        command=command,
    )


def _abort(ctx: _Ctx, prev: RolloutStatus, why: AbortReason, detail: str, command: ManualCommand | None) -> Decision:
    spec = ctx.rollout.spec
    never = abort_scale_down_delay_seconds(_strategy_of(spec))
    # None: Argo leaves an aborted canary running (abortScaleDownDelaySeconds: 0)
    delay = 0 if never is None else never
    at = ctx.now + timedelta(seconds=delay)
    history = extend_history(prev, prev.stable_revision, ctx.revision, limit=spec.revision_history_limit)
    replicas = keep_old_revisions(prev, history, prev.stable_revision, ctx.revision)
    current_canary = prev.replicas.get(replicaset_name(ctx.rollout.name, ctx.revision), 0)
    replicas[prev.stable_revision] = spec.replicas
    replicas[ctx.revision] = current_canary if (never is None or delay > 0) else 0
    status = prev.with_changes(
        phase=Phase.ABORTED,
        aborted=True,
        pause_started_at="",
        step_started_at=format_time(ctx.now),
        scale_down_revision=ctx.revision if delay > 0 else "",
        scale_down_at=format_time(at) if delay > 0 else "",
        revision_history=history,
        analysis_runs=_stopped_background(ctx, prev.analysis_runs, TerminationReason.ABORTED),
        restart_reason="",
    )
    kept = "; the canary keeps its pods (abortScaleDownDelaySeconds: 0)" if never is None else ""
    return _finish(
        ctx,
        status,
        replicas,
        desired_state(spec, min(prev.current_step_index, len(spec.strategy.steps)), PlanMode.ABORTED),
        0,
        canary_svc=ctx.revision,
        wait_ready=frozenset({prev.stable_revision}),
        apply=True,
        next_due=at if delay > 0 else None,
        reason=f"aborted ({why.value}): {detail}; all traffic back on stable {prev.stable_revision}{kept}",
        abort_reason=why,
        command=command,
    )


def _hold(
    ctx: _Ctx,
    prev: RolloutStatus,
    reason: str,
    *,
    phase: Phase | None = None,
    next_due: datetime | None = None,
    apply: bool = False,
    command: ManualCommand | None = None,
) -> Decision:
    """Keep the current state; ``apply`` re-applies it (drift) without changing the step."""
    spec = ctx.rollout.spec
    replicas = {}
    name_to_rev = {replicaset_name(ctx.rollout.name, r): r for r in prev.templates}
    for rs, n in prev.replicas.items():
        if rs in name_to_rev:
            replicas[name_to_rev[rs]] = n
    in_flight = prev.in_flight and not prev.aborted and not prev.restart_reason
    same_strategy = not prev.strategy_hash or prev.strategy_hash == ctx.strategy
    desired = None
    if in_flight and same_strategy:
        desired = desired_state(spec, min(prev.current_step_index, len(spec.strategy.steps)))
    canary_weight = prev.weights[0].canary if prev.weights else 0
    status = prev.with_changes(phase=phase or prev.phase)
    canary_svc = prev.canary_revision if prev.canary_revision else prev.stable_revision
    return _finish(
        ctx,
        status,
        replicas,
        desired,
        canary_weight,
        canary_svc=canary_svc,
        wait_ready=frozenset(),
        apply=apply,
        next_due=next_due,
        reason=reason,
        command=command,
    )


def _record_again(ctx: _Ctx, prev: RolloutStatus) -> Decision:
    """The recorded state applied once more, unchanged, so its update has a history entry.

    Its reason is the lost update's, so ``kulta history`` still names the step
    (once: the killed update has no entry).
    """
    reason = prev.message if prev.message.endswith(RECORDED_AGAIN) else f"{prev.message}{RECORDED_AGAIN}"
    return _hold(ctx, prev, reason, apply=True)


def _pending_command(prev: RolloutStatus, command: ManualCommand | None) -> ManualCommand | None:
    if command is None or command.id == prev.last_command_id:
        return None
    return command


def _scale_down_due(ctx: _Ctx, prev: RolloutStatus) -> bool:
    at = parse_status_time(prev.scale_down_at)
    return bool(prev.scale_down_revision) and at is not None and ctx.now >= at


def _after_scale_down(ctx: _Ctx, prev: RolloutStatus, reason: str, phase: Phase) -> Decision:
    """The scale-down delay has passed: the waiting revision goes to 0 replicas."""
    waiting = prev.scale_down_revision
    cleared = prev.with_changes(scale_down_revision="", scale_down_at="")
    d = _hold(ctx, cleared, reason, phase=phase, apply=True)
    if waiting in d.replicas:
        replicas = {**d.replicas, waiting: 0}
        status = d.status.with_changes(replicas=_replicas_status(ctx.rollout, replicas))
        return replace(d, status=status, replicas=replicas)
    return d


def _at_stable(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    if prev.in_flight:
        if prev.aborted:
            return _back_to_stable(ctx, prev, cmd)
        canary_ctx = replace(
            ctx,
            revision=prev.canary_revision,
            template=prev.templates.get(prev.canary_revision, ctx.template),
            chain_id=prev.chain_id,
        )
        return _abort(canary_ctx, prev, AbortReason.MANUAL, "Git points at the stable revision again", cmd)
    if _scale_down_due(ctx, prev):
        return _after_scale_down(ctx, prev, f"scaled down previous revision {prev.scale_down_revision}", Phase.HEALTHY)
    due = parse_status_time(prev.scale_down_at) if prev.scale_down_revision else None
    return _hold(
        ctx, prev, prev.message or "healthy", phase=Phase.HEALTHY, next_due=due, apply=ctx.obs.drift, command=cmd
    )


def _new_revision(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    why = (
        f"new revision {ctx.revision} supersedes canary {prev.canary_revision}: restarting from step 0"
        if prev.in_flight
        else f"new revision {ctx.revision}: starting canary against stable {prev.stable_revision}"
    )
    return _start_canary(ctx, prev, cmd, why)


def _aborted(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    if cmd and cmd.kind is CommandKind.RETRY:
        if ctx.rollout.spec.blue_green is not None:
            return _bg_apply(
                ctx,
                prev,
                PRE_PROMOTION,
                "retry: the preview starts again",
                cmd,
                analysis_runs=(),
                rollout_started_at=format_time(ctx.now),
            )
        if _paced(ctx):
            return _rolling(ctx, prev.with_changes(aborted=False), cmd, "retry: ")
        if not ctx.rollout.spec.strategy.steps:
            return _promote(ctx, prev, cmd, "retry: no steps, promoting")
        return _apply_step(
            ctx,
            prev,
            0,
            "retry: restarting the canary from step 0",
            cmd,
            analysis_runs=(),
            rollout_started_at=format_time(ctx.now),
        )
    if _scale_down_due(ctx, prev):
        return _after_scale_down(ctx, prev, f"aborted; canary {prev.scale_down_revision} scaled down", Phase.ABORTED)
    due = parse_status_time(prev.scale_down_at) if prev.scale_down_revision else None
    # A command sent to an aborted rollout (other than retry) has nothing to act on;
    # it is recorded as handled by the next update that starts a canary.
    return _hold(ctx, prev, prev.message, phase=Phase.ABORTED, next_due=due)


def _manual_abort(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    return _abort(ctx, prev, AbortReason.MANUAL, "aborted by a person (kulta abort)", cmd)


def _failed_run(rollout: Rollout, revision: str, prev: RolloutStatus) -> AnalysisRunStatus | None:
    """The background run, or the current step's inline run, that failed or errored."""
    names = {background_run_name(rollout.name, revision)}
    if not prev.restart_reason:
        # under either strategy's name: a run that failed stays failed when the same pass
        # turns a blue-green rollout into a canary (or back) in Git
        index = prev.current_step_index
        names |= {inline_run_name(rollout.name, revision, index), promotion_run_name(rollout.name, revision, index)}
    for run in prev.analysis_runs:
        if run.name in names and run.phase in _FAILED_ANALYSIS:
            return run
    return None


def _analysis_failed(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    run = _failed_run(ctx.rollout, ctx.revision, prev)
    if run is None:  # classify only picks this situation with a failed run
        raise ValueError("no failed analysis run")
    where = "background analysis" if run.step_index is None else f"analysis at step {run.step_index}"
    if ctx.rollout.spec.blue_green is not None and run.step_index is not None:
        where = "postPromotionAnalysis" if run.step_index == POST_PROMOTION else "prePromotionAnalysis"
    return _abort(ctx, prev, AbortReason.ANALYSIS, f"{where} {run.phase.value}: {run.message}", cmd)


def _strategy_changed(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    """Argo restarts a canary from step 0 when its steps change; first the weights go back to stable.

    The canary keeps its pods behind a traffic router (the restart is quick); without
    one its pods are the traffic, so they go to 0 until step 0 asks for them again.
    """
    spec = ctx.rollout.spec
    recorded = {r.name: r for r in (ctx.prev.analysis_runs if ctx.prev else ())}
    ended = [r for r in prev.analysis_runs if recorded.get(r.name) != r and r.phase.completed]
    if ended:
        # the history shows how the analysis ended before the restart drops its run
        result = ", ".join(f"{r.name} {r.phase.value}" for r in ended)
        return _hold(ctx, prev, f"strategy changed in Git: {result}; the canary restarts from step 0 next")
    reason = (
        f"strategy changed in Git (steps, analysis or trafficRouting) at step {prev.current_step_index}: "
        f"traffic back on stable {prev.stable_revision}, restarting the canary from step 0"
    )
    history = extend_history(prev, prev.stable_revision, ctx.revision, limit=spec.revision_history_limit)
    replicas = keep_old_revisions(prev, history, prev.stable_revision, ctx.revision)
    routed = spec.strategy.traffic_routing is not None
    replicas[prev.stable_revision] = spec.replicas
    replicas[ctx.revision] = prev.replicas.get(replicaset_name(ctx.rollout.name, ctx.revision), 0) if routed else 0
    status = prev.with_changes(
        phase=Phase.PROGRESSING,
        current_step_index=0,
        step_count=len(spec.strategy.steps),
        step_started_at=format_time(ctx.now),
        pause_started_at="",
        analysis_runs=(),
        git_commit=ctx.git_commit,
        revision_history=history,
        strategy_hash=ctx.strategy,
        restart_reason=reason,
    )
    return _finish(
        ctx,
        status,
        replicas,
        None,
        0,
        canary_svc=ctx.revision,
        wait_ready=frozenset({prev.stable_revision}),
        apply=True,
        next_due=None,
        reason=reason,
        command=cmd if cmd and cmd.kind is CommandKind.PROMOTE else None,
    )


def _finish_analysis_first(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    """A running analysis is never skipped by a Git edit: it ends (and may abort) before the restart."""
    reason = (
        f"strategy changed in Git: the analysis of step {prev.current_step_index} finishes first, "
        "then the canary restarts from step 0"
    )
    return _hold(ctx, prev, reason, phase=Phase.PROGRESSING, apply=ctx.obs.drift)


def _restart_pending(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    if not ctx.rollout.spec.strategy.steps:
        return _promote(ctx, prev, cmd, "strategy changed and has no steps: promoting")
    reason = f"applying step 0 of the changed strategy ({prev.restart_reason.split(':')[0]})"
    return _apply_step(ctx, prev, 0, reason, None, rollout_started_at=format_time(ctx.now))


def _paced(ctx: _Ctx) -> bool:
    """No steps and no traffic routing: the pods are replaced in paced moves (``_rolling``)."""
    strategy = ctx.rollout.spec.strategy
    return not strategy.steps and strategy.traffic_routing is None


def _degraded(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    if _paced(ctx):
        return _rolling(ctx, prev, cmd, "retrying after the progress deadline passed: ")
    n = len(ctx.rollout.spec.strategy.steps)
    index = min(prev.current_step_index, n - 1) if n else 0
    return _apply_step(ctx, prev, index, f"retrying step {index} after the progress deadline passed", cmd)


def _stepping(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    rollout, revision, spec = ctx.rollout, ctx.revision, ctx.rollout.spec
    n = len(spec.strategy.steps)
    background = background_run_name(rollout.name, revision)
    for run in prev.analysis_runs:
        if run.name == background and run.phase is AnalysisPhase.INCONCLUSIVE:
            promoted = cmd is not None and cmd.kind in (CommandKind.PROMOTE, CommandKind.PROMOTE_FULL)
            if not promoted:
                # Argo pauses on an inconclusive result: a person decides (promote or abort)
                reason = f"background analysis inconclusive: {run.message}; promote or abort"
                return _hold(ctx, prev, reason, phase=Phase.PAUSED)
            # resumed by a person: like Argo, the background analysis starts over
            prev = prev.with_changes(analysis_runs=tuple(r for r in prev.analysis_runs if r.name != background))
            break

    if cmd and cmd.kind is CommandKind.PROMOTE_FULL:
        return _promote(ctx, prev, cmd, "fully promoted by a person (kulta promote --full)")

    index = prev.current_step_index
    if index >= n:
        return _promote(ctx, prev, cmd, f"all {n} steps done: promoted {revision}")
    if spec.paused:
        return _hold(ctx, prev, f"spec.paused is true: holding at step {index}", phase=Phase.PAUSED)

    # a failed inline run never gets here: classify picks ANALYSIS_FAILED first
    wait = _wait_result(ctx, prev, desired_state(spec, index), cmd)
    if wait.outcome is WaitOutcome.WAITING:
        return _hold(ctx, prev, wait.note, phase=wait.phase, next_due=wait.due, apply=ctx.obs.drift)
    used = cmd if (cmd and cmd.kind is CommandKind.PROMOTE) else None
    inline = inline_run_name(rollout.name, revision, index)
    # a person promoted past a running analysis: Argo terminates that run
    left = tuple(terminate_run(r, TerminationReason.STEP_LEFT) if r.name == inline else r for r in prev.analysis_runs)
    prev = prev.with_changes(analysis_runs=left)
    if index + 1 >= n:
        return _promote(ctx, prev, used, f"all {n} steps done: promoted {revision}")
    return _apply_step(ctx, prev, index + 1, f"step {index} done ({wait.note}); applying step {index + 1}", used)


def _back_to_stable(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    """Git points at the stable revision again after an abort: the rollout is Healthy.

    The aborted canary keeps its pending scale-down (abortScaleDownDelaySeconds);
    its ReplicaSet stays in the history like any older revision.
    """
    spec = ctx.rollout.spec
    n = step_count(spec)
    history = extend_history(prev, prev.canary_revision, prev.stable_revision, limit=spec.revision_history_limit)
    replicas = keep_old_revisions(prev, history, prev.stable_revision)
    canary_rs = replicaset_name(ctx.rollout.name, prev.canary_revision)
    if prev.canary_revision:
        replicas[prev.canary_revision] = prev.replicas.get(canary_rs, 0) if prev.scale_down_revision else 0
    replicas[prev.stable_revision] = spec.replicas
    status = prev.with_changes(
        phase=Phase.HEALTHY,
        aborted=False,
        canary_revision="",
        current_step_index=n,
        step_count=n,
        pause_started_at="",
        step_started_at=format_time(ctx.now),
        git_commit=ctx.git_commit,
        images=_images(ctx.template),
        revision_history=history,
        strategy_hash=ctx.strategy,
    )
    due = parse_status_time(prev.scale_down_at) if prev.scale_down_revision else None
    return _finish(
        ctx,
        status,
        replicas,
        None,
        0,
        canary_svc=prev.stable_revision,
        wait_ready=frozenset(),
        apply=True,
        next_due=due,
        reason=f"Git points at stable {prev.stable_revision} again: aborted canary {prev.canary_revision} dropped",
        command=cmd,
    )


def _failed_update(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    """The update of a step failed: retry later, or past the deadline Degraded / abort.

    A canary whose very first update failed never reached the stack outputs, so
    the status recorded here is the one of its start (step 0).
    """
    spec = ctx.rollout.spec
    obs = ctx.obs
    detail = obs.update_error or "the step's update failed"
    if not obs.deadline_exceeded:
        return _hold(ctx, prev, f"update failed, retrying on the next pass: {detail}")
    base = prev
    if ctx.revision not in (prev.canary_revision, prev.stable_revision):
        now = format_time(ctx.now)
        base = prev.with_changes(
            canary_revision=ctx.revision,
            current_step_index=0,
            step_count=step_count(spec),
            rollout_started_at=now,
            step_started_at=now,
            analysis_runs=(),
            chain_id=ctx.chain_id,
            aborted=False,
            git_commit=ctx.git_commit,
            images=_images(ctx.template),
            strategy_hash=ctx.strategy,
        )
    deadline = f"Pods not available within progressDeadlineSeconds ({spec.progress_deadline_seconds}s): {detail}"
    if spec.progress_deadline_abort:
        return _abort(ctx, base, AbortReason.PROGRESS_DEADLINE, deadline, cmd)
    return _hold(ctx, base, f"step {base.current_step_index}: {deadline}", phase=Phase.DEGRADED, apply=True)


def _inline_run(prev: RolloutStatus, rollout: Rollout, revision: str, index: int) -> AnalysisRunStatus | None:
    name = step_run_name(rollout, revision, index)
    for run in prev.analysis_runs:
        if run.name == name:
            return run
    return None


def _wait_result(ctx: _Ctx, prev: RolloutStatus, desired: DesiredState, cmd: ManualCommand | None) -> WaitResult:
    """Where the current step's wait stands."""
    promote = cmd is not None and cmd.kind is CommandKind.PROMOTE
    kind = desired.wait.kind
    step = desired.step_index
    if kind is WaitKind.NONE:
        return WaitResult(WaitOutcome.DONE, Phase.PROGRESSING, None, "applied")
    if promote:
        return WaitResult(WaitOutcome.DONE, Phase.PROGRESSING, None, "promoted by a person")
    if kind is WaitKind.PAUSE_UNTIL_PROMOTED:
        return WaitResult(
            WaitOutcome.WAITING, Phase.PAUSED, None, f"paused at step {step} until promoted (kulta promote)"
        )
    if kind is WaitKind.PAUSE_DURATION:
        started = parse_status_time(prev.pause_started_at) or ctx.now
        end = started + timedelta(seconds=desired.wait.seconds or 0)
        if ctx.now >= end:
            return WaitResult(WaitOutcome.DONE, Phase.PROGRESSING, None, f"paused {desired.wait.seconds}s")
        left = int((end - ctx.now).total_seconds())
        return WaitResult(WaitOutcome.WAITING, Phase.PROGRESSING, end, f"step {step}: pausing, {left}s left")
    run = _inline_run(prev, ctx.rollout, ctx.revision, step)
    if run is None or not run.phase.completed:
        return WaitResult(WaitOutcome.WAITING, Phase.PROGRESSING, None, f"step {step}: analysis running")
    if run.phase is AnalysisPhase.SUCCESSFUL:
        return WaitResult(WaitOutcome.DONE, Phase.PROGRESSING, None, "analysis successful")
    return WaitResult(WaitOutcome.WAITING, Phase.PAUSED, None, f"step {step}: analysis inconclusive; promote or abort")


# --------------------------------------------------------------------------- blue-green


def _bg_apply(
    ctx: _Ctx, prev: RolloutStatus, stage: int, reason: str, command: ManualCommand | None, **changes: Any
) -> Decision:
    """Enter a blue-green stage (``kulta.core.bluegreen``): one update, recorded once its pods are available.

    Pre-promotion: the stable keeps ``spec.replicas`` (``reconcileBlueGreenStableReplicaSet``),
    the new ReplicaSet gets the preview count, the preview Service selects it.
    Post-promotion: the new ReplicaSet is full and available before the active
    Service switches to it (``reconcileActiveService`` waits for ``ReadyForPause``
    and saturation); the old ReplicaSet keeps its pods for a switch back.
    """
    spec = ctx.rollout.spec
    blue_green = spec.blue_green
    if blue_green is None:
        raise ValueError("not a blue-green rollout")
    history = extend_history(prev, prev.stable_revision, ctx.revision, limit=spec.revision_history_limit)
    replicas = keep_old_revisions(prev, history, prev.stable_revision, ctx.revision)
    if prev.scale_down_revision and prev.scale_down_revision not in (prev.stable_revision, ctx.revision):
        replicas[prev.scale_down_revision] = 0
    replicas[prev.stable_revision] = spec.replicas
    replicas[ctx.revision] = preview_replicas(spec, blue_green) if stage == PRE_PROMOTION else spec.replicas
    status = _entered(ctx, prev, stage, revision_history=history, **changes)
    wait = {ctx.revision}
    if spec.replicas > prev.replicas.get(replicaset_name(ctx.rollout.name, prev.stable_revision), 0):
        wait.add(prev.stable_revision)  # the stable grows back before anything moves
    return _finish(
        ctx,
        status,
        replicas,
        None,
        0,
        canary_svc=ctx.revision,
        wait_ready=frozenset(wait),
        apply=True,
        next_due=None,
        reason=reason,
        command=command,
    )


def _blue_green(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    """The next move of a blue-green rollout in flight (Argo's ``rolloutBlueGreen``).

    At the pre-promotion stage: prePromotionAnalysis, then the pause
    (``reconcileBlueGreenPause``), then the switch: straight to the promotion, or
    to the post-promotion stage when postPromotionAnalysis is set; its success
    promotes. ``kulta promote`` ends the pause (and accepts an inconclusive
    analysis); ``kulta promote --full`` promotes at once (Argo's ``PromoteFull``).
    """
    spec = ctx.rollout.spec
    blue_green = spec.blue_green
    if blue_green is None:
        raise ValueError("not a blue-green rollout")
    stage = min(prev.current_step_index, POST_PROMOTION)
    if prev.phase is Phase.DEGRADED:
        return _bg_apply(ctx, prev, stage, f"retrying stage {stage} after the progress deadline passed", cmd)
    if prev.strategy_hash != ctx.strategy:
        # Argo restarts nothing, but the stage is declared again under the new fields (a new
        # previewReplicaCount): nothing moves before its pods are available; the pause keeps
        # its start and the analysis runs their measurements. The switched stage is kept only
        # when its postPromotionAnalysis run shows it was entered as blue-green: a canary
        # turned blue-green (its step index is no stage) starts at the preview, whose
        # prePromotionAnalysis and pause gate the switch as Argo's do.
        post_run = promotion_run_name(ctx.rollout.name, ctx.revision, POST_PROMOTION)
        if stage == POST_PROMOTION and all(r.name != post_run for r in prev.analysis_runs):
            reason = "strategy changed in Git: blue-green from its preview (stage 0), the active Service on stable"
            restart = {"pause_started_at": "", "step_started_at": format_time(ctx.now)}
            return _bg_apply(ctx, prev, PRE_PROMOTION, reason, None, **restart)
        reason = f"strategy changed in Git: stage {stage} applied again with the new fields"
        kept = {"pause_started_at": prev.pause_started_at, "step_started_at": prev.step_started_at}
        return _bg_apply(ctx, prev, stage, reason, None, **kept)
    current = step_run_name(ctx.rollout, ctx.revision, stage)
    if cmd and cmd.kind is CommandKind.PROMOTE_FULL:
        ended = tuple(
            terminate_run(r, TerminationReason.STEP_LEFT) if r.name == current else r for r in prev.analysis_runs
        )
        return _promote(
            ctx, prev.with_changes(analysis_runs=ended), cmd, "fully promoted by a person (kulta promote --full)"
        )
    if spec.paused:
        return _hold(ctx, prev, f"spec.paused is true: holding at stage {stage}", phase=Phase.PAUSED)
    promote = cmd is not None and cmd.kind is CommandKind.PROMOTE
    used = cmd if promote else None
    what = "prePromotionAnalysis" if stage == PRE_PROMOTION else "postPromotionAnalysis"
    if promotion_analysis(blue_green, stage) is not None:
        run = _inline_run(prev, ctx.rollout, ctx.revision, stage)
        if run is None or not run.phase.completed:
            # a promote now has nothing to end (Argo's neither): used up, not kept for later
            note = "; kulta promote has no pause to end yet" if promote else ""
            return _hold(ctx, prev, f"{what} running{note}", phase=Phase.PROGRESSING, apply=ctx.obs.drift, command=used)
        if run.phase is not AnalysisPhase.SUCCESSFUL and not promote:
            return _hold(ctx, prev, f"{what} inconclusive: {run.message}; promote or abort", phase=Phase.PAUSED)
    if stage == POST_PROMOTION:
        return _promote(ctx, prev, used, f"{what} done: promoted {ctx.revision}")
    if needs_controller_pause(blue_green) and not promote:
        started = parse_status_time(prev.pause_started_at)
        if started is None:
            paused = prev.with_changes(pause_started_at=format_time(ctx.now))
            due = pause_due(blue_green, ctx.now)
            until = "kulta promote" if due is None else f"autoPromotionSeconds ({blue_green.auto_promotion_seconds}s)"
            return _hold(ctx, paused, f"preview ready: paused until {until}", phase=Phase.PAUSED, next_due=due)
        if not pause_completed(blue_green, started, ctx.now):
            due = pause_due(blue_green, started)
            # Argo ends the pause strictly after the deadline: look again just past it
            after = due + timedelta(seconds=1) if due is not None else None
            return _hold(ctx, prev, prev.message, phase=Phase.PAUSED, next_due=after, apply=ctx.obs.drift)
    how = "promoted by a person" if promote else "auto-promoted"
    if blue_green.post_promotion_analysis is not None:
        reason = f"{how}: active Service switched to {ctx.revision}; postPromotionAnalysis runs"
        return _bg_apply(ctx, prev, POST_PROMOTION, reason, used)
    return _promote(ctx, prev, used, f"{how}: active Service switched to {ctx.revision}")


# --------------------------------------------------------------------------- classification


def classify(
    rollout: Rollout, revision: str, prev: RolloutStatus | None, command: ManualCommand | None, obs: Observation
) -> Situation:
    """Which situation this pass is in (``prev`` with this pass's analysis runs merged in)."""
    if prev is None or not prev.stable_revision:
        return Situation.FIRST_DEPLOYMENT
    if obs.update_failed:
        return Situation.UPDATE_FAILED
    if revision == prev.stable_revision:
        return Situation.AT_STABLE
    if prev.canary_revision != revision:
        return Situation.NEW_REVISION
    if prev.aborted:
        return Situation.ABORTED
    if command is not None and command.kind is CommandKind.ABORT:
        return Situation.MANUAL_ABORT
    if _failed_run(rollout, revision, prev) is not None:
        # before any Git edit is looked at, and before any person's promote: it always aborts
        return Situation.ANALYSIS_FAILED
    if rollout.spec.blue_green is not None:
        # Argo restarts nothing when a blue-green strategy changes: its new fields apply from here on
        return Situation.BLUE_GREEN
    if prev.strategy_hash and prev.strategy_hash != strategy_hash(rollout):
        if not prev.restart_reason:
            current = _inline_run(prev, rollout, revision, prev.current_step_index)
            if current is not None and not current.phase.completed:
                return Situation.STRATEGY_CHANGED_ANALYSIS_RUNNING
        return Situation.STRATEGY_CHANGED
    if prev.restart_reason:
        return Situation.RESTART_PENDING
    if prev.phase is Phase.DEGRADED:
        return Situation.DEGRADED
    strategy = rollout.spec.strategy
    if not strategy.steps and strategy.traffic_routing is None:
        return Situation.ROLLING
    return Situation.STEPPING


_Handler = Callable[[_Ctx, RolloutStatus, ManualCommand | None], Decision]

_HANDLERS: dict[Situation, _Handler] = {
    Situation.UPDATE_FAILED: _failed_update,
    Situation.AT_STABLE: _at_stable,
    Situation.NEW_REVISION: _new_revision,
    Situation.ABORTED: _aborted,
    Situation.MANUAL_ABORT: _manual_abort,
    Situation.ANALYSIS_FAILED: _analysis_failed,
    Situation.STRATEGY_CHANGED_ANALYSIS_RUNNING: _finish_analysis_first,
    Situation.STRATEGY_CHANGED: _strategy_changed,
    Situation.RESTART_PENDING: _restart_pending,
    Situation.DEGRADED: _degraded,
    Situation.ROLLING: _rolling,
    Situation.STEPPING: _stepping,
    Situation.BLUE_GREEN: _blue_green,
}


def decide(
    rollout: Rollout,
    revision: str,
    template: Mapping[str, Any],
    prev: RolloutStatus | None,
    now: datetime,
    *,
    environment: str,
    git_commit: str = "",
    chain_id: str = "",
    command: ManualCommand | None = None,
    observation: Observation | None = None,
) -> Decision:
    """The next status of ``rollout`` whose Git template hashes to ``revision``."""
    obs = observation or Observation()
    ctx = _Ctx(
        rollout,
        revision,
        template,
        prev,
        now,
        environment,
        git_commit,
        chain_id or revision,
        strategy_hash(rollout),
        obs,
    )
    if prev is None or not prev.stable_revision:
        return _initial(ctx)
    if obs.unrecorded:
        return _record_again(ctx, prev)
    prev = prev.with_changes(analysis_runs=_merge_runs(prev.analysis_runs, obs.analysis_runs))
    cmd = _pending_command(prev, command)
    situation = classify(rollout, revision, prev, cmd, obs)
    return _HANDLERS[situation](ctx, prev, cmd)


def decide_step(
    rollout: Rollout,
    revision: str,
    template: Mapping[str, Any],
    prev: RolloutStatus | None,
    now: datetime,
    step: int,
    *,
    environment: str,
    git_commit: str = "",
    chain_id: str = "",
) -> Decision:
    """The decision that would apply ``step`` of ``revision``'s canary (``kulta preview``).

    ``step == len(steps)`` is the promotion. With no stack yet the only possible
    update is the first deployment; with ``revision`` already stable there is no
    canary, and the decision holds the current state.
    """
    ctx = _Ctx(
        rollout,
        revision,
        template,
        prev,
        now,
        environment,
        git_commit,
        chain_id or revision,
        strategy_hash(rollout),
        Observation(),
    )
    if prev is None or not prev.stable_revision:
        return _initial(ctx)
    if revision == prev.stable_revision:
        return _hold(ctx, prev, f"{revision} is already stable: no canary to preview")
    base = prev.with_changes(canary_revision=revision, aborted=False, restart_reason="")
    if rollout.spec.blue_green is not None and step < step_count(rollout.spec):
        return _bg_apply(ctx, base, step, f"preview: step {step}", None, canary_revision=revision)
    if step >= step_count(rollout.spec):
        return _promote(ctx, base, None, f"preview: promotion of {revision}")
    return _apply_step(ctx, base, step, f"preview: step {step}", None, canary_revision=revision)
