"""The reconciler: Git specs + last stack outputs -> one Pulumi update per step.

For each rollout, one pass does, in order: read the stack's outputs (the
status) and any manual command from its config; take the analysis
measurements that are due; check the cluster for drift; ``decide`` the next
status (pure, ``kulta.core.reconcile``); if anything changes, run one Pulumi
update whose outputs are that status; derive CDEvents from the (previous,
recorded) outputs into the durable outbox; deliver what is due. A step with
nothing to wait for is followed at once by the next one, each as its own
update, until the rollout waits (pause, analysis, Gateway acceptance) or ends.

Nothing lives in process memory between passes: kill the process at any
point and the next pass reads the same outputs and makes the same decision.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kulta.adapters.analysis_runner import AnalysisRefLike, advance_analysis, run_metrics
from kulta.adapters.kube import KubeReader
from kulta.adapters.metrics import ReconcilerMetrics
from kulta.adapters.outbox import Deliverer, DeliveryReport, Outbox
from kulta.adapters.program import deploy
from kulta.adapters.prometheus import MetricProvider
from kulta.adapters.stacks import StackManager, stack_name_for
from kulta.app.health import INTERNAL_ERROR, HealthBook
from kulta.app.stack_events import StackEventLedger
from kulta.core.analysis_run import next_due_at
from kulta.core.bluegreen import active_revision, pod_metadata, promotion_analysis
from kulta.core.commands import InvalidCommandError, ManualCommand
from kulta.core.constants import (
    LABEL_POD_TEMPLATE_HASH,
    OUTPUT_PENDING_EVENTS,
    OUTPUT_UPDATE_MESSAGE,
    TAG_COMMAND,
    TAG_EVENTS_ACKED,
)
from kulta.core.decision import AbortReason, Decision, Observation
from kulta.core.events import EndReason, EventContext, build_events, chain_id_for, record_events
from kulta.core.git_snapshot import behind_the_stack, keep_waiting
from kulta.core.names import background_run_name, inline_run_name, replicaset_name, route_targets, step_run_name
from kulta.core.program_inputs import build_program_inputs, canary_service_name, stable_service_name
from kulta.core.reconcile import decide
from kulta.core.revision import pod_template_hash, resolve_template, strategy_hash
from kulta.core.routes import route_weights
from kulta.core.times import format_time, parse_status_time
from kulta.errors import (
    ConfigError,
    DependencyError,
    KultaError,
    LeaseLostError,
    StackLockedError,
    StepFailedError,
    UnrecordedUpdateError,
)
from kulta.model.program import ProgramInputs
from kulta.model.rollout import AnalysisRef, PodMetadata, Rollout
from kulta.model.status import AnalysisRunStatus, Phase, RolloutStatus
from kulta.redact import safe_text
from kulta.spec.loader import LoadResult

__all__ = [
    "PassReport",
    "Reconciler",
    "ReconcilerConfig",
    "RolloutOutcome",
    "command_from_tag",
    "records_nothing",
]

log = logging.getLogger(__name__)

MAX_UPDATES_PER_PASS = 64
#: a turn that waits for a Git fetch comes back after this
SNAPSHOT_RETRY = timedelta(seconds=5)
ACCEPTANCE_RETRY = timedelta(seconds=2)
#: how pulumi-kubernetes words a resource that did not get ready within its timeout
DEADLINE_MARKERS = ("timed out waiting", "failed to fully initialize or become live")
END_REASONS = {
    AbortReason.MANUAL: EndReason.MANUAL_ABORT,
    AbortReason.ANALYSIS: EndReason.ANALYSIS_FAILED,
    AbortReason.PROGRESS_DEADLINE: EndReason.PROGRESS_DEADLINE,
}


def utc_now() -> datetime:
    """Now, to the millisecond (what the status stores): a pause ends on time, not up to 1 s late."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def command_from_tag(raw: str | None, stack: str) -> ManualCommand | None:
    """The manual command in the stack tag ``kulta-command`` (what ``kulta promote`` writes).

    A tag set by hand that does not parse is ignored (the rollout goes on) with a warning.
    """
    if not raw:
        return None
    try:
        return ManualCommand.from_config(raw)
    except InvalidCommandError as exc:
        log.warning("ignoring the stack tag %s: %s", TAG_COMMAND, exc, extra={"stack": stack})
        return None


@dataclass(frozen=True)
class ReconcilerConfig:
    environment: str = "dev"
    cluster: str = "local"
    kubeconfig: str | None = None
    concurrency: int = 2
    #: ``--identity`` when rollouts are shared through leases: named in each update's message
    replica: str = ""
    event_source: str = "/kulta"
    status_uri: str = "https://kulta.local/rollouts"
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class RolloutOutcome:
    key: str
    phase: Phase | None
    step: int
    step_count: int
    message: str
    updates: int
    next_due: datetime | None
    error: str = ""
    skipped: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.phase in (Phase.ABORTED, Phase.DEGRADED)


@dataclass(frozen=True)
class PassReport:
    outcomes: tuple[RolloutOutcome, ...]
    delivery: DeliveryReport | None
    spec_errors: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return bool(self.spec_errors) or any(o.failed for o in self.outcomes)

    def next_due(self) -> datetime | None:
        dues = [o.next_due for o in self.outcomes if o.next_due is not None]
        return min(dues) if dues else None


class Reconciler:
    """Drives every rollout of a loaded spec set one pass forward."""

    def __init__(
        self,
        config: ReconcilerConfig,
        stacks: StackManager,
        kube: KubeReader,
        provider: MetricProvider | None,
        outbox: Outbox | None = None,
        deliverer: Deliverer | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_progress: Callable[[str], None] | None = None,
        observe_update: Callable[[float, str], None] | None = None,
        on_update: Callable[[RolloutStatus], None] | None = None,
        metrics: ReconcilerMetrics | None = None,
        fence: Callable[[str], None] | None = None,
        events_in_stack: bool = False,
        knows_commit: Callable[[str], bool] | None = None,
    ) -> None:
        self.config = config
        self.stacks = stacks
        self.kube = kube
        self.provider = provider
        self.outbox = outbox
        self.deliverer = deliverer
        self.clock = clock
        self.on_progress = on_progress or (lambda _msg: None)
        self.observe_update = observe_update or (lambda _s, _r: None)
        self.on_update = on_update or (lambda _status: None)
        self.metrics = metrics
        #: raises LeaseLostError when this replica no longer holds the stack's lease
        self.fence = fence
        #: replicas sharing rollouts keep each update's events in the stack until delivered
        self.ledger = StackEventLedger(stacks, outbox) if events_in_stack and outbox is not None else None
        #: whether this replica's Git clone holds a commit (replicas: a snapshot behind the stack waits)
        self.knows_commit = knows_commit
        self._behind_since: dict[str, datetime] = {}
        self.health = HealthBook()
        #: per stack, the state whose pod metadata this process last synced
        self._metadata_synced: dict[str, tuple[object, ...]] = {}
        self._stop = threading.Event()

    def stop(self) -> None:
        """Finish the update in flight, then take no further step (SIGTERM)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- pass ------------------------------------------------------------------------
    def reconcile_pass(self, loaded: LoadResult, commit: str = "") -> PassReport:
        rollouts = list(loaded.rollouts)
        outcomes: list[RolloutOutcome] = []
        workers = max(1, min(self.config.concurrency, len(rollouts) or 1))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kulta") as pool:
            futures = [pool.submit(self.reconcile_rollout, r, loaded, commit) for r in rollouts]
            outcomes.extend(f.result() for f in futures)
        delivery = self.deliver_events()
        return PassReport(tuple(outcomes), delivery, tuple(str(e) for e in loaded.errors))

    def deliver_events(self) -> DeliveryReport | None:
        """Send what is due; a sink or outbox failure is logged and retried on the next pass."""
        if self.deliverer is None:
            return None
        try:
            report = self.deliverer.deliver_due(self.clock())
        except KultaError as exc:
            log.warning("event delivery failed; retried on the next pass", extra={"error": str(exc)})
            return None
        if self.ledger is not None:
            self.ledger.acknowledge_delivered()
        return report

    def stack_name(self, rollout: Rollout) -> str:
        return stack_name_for(self.config.environment, rollout.namespace, rollout.name)

    def reconcile_rollout(
        self, rollout: Rollout, loaded: LoadResult, commit: str = "", max_updates: int = MAX_UPDATES_PER_PASS
    ) -> RolloutOutcome:
        """One rollout's turn: updates until it waits, ends, or ``max_updates`` (then it is
        due again at once). Never raises: every failure becomes the outcome's error,
        recorded in ``health`` with a retry time (exponential backoff with jitter)."""
        name = self.stack_name(rollout)
        lock = self.stacks.stack_lock(name)
        if not lock.acquire(blocking=False):
            return RolloutOutcome(name, None, 0, 0, "another worker is on this stack", 0, None, skipped=True)
        try:
            outcome = self._reconcile(rollout, loaded, commit, name, max_updates)
        except LeaseLostError as exc:
            log.info("lease lost; another replica drives this rollout", extra={"stack": name})
            return RolloutOutcome(name, None, 0, 0, str(exc), 0, None, skipped=True)
        except StackLockedError as exc:
            log.info("stack locked; skipping", extra={"stack": name})
            return RolloutOutcome(name, None, 0, 0, str(exc), 0, self.clock() + timedelta(seconds=5), skipped=True)
        except DependencyError as exc:
            return self._failed(name, exc.dependency.value, str(exc))
        except KultaError as exc:
            return self._failed(name, type(exc).__name__, str(exc))
        except Exception as exc:
            log.exception("unexpected error reconciling %s (a bug: please report it)", name, extra={"stack": name})
            return self._failed(name, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            lock.release()
        self.health.succeeded(name, self.clock())
        return outcome

    def _failed(self, name: str, dependency: str, error: str) -> RolloutOutcome:
        failure = self.health.failed(name, dependency, error, self.clock())
        if self.metrics is not None:
            self.metrics.count_dependency_failure(dependency)
        return RolloutOutcome(name, None, 0, 0, failure.describe(), 0, failure.next_retry, error=failure.describe())

    # -- one rollout -----------------------------------------------------------------
    def _read_state(self, name: str) -> tuple[RolloutStatus | None, ManualCommand | None]:
        """The status (outputs) and the tags (the manual command; with replicas the
        acknowledged events), read side by side: each is a read of the backend (a CLI
        or ``psql`` process on some backends) before the step's update. One read per
        pass: a command sent meanwhile is applied by the next.
        """
        with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="kulta-read") as reads:
            outputs_read = reads.submit(self.stacks.outputs, name)
            tags_read = reads.submit(self.stacks.tags, name)
            outputs, tags = outputs_read.result(), tags_read.result()
        if self.ledger is not None:
            self.ledger.load(name, outputs, tags.get(TAG_EVENTS_ACKED, ""))
        status = RolloutStatus.from_outputs(outputs) if outputs.get("phase") else None
        return status, command_from_tag(tags.get(TAG_COMMAND), name)

    def _snapshot_behind(self, name: str, status: RolloutStatus | None, commit: str) -> str:
        """Why this turn waits for the next Git fetch ("" = it does not): see ``kulta.core.git_snapshot``."""
        if self.knows_commit is None or status is None:
            return ""
        recorded = status.git_commit
        known = not recorded or recorded == commit or self.knows_commit(recorded)
        if not behind_the_stack(recorded, commit, known):
            self._behind_since.pop(name, None)
            return ""
        now = self.clock()
        first = self._behind_since.setdefault(name, now)
        if keep_waiting(first, now):
            return (
                f"the stack was last updated from commit {recorded[:12]}, newer than this replica's Git "
                f"snapshot {commit[:12]}: waiting for the next fetch"
            )
        log.warning(
            "commit %s recorded by the stack never reached this replica's clone (force-pushed away?); "
            "deciding from snapshot %s",
            recorded[:12],
            commit[:12],
            extra={"stack": name},
        )
        return ""

    def _reconcile(
        self, rollout: Rollout, loaded: LoadResult, commit: str, name: str, max_updates: int
    ) -> RolloutOutcome:
        template = resolve_template(rollout, loaded.others)
        revision = pod_template_hash(template)
        updates = 0
        decision: Decision | None = None
        #: an observation that replaces this pass's own (a failed update, a killed one)
        failure: Observation | None = None
        self.stacks.open(name)
        status, command = self._read_state(name)
        if self.outbox is not None:
            self.outbox.recover_staged(name, status.last_event_id if status else "")
        waiting_for = self._snapshot_behind(name, status, commit)
        if waiting_for:
            return RolloutOutcome(
                name,
                status.phase if status else None,
                0,
                0,
                waiting_for,
                0,
                self.clock() + SNAPSHOT_RETRY,
                skipped=True,
            )
        more = False
        while not self.stopping:
            if updates >= max_updates:
                more = True  # this turn is over; the rollout is due again at once
                break
            now = self.clock()
            # drift only once per pass: right after our own update the cluster matches
            observation = failure or self.observe(rollout, loaded, status, revision, now, drift=updates == 0)
            chain = chain_id_for(self.config.environment, rollout.namespace, rollout.name, revision)
            decision = decide(
                rollout,
                revision,
                template,
                status,
                now,
                environment=self.config.environment,
                git_commit=commit,
                chain_id=chain,
                command=command,
                observation=observation,
            )
            if records_nothing(status, decision):
                break
            waiting = self._gateway_pending(rollout, status, decision)
            if waiting:
                decision = replace(decision, apply=False, next_due=now + ACCEPTANCE_RETRY, reason=waiting)
                break
            prev = status
            try:
                status = self._apply(rollout, loaded, name, prev, decision, refresh=observation.drift)
            except UnrecordedUpdateError:
                if failure is not None:
                    raise
                if self.outbox is not None:
                    self.outbox.unstage(name)  # staged for an update that did not run
                failure = Observation(unrecorded=True)
                continue
            except StepFailedError as exc:
                log.warning("update failed", extra={"stack": name, "error": str(exc)})
                if failure is not None:
                    raise
                text = str(exc)
                failure = Observation(
                    update_failed=True,
                    update_error=_error_summary(text),
                    deadline_exceeded=any(m in text for m in DEADLINE_MARKERS),
                )
                continue
            updates += 1
            failure = None
            if status.restart_reason and status.restart_reason != (prev.restart_reason if prev else ""):
                log.warning("canary restarted", extra={"stack": name, "reason": status.restart_reason})
            if not decision.apply:
                break  # an outputs-only update (e.g. new measurements): nothing more to do now
        if status is not None:
            self._sync_pod_metadata(rollout, name, status)
        next_due = self.clock() if more else self._next_due(rollout, loaded, status, decision)
        return RolloutOutcome(
            key=name,
            phase=status.phase if status else None,
            step=status.current_step_index if status else 0,
            step_count=status.step_count if status else 0,
            message=decision.reason if decision is not None else (status.message if status else ""),
            updates=updates,
            next_due=next_due,
        )

    def _apply(
        self,
        rollout: Rollout,
        loaded: LoadResult,
        name: str,
        prev: RolloutStatus | None,
        decision: Decision,
        refresh: bool = False,
    ) -> RolloutStatus:
        if self.fence is not None:
            # the last check before the update (staging below is this replica's own outbox)
            self.fence(name)
        ctx = self.event_context(prev, decision)
        planned_events = build_events(prev, decision.status, ctx)
        planned = record_events(decision.status, planned_events)
        # Staged before the update: if the process dies after the engine recorded the
        # outputs but before the outbox write, the next pass finds them (recover_staged).
        if self.outbox is not None:
            self.outbox.stage(planned_events, rollout_key=name)
        # a blue-green update says which revision the active Service selects instead of a weight
        active = active_revision(rollout, planned) if rollout.spec.blue_green is not None else None
        message = _update_message(planned, decision, active, self.config.replica)
        inputs = self.program_inputs(rollout, loaded, decision, planned, prev)
        extra: dict[str, Any] = {OUTPUT_UPDATE_MESSAGE: message}
        if self.ledger is not None:
            extra[OUTPUT_PENDING_EVENTS] = self.ledger.outputs_for(name, planned_events)
        inputs = replace(inputs, outputs={**inputs.outputs, **extra})
        self.on_progress(f"{rollout.namespace}/{rollout.name}: {_progress_line(planned, decision, active)}")
        started = time.monotonic()
        try:
            report = self.stacks.up(name, lambda: deploy(inputs), message, refresh=refresh)
        except StepFailedError:
            self.observe_update(time.monotonic() - started, "failed")
            raise
        self.observe_update(report.seconds, "succeeded")
        recorded = RolloutStatus.from_outputs(report.outputs)
        if self.ledger is not None:
            self.ledger.recorded(name, report.outputs)
        self._record_metrics(prev, recorded)
        # Events come from what the engine recorded, not from intent.
        events = build_events(prev, recorded, ctx)
        if self.outbox is not None:
            if events:
                self.outbox.put(events, rollout_key=name)
            self.outbox.unstage(name)
        self.on_update(recorded)
        if decision.command_applied is not None:
            log.info("manual command applied", extra={"stack": name, "command": decision.command_applied.kind.value})
        return recorded

    def _record_metrics(self, prev: RolloutStatus | None, new: RolloutStatus) -> None:
        """Step durations (a step ends when the next starts) and new measurements."""
        if self.metrics is None or prev is None:
            return
        moved = (new.current_step_index, new.stable_revision) != (prev.current_step_index, prev.stable_revision)
        started = parse_status_time(prev.step_started_at)
        ended = parse_status_time(new.step_started_at)
        if moved and started is not None and ended is not None and prev.in_flight:
            self.metrics.observe_step_duration(max(0.0, (ended - started).total_seconds()))
        seen = {(r.name, m.finished_at, m.metric) for r in prev.analysis_runs for m in r.measurements}
        for run in new.analysis_runs:
            for m in run.measurements:
                if (run.name, m.finished_at, m.metric) not in seen:
                    self.metrics.count_analysis_result(m.phase)

    def event_context(self, prev: RolloutStatus | None, decision: Decision) -> EventContext:
        new = decision.status
        reason: EndReason | None = None
        if decision.abort_reason is not None:
            reason = END_REASONS[decision.abort_reason]
        elif (
            prev is not None
            and prev.in_flight
            and not prev.aborted
            and new.canary_revision not in ("", prev.canary_revision)
        ):
            reason = EndReason.SUPERSEDED
        elif prev is not None and prev.in_flight and new.phase is Phase.HEALTHY and not new.in_flight:
            reason = EndReason.PROMOTED
        stable_images: tuple[str, ...] = ()
        if prev is not None:
            containers = prev.templates.get(prev.stable_revision, {}).get("spec", {}).get("containers", []) or []
            stable_images = tuple(str(c.get("image", "")) for c in containers if c.get("image"))
        return EventContext(
            source=f"{self.config.event_source}/{self.config.environment}",
            uri=f"{self.config.status_uri}/{self.config.environment}/{new.namespace}/{new.rollout}",
            environment_id=f"{self.config.cluster}/{new.namespace}",
            cluster=self.config.cluster,
            end_reason=reason,
            now=format_time(self.clock()),
            stable_images=stable_images,
        )

    def program_inputs(
        self,
        rollout: Rollout,
        loaded: LoadResult,
        decision: Decision,
        status: RolloutStatus,
        prev: RolloutStatus | None = None,
    ) -> ProgramInputs:
        """The program's inputs to record ``status`` (see ``kulta.core.program_inputs``).

        The routes' live rules are read here, before the update: an API server
        that does not answer fails the pass before Pulumi starts.
        """
        live = {(kind, ns, route): self.kube.route_rules(ns, route, kind) for kind, ns, route in route_targets(rollout)}
        return build_program_inputs(rollout, loaded.others, decision, status, prev, live)

    # -- observations -----------------------------------------------------------------
    def observe(
        self,
        rollout: Rollout,
        loaded: LoadResult,
        status: RolloutStatus | None,
        revision: str,
        now: datetime,
        *,
        drift: bool,
    ) -> Observation:
        """Everything this pass learns from outside before deciding: analysis and drift."""
        return Observation(
            analysis_runs=self._advance_analysis(rollout, loaded, status, revision, now),
            drift=drift and self._drifted(rollout, status),
        )

    def _advance_analysis(
        self, rollout: Rollout, loaded: LoadResult, status: RolloutStatus | None, revision: str, now: datetime
    ) -> tuple[AnalysisRunStatus, ...]:
        """New measurements of the runs that are due.

        Each run records the analysis it measures (``ref``). After a strategy edit in
        Git the current step's run goes on with its recorded analysis until it ends:
        a running analysis is never skipped; the canary restarts after it.
        """
        if status is None or status.aborted or status.canary_revision != revision or not status.in_flight:
            return ()
        if status.restart_reason:
            return ()
        existing = {r.name: r for r in status.analysis_runs}
        index = status.current_step_index
        steps = rollout.spec.strategy.steps
        due: list[tuple[str, AnalysisRef, int | None]] = []
        if status.strategy_hash and status.strategy_hash != strategy_hash(rollout):
            name = step_run_name(rollout, revision, index)
            current = existing.get(name)
            if current is not None and current.ref is not None and not current.phase.completed:
                due.append((name, current.ref, index))
        elif rollout.spec.blue_green is not None:
            # pre/postPromotionAnalysis: the stage is recorded once its pods are available (saturated)
            staged = promotion_analysis(rollout.spec.blue_green, index)
            if staged is not None:
                due.append((step_run_name(rollout, revision, index), staged, index))
        else:
            inline = steps[index].analysis if index < len(steps) else None
            if inline is not None:
                due.append((inline_run_name(rollout.name, revision, index), inline, index))
            background = rollout.spec.strategy.analysis
            if background is not None and index >= background.starting_step:
                ref = AnalysisRef(templates=background.templates, args=background.args)
                due.append((background_run_name(rollout.name, revision), ref, None))
        if not due:
            return ()
        if self.provider is None:
            raise ConfigError(f"rollout {rollout.namespace}/{rollout.name} needs analysis: run it with `kulta run`")
        runs: list[AnalysisRunStatus] = []
        for name, ref, step_index in due:
            run = advance_analysis(
                existing.get(name),
                name=name,
                ref=ref,
                step_index=step_index,
                templates=loaded.templates,
                stable_hash=status.stable_revision,
                canary_hash=revision,
                rollout=rollout.name,
                namespace=rollout.namespace,
                now=now,
                provider=self.provider,
                environ=self.config.environ,
            )
            runs.append(replace(run, ref=ref))
        return tuple(r for r in runs if existing.get(r.name) != r)

    def _sync_pod_metadata(self, rollout: Rollout, name: str, status: RolloutStatus) -> None:
        """Argo's ephemeral metadata on live pods: new pods get it from the ReplicaSet template.

        Done once per (revisions, replicas, metadata) this process has not synced yet: a
        turn with nothing new lists no pods (a restarted process syncs once again).
        """
        new_side, stable_side = pod_metadata(rollout)
        if new_side == PodMetadata() and stable_side == PodMetadata():
            return
        key = (
            status.stable_revision,
            status.canary_revision,
            tuple(sorted(status.replicas.items())),
            repr(new_side),
            repr(stable_side),
        )
        if self._metadata_synced.get(name) == key:
            return
        every = PodMetadata(
            labels={**new_side.labels, **stable_side.labels},
            annotations={**new_side.annotations, **stable_side.annotations},
        )
        sides = [(status.stable_revision, stable_side)]
        if status.in_flight:
            sides.append((status.canary_revision, new_side))
        for revision, wanted in sides:
            if status.replicas.get(replicaset_name(rollout.name, revision), 0) <= 0:
                continue
            selector = {**dict(rollout.spec.selector.get("matchLabels", {}) or {}), LABEL_POD_TEMPLATE_HASH: revision}
            self.kube.sync_pod_metadata(rollout.namespace, selector, wanted, every)
        self._metadata_synced[name] = key

    def _drifted(self, rollout: Rollout, status: RolloutStatus | None) -> bool:
        if status is None or not status.replicas:
            return False
        live = self.kube.replicaset_replicas(rollout.namespace, status.replicas)
        for rs, want in status.replicas.items():
            if live.get(rs) is not None and live[rs] != want:
                log.warning("drift: ReplicaSet scaled by hand", extra={"rs": rs, "want": want, "live": live[rs]})
                return True
        for w in status.weights:
            rules = self.kube.route_rules(w.namespace, w.route, w.kind)
            got = route_weights(rules, stable_service_name(rollout), canary_service_name(rollout) or "")
            if got is not None and got != (w.stable, w.canary) and status.in_flight and not status.aborted:
                log.warning(
                    "drift: route weights edited by hand",
                    extra={"kind": w.kind.value, "route": w.route, "want": (w.stable, w.canary), "live": got},
                )
                return True
        return False

    def _gateway_pending(self, rollout: Rollout, status: RolloutStatus | None, decision: Decision) -> str:
        """Why the next advance must wait for a Gateway ("" when it need not).

        A step is done only once every Gateway parent that reports status has
        accepted the route's current generation (the data plane has the weights).
        Aborts and updates that do not advance are never held back.
        """
        if status is None or not status.in_flight or status.aborted or decision.status.aborted:
            return ""
        new = decision.status
        advancing = new.current_step_index != status.current_step_index or new.stable_revision != status.stable_revision
        if not advancing:
            return ""
        for kind, ns, route in route_targets(rollout):
            acceptance = self.kube.route_acceptance(ns, route, kind)
            if not acceptance.has_parent_status:
                log.info("route status", extra={"route": f"{kind.value} {ns}/{route}", "detail": acceptance.detail})
            elif not acceptance.accepted:
                return f"step {status.current_step_index}: {kind.value} {ns}/{route}: {acceptance.detail}"
        return ""

    def _next_due(
        self, rollout: Rollout, loaded: LoadResult, status: RolloutStatus | None, decision: Decision | None
    ) -> datetime | None:
        dues: list[datetime] = []
        if decision is not None and decision.next_due is not None:
            dues.append(decision.next_due)
        # a pause's end is in the decision; analysis runs bring their own due times
        if status is not None and status.in_flight and not status.aborted:
            steps = rollout.spec.strategy.steps
            for run in status.analysis_runs:
                if run.phase.completed:
                    continue
                ref: AnalysisRefLike | None = run.ref
                if ref is None and run.step_index is not None and run.step_index < len(steps):
                    ref = steps[run.step_index].analysis
                elif ref is None and run.step_index is None:
                    ref = rollout.spec.strategy.analysis
                if ref is None or not ref.templates:
                    continue
                try:
                    # rendered as the run measures them: a templated interval is its value, not its text
                    metrics, _ = run_metrics(
                        loaded.templates,
                        ref,
                        stable_hash=status.stable_revision,
                        canary_hash=status.canary_revision,
                        rollout=rollout.name,
                        namespace=rollout.namespace,
                        environ=self.config.environ,
                    )
                except KultaError as err:
                    log.debug("analysis %s: no due time (%s); the next measurement pass ends it", run.name, err)
                    continue
                due = next_due_at(run, metrics, self.clock())
                if due is not None:
                    dues.append(due)
        return min(dues) if dues else None


def records_nothing(prev: RolloutStatus | None, decision: Decision) -> bool:
    """Whether ``decision`` needs no update: it applies nothing and only its wording differs."""
    return (
        prev is not None and not decision.apply and decision.status.to_outputs() == _comparable(prev, decision.status)
    )


def _comparable(prev: RolloutStatus, new: RolloutStatus) -> dict[str, Any]:
    """Previous outputs with the message taken from ``new``: a new wording alone is no update."""
    data = prev.to_outputs()
    data["message"] = new.message
    return data


def _error_summary(text: str) -> str:
    """The engine's most telling line: the last one naming an error, else the last one."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    telling = [ln for ln in lines if "error" in ln.lower() or "timed out" in ln.lower()]
    return safe_text(telling[-1] if telling else lines[-1] if lines else "update failed", limit=500)


def _traffic(status: RolloutStatus, decision: Decision, active: str | None) -> str:
    """``canary=<w>%``, or ``active=<revision>`` for a blue-green rollout."""
    if active is not None:
        return f"active={active}"
    weight = status.weights[0].canary if status.weights else decision.canary_weight
    return f"canary={weight}%"


def _progress_line(status: RolloutStatus, decision: Decision, active: str | None = None) -> str:
    """The line shown as an update starts: where it goes, not a phase it has not recorded yet."""
    traffic = _traffic(status, decision, active)
    return f"updating to step={status.current_step_index}/{status.step_count} {traffic} :: {decision.reason}"


def _update_message(status: RolloutStatus, decision: Decision, active: str | None = None, replica: str = "") -> str:
    commit = status.git_commit[:12] if status.git_commit else "-"
    by = f"replica={replica} " if replica else ""
    return (
        f"kulta step={status.current_step_index}/{status.step_count} {_traffic(status, decision, active)} "
        f"phase={status.phase.value} {by}commit={commit} :: {decision.reason}"
    )
