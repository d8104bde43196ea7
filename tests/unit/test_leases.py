"""The lease planner (kulta.core.leases) and what the CLI shows of leases, with worked examples.

Expiry is client-go's rule (``tryAcquireOrRenew``: ``observedTime + LeaseDuration``);
the fair share is ``ceil(wanted / live replicas)``.
"""

from __future__ import annotations

import io

import pytest

from kulta.adapters.leases import LeaseApi, LeaseKeeper, LeaseSettings
from kulta.adapters.stacks import HistoryEntry
from kulta.app.commands import StackRef, format_history, format_status_table
from kulta.core.leases import (
    LeaseKind,
    LeaseRecord,
    Seen,
    expired,
    fair_share,
    lease_name,
    live_replicas,
    observe,
    plan_leases,
)
from kulta.errors import ConfigError, Dependency, DependencyError, LeaseLostError

KEYS = [f"dev.shop.r{n}" for n in range(9)]


def rollout(key: str, holder: str, version: str = "1", duration: float = 15.0) -> LeaseRecord:
    return LeaseRecord(lease_name(LeaseKind.ROLLOUT, key, "dev"), LeaseKind.ROLLOUT, key, holder, duration, version)


def replica(identity: str, version: str = "1") -> LeaseRecord:
    return LeaseRecord(
        lease_name(LeaseKind.REPLICA, identity, "dev"), LeaseKind.REPLICA, identity, identity, 15.0, version
    )


@pytest.mark.parametrize(
    ("wanted", "live", "share"),
    [(9, 3, 3), (10, 3, 4), (50, 3, 17), (0, 3, 0), (5, 1, 5), (2, 3, 1), (5, 0, 5)],
)
def test_fair_share_is_the_ceiling_of_rollouts_per_live_replica(wanted: int, live: int, share: int) -> None:
    assert fair_share(wanted, live) == share


def test_lease_names_are_dns_subdomains_whatever_the_key() -> None:
    name = lease_name(LeaseKind.ROLLOUT, "Prod_EU.team a/β.web", "dev")
    assert name.startswith("kulta-rollout-") and len(name) == len("kulta-rollout-") + 20
    assert name == name.lower() and all(c.isalnum() or c == "-" for c in name)
    assert lease_name(LeaseKind.REPLICA, "a", "dev") != lease_name(LeaseKind.ROLLOUT, "a", "dev")
    # one identity in two environments sharing the lease namespace: two heartbeats
    assert lease_name(LeaseKind.REPLICA, "kulta-0", "dev") != lease_name(LeaseKind.REPLICA, "kulta-0", "prod")


def test_observation_time_is_kept_while_the_record_does_not_change() -> None:
    seen = observe({}, [rollout("k", "r1", "7")], 100.0)
    assert seen[lease_name(LeaseKind.ROLLOUT, "k", "dev")] == Seen("7", 100.0)
    seen = observe(seen, [rollout("k", "r1", "7")], 110.0)
    assert seen[lease_name(LeaseKind.ROLLOUT, "k", "dev")] == Seen("7", 100.0)
    seen = observe(seen, [rollout("k", "r1", "8")], 112.0)  # renewed: a new resourceVersion
    assert seen[lease_name(LeaseKind.ROLLOUT, "k", "dev")] == Seen("8", 112.0)


def test_a_lease_expires_a_full_duration_after_this_replica_last_saw_it_change() -> None:
    record = rollout("k", "r1", "7", duration=15.0)
    seen = Seen("7", 100.0)
    assert not expired(record, seen, 114.9)
    assert expired(record, seen, 115.0)
    assert not expired(record, None, 1e9)  # never observed: counts as renewed now
    assert not expired(record, Seen("6", 0.0), 1e9)  # observed an older record
    assert expired(rollout("k", "", "7"), None, 0.0)  # released: free at once


def test_live_replicas_are_the_unexpired_heartbeats_and_always_this_one() -> None:
    records = [replica("r1", "5"), replica("r2", "9"), rollout("k", "r3")]
    seen = {
        lease_name(LeaseKind.REPLICA, "r1", "dev"): Seen("5", 0.0),
        lease_name(LeaseKind.REPLICA, "r2", "dev"): Seen("9", 10.0),
    }
    assert live_replicas(records, seen, "me", 14.0) == {"me", "r1", "r2"}
    assert live_replicas(records, seen, "me", 15.0) == {"me", "r2"}  # r1 silent for 15 s
    assert live_replicas(records, seen, "me", 25.0) == {"me"}


def test_the_first_tick_claims_nothing_and_later_ticks_claim_the_fair_share() -> None:
    first = plan_leases("r1", KEYS, {}, {}, live=1, busy=(), now=0.0, claiming=False)
    assert (first.claim, first.create, first.renew, first.release) == ((), (), (), ())
    later = plan_leases("r1", KEYS, {}, {}, live=3, busy=(), now=5.0)
    assert len(later.create) == 3 and later.share == 3 and not later.claim
    assert set(later.create) <= set(KEYS)


def test_three_replicas_each_holding_three_renew_and_claim_nothing() -> None:
    records = {k: rollout(k, f"r{i // 3}") for i, k in enumerate(KEYS)}
    plan = plan_leases("r0", KEYS, records, {}, live=3, busy=(), now=50.0)
    assert set(plan.renew) == set(KEYS[:3])
    assert (plan.claim, plan.create, plan.release) == ((), (), ())


def test_a_replica_holding_everything_gives_back_its_surplus_but_never_a_busy_rollout() -> None:
    records = {k: rollout(k, "r1") for k in KEYS}
    busy = set(KEYS[:2])
    plan = plan_leases("r1", KEYS, records, {}, live=3, busy=busy, now=0.0)
    assert len(plan.release) == 6 and not busy & set(plan.release)
    assert len(plan.renew) == 3 and busy <= set(plan.renew)  # the share stays held
    # with 5 busy the share of 3 is exceeded by two busy rollouts: kept until their turns end
    plan = plan_leases("r1", KEYS, records, {}, live=3, busy=set(KEYS[:5]), now=0.0)
    assert set(plan.renew) == set(KEYS[:5]) and len(plan.release) == 4


def test_a_dead_replicas_rollouts_are_claimed_after_the_duration_and_not_before() -> None:
    records = {k: rollout(k, "dead" if i < 3 else f"r{i % 2}", "4") for i, k in enumerate(KEYS)}
    # the dead replica's leases last changed at 100; the live ones were renewed at 110
    seen = {r.name: Seen("4", 100.0 if r.holder == "dead" else 110.0) for r in records.values()}
    early = plan_leases("r0", KEYS, records, seen, live=2, busy=(), now=114.0)
    assert not early.claim
    # r0 holds its 3 of 6; share ceil(9/2) = 5: two of the dead replica's three, the rest for r1
    late = plan_leases("r0", KEYS, records, seen, live=2, busy=(), now=115.0)
    assert len(late.claim) == 2 and set(late.claim) <= set(KEYS[:3])


def test_a_rollout_that_left_git_is_released() -> None:
    records = {"dev.shop.gone": rollout("dev.shop.gone", "r1"), KEYS[0]: rollout(KEYS[0], "r1")}
    plan = plan_leases("r1", KEYS[:1], records, {}, live=1, busy=(), now=0.0)
    assert plan.release == ("dev.shop.gone",) and plan.renew == (KEYS[0],)


@pytest.mark.parametrize(
    ("duration", "identity", "flag"),
    [
        (2.0, "r1", "--lease-duration"),
        (3601.0, "r1", "--lease-duration"),
        (15.0, "", "--identity"),
        (15.0, "a b", "--identity"),
        (15.0, "x" * 129, "--identity"),
        (15.0, "r\x1b1", "--identity"),
    ],
)
def test_lease_flags_out_of_bounds_are_refused_by_name(duration: float, identity: str, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        LeaseSettings(namespace="kulta", identity=identity, environment="dev", duration=duration)


def test_the_tick_period_is_a_third_of_the_duration() -> None:
    assert LeaseSettings(namespace="kulta", identity="r1", environment="dev", duration=15.0).period == 5.0


def test_status_shows_the_holder_column_only_with_leases() -> None:
    ref = StackRef("dev.shop.web", "dev", "shop", "web")
    plain, shared = io.StringIO(), io.StringIO()
    format_status_table([(ref, None)], plain)
    format_status_table([(ref, None)], shared, {"dev.shop.web": "kulta-1"})
    assert "HOLDER" not in plain.getvalue()
    header, row = shared.getvalue().splitlines()
    assert header.split()[:2] == ["ROLLOUT", "HOLDER"] and row.split()[:2] == ["shop/web", "kulta-1"]


def test_history_names_the_replica_of_each_update_when_replicas_shared_the_rollout() -> None:
    message = "kulta step=1/3 canary=25% phase=Progressing replica=kulta-2 commit=abc123 :: applying step 1"
    entry = HistoryEntry(1, "2026-12-01T18:00:00+00:00", "", "succeeded", message, {"update": 1})
    out = io.StringIO()
    format_history([entry], out)
    header, row = out.getvalue().splitlines()
    assert "REPLICA" in header.split()
    assert row.split()[header.split().index("REPLICA") + 1] == "kulta-2"  # TIME is two words
    plain = io.StringIO()
    format_history([HistoryEntry(1, "2026-12-01T18:00:00+00:00", "", "succeeded", "kulta step=1/3 :: x", {})], plain)
    assert "REPLICA" not in plain.getvalue()


def test_leases_with_once_are_refused_by_name(tmp_path, capsys) -> None:
    from kulta.cli import main

    repo = tmp_path / "repo"
    repo.mkdir()
    argv = ["run", "--once", "--repo", str(repo), "--state-dir", str(tmp_path / "s"), "--lease-namespace", "kulta"]
    assert main(argv) == 1
    out = capsys.readouterr()
    assert "--lease-namespace" in out.out + out.err and "--once" in out.out + out.err


@pytest.mark.parametrize(("text", "seconds"), [("15", 15.0), ("15s", 15.0), ("1.5s", 1.5), ("1m", 60.0)])
def test_lease_duration_reads_seconds_and_minutes(text: str, seconds: float) -> None:
    from kulta.cli import _parser

    args = _parser().parse_args(["run", "--repo", "r", "--lease-duration", text])
    assert args.lease_duration == seconds
    assert args.lease_namespace is None  # leasing stays off unless asked for


def test_a_lease_duration_that_is_no_duration_is_refused(capsys) -> None:
    from kulta.cli import _parser

    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--repo", "r", "--lease-duration", "soon"])
    assert "'soon' is not a duration" in capsys.readouterr().err


class MemoryLeases(LeaseApi):
    """The four lease calls on a dict, with the API server's optimistic concurrency (409 → None)."""

    def __init__(self) -> None:
        self.namespace = "kulta"
        self.store: dict[str, LeaseRecord] = {}
        self.versions = 0
        self.calls = {}
        self.reachable = True

    def _next(self, record: LeaseRecord, holder: str, transitions: int) -> LeaseRecord:
        if not self.reachable:
            raise DependencyError(Dependency.KUBERNETES, "connection refused")
        self.versions += 1
        stored = LeaseRecord(
            record.name, record.kind, record.key, holder, record.duration, str(self.versions), transitions
        )
        self.store[record.name] = stored
        return stored

    def list(self, environment: str) -> list[LeaseRecord]:
        if not self.reachable:
            raise DependencyError(Dependency.KUBERNETES, "connection refused")
        return list(self.store.values())

    def get(self, name: str) -> LeaseRecord | None:
        if not self.reachable:
            raise DependencyError(Dependency.KUBERNETES, "connection refused")
        return self.store.get(name)

    def create(self, kind: LeaseKind, key: str, environment: str, holder: str, duration: float) -> LeaseRecord | None:
        name = lease_name(kind, key, environment)
        if name in self.store:
            return None
        return self._next(LeaseRecord(name, kind, key, holder, duration, ""), holder, 0)

    def update(self, record: LeaseRecord, environment: str, holder: str, duration: float) -> LeaseRecord | None:
        current = self.store.get(record.name)
        if current is None or current.version != record.version:
            return None
        return self._next(record, holder, record.transitions + (holder != record.holder))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def keeper(api: MemoryLeases, identity: str, clock: Clock) -> LeaseKeeper:
    return LeaseKeeper(LeaseSettings("kulta", identity, "dev", duration=15.0), api, clock)


def test_two_keepers_split_the_rollouts_and_the_survivor_takes_over_after_the_duration() -> None:
    api, clock = MemoryLeases(), Clock()
    a, b = keeper(api, "a", clock), keeper(api, "b", clock)
    wanted = set(KEYS[:4])
    assert not a.tick(wanted, ()).gained and not b.tick(wanted, ()).gained  # first ticks: heartbeats only
    clock.now = 5.0
    assert len(a.tick(wanted, ()).gained) == 2 and len(b.tick(wanted, ()).gained) == 2
    assert a.held().isdisjoint(b.held())
    a.fence(next(iter(a.held())))  # held, and the API server agrees
    # a stops ticking (killed) after its claims at 5 s, which b saw at 5 s: b claims them at 20 s
    lost = set(a.held())
    for now in (10.0, 15.0, 19.9):
        clock.now = now
        assert not b.tick(wanted, ()).gained & lost
    clock.now = 20.0
    report = b.tick(wanted, ())
    assert report.gained == lost and report.held == wanted and report.share == 4
    # a's own deadline (5 + 15 s) has passed too: its fence refuses without asking
    with pytest.raises(LeaseLostError, match="ran out"):
        a.fence(sorted(lost)[0])
    # b's lease rewritten by someone else (a peer with a longer clock, a person): the get refuses
    key = sorted(lost)[1]
    name = lease_name(LeaseKind.ROLLOUT, key, "dev")
    api.store[name] = LeaseRecord(name, LeaseKind.ROLLOUT, key, "x", 15.0, "999")
    with pytest.raises(LeaseLostError, match="held by x"):
        b.fence(key)
    assert key not in b.held()


def test_a_keeper_cut_from_the_api_server_stops_updating_before_anyone_may_take_over() -> None:
    api, clock = MemoryLeases(), Clock()
    a = keeper(api, "a", clock)
    a.tick(KEYS[:2], ())
    clock.now = 5.0
    a.tick(KEYS[:2], ())
    key = sorted(a.held())[0]
    api.reachable = False
    clock.now = 10.0
    assert a.tick(KEYS[:2], ()).error  # said, and the leases keep their deadlines (5 + 15)
    with pytest.raises(DependencyError):
        a.fence(key)  # the get cannot confirm: no update
    clock.now = 14.9  # claimed at 5 s for 15 s: 5.1 s left, more than a tick period (5 s)
    assert a.holds(key)
    clock.now = 15.1  # 4.9 s left: no turn and no update starts (peers may take over at 20 s)
    assert not a.holds(key)
    with pytest.raises(LeaseLostError):
        a.fence(key)


def test_a_process_is_outlived_only_by_a_pod_that_ended_or_restarted_after_the_lock() -> None:
    from datetime import UTC, datetime, timedelta

    from kulta.core.leases import process_outlived

    locked = datetime(2026, 12, 1, 21, 0, 0, tzinfo=UTC)
    before, after = locked - timedelta(minutes=5), locked + timedelta(seconds=1)
    # still running since before the lock: its process may hold it
    assert not process_outlived("Running", [before], 1, locked)
    # the container restarted (crash, OOM) after the lock: the old process is gone
    assert process_outlived("Running", [after], 1, locked)
    # a sidecar started before the lock keeps the pod's lock alive (never a false "gone")
    assert not process_outlived("Running", [after, before], 2, locked)
    # the pod ended, or no container runs (CrashLoopBackOff waiting)
    assert process_outlived("Failed", [], 1, locked)
    assert process_outlived("Succeeded", [], 1, locked)
    assert process_outlived("Running", [], 1, locked)
    # nothing reported yet (Pending, no container statuses): not judged
    assert not process_outlived("Pending", [], 0, locked)
    # started exactly at the lock's second (startedAt has seconds only): not judged
    assert not process_outlived("Running", [locked], 1, locked)
