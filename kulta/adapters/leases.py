"""Rollouts shared between replicas of ``kulta run`` through ``coordination.k8s.io/v1`` Leases.

``LeaseApi`` makes exactly four kinds of call, all in the one namespace given by
``--lease-namespace`` (what deploy/'s Role grants): ``list`` and ``get`` leases,
``create`` a lease, ``update`` (replace, with the resourceVersion read: optimistic
concurrency) a lease. Nothing is deleted or watched: a dead replica's heartbeat lease
simply expires, and a released rollout lease keeps its object with no holder.

``LeaseKeeper`` runs one tick every ``duration / 3`` from the loop: one list, the
replica's heartbeat, then the renewals, claims and releases the pure planner
(``kulta.core.leases.plan_leases``) decides. ``fence`` is called right before each
Pulumi update: the lease must be held locally with at least one tick period left,
and one ``get`` must show this replica as the holder; otherwise ``LeaseLostError``
and no update starts. The Pulumi stack lock stays the second guard, for an update
already in flight when the lease runs out.

The kubernetes client's ``leaderelection`` package elects one leader for one lock
(a ConfigMap); KULTA needs many leases per replica with a fair share, so it uses
``CoordinationV1Api`` and the ``V1Lease`` models directly, with client-go's expiry
rule (see ``kulta.core.leases``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kulta.adapters.kube import call_api, new_api_client
from kulta.core.constants import LABEL_MANAGED_BY
from kulta.core.leases import (
    LeaseKind,
    LeasePlan,
    LeaseRecord,
    Seen,
    lease_name,
    live_replicas,
    observe,
    plan_leases,
    process_outlived,
)
from kulta.errors import ConfigError, DependencyError, KultaError, LeaseLostError

__all__ = ["LeaseApi", "LeaseKeeper", "LeaseSettings", "ReplicaPods", "TickReport", "lease_holders"]

log = logging.getLogger(__name__)

MANAGED_BY = "kulta"
LABEL_LEASE_KIND = "kulta.io/lease"
ANNOTATION_KEY = "kulta.io/key"
ANNOTATION_ENVIRONMENT = "kulta.io/environment"
CONFLICT = 409
#: leases read per list call, and at most in all (an answer is untrusted input)
LIST_PAGE = 500
MAX_LEASES = 10_000
#: at least three ticks per duration, a tick at most once a second (the loop's granularity)
MIN_DURATION = 3.0
MAX_DURATION = 3600.0
MAX_IDENTITY = 128
MIN_TIMEOUT = 5.0


def _micro_now() -> datetime:
    """Now as a MicroTime the API server parses: the client writes ``isoformat()``, which
    drops the fraction at microsecond 0, and MicroTime wants exactly six digits."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond or 1)


@dataclass(frozen=True)
class LeaseSettings:
    """``--lease-namespace``, ``--identity``, ``--lease-duration`` (seconds), and the environment."""

    namespace: str
    identity: str
    environment: str
    duration: float = 15.0

    def __post_init__(self) -> None:
        if not MIN_DURATION <= self.duration <= MAX_DURATION:
            raise ConfigError(
                f"--lease-duration: {self.duration:g}s is outside {MIN_DURATION:g}..{MAX_DURATION:g} seconds"
            )
        if not self.identity or len(self.identity) > MAX_IDENTITY or not self.identity.isprintable():
            raise ConfigError(f"--identity: use 1 to {MAX_IDENTITY} printable characters")
        if any(c.isspace() for c in self.identity):
            raise ConfigError(f"--identity: {self.identity!r} holds white space")

    @property
    def period(self) -> float:
        """Seconds between ticks: a third of the duration (client-go renews as often)."""
        return self.duration / 3


class LeaseApi:
    """The four lease calls, in one namespace; API errors become ``DependencyError``."""

    def __init__(self, namespace: str, kubeconfig: str | None, timeout: float) -> None:
        self.namespace = namespace
        self._api = client.CoordinationV1Api(new_api_client(kubeconfig))
        #: connect and read: a lease call that hangs must not hold the loop long, and one
        #: slow answer on a loaded machine must not fail a tick: 5 s at least
        self.timeout = (max(MIN_TIMEOUT, timeout), max(MIN_TIMEOUT, timeout))
        #: calls made, by verb (the measurement in bench/leases.py)
        self.calls: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def count_call(self, verb: str) -> None:
        with self._count_lock:
            self.calls[verb] = self.calls.get(verb, 0) + 1

    def list(self, environment: str) -> list[LeaseRecord]:
        """KULTA's leases of ``environment`` in the namespace (bounded: ``MAX_LEASES``)."""
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_LEASE_KIND}"
        records: list[LeaseRecord] = []
        token: str | None = None
        while len(records) < MAX_LEASES:
            self.count_call("list")
            kwargs: dict[str, Any] = {"label_selector": selector, "limit": LIST_PAGE}
            if token:
                kwargs["_continue"] = token
            answer = call_api(
                f"listing leases in {self.namespace}",
                lambda kwargs=kwargs: self._api.list_namespaced_lease(  # type: ignore[misc]
                    self.namespace, _request_timeout=self.timeout, **kwargs
                ),
            )
            for item in answer.items or []:
                record = _record(item)
                if record is not None and _environment(item) == environment:
                    records.append(record)
            token = answer.metadata._continue if answer.metadata is not None else None
            if not token:
                break
        return records[:MAX_LEASES]

    def get(self, name: str) -> LeaseRecord | None:
        self.count_call("get")
        lease = call_api(
            f"reading lease {self.namespace}/{name}",
            lambda: self._api.read_namespaced_lease(name, self.namespace, _request_timeout=self.timeout),
            missing=lambda: None,
        )
        return None if lease is None else _record(lease)

    def create(self, kind: LeaseKind, key: str, environment: str, holder: str, duration: float) -> LeaseRecord | None:
        """A new lease held by ``holder``; None when another replica created it first."""
        self.count_call("create")
        now = _micro_now()
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=lease_name(kind, key, environment),
                namespace=self.namespace,
                labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_LEASE_KIND: kind.value},
                annotations={ANNOTATION_KEY: key, ANNOTATION_ENVIRONMENT: environment},
            ),
            spec=client.V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=math.ceil(duration),
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        return self._write(
            f"creating lease {self.namespace}/{lease_name(kind, key, environment)}",
            lambda: self._api.create_namespaced_lease(self.namespace, body, _request_timeout=self.timeout),
        )

    def update(self, record: LeaseRecord, environment: str, holder: str, duration: float) -> LeaseRecord | None:
        """Renew, take over or release (``holder`` "") ``record``; None when it changed since it was read."""
        self.count_call("update")
        now = _micro_now()
        taken = holder != record.holder
        spec = client.V1LeaseSpec(
            holder_identity=holder or None,
            lease_duration_seconds=math.ceil(duration),
            renew_time=now if holder else None,
            lease_transitions=record.transitions + (1 if taken and holder else 0),
        )
        if taken and holder:
            spec.acquire_time = now
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=record.name,
                namespace=self.namespace,
                resource_version=record.version,
                labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_LEASE_KIND: record.kind.value},
                annotations={ANNOTATION_KEY: record.key, ANNOTATION_ENVIRONMENT: environment},
            ),
            spec=spec,
        )
        return self._write(
            f"updating lease {self.namespace}/{record.name}",
            lambda: self._api.replace_namespaced_lease(
                record.name, self.namespace, body, _request_timeout=self.timeout
            ),
        )

    def _write(self, what: str, call: Callable[[], Any]) -> LeaseRecord | None:
        try:
            answer = call_api(what, call)
        except DependencyError as exc:
            if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == CONFLICT:
                return None  # another replica wrote first: this tick loses that lease
            raise
        return _record(answer)


def lease_holders(api: LeaseApi, environment: str) -> dict[str, str]:
    """Rollout stack name → holder identity ("" when released), from one list (``kulta status``)."""
    return {r.key: r.holder for r in api.list(environment) if r.kind is LeaseKind.ROLLOUT}


class ReplicaPods:
    """Is the replica that wrote a Pulumi lock gone? (``StackManager.owner_gone``)

    A replica killed during an update leaves its Pulumi lock; on Kubernetes its pod
    and its host are gone with it, so the pid check of ``lock_is_dead`` cannot see
    it. A lock's ``hostname`` is judged only when it is the identity of a KULTA
    replica of this environment (a heartbeat Lease names it; deploy/ sets
    ``--identity`` to the pod's name, which is its hostname): a lock written by
    a developer's machine or a CI job is never touched. Such a replica's lock is
    dead when its pod (``get pods/<hostname>`` in the lease namespace) no longer
    exists, has ended, or runs no container started before the lock
    (``kulta.core.leases.process_outlived``). An API error judges nothing.
    """

    def __init__(self, api: LeaseApi, environment: str, kubeconfig: str | None) -> None:
        self.api = api
        self.environment = environment
        self._core = client.CoreV1Api(new_api_client(kubeconfig))

    def __call__(self, hostname: str, locked_at: datetime) -> bool:
        try:
            replicas = {r.key for r in self.api.list(self.environment) if r.kind is LeaseKind.REPLICA}
            if hostname not in replicas:
                return False
            self.api.count_call("get pod")
            pod = call_api(
                f"reading pod {self.api.namespace}/{hostname}",
                lambda: self._core.read_namespaced_pod(hostname, self.api.namespace, _request_timeout=self.api.timeout),
                missing=lambda: None,
            )
        except DependencyError as exc:
            log.warning("cannot tell whether replica %s is gone; its lock stays: %s", hostname, exc)
            return False
        if pod is None:
            log.warning("replica %s: its pod is gone; its Pulumi lock is dead", hostname)
            return True
        status = pod.status
        statuses = (status.container_statuses if status is not None else None) or []
        running = [c.state.running.started_at for c in statuses if c.state is not None and c.state.running is not None]
        phase = str(status.phase or "") if status is not None else ""
        gone = process_outlived(phase, [t for t in running if t is not None], len(statuses), locked_at)
        if gone:
            log.warning("replica %s: its pod restarted or ended after the lock was taken; the lock is dead", hostname)
        return gone


def _environment(lease: Any) -> str:
    annotations = (lease.metadata.annotations if lease.metadata is not None else None) or {}
    return str(annotations.get(ANNOTATION_ENVIRONMENT, ""))


def _record(lease: Any) -> LeaseRecord | None:
    """A Lease as KULTA reads it; None for one without KULTA's label and key."""
    meta, spec = lease.metadata, lease.spec
    if meta is None or not meta.name or not meta.resource_version:
        return None
    try:
        kind = LeaseKind((meta.labels or {}).get(LABEL_LEASE_KIND, ""))
    except ValueError:
        return None
    key = str((meta.annotations or {}).get(ANNOTATION_KEY, ""))
    if not key or lease_name(kind, key, _environment(lease)) != meta.name:
        return None  # not a lease KULTA named: never touched
    holder = (spec.holder_identity if spec is not None else None) or ""
    duration = (spec.lease_duration_seconds if spec is not None else None) or 0
    transitions = (spec.lease_transitions if spec is not None else None) or 0
    return LeaseRecord(meta.name, kind, key, str(holder), float(duration), str(meta.resource_version), transitions)


@dataclass(frozen=True)
class TickReport:
    """What one tick changed: rollouts gained and lost, what is held, and the fair share."""

    gained: frozenset[str]
    lost: frozenset[str]
    held: frozenset[str]
    live: int
    share: int
    #: why the tick stopped early ("" when it did not)
    error: str = ""


class LeaseKeeper:
    """This replica's rollout leases: ticks from the loop, fences from the workers."""

    def __init__(self, settings: LeaseSettings, api: LeaseApi, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.api = api
        self.clock = clock
        self._lock = threading.Lock()
        #: held rollout → monotonic time its lease runs out (request start + duration)
        self._held: dict[str, float] = {}
        self._records: dict[str, LeaseRecord] = {}
        self._seen: dict[str, Seen] = {}
        self._ticks = 0

    @property
    def identity(self) -> str:
        return self.settings.identity

    @property
    def period(self) -> float:
        return self.settings.period

    def holds(self, key: str) -> bool:
        """Held with at least one tick period left (no turn starts on a lease about to run out)."""
        with self._lock:
            deadline = self._held.get(key)
        return deadline is not None and deadline - self.clock() >= self.period

    def held(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)

    def fence(self, key: str) -> None:
        """Right before a Pulumi update: raise ``LeaseLostError`` unless this replica still holds ``key``."""
        if not self.holds(key):
            raise LeaseLostError(f"{key}: this replica's lease ran out or was released; no update started")
        record = self.api.get(lease_name(LeaseKind.ROLLOUT, key, self.settings.environment))
        if record is None or record.holder != self.identity:
            self._drop(key)
            holder = record.holder if record is not None else "nobody"
            raise LeaseLostError(f"{key}: the lease is held by {holder or 'nobody'}; no update started")

    def _drop(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def tick(self, wanted: Iterable[str], busy: Iterable[str]) -> TickReport:
        """One list, the heartbeat, then the planned renewals, claims and releases.

        The first tick only announces this replica (no claims): replicas started
        together then see each other before sharing. An API failure ends the tick
        early; held leases keep their deadlines and run out if it lasts.
        """
        before = self.held()
        start = self.clock()
        error = ""
        plan: LeasePlan | None = None
        live = 0
        try:
            plan, live = self._plan(set(wanted), set(busy), start)
            self._execute(plan, start)
        except DependencyError as exc:
            log.warning("lease tick failed; leases run out unless renewed", extra={"error": str(exc)})
            error = str(exc)
        self._ticks += 1
        now = self.clock()
        with self._lock:
            for key in [k for k, deadline in self._held.items() if deadline <= now]:
                del self._held[key]
            after = frozenset(self._held)
        return TickReport(after - before, before - after, after, live, plan.share if plan else 0, error)

    def _plan(self, wanted: set[str], busy: set[str], start: float) -> tuple[LeasePlan, int]:
        env = self.settings.environment
        records = self.api.list(env)
        self._seen = observe(self._seen, records, start)
        self._heartbeat({(r.kind, r.key): r for r in records}, start)
        live = len(live_replicas(records, self._seen, self.identity, start))
        rollouts = {r.key: r for r in records if r.kind is LeaseKind.ROLLOUT}
        self._records = rollouts
        plan = plan_leases(self.identity, wanted, rollouts, self._seen, live, busy, start, claiming=self._ticks > 0)
        return plan, live

    def _heartbeat(self, by_key: dict[tuple[LeaseKind, str], LeaseRecord], start: float) -> None:
        env, me, duration = self.settings.environment, self.identity, self.settings.duration
        mine = by_key.get((LeaseKind.REPLICA, me))
        if mine is None:
            self.api.create(LeaseKind.REPLICA, me, env, me, duration)
        else:
            self.api.update(mine, env, me, duration)

    def _execute(self, plan: LeasePlan, start: float) -> None:
        env, me, duration = self.settings.environment, self.identity, self.settings.duration
        for key in plan.release:
            self._drop(key)  # fenced from now on, whether or not the write lands
        calls: list[tuple[str, Callable[[], LeaseRecord | None]]] = []
        for key in plan.renew + plan.claim:
            record = self._records[key]
            calls.append((key, lambda record=record: self.api.update(record, env, me, duration)))  # type: ignore[misc]
        for key in plan.create:
            calls.append((key, lambda key=key: self.api.create(LeaseKind.ROLLOUT, key, env, me, duration)))  # type: ignore[misc]
        for key, call in calls:
            written = call()
            with self._lock:
                if written is not None and written.holder == me:
                    self._held[key] = start + duration
                else:
                    self._held.pop(key, None)  # someone else wrote it first
        for key in plan.release:
            self.api.update(self._records[key], env, "", duration)
        if plan.claim or plan.create or plan.release:
            log.info(
                "leases changed",
                extra={"claimed": len(plan.claim) + len(plan.create), "released": len(plan.release)},
            )

    def release_all(self) -> None:
        """On a clean stop: give every held rollout and the heartbeat back (peers take over at once)."""
        env, duration = self.settings.environment, self.settings.duration
        with self._lock:
            held, self._held = set(self._held), {}
        try:
            records = self.api.list(env)
        except KultaError as exc:
            log.warning("leases not released; they run out by themselves", extra={"error": str(exc)})
            return
        for record in records:
            mine = record.holder == self.identity
            if mine and (record.kind is LeaseKind.REPLICA or record.key in held):
                try:
                    self.api.update(record, env, "", duration)
                except KultaError as exc:
                    log.warning("lease not released", extra={"lease": record.name, "error": str(exc)})
