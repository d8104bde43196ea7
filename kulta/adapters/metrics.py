"""Prometheus metrics for the reconciler loop, and the ``/metrics`` endpoint that serves them.

In loop mode KULTA runs unattended, so operators need to see from outside
what it is doing: how many rollouts sit in each phase, how long steps and
Pulumi updates take, how analyses come out, whether Git is reachable and
whether CDEvents are piling up undelivered. One class owns every metric so the
names and labels are defined once and the reconciler only calls methods.

Every instance uses its own ``CollectorRegistry`` by default (plus the process,
platform and GC collectors), so tests and several reconcilers in one process
never collide on the global registry.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from kulta.model.status import MeasurementPhase, Phase

__all__ = [
    "METRIC_ANALYSIS_MEASUREMENTS",
    "METRIC_DEPENDENCY_FAILURES",
    "METRIC_EVENTS_PENDING",
    "METRIC_GIT_FETCH_FAILURES",
    "METRIC_GIT_LAST_SYNC",
    "METRIC_PULUMI_UPDATE_DURATION",
    "METRIC_RECONCILE_PASSES",
    "METRIC_ROLLOUTS",
    "METRIC_STEP_DURATION",
    "MetricsServer",
    "PulumiResult",
    "ReconcileResult",
    "ReconcilerMetrics",
]

log = logging.getLogger(__name__)

METRIC_ROLLOUTS = "kulta_rollouts"
METRIC_STEP_DURATION = "kulta_step_duration_seconds"
METRIC_PULUMI_UPDATE_DURATION = "kulta_pulumi_update_duration_seconds"
METRIC_ANALYSIS_MEASUREMENTS = "kulta_analysis_measurements"  # exposed as ..._total
METRIC_GIT_FETCH_FAILURES = "kulta_git_fetch_failures"  # exposed as ..._total
METRIC_GIT_LAST_SYNC = "kulta_git_last_sync_timestamp_seconds"
METRIC_EVENTS_PENDING = "kulta_events_pending"
METRIC_RECONCILE_PASSES = "kulta_reconcile_passes"  # exposed as ..._total
METRIC_DEPENDENCY_FAILURES = "kulta_dependency_failures"  # exposed as ..._total
METRIC_ROLLOUTS_FAILING = "kulta_rollouts_failing"

LABEL_PHASE = "phase"
LABEL_RESULT = "result"
LABEL_DEPENDENCY = "dependency"

# A canary step includes its pause, so steps run from seconds to hours.
STEP_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)
# One Pulumi update of a ReplicaSet and an HTTPRoute: seconds to a few minutes.
PULUMI_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class PulumiResult(enum.Enum):
    """Outcome label of one Pulumi update."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ReconcileResult(enum.Enum):
    """Outcome label of one reconcile pass over every rollout."""

    SUCCESS = "success"
    PARTIAL = "partial"
    ERROR = "error"
    SKIPPED = "skipped"


def _label(value: str | enum.Enum) -> str:
    text = str(value.value) if isinstance(value, enum.Enum) else value
    if not text:
        raise ValueError("a metric label value must not be empty")
    return text


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server; ``stop()`` shuts it down and frees the port."""

    host: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        log.info("metrics endpoint on %s:%d stopped", self.host, self.port)


class ReconcilerMetrics:
    """Every metric KULTA's reconciler exports, behind intention-revealing methods."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self._rollouts = Gauge(
            METRIC_ROLLOUTS, "Rollouts known to the reconciler, by phase.", [LABEL_PHASE], registry=registry
        )
        self._step_duration = Histogram(
            METRIC_STEP_DURATION,
            "Wall-clock seconds one canary step took, from its Pulumi update to its completion (pauses included).",
            buckets=STEP_BUCKETS,
            registry=registry,
        )
        self._pulumi_update = Histogram(
            METRIC_PULUMI_UPDATE_DURATION,
            "Seconds one Pulumi update took, by result.",
            [LABEL_RESULT],
            buckets=PULUMI_BUCKETS,
            registry=registry,
        )
        self._analysis = Counter(
            METRIC_ANALYSIS_MEASUREMENTS,
            "Analysis measurements taken, by measurement phase.",
            [LABEL_PHASE],
            registry=registry,
        )
        self._git_failures = Counter(
            METRIC_GIT_FETCH_FAILURES, "Git clone or fetch attempts that failed.", registry=registry
        )
        self._git_last_sync = Gauge(
            METRIC_GIT_LAST_SYNC, "Unix time of the last successful Git sync.", registry=registry
        )
        self._events_pending = Gauge(
            METRIC_EVENTS_PENDING, "CDEvents in the outbox waiting for delivery.", registry=registry
        )
        self._reconcile = Counter(
            METRIC_RECONCILE_PASSES, "Reconcile passes, by result.", [LABEL_RESULT], registry=registry
        )
        self._dependency_failures = Counter(
            METRIC_DEPENDENCY_FAILURES,
            "Rollout passes that failed, by what failed (a dependency such as the Kubernetes API server).",
            [LABEL_DEPENDENCY],
            registry=registry,
        )
        self._failing = Gauge(
            METRIC_ROLLOUTS_FAILING, "Rollouts whose last attempt failed (retried with backoff).", registry=registry
        )
        # Export zeros for the known label values so rate() and absent() behave from the first scrape.
        self._phases_seen: set[str] = {p.value for p in Phase}
        for phase in Phase:
            self._rollouts.labels(phase.value).set(0)
        for measurement in MeasurementPhase:
            self._analysis.labels(measurement.value)
        for result in ReconcileResult:
            self._reconcile.labels(result.value)

    def set_rollout_phases(self, counts: Mapping[str, int] | Mapping[Phase, int]) -> None:
        """Replace the per-phase rollout counts; phases missing from ``counts`` drop to 0."""
        current = {_label(phase): int(n) for phase, n in counts.items()}
        negative = {phase: n for phase, n in current.items() if n < 0}
        if negative:
            raise ValueError(f"rollout counts must not be negative: {negative}")
        for phase in self._phases_seen - current.keys():
            self._rollouts.labels(phase).set(0)
        for phase, n in current.items():
            self._rollouts.labels(phase).set(n)
        self._phases_seen |= current.keys()

    def observe_step_duration(self, seconds: float) -> None:
        self._step_duration.observe(seconds)

    def observe_pulumi_update(self, seconds: float, result: str | PulumiResult) -> None:
        self._pulumi_update.labels(_label(result)).observe(seconds)

    def count_analysis_result(self, phase: str | MeasurementPhase) -> None:
        self._analysis.labels(_label(phase)).inc()

    def count_git_fetch_failure(self) -> None:
        self._git_failures.inc()

    def set_git_last_sync(self, unix_time: float) -> None:
        self._git_last_sync.set(unix_time)

    def set_events_pending(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"pending event count is negative: {n}")
        self._events_pending.set(n)

    def count_dependency_failure(self, dependency: str) -> None:
        self._dependency_failures.labels(_label(dependency)).inc()

    def set_rollouts_failing(self, n: int) -> None:
        self._failing.set(n)

    def count_reconcile(self, result: str | ReconcileResult) -> None:
        self._reconcile.labels(_label(result)).inc()

    def start_http_server(self, host: str, port: int) -> MetricsServer:
        """Serve this registry at ``http://host:port/metrics`` from a daemon thread (port 0 picks one)."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(server.server_port)
        log.info("metrics endpoint listening on %s:%d", host, bound, extra={"port": bound})
        return MetricsServer(host=host, port=bound, _server=server, _thread=thread)
