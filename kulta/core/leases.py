"""Which rollouts a replica of ``kulta run`` claims, renews and releases (pure).

N replicas share the rollouts through ``coordination.k8s.io/v1`` Leases: one Lease
per rollout (held by the replica that drives it) and one heartbeat Lease per
replica (how the others count the live replicas). See docs/adr/0007-one-lease-per-rollout.md.

Expiry follows client-go's ``LeaderElector.tryAcquireOrRenew``
(k8s.io/client-go/tools/leaderelection/leaderelection.go): a lease held by another
replica is expired when *this* replica has seen the same record (resourceVersion) for
longer than its ``leaseDurationSeconds`` on its own monotonic clock
(``observedTime + LeaseDuration``), never by comparing the holder's ``renewTime``
with the local wall clock, so clock skew between hosts does not matter. A record
first seen now counts as just renewed: a replica that starts waits one full
duration before taking over a lease held by someone else.

Fair share: a replica holds at most ``ceil(wanted / live replicas)`` rollouts, so a
replica that starts first does not keep every rollout once the others are up. Among
free rollouts each replica prefers its own (rendezvous hashing on identity and key),
so replicas starting together seldom race for the same lease.

Time is an argument (seconds of a monotonic clock); nothing here reads a clock.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "LeaseKind",
    "LeasePlan",
    "LeaseRecord",
    "Seen",
    "expired",
    "fair_share",
    "lease_name",
    "live_replicas",
    "observe",
    "plan_leases",
    "preference",
    "process_outlived",
]

#: a Lease name is a DNS subdomain; a digest keeps any stack name or identity valid and short
NAME_DIGEST_CHARS = 20


class LeaseKind(enum.Enum):
    """What a KULTA Lease stands for (the value of its ``kulta.io/lease`` label)."""

    ROLLOUT = "rollout"
    REPLICA = "replica"


def lease_name(kind: LeaseKind, key: str, environment: str) -> str:
    """The Lease's name for a rollout's stack name or a replica's identity in ``environment``
    (replicas of two environments may share the lease namespace, with the same identities).

    >>> lease_name(LeaseKind.ROLLOUT, "dev.shop.web", "dev")
    'kulta-rollout-107fcc2f7f0c4913bcf9'
    """
    digest = hashlib.sha256(f"{environment}\0{key}".encode()).hexdigest()[:NAME_DIGEST_CHARS]
    return f"kulta-{kind.value}-{digest}"


@dataclass(frozen=True)
class LeaseRecord:
    """One Lease as read from the API server.

    ``key`` is the rollout's stack name or the replica's identity; ``holder`` is ""
    when nobody holds it (released); ``version`` is the object's resourceVersion.
    """

    name: str
    kind: LeaseKind
    key: str
    holder: str
    duration: float
    version: str
    transitions: int = 0


@dataclass(frozen=True)
class Seen:
    """When this replica first saw a lease's current record (monotonic seconds)."""

    version: str
    since: float


def observe(previous: Mapping[str, Seen], records: Iterable[LeaseRecord], now: float) -> dict[str, Seen]:
    """The observation times after one list: unchanged records keep their time.

    >>> seen = observe({}, [LeaseRecord("a", LeaseKind.ROLLOUT, "k", "r1", 15.0, "7")], 100.0)
    >>> observe(seen, [LeaseRecord("a", LeaseKind.ROLLOUT, "k", "r1", 15.0, "7")], 110.0)["a"].since
    100.0
    """
    out: dict[str, Seen] = {}
    for record in records:
        before = previous.get(record.name)
        out[record.name] = (
            before if before is not None and before.version == record.version else Seen(record.version, now)
        )
    return out


def expired(record: LeaseRecord, seen: Seen | None, now: float) -> bool:
    """Whether another replica may take the lease: nobody holds it, or its record has not
    changed for ``leaseDurationSeconds`` of this replica's clock (client-go's rule)."""
    if not record.holder:
        return True
    if seen is None or seen.version != record.version:
        return False  # not observed yet: counts as renewed now
    return now >= seen.since + record.duration


def live_replicas(records: Iterable[LeaseRecord], seen: Mapping[str, Seen], me: str, now: float) -> set[str]:
    """Identities whose heartbeat lease is unexpired, this replica always included."""
    live = {me}
    for record in records:
        if record.kind is LeaseKind.REPLICA and not expired(record, seen.get(record.name), now):
            live.add(record.key)
    return live


def fair_share(wanted: int, live: int) -> int:
    """How many rollouts one replica may hold: ``ceil(wanted / live)``.

    >>> fair_share(9, 3), fair_share(10, 3), fair_share(0, 3), fair_share(5, 1)
    (3, 4, 0, 5)
    """
    return math.ceil(wanted / max(1, live))


def preference(identity: str, key: str) -> str:
    """Rendezvous-hash order: replicas sort free rollouts differently, so they seldom race."""
    return hashlib.sha256(f"{identity}\0{key}".encode()).hexdigest()


@dataclass(frozen=True)
class LeasePlan:
    """One tick's lease calls: renew what this replica keeps, claim free or expired
    rollouts (``create`` for those without a Lease yet), release the surplus."""

    renew: tuple[str, ...]
    claim: tuple[str, ...]
    create: tuple[str, ...]
    release: tuple[str, ...]
    share: int


def plan_leases(
    me: str,
    wanted: Iterable[str],
    records: Mapping[str, LeaseRecord],
    seen: Mapping[str, Seen],
    live: int,
    busy: Iterable[str],
    now: float,
    claiming: bool = True,
) -> LeasePlan:
    """Decide one tick for replica ``me``.

    ``wanted`` are the stack names in Git; ``records`` the rollout leases by key;
    ``busy`` the rollouts with a turn in flight (never released mid-turn);
    ``claiming`` False on the first tick, before the peers' heartbeats are known.
    Held rollouts no longer in Git are released; over the fair share, the idle
    ones this replica prefers least are released first.
    """
    wanted_set = set(wanted)
    busy_set = set(busy)
    share = fair_share(len(wanted_set), live)
    mine = sorted((key for key, r in records.items() if r.holder == me), key=lambda k: preference(me, k), reverse=True)
    gone = [k for k in mine if k not in wanted_set and k not in busy_set]
    kept = [k for k in mine if k in wanted_set or k in busy_set]
    release = list(gone)
    surplus = len([k for k in kept if k in wanted_set]) - share
    if surplus > 0:
        idle = [k for k in reversed(kept) if k not in busy_set and k in wanted_set]
        release += idle[:surplus]
    renew = [k for k in kept if k not in release]
    room = share - len([k for k in renew if k in wanted_set])
    claim: list[str] = []
    create: list[str] = []
    if claiming and room > 0:
        free = sorted(
            (
                k
                for k in wanted_set
                if k not in records or (records[k].holder != me and expired(records[k], seen.get(records[k].name), now))
            ),
            key=lambda k: preference(me, k),
        )
        for key in free[:room]:
            (claim if key in records else create).append(key)
    return LeasePlan(tuple(renew), tuple(claim), tuple(create), tuple(release), share)


#: pod phases in which no container of the pod runs any more
ENDED_POD_PHASES = frozenset({"Succeeded", "Failed"})


def process_outlived(phase: str, running_since: Sequence[datetime], containers: int, locked_at: datetime) -> bool:
    """Whether no process that was running in a pod at ``locked_at`` can still run.

    ``running_since`` holds the start of each running container (of ``containers``).
    True when the pod has ended, when none of its containers runs, or when every
    running container started after ``locked_at`` (the pod restarted, or was made
    again under the same name, since the lock was taken). A pod that still runs a
    container started before the lock may hold it: never judged dead.
    """
    if phase in ENDED_POD_PHASES:
        return True
    if containers > 0 and not running_since:
        return True
    return bool(running_since) and min(running_since) > locked_at
