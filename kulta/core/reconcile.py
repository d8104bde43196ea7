"""The rollout state machine: (spec, last status, what was observed, now) -> next status.

A straight-line, pure decision in the manner of Argo Rollouts'
``syncRolloutStatusCanary``: compute the whole new status once; the caller
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
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from kulta.core.analysis_run import format_time
from kulta.core.analysis_run import parse_time as _parse_rfc3339
from kulta.core.defaults import abort_scale_down_delay_seconds, scale_down_delay_seconds
from kulta.core.plan import DesiredState, PlanMode, WaitKind, desired_state
from kulta.model.rollout import Rollout, SetHeaderRoute
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase, RolloutStatus, RouteWeight

__all__ = [
    "AbortReason",
    "CommandKind",
    "Decision",
    "ManualCommand",
    "Observation",
    "background_run_name",
    "decide",
    "decide_step",
    "format_time",
    "inline_run_name",
    "parse_time",
    "replicaset_name",
    "route_targets",
]


class CommandKind(enum.Enum):
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    RETRY = "retry"


class AbortReason(enum.Enum):
    MANUAL = "manual"
    ANALYSIS = "analysis"
    PROGRESS_DEADLINE = "progress-deadline"


@dataclass(frozen=True)
class ManualCommand:
    """A person's command, stored as stack config by ``kulta promote|abort|retry``."""

    id: str
    kind: CommandKind
    issued_at: str = ""

    def to_config(self) -> str:
        return json.dumps({"id": self.id, "kind": self.kind.value, "issuedAt": self.issued_at})

    @classmethod
    def from_config(cls, raw: str) -> ManualCommand:
        data = json.loads(raw)
        return cls(id=str(data["id"]), kind=CommandKind(data["kind"]), issued_at=str(data.get("issuedAt", "")))


@dataclass(frozen=True)
class Observation:
    """What the caller learned this pass from the outside world."""

    #: analysis runs advanced this pass (inline and background), replacing same-named ones
    analysis_runs: tuple[AnalysisRunStatus, ...] = ()
    #: the last update of the current step failed (e.g. the canary never became Ready)
    update_failed: bool = False
    update_error: str = ""
    #: it failed because Pods did not become Ready within progressDeadlineSeconds
    #: (the update waits for readiness with the deadline as its timeout)
    deadline_exceeded: bool = False
    #: the live cluster differs from the last status (weights or replicas edited by hand)
    drift: bool = False


@dataclass(frozen=True)
class Decision:
    """The next status and the Kubernetes state that expresses it."""

    status: RolloutStatus
    #: replicas per revision hash; revisions absent here are not declared (pruned)
    replicas: Mapping[str, int]
    canary_weight: int
    header_routes: tuple[SetHeaderRoute, ...]
    #: revisions whose Pods must be Ready before traffic moves in this update
    wait_ready: frozenset[str]
    #: the revision the canary Service selects (the stable one when nothing is in flight)
    canary_service_revision: str
    apply: bool
    next_due: datetime | None
    reason: str
    abort_reason: AbortReason | None = None
    command_applied: ManualCommand | None = None
    templates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def parse_time(s: str) -> datetime | None:
    """An RFC 3339 status time, or ``None`` where the status leaves it unset (``""``)."""
    return _parse_rfc3339(s) if s else None


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


def _images(template: Mapping[str, Any]) -> tuple[str, ...]:
    containers = template.get("spec", {}).get("containers", []) or []
    return tuple(str(c.get("image", "")) for c in containers if c.get("image"))


def _weights(rollout: Rollout, canary_weight: int) -> tuple[RouteWeight, ...]:
    return tuple(
        RouteWeight(route=name, namespace=ns, stable=100 - canary_weight, canary=canary_weight)
        for ns, name in route_targets(rollout)
    )


def _merge_runs(
    old: tuple[AnalysisRunStatus, ...], new: tuple[AnalysisRunStatus, ...]
) -> tuple[AnalysisRunStatus, ...]:
    by_name = {r.name: r for r in old}
    for r in new:
        by_name[r.name] = r
    return tuple(by_name.values())


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


def _replicas_status(rollout: Rollout, replicas: Mapping[str, int]) -> dict[str, int]:
    return {replicaset_name(rollout.name, rev): n for rev, n in replicas.items()}


def _history(prev: RolloutStatus | None, *revisions: str, limit: int) -> tuple[str, ...]:
    seen = [r for r in (prev.revision_history if prev else ()) if r not in revisions]
    seen.extend(r for r in revisions if r)
    keep = max(limit, 0) + len([r for r in revisions if r])
    return tuple(seen[-keep:])


def _old_replicas(prev: RolloutStatus | None, history: tuple[str, ...], *live: str) -> dict[str, int]:
    """Older revisions kept (at 0) up to revisionHistoryLimit so their ReplicaSets remain for history."""
    if prev is None:
        return {}
    return {r: 0 for r in history if r not in live and r in prev.templates}


def _templates(prev: RolloutStatus | None, replicas: Mapping[str, int], ctx: _Ctx) -> dict[str, Mapping[str, Any]]:
    known: dict[str, Mapping[str, Any]] = dict(prev.templates) if prev else {}
    known[ctx.revision] = ctx.template
    return {r: known[r] for r in replicas if r in known}


def _prune(status: RolloutStatus, replicas: dict[str, int], limit: int) -> tuple[dict[str, int], tuple[str, ...]]:
    """Keep the live revisions and the newest ``limit`` old ones (Argo's revisionHistoryLimit).

    Live: the stable, the canary and one waiting for its scale-down delay. Older
    ReplicaSets beyond the limit are no longer declared, so the update deletes them.
    """
    live = {status.stable_revision, status.canary_revision, status.scale_down_revision} - {""}
    order = [r for r in status.revision_history if r in replicas]
    order += [r for r in replicas if r not in order]
    old = [r for r in order if r not in live]
    keep = set(old[-limit:]) if limit > 0 else set()
    kept = {r: n for r, n in replicas.items() if r in live or r in keep}
    history = tuple(r for r in order if r in kept)
    return kept, history


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
    replicas, history = _prune(status, replicas, ctx.rollout.spec.revision_history_limit)
    templates = _templates(ctx.prev, replicas, ctx)
    status = status.with_changes(
        revision_history=history,
        replicas=_replicas_status(ctx.rollout, replicas),
        weights=_weights(ctx.rollout, canary_weight),
        templates=templates,
        last_command_id=command.id if command else (ctx.prev.last_command_id if ctx.prev else ""),
        message=reason,
    )
    return Decision(
        status=status,
        replicas=replicas,
        canary_weight=canary_weight,
        header_routes=desired.header_routes if desired else (),
        wait_ready=wait_ready,
        canary_service_revision=canary_svc,
        apply=apply,
        next_due=next_due,
        reason=reason,
        abort_reason=abort_reason,
        command_applied=command,
        templates=templates,
    )


def _initial(ctx: _Ctx) -> Decision:
    spec = ctx.rollout.spec
    n = len(spec.strategy.steps)
    now = format_time(ctx.now)
    history = _history(None, ctx.revision, limit=spec.revision_history_limit)
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
    now = format_time(ctx.now)
    paused = desired.wait.kind is WaitKind.PAUSE_UNTIL_PROMOTED
    pausing = desired.wait.kind in (WaitKind.PAUSE_DURATION, WaitKind.PAUSE_UNTIL_PROMOTED)
    base = {
        "phase": Phase.PAUSED if paused else Phase.PROGRESSING,
        "current_step_index": index,
        "step_count": len(ctx.rollout.spec.strategy.steps),
        "step_started_at": now,
        "pause_started_at": now if pausing else "",
        "git_commit": ctx.git_commit,
        "images": _images(ctx.template),
        "aborted": False,
    }
    base.update(changes)
    return prev.with_changes(**base)


def _apply_step(
    ctx: _Ctx, prev: RolloutStatus, index: int, reason: str, command: ManualCommand | None, **changes: Any
) -> Decision:
    spec = ctx.rollout.spec
    desired = desired_state(spec, index)
    history = _history(prev, prev.stable_revision, ctx.revision, limit=spec.revision_history_limit)
    replicas = _old_replicas(prev, history, prev.stable_revision, ctx.revision)
    if prev.scale_down_revision and prev.scale_down_revision not in (prev.stable_revision, ctx.revision):
        replicas.pop(prev.scale_down_revision, None)
        replicas[prev.scale_down_revision] = 0
    replicas[prev.stable_revision] = desired.stable_replicas
    replicas[ctx.revision] = desired.canary_replicas
    status = _step_status(ctx, prev, index, desired, revision_history=history, **changes)
    wait = frozenset({ctx.revision}) if desired.canary_replicas > 0 else frozenset()
    return _finish(
        ctx,
        status,
        replicas,
        desired,
        desired.canary_weight,
        canary_svc=ctx.revision,
        wait_ready=wait,
        apply=True,
        next_due=_wait_due(ctx, status, desired),
        reason=reason,
        command=command,
    )


def _wait_due(ctx: _Ctx, status: RolloutStatus, desired: DesiredState) -> datetime | None:
    if desired.wait.kind is WaitKind.PAUSE_DURATION and desired.wait.seconds is not None:
        started = parse_time(status.pause_started_at) or ctx.now
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
    if not ctx.rollout.spec.strategy.steps:
        staged = prev.with_changes(**changes)
        return _promote(ctx, staged, command, reason + "; no steps: promoting")
    return _apply_step(ctx, prev, 0, reason, command, **changes)


def _promote(ctx: _Ctx, prev: RolloutStatus, command: ManualCommand | None, reason: str) -> Decision:
    spec = ctx.rollout.spec
    n = len(spec.strategy.steps)
    now = format_time(ctx.now)
    old_stable = prev.stable_revision
    history = _history(prev, old_stable, ctx.revision, limit=spec.revision_history_limit)
    replicas = _old_replicas(prev, history, old_stable, ctx.revision)
    delay = scale_down_delay_seconds(spec.strategy)
    scale_down_at = ctx.now + timedelta(seconds=delay)
    replicas[old_stable] = spec.replicas if delay > 0 else 0
    replicas[ctx.revision] = spec.replicas
    status = prev.with_changes(
        phase=Phase.HEALTHY,
        current_step_index=n,
        step_count=n,
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
    never = abort_scale_down_delay_seconds(spec.strategy)
    # None: Argo leaves an aborted canary running (abortScaleDownDelaySeconds: 0)
    delay = 0 if never is None else never
    at = ctx.now + timedelta(seconds=delay)
    history = _history(prev, prev.stable_revision, ctx.revision, limit=spec.revision_history_limit)
    replicas = _old_replicas(prev, history, prev.stable_revision, ctx.revision)
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
    )
    return _finish(
        ctx,
        status,
        replicas,
        desired_state(spec, prev.current_step_index, PlanMode.ABORTED),
        0,
        canary_svc=ctx.revision,
        wait_ready=frozenset({prev.stable_revision}),
        apply=True,
        next_due=at if delay > 0 else None,
        reason=f"aborted ({why.value}): {detail}; all traffic back on stable {prev.stable_revision}",
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
    in_flight = prev.in_flight and not prev.aborted
    desired = desired_state(spec, min(prev.current_step_index, len(spec.strategy.steps))) if in_flight else None
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


def _pending_command(prev: RolloutStatus, command: ManualCommand | None) -> ManualCommand | None:
    if command is None or command.id == prev.last_command_id:
        return None
    return command


def _scale_down_due(ctx: _Ctx, prev: RolloutStatus) -> bool:
    at = parse_time(prev.scale_down_at)
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
    ctx = _Ctx(rollout, revision, template, prev, now, environment, git_commit, chain_id or revision)
    obs = observation or Observation()
    if prev is None or not prev.stable_revision:
        return _initial(ctx)
    prev = prev.with_changes(analysis_runs=_merge_runs(prev.analysis_runs, obs.analysis_runs))
    cmd = _pending_command(prev, command)
    spec = rollout.spec
    n = len(spec.strategy.steps)
    if obs.update_failed:
        return _failed_update(ctx, prev, obs, cmd)

    if revision == prev.stable_revision:
        if prev.in_flight:
            return (
                _abort(
                    _Ctx(
                        rollout,
                        prev.canary_revision,
                        prev.templates.get(prev.canary_revision, template),
                        prev,
                        now,
                        environment,
                        git_commit,
                        prev.chain_id,
                    ),
                    prev,
                    AbortReason.MANUAL,
                    "Git points at the stable revision again",
                    cmd,
                )
                if not prev.aborted
                else _back_to_stable(ctx, prev, cmd)
            )
        if _scale_down_due(ctx, prev):
            return _after_scale_down(
                ctx, prev, f"scaled down previous revision {prev.scale_down_revision}", Phase.HEALTHY
            )
        due = parse_time(prev.scale_down_at) if prev.scale_down_revision else None
        return _hold(
            ctx, prev, prev.message or "healthy", phase=Phase.HEALTHY, next_due=due, apply=obs.drift, command=cmd
        )

    if prev.canary_revision != revision:
        why = (
            f"new revision {revision} supersedes canary {prev.canary_revision}: restarting from step 0"
            if prev.in_flight
            else f"new revision {revision}: starting canary against stable {prev.stable_revision}"
        )
        return _start_canary(ctx, prev, cmd, why)

    if prev.aborted:
        if cmd and cmd.kind is CommandKind.RETRY:
            return _apply_step(
                ctx,
                prev,
                0,
                "retry: restarting the canary from step 0",
                cmd,
                analysis_runs=(),
                rollout_started_at=format_time(now),
            )
        return _settle_aborted(ctx, prev, cmd)

    if cmd and cmd.kind is CommandKind.ABORT:
        return _abort(ctx, prev, AbortReason.MANUAL, "aborted by a person (kulta abort)", cmd)
    if prev.phase is Phase.DEGRADED:
        index = min(prev.current_step_index, n - 1) if n else 0
        return _apply_step(ctx, prev, index, f"retrying step {index} after the progress deadline passed", cmd)

    background = background_run_name(rollout.name, revision)
    for run in prev.analysis_runs:
        if run.name == background and run.phase in (AnalysisPhase.FAILED, AnalysisPhase.ERROR):
            return _abort(ctx, prev, AbortReason.ANALYSIS, f"background analysis {run.phase.value}: {run.message}", cmd)
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
        return _hold(ctx, prev, "spec.paused is true: holding at step " + str(index), phase=Phase.PAUSED)

    desired = desired_state(spec, index)
    done, phase, due, note = _wait_done(ctx, prev, desired, cmd)
    if note == "abort":
        inline = _inline_run(prev, rollout, revision, index)
        message = inline.message if inline else ""
        return _abort(
            ctx,
            prev,
            AbortReason.ANALYSIS,
            f"analysis at step {index} {inline.phase.value if inline else ''}: {message}",
            cmd,
        )
    if not done:
        return _hold(ctx, prev, note, phase=phase, next_due=due, apply=obs.drift)
    used = cmd if (cmd and cmd.kind is CommandKind.PROMOTE) else None
    if index + 1 >= n:
        return _promote(ctx, prev, used, f"all {n} steps done: promoted {revision}")
    return _apply_step(ctx, prev, index + 1, f"step {index} done ({note}); applying step {index + 1}", used)


def _back_to_stable(ctx: _Ctx, prev: RolloutStatus, cmd: ManualCommand | None) -> Decision:
    """Git points at the stable revision again after an abort: the rollout is Healthy.

    The aborted canary keeps its pending scale-down (abortScaleDownDelaySeconds);
    its ReplicaSet stays in the history like any older revision.
    """
    spec = ctx.rollout.spec
    n = len(spec.strategy.steps)
    history = _history(prev, prev.canary_revision, prev.stable_revision, limit=spec.revision_history_limit)
    replicas = _old_replicas(prev, history, prev.stable_revision)
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
    )
    due = parse_time(prev.scale_down_at) if prev.scale_down_revision else None
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


def _failed_update(ctx: _Ctx, prev: RolloutStatus, obs: Observation, cmd: ManualCommand | None) -> Decision:
    """The update of a step failed: retry later, or past the deadline Degraded / abort.

    A canary whose very first update failed never reached the stack outputs, so
    the status recorded here is the one of its start (step 0).
    """
    spec = ctx.rollout.spec
    detail = obs.update_error or "the step's update failed"
    if not obs.deadline_exceeded:
        return _hold(ctx, prev, f"update failed, retrying on the next pass: {detail}")
    base = prev
    if ctx.revision not in (prev.canary_revision, prev.stable_revision):
        now = format_time(ctx.now)
        base = prev.with_changes(
            canary_revision=ctx.revision,
            current_step_index=0,
            step_count=len(spec.strategy.steps),
            rollout_started_at=now,
            step_started_at=now,
            analysis_runs=(),
            chain_id=ctx.chain_id,
            aborted=False,
            git_commit=ctx.git_commit,
            images=_images(ctx.template),
        )
    deadline = f"Pods not Ready within progressDeadlineSeconds ({spec.progress_deadline_seconds}s): {detail}"
    if spec.progress_deadline_abort:
        return _abort(ctx, base, AbortReason.PROGRESS_DEADLINE, deadline, cmd)
    return _hold(ctx, base, f"step {base.current_step_index}: {deadline}", phase=Phase.DEGRADED, apply=True)


def _inline_run(prev: RolloutStatus, rollout: Rollout, revision: str, index: int) -> AnalysisRunStatus | None:
    name = inline_run_name(rollout.name, revision, index)
    for run in prev.analysis_runs:
        if run.name == name:
            return run
    return None


def _wait_done(
    ctx: _Ctx, prev: RolloutStatus, desired: DesiredState, cmd: ManualCommand | None
) -> tuple[bool, Phase, datetime | None, str]:
    """Is the current step's wait over? (done, phase while waiting, when to look again, note)."""
    promote = cmd is not None and cmd.kind is CommandKind.PROMOTE
    kind = desired.wait.kind
    if kind is WaitKind.NONE:
        return True, Phase.PROGRESSING, None, "applied"
    if promote:
        return True, Phase.PROGRESSING, None, "promoted by a person"
    if kind is WaitKind.PAUSE_UNTIL_PROMOTED:
        return False, Phase.PAUSED, None, f"paused at step {desired.step_index} until promoted (kulta promote)"
    if kind is WaitKind.PAUSE_DURATION:
        started = parse_time(prev.pause_started_at) or ctx.now
        end = started + timedelta(seconds=desired.wait.seconds or 0)
        if ctx.now >= end:
            return True, Phase.PROGRESSING, None, f"paused {desired.wait.seconds}s"
        left = int((end - ctx.now).total_seconds())
        return False, Phase.PROGRESSING, end, f"step {desired.step_index}: pausing, {left}s left"
    run = _inline_run(prev, ctx.rollout, ctx.revision, desired.step_index)
    if run is None or not run.phase.completed:
        return False, Phase.PROGRESSING, None, f"step {desired.step_index}: analysis running"
    if run.phase is AnalysisPhase.SUCCESSFUL:
        return True, Phase.PROGRESSING, None, "analysis successful"
    if run.phase is AnalysisPhase.INCONCLUSIVE:
        return False, Phase.PAUSED, None, f"step {desired.step_index}: analysis inconclusive; promote or abort"
    return False, Phase.DEGRADED, None, "abort"


def _settle_aborted(ctx: _Ctx, prev: RolloutStatus, _cmd: ManualCommand | None) -> Decision:
    if _scale_down_due(ctx, prev):
        return _after_scale_down(ctx, prev, f"aborted; canary {prev.scale_down_revision} scaled down", Phase.ABORTED)
    due = parse_time(prev.scale_down_at) if prev.scale_down_revision else None
    # A command sent to an aborted rollout (other than retry) has nothing to act on;
    # it is recorded as handled by the next update that starts a canary.
    return _hold(ctx, prev, prev.message, phase=Phase.ABORTED, next_due=due)


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
    ctx = _Ctx(rollout, revision, template, prev, now, environment, git_commit, chain_id or revision)
    if prev is None or not prev.stable_revision:
        return _initial(ctx)
    if revision == prev.stable_revision:
        return _hold(ctx, prev, f"{revision} is already stable: no canary to preview")
    base = prev.with_changes(canary_revision=revision, aborted=False)
    if step >= len(rollout.spec.strategy.steps):
        return _promote(ctx, base, None, f"preview: promotion of {revision}")
    return _apply_step(ctx, base, step, f"preview: step {step}", None, canary_revision=revision)
