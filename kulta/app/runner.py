"""``kulta run``: the GitOps loop and the scheduled job (``--once``).

Each pass: fetch Git (a failure keeps the last good snapshot and never reads
as "rollout deleted"), load every Rollout/AnalysisTemplate, reconcile each
rollout in a bounded worker pool, deliver due CDEvents, report. The loop then
sleeps until the earliest due time (a pause ending, an analysis measurement,
a scale-down delay) or the poll interval, and stops between updates on
SIGTERM/SIGINT. ``--once`` makes one pass; its exit status tells CI whether
anything failed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

from kulta.adapters.git_source import GitSnapshot, GitSource, GitSourceConfig, next_retry_delay
from kulta.adapters.kube import KubeReader
from kulta.adapters.metrics import ReconcilerMetrics
from kulta.adapters.outbox import Deliverer, Outbox
from kulta.adapters.prometheus import PrometheusClient
from kulta.adapters.sinks import FileSink, HttpSink, SinkConfig, SinkMode
from kulta.adapters.stacks import StackManager, StackSettings, stack_name_for
from kulta.app.commands import find_stacks
from kulta.app.reconciler import PassReport, Reconciler, ReconcilerConfig
from kulta.errors import ConfigError, TemporaryError
from kulta.spec.loader import LoadResult, load_paths

__all__ = ["RunOptions", "build_stack_manager", "run"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_GIT_UNREACHABLE = 2


@dataclass(frozen=True)
class RunOptions:
    repo: str
    branch: str = "main"
    path: str = "."
    once: bool = False
    interval: float = 30.0
    concurrency: int = 4
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


def build_stack_manager(state_dir: Path, kubeconfig: str | None) -> StackManager:
    return StackManager(StackSettings(state_dir=state_dir, kubeconfig=kubeconfig or ""))


def _deliverer(options: RunOptions) -> tuple[Outbox | None, Deliverer | None]:
    """The event sink and its outbox, checked at start-up (before the first pass).

    A bad ``--sink-url`` (not http/https, no host, unparseable), an unset or
    unusable ``--sink-auth-env`` value, an ``--events-file`` that is a
    directory, or an outbox path that is not a directory raise
    ``ConfigError``/``OutboxCorruptError`` here, naming the flag and the fix.
    ``--sink-url`` takes precedence over ``--events-file``.
    """
    sink: HttpSink | FileSink | None = None
    if options.sink_url is not None:
        config = SinkConfig(url=options.sink_url, mode=options.sink_mode, auth_header_env=options.sink_auth_env)
        sink = HttpSink(config)
    elif options.events_file is not None:
        sink = FileSink(options.events_file)
    if sink is None:
        return None, None
    outbox = Outbox(options.state_dir / "outbox")
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
        phase = o.phase.value if o.phase else "-"
        state = "skipped" if o.skipped else ("ERROR" if o.error else phase)
        due = f" next {o.next_due.strftime('%H:%M:%S')}" if o.next_due else ""
        step = f"step {min(o.step, o.step_count)}/{o.step_count}"
        out.write(f"{o.key}: {state} {step} updates {o.updates}{due} — {o.error or o.message}\n")
    if report.delivery is not None:
        d = report.delivery
        out.write(f"events: {d.sent} sent, {d.failed} failed, {d.pending} pending\n")
    out.flush()


def _orphans(stacks: StackManager, options: RunOptions, loaded: LoadResult, out: TextIO) -> None:
    present = {stack_name_for(options.environment, r.namespace, r.name) for r in loaded.rollouts}
    for ref in find_stacks(stacks, options.environment):
        if ref.name in present:
            continue
        if options.prune:
            out.write(f"{ref.name}: rollout file deleted; --prune: destroying its stack\n")
            stacks.destroy(ref.name)
        else:
            out.write(f"{ref.name}: orphaned (its Rollout is no longer in Git; stack kept — use --prune to destroy)\n")


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
    stacks = build_stack_manager(options.state_dir, options.kubeconfig)
    metrics = ReconcilerMetrics()
    outbox, deliverer = _deliverer(options)
    reconciler = Reconciler(
        ReconcilerConfig(
            environment=options.environment,
            cluster=options.cluster,
            kubeconfig=options.kubeconfig,
            concurrency=options.concurrency,
        ),
        stacks,
        KubeReader(options.kubeconfig),
        PrometheusClient(),
        outbox=outbox,
        deliverer=deliverer,
        on_progress=_progress_printer(out),
        observe_update=metrics.observe_pulumi_update,
        metrics=metrics,
    )
    server = None
    if options.metrics_port is not None and not options.once:
        server = metrics.start_http_server("127.0.0.1", options.metrics_port)
        out.write(f"metrics on {server.url}\n")
    stopper = _Stopper()
    stopper.on_stop = reconciler.stop
    previous = {sig: signal.signal(sig, stopper) for sig in (signal.SIGTERM, signal.SIGINT)}
    failures = 0
    passes = 0
    status = EXIT_OK
    try:
        while not stopper.event.is_set():
            passes += 1
            snapshot: GitSnapshot | None
            try:
                snapshot = git.sync()
                failures = 0
                metrics.set_git_last_sync(time.time())
            except TemporaryError as exc:
                failures += 1
                metrics.count_git_fetch_failure()
                out.write(f"git: {exc} (keeping the current state)\n")
                snapshot = None
            if snapshot is None:
                if options.once:
                    return EXIT_GIT_UNREACHABLE
                stopper.event.wait(next_retry_delay(failures))
                continue
            loaded = load_paths(list(snapshot.files), base=snapshot.workdir)
            out.write(f"pass {passes}: commit {snapshot.commit[:12]}, {len(loaded.rollouts)} rollout(s)\n")
            report = reconciler.reconcile_pass(loaded, snapshot.commit)
            _orphans(stacks, options, loaded, out)
            _report(report, out)
            phases: dict[str, int] = {}
            for o in report.outcomes:
                if o.phase is not None:
                    phases[o.phase.value] = phases.get(o.phase.value, 0) + 1
            metrics.set_rollout_phases(phases)
            if outbox is not None:
                metrics.set_events_pending(outbox.count())
            metrics.count_reconcile("failed" if report.failed else "succeeded")
            status = EXIT_FAILED if report.failed else EXIT_OK
            if options.once or (options.max_passes is not None and passes >= options.max_passes):
                break
            now = datetime.now(UTC)
            due = report.next_due()
            wait = options.interval if due is None else max(0.5, min(options.interval, (due - now).total_seconds()))
            stopper.event.wait(wait)
    except ConfigError as exc:
        out.write(f"error: {exc}\n")
        return EXIT_FAILED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.stop()
    return status
