"""``kulta run``: the GitOps loop and the scheduled job (``--once``).

Each pass: fetch Git (a failure keeps the last good snapshot and never reads
as "rollout deleted"), load every Rollout/AnalysisTemplate, reconcile each
rollout in a bounded worker pool, deliver due CDEvents, report. The loop then
sleeps until the earliest due time (a pause ending, an analysis measurement,
a scale-down delay) or the poll interval, and stops between updates on
SIGTERM/SIGINT. ``--once`` makes one pass; its exit status tells CI whether
anything failed.

With ``--lease-namespace`` several loops share the rollouts: each turns only the
rollouts whose Lease it holds (``kulta.adapters.leases``), ticks its leases every
``duration / 3``, checks the lease right before each update (the fence), and gives
its leases back when it stops.
"""

from __future__ import annotations

import concurrent.futures
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TextIO

from kulta.adapters.git_source import GitSnapshot, GitSource, GitSourceConfig, next_retry_delay
from kulta.adapters.health_file import write_health
from kulta.adapters.kube import KubeReader
from kulta.adapters.leases import LeaseApi, LeaseKeeper, LeaseSettings, ReplicaPods
from kulta.adapters.metric_providers import ProviderDispatcher
from kulta.adapters.metrics import ReconcileResult, ReconcilerMetrics
from kulta.adapters.outbox import Deliverer, Outbox
from kulta.adapters.sinks import FileSink, HttpSink, SinkConfig, SinkMode
from kulta.adapters.stacks import StackManager, build_stack_manager, stack_name_for
from kulta.app.commands import find_stacks
from kulta.app.reconciler import PassReport, Reconciler, ReconcilerConfig, RolloutOutcome
from kulta.app.scheduler import WorkQueue
from kulta.errors import ConfigError, DependencyError, KultaError, TemporaryError
from kulta.model.rollout import DEFAULT_NAMESPACE, Rollout
from kulta.spec.loader import LoadResult, load_paths
from kulta.spec.namespaces import DefaultNamespaces

__all__ = ["RunOptions", "build_delivery", "build_stack_manager", "run"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_GIT_UNREACHABLE = 2


@dataclass(frozen=True)
class RunOptions:
    repo: str
    branch: str = "main"
    path: str = "."
    #: the namespace of documents without metadata.namespace (``--namespace``)
    namespace: str = DEFAULT_NAMESPACE
    #: ``--path-namespace DIR=NS``: the same, per directory of the repository
    path_namespaces: tuple[tuple[str, str], ...] = ()
    once: bool = False
    interval: float = 30.0
    concurrency: int = 2
    environment: str = "dev"
    cluster: str = "local"
    kubeconfig: str | None = None
    state_dir: Path = Path(".kulta")
    prune: bool = False
    metrics_port: int | None = None
    sink_url: str | None = None
    sink_mode: SinkMode = SinkMode.BINARY
    sink_auth_env: str | None = None
    events_file: Path | None = None
    token_env: str | None = None
    ssh_key_path: str | None = None
    max_passes: int | None = None
    #: ``--lease-namespace``: share the rollouts with other replicas through Leases there
    lease_namespace: str | None = None
    #: ``--identity``: this replica's name in the leases and in each update's message
    identity: str = ""
    #: ``--lease-duration`` seconds
    lease_duration: float = 15.0


def _deliverer(options: RunOptions) -> tuple[Outbox | None, Deliverer | None]:
    """The event sink and its outbox, checked at start-up (before the first pass).

    A bad ``--sink-url`` (not http/https, no host, unparseable), an unset or
    unusable ``--sink-auth-env`` value, an ``--events-file`` that is a
    directory, or an outbox path that is not a directory raise
    ``ConfigError``/``OutboxCorruptError`` here, naming the flag and the fix.
    ``--sink-url`` takes precedence over ``--events-file``.
    """
    return build_delivery(
        options.state_dir, options.sink_url, options.sink_mode, options.sink_auth_env, options.events_file
    )


def build_delivery(
    state_dir: Path,
    sink_url: str | None,
    sink_mode: SinkMode = SinkMode.BINARY,
    sink_auth_env: str | None = None,
    events_file: Path | None = None,
) -> tuple[Outbox | None, Deliverer | None]:
    """The outbox under ``state_dir`` and its sink (``kulta run`` and ``kulta events``)."""
    sink: HttpSink | FileSink | None = None
    if sink_url is not None:
        sink = HttpSink(SinkConfig(url=sink_url, mode=sink_mode, auth_header_env=sink_auth_env))
    elif events_file is not None:
        sink = FileSink(events_file)
    if sink is None:
        return None, None
    outbox = Outbox(state_dir / "outbox")
    return outbox, Deliverer(outbox, sink)


class _Stopper:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.on_stop: Callable[[], None] = lambda: None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal received: finishing the update in flight, then stopping", extra={"signal": signum})
        self.event.set()
        self.on_stop()


def _progress_printer(out: TextIO) -> Callable[[str], None]:
    def show(message: str) -> None:
        out.write(f"  → {message}\n")
        out.flush()

    return show


def _report(report: PassReport, out: TextIO) -> None:
    for err in report.spec_errors:
        out.write(f"spec error: {err}\n")
    for o in report.outcomes:
        out.write(_outcome_line(o))
    if report.delivery is not None:
        d = report.delivery
        out.write(f"events: {d.sent} sent, {d.failed} failed, {d.pending} pending\n")
    out.flush()


def _orphans(stacks: StackManager, options: RunOptions, loaded: LoadResult, out: TextIO) -> None:
    present = {stack_name_for(options.environment, r.namespace, r.name) for r in loaded.rollouts}
    try:
        refs = find_stacks(stacks, options.environment)
    except KultaError as exc:
        out.write(f"orphan check skipped this pass: {exc}\n")
        return
    for ref in refs:
        if ref.name in present:
            continue
        if options.prune:
            out.write(f"{ref.name}: rollout file deleted; --prune: destroying its stack\n")
            try:
                stacks.destroy(ref.name)
            except KultaError as exc:
                out.write(f"{ref.name}: destroy failed, retried on the next pass: {exc}\n")
        else:
            out.write(f"{ref.name}: orphaned (its Rollout is no longer in Git; stack kept — use --prune to destroy)\n")


def _one_pass(
    reconciler: Reconciler,
    stacks: StackManager,
    metrics: ReconcilerMetrics,
    outbox: Outbox | None,
    options: RunOptions,
    snapshot: GitSnapshot,
    namespaces: DefaultNamespaces,
    passes: int,
    out: TextIO,
) -> PassReport:
    loaded = load_paths(list(snapshot.files), base=snapshot.workdir, namespaces=namespaces)
    out.write(f"pass {passes}: commit {snapshot.commit[:12]}, {len(loaded.rollouts)} rollout(s)\n")
    report = reconciler.reconcile_pass(loaded, snapshot.commit)
    _orphans(stacks, options, loaded, out)
    _report(report, out)
    present = {stack_name_for(options.environment, r.namespace, r.name) for r in loaded.rollouts}
    _publish(reconciler, metrics, options, present, report.outcomes)
    if outbox is not None:
        metrics.set_events_pending(outbox.count())
    return report


def _publish(
    reconciler: Reconciler,
    metrics: ReconcilerMetrics,
    options: RunOptions,
    present: set[str],
    outcomes: Iterable[RolloutOutcome],
) -> None:
    """After a pass or a Git sync: health.json, failing rollouts, phases and the pass result."""
    reconciler.health.forget(present)
    failing = reconciler.health.snapshot()
    write_health(options.state_dir, {k: f.to_json() for k, f in failing.items()})
    metrics.set_rollouts_failing(len(failing))
    phases: dict[str, int] = {}
    failed = False
    for o in outcomes:
        if o.key not in present:
            continue
        failed = failed or o.failed
        if o.phase is not None:
            phases[o.phase.value] = phases.get(o.phase.value, 0) + 1
    metrics.set_rollout_phases(phases)
    metrics.count_reconcile(ReconcileResult.PARTIAL if failed or failing else ReconcileResult.SUCCESS)


#: a rollout's turn ends after this many updates; it is due again at once, behind every
#: rollout already due (round-robin fairness: measured in bench/scale.py, 1 gets every
#: canary of a big commit started first)
UPDATES_PER_TURN = 1
#: how often due events are handed to the sink while the loop runs
DELIVERY_INTERVAL = 1.0


def _outcome_line(o: RolloutOutcome) -> str:
    phase = o.phase.value if o.phase else "-"
    state = "skipped" if o.skipped else ("ERROR" if o.error else phase)
    due = f" next {o.next_due.strftime('%H:%M:%S')}" if o.next_due else ""
    step = f"step {min(o.step, o.step_count)}/{o.step_count}"
    return f"{o.key}: {state} {step} updates {o.updates}{due} — {o.error or o.message}\n"


def _once(
    options: RunOptions,
    git: GitSource,
    reconciler: Reconciler,
    stacks: StackManager,
    metrics: ReconcilerMetrics,
    outbox: Outbox | None,
    namespaces: DefaultNamespaces,
    out: TextIO,
) -> int:
    """``--once``: one pass over every rollout; the exit status says whether anything failed."""
    try:
        snapshot = git.sync()
        metrics.set_git_last_sync(time.time())
    except TemporaryError as exc:
        out.write(f"git: {exc} (keeping the current state)\n")
        return EXIT_GIT_UNREACHABLE
    try:
        report = _one_pass(reconciler, stacks, metrics, outbox, options, snapshot, namespaces, 1, out)
    except ConfigError:
        raise  # a flag or the environment is wrong: stop and say so
    except KultaError as exc:
        out.write(f"pass failed: {exc}\n")
        return EXIT_FAILED
    except Exception:
        log.exception("the pass failed unexpectedly (a bug: please report it)")
        out.write("pass failed unexpectedly; see the log\n")
        return EXIT_FAILED
    return EXIT_FAILED if report.failed else EXIT_OK


def _serve(
    options: RunOptions,
    git: GitSource,
    reconciler: Reconciler,
    stacks: StackManager,
    metrics: ReconcilerMetrics,
    outbox: Outbox | None,
    namespaces: DefaultNamespaces,
    stopper: _Stopper,
    out: TextIO,
    leases: LeaseKeeper | None = None,
) -> int:
    """The loop: Git every ``interval``; each rollout reconciled when due, by a bounded pool.

    A rollout is due when its pause ends, a measurement or a retry is due, after a
    new commit, and at the latest one interval after its last turn (so another
    writer's change — CI's ``pulumi up``, ``kulta promote`` — is seen within one
    interval; with the file backend a turn with nothing to do starts no process).
    """
    queue = WorkQueue()
    workers = max(1, options.concurrency)
    running: dict[str, concurrent.futures.Future[RolloutOutcome]] = {}
    loaded: LoadResult | None = None
    by_key: dict[str, Rollout] = {}
    commit = ""
    passes = 0
    git_failures = 0
    next_sync = reconciler.clock()
    next_delivery = time.monotonic()
    outcomes: dict[str, RolloutOutcome] = {}
    interval = timedelta(seconds=options.interval)
    next_lease_tick = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kulta") as pool:
        while not stopper.event.is_set():
            now = reconciler.clock()
            if now >= next_sync:
                passes += 1
                next_sync = now + interval
                try:
                    snapshot = git.sync()
                    git_failures = 0
                    metrics.set_git_last_sync(time.time())
                except TemporaryError as exc:
                    git_failures += 1
                    metrics.count_git_fetch_failure()
                    out.write(f"git: {exc} (keeping the current state)\n")
                    next_sync = now + timedelta(seconds=min(options.interval, next_retry_delay(git_failures)))
                    snapshot = None
                if snapshot is not None:
                    try:
                        if loaded is None or snapshot.commit != commit:
                            loaded = load_paths(list(snapshot.files), base=snapshot.workdir, namespaces=namespaces)
                            commit = snapshot.commit
                            by_key = {reconciler.stack_name(r): r for r in loaded.rollouts}
                            for err in loaded.errors:
                                out.write(f"spec error: {err}\n")
                        out.write(f"pass {passes}: commit {commit[:12]}, {len(by_key)} rollout(s)\n")
                        _orphans(stacks, options, loaded, out)
                    except ConfigError:
                        raise
                    except Exception:
                        log.exception("loading commit %s failed (a bug: please report it)", snapshot.commit[:12])
                    queue.forget(set(by_key))
                    _publish(reconciler, metrics, options, set(by_key), outcomes.values())
                    for key in by_key:
                        # at least once per interval; a failing rollout keeps its backoff
                        failure = reconciler.health.get(key)
                        queue.schedule(key, max(now, failure.next_retry) if failure else now)
            if leases is not None and loaded is not None and time.monotonic() >= next_lease_tick:
                next_lease_tick = time.monotonic() + leases.period
                _tick(leases, set(by_key), set(running), queue, reconciler.clock(), out)
            for key, future in list(running.items()):
                if not future.done():
                    continue
                del running[key]
                queue.done(key)
                outcome = future.result()  # reconcile_rollout never raises
                outcomes[key] = outcome
                out.write(_outcome_line(outcome))
                out.flush()
                if key in by_key:
                    queue.schedule(key, outcome.next_due or reconciler.clock() + interval)
            while loaded is not None and len(running) < workers and not stopper.event.is_set():
                picked = queue.pop_due(reconciler.clock())
                if picked is None:
                    break
                if picked not in by_key or (leases is not None and not leases.holds(picked)):
                    # another replica's rollout: scheduled again when a tick gains its lease
                    queue.done(picked)
                    continue
                running[picked] = pool.submit(
                    reconciler.reconcile_rollout, by_key[picked], loaded, commit, UPDATES_PER_TURN
                )
            if time.monotonic() >= next_delivery:
                next_delivery = time.monotonic() + DELIVERY_INTERVAL
                delivery = reconciler.deliver_events()
                if delivery is not None and (delivery.sent or delivery.failed):
                    out.write(f"events: {delivery.sent} sent, {delivery.failed} failed, {delivery.pending} pending\n")
                if outbox is not None:
                    try:
                        metrics.set_events_pending(outbox.count())
                    except DependencyError as exc:  # the outbox directory went away: said, retried
                        log.warning("cannot count the event outbox", extra={"error": str(exc)})
            if options.max_passes is not None and passes >= options.max_passes and not running and not len(queue):
                break
            wake = [next_sync]
            if leases is not None:
                wake.append(reconciler.clock() + timedelta(seconds=max(0.0, next_lease_tick - time.monotonic())))
            due = queue.next_due()
            if due is not None and len(running) < workers:
                # with every worker busy a due rollout waits for a worker, not for a timer:
                # counting its (past) due time here would spin this loop
                wake.append(due)
            wait = max(0.0, min((w - reconciler.clock()).total_seconds() for w in wake))
            wait = min(wait, DELIVERY_INTERVAL)
            if running:
                concurrent.futures.wait(running.values(), timeout=wait, return_when=concurrent.futures.FIRST_COMPLETED)
            else:
                stopper.event.wait(wait)
        # stopping: the updates in flight finish (the reconciler takes no further step)
        for future in running.values():
            out.write(_outcome_line(future.result()))
    if leases is not None:
        leases.release_all()
        out.write(f"leases: released by {leases.identity}\n")
    return EXIT_OK


def _tick(leases: LeaseKeeper, wanted: set[str], busy: set[str], queue: WorkQueue, now: datetime, out: TextIO) -> None:
    """One lease tick; the rollouts gained go first: they waited a lease duration without a driver."""
    report = leases.tick(wanted, busy)
    overdue = now - timedelta(seconds=leases.settings.duration)
    for key in sorted(report.gained):
        queue.schedule(key, overdue)
    if report.error:
        out.write(f"leases: tick failed, held leases run out unless renewed: {report.error}\n")
    if report.gained or report.lost:
        out.write(
            f"leases: {leases.identity} holds {len(report.held)} (share {report.share} of {len(wanted)}, "
            f"{report.live} live replica(s)); gained {len(report.gained)}, lost {len(report.lost)}\n"
        )
        out.flush()


def _lease_keeper(options: RunOptions) -> LeaseKeeper | None:
    """The lease keeper of ``--lease-namespace`` (checked: flags, kubeconfig), or None."""
    if options.lease_namespace is None:
        return None
    if options.once:
        raise ConfigError(
            "--lease-namespace shares rollouts between running loops; --once makes one pass alone: drop one of them"
        )
    settings = LeaseSettings(
        namespace=options.lease_namespace,
        identity=options.identity,
        environment=options.environment,
        duration=options.lease_duration,
    )
    return LeaseKeeper(settings, LeaseApi(settings.namespace, options.kubeconfig, timeout=settings.period))


def run(options: RunOptions, out: TextIO) -> int:
    """Run the loop (or one pass with ``once``); return the process exit status."""
    options.state_dir.mkdir(parents=True, exist_ok=True)
    git = GitSource(
        GitSourceConfig(
            options.repo,
            branch=options.branch,
            path=options.path,
            cache_dir=options.state_dir / "git",
            token_env=options.token_env,
            ssh_key_path=options.ssh_key_path,
        )
    )
    leases = _lease_keeper(options)
    stacks = build_stack_manager(options.state_dir, options.kubeconfig)
    if leases is not None:
        # a replica killed mid-update leaves a Pulumi lock its host cannot clear: its pod tells
        stacks.owner_gone = ReplicaPods(leases.api, options.environment, options.kubeconfig)
    metrics = ReconcilerMetrics()
    outbox, deliverer = _deliverer(options)
    reconciler = Reconciler(
        ReconcilerConfig(
            environment=options.environment,
            cluster=options.cluster,
            kubeconfig=options.kubeconfig,
            concurrency=options.concurrency,
            replica=options.identity if leases is not None else "",
        ),
        stacks,
        KubeReader(options.kubeconfig),
        ProviderDispatcher(),
        outbox=outbox,
        deliverer=deliverer,
        on_progress=_progress_printer(out),
        observe_update=metrics.observe_pulumi_update,
        metrics=metrics,
        fence=leases.fence if leases is not None else None,
        events_in_stack=leases is not None,
        knows_commit=git.knows_commit if leases is not None else None,
    )
    server = None
    if options.metrics_port is not None and not options.once:
        server = metrics.start_http_server("127.0.0.1", options.metrics_port)
        out.write(f"metrics on {server.url}\n")
    namespaces = DefaultNamespaces(default=options.namespace, by_directory=options.path_namespaces)
    stopper = _Stopper()
    stopper.on_stop = reconciler.stop
    previous = {sig: signal.signal(sig, stopper) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if not options.once:
            return _serve(options, git, reconciler, stacks, metrics, outbox, namespaces, stopper, out, leases)
        return _once(options, git, reconciler, stacks, metrics, outbox, namespaces, out)
    except ConfigError as exc:
        out.write(f"error: {exc}\n")
        return EXIT_FAILED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.stop()
