"""Replicas of `kulta run` sharing rollouts through Leases: real processes, cluster and engine.

Three `kulta run --lease-namespace` loops (subprocesses, each with its own state
directory and event outbox) share one Pulumi backend (``shared_backend_url``: PostgreSQL) and a
set of rollouts committed at once. What must hold: every rollout ends in the right
phase; each step of each revision is applied exactly once (the stacks' histories);
the event sink gets every event once by id; a replica killed with SIGKILL mid-step
hands its rollouts over within the lease duration plus one step; a replica cut off
from the API server (its kubeconfig points at a TCP proxy the test stops) starts no
Pulumi update after its lease ran out. Each test prints its figures (``LEASES: …``).

``LEASE_ROLLOUTS`` (environment ``KULTA_LEASE_ROLLOUTS``, default 9) sets how many
rollouts are committed.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from kulta.adapters.leases import LeaseApi, lease_holders
from kulta.adapters.stacks import HistoryEntry, StackManager, StackSettings, stack_name_for
from kulta.model.status import Phase, RolloutStatus
from tests.integration.conftest import ROOT, kubectl, unique, with_table
from tests.integration.eventsink import EventReceiver
from tests.integration.promserver import wait_until
from tests.integration.test_faults import TcpProxy, assert_complete_chains, events_by_id, git, steps_applied

pytestmark = pytest.mark.cluster

ENV = "lease"
LEASE_ROLLOUTS = int(os.environ.get("KULTA_LEASE_ROLLOUTS", "9"))
REPLICAS = ("kulta-a", "kulta-b", "kulta-c")
#: short leases keep the failover tests fast; the tick is a third of it
LEASE_SECONDS = 6.0
#: one step on a loaded 2-core machine: the turn that picks the rollout up and its update
STEP_SECONDS = 20.0
ROLLOUT = """apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: "registry.local/{name}:{tag}"}}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {{duration: {pause}s}}
        - setWeight: 75
"""
#: what each canary's updates say, once each, in the stacks' histories
CANARY_STEPS = {"starting canary", "applying step 1", "applying step 2"}
REPLICA_FIELD = re.compile(r"replica=(\S+)")


@pytest.fixture
def shared_backend_url(postgres_backend: str) -> str:
    """One Pulumi backend every replica uses: PostgreSQL (the session's throwaway server),
    in a table of this test's own."""
    return with_table(postgres_backend, f"leases_{uuid.uuid4().hex[:8]}")


@dataclass
class Replica:
    identity: str
    state: Path
    kubeconfig: Path
    proc: subprocess.Popen[str]
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Fleet:
    cluster: object
    kubeconfig: Path
    tmp: Path
    bare: Path
    work: Path
    ns: str
    lease_ns: str
    backend_url: str
    receiver: EventReceiver
    replicas: dict[str, Replica] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [f"app-{n}" for n in range(LEASE_ROLLOUTS)]

    def stack(self, name: str) -> str:
        return stack_name_for(ENV, self.ns, name)

    def commit(self, tag: str, pause: int) -> str:
        """Every rollout at version ``tag``, in one commit; returns its sha."""
        folder = self.work / "rollouts"
        folder.mkdir(exist_ok=True)
        for name in self.names:
            text = ROLLOUT.format(name=name, ns=self.ns, tag=tag, pause=pause)
            (folder / f"{name}.yaml").write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-qm", tag)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD").strip()

    def start(self, identity: str, kubeconfig: Path | None = None) -> Replica:
        state = self.tmp / identity
        config = kubeconfig or self.kubeconfig
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": str(config), "PULUMI_BACKEND_URL": self.backend_url}
        log = self.tmp / f"{identity}.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kulta.cli",
                "--log-level",
                "INFO",
                "run",
                "--repo",
                f"file://{self.bare}",
                "--path",
                "rollouts",
                "--state-dir",
                str(state),
                "--env",
                ENV,
                "--interval",
                "1",
                "--concurrency",
                "1",
                "--kubeconfig",
                str(config),
                "--sink-url",
                self.receiver.url,
                "--lease-namespace",
                self.lease_ns,
                "--identity",
                identity,
                "--lease-duration",
                f"{LEASE_SECONDS:g}s",
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        replica = Replica(identity, state, config, proc, log)
        self.replicas[identity] = replica
        return replica

    def alive(self, *identities: str) -> None:
        for identity in identities:
            r = self.replicas[identity]
            assert r.proc.poll() is None, f"{identity} exited ({r.proc.returncode}):\n{r.logs()[-3000:]}"

    def kill(self, identity: str) -> None:
        r = self.replicas[identity]
        os.killpg(r.proc.pid, signal.SIGKILL)
        r.proc.wait(timeout=30)

    def stop(self, identity: str) -> int:
        r = self.replicas[identity]
        r.proc.send_signal(signal.SIGTERM)
        return r.proc.wait(timeout=180)

    def stacks(self) -> StackManager:
        return StackManager(
            StackSettings(state_dir=self.tmp / "reader", kubeconfig=str(self.kubeconfig), backend_url=self.backend_url)
        )

    def statuses(self) -> dict[str, RolloutStatus | None]:
        stacks = self.stacks()
        out: dict[str, RolloutStatus | None] = {}
        for name in self.names:
            try:
                outputs = stacks.outputs(self.stack(name))
            except Exception:  # noqa: BLE001 — a stack not created yet, or mid-write
                outputs = {}
            out[name] = RolloutStatus.from_outputs(outputs) if outputs.get("phase") else None
        return out

    def wait_all(self, test: Callable[[RolloutStatus], bool], timeout: float, what: str, *alive: str) -> None:
        deadline = time.monotonic() + timeout
        last: dict[str, RolloutStatus | None] = {}
        while time.monotonic() < deadline:
            self.alive(*alive)
            last = self.statuses()
            if all(st is not None and test(st) for st in last.values()):
                return
            time.sleep(1.0)
        summary = {n: (st.phase.value, st.current_step_index) if st else None for n, st in last.items()}
        tails = "\n".join(f"--- {r.identity}\n{r.logs()[-2000:]}" for r in self.replicas.values())
        raise AssertionError(f"timed out waiting for {what}: {summary}\n{tails}")

    def histories(self) -> dict[str, list[HistoryEntry]]:
        stacks = self.stacks()
        return {n: sorted(stacks.history(self.stack(n), page_size=1000), key=lambda h: h.version) for n in self.names}

    def holders(self) -> dict[str, str]:
        api = LeaseApi(self.lease_ns, str(self.kubeconfig), timeout=10.0)
        return lease_holders(api, ENV)

    def outboxes_drained(self) -> bool:
        return not any(list((r.state / "outbox").rglob("0*.json")) for r in self.replicas.values())


@pytest.fixture
def fleet(cluster, tmp_path, shared_backend_url) -> Iterator[Fleet]:
    ns, lease_ns = unique("lease-apps"), unique("lease-leases")
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "create", "namespace", lease_ns)
    bare, work = tmp_path / "remote.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "config", "user.email", "ci@example.test")
    git(work, "config", "user.name", "CI")
    receiver = EventReceiver()
    receiver.start()
    f = Fleet(cluster, Path(cluster.kubeconfig), tmp_path, bare, work, ns, lease_ns, shared_backend_url, receiver)
    try:
        yield f
    finally:
        for r in f.replicas.values():
            if r.proc.poll() is None:
                os.killpg(r.proc.pid, signal.SIGKILL)
                r.proc.wait(timeout=30)
        receiver.stop()


def by_replica(entries: list[HistoryEntry]) -> list[tuple[str, datetime, HistoryEntry]]:
    """(replica, start time, entry) of every update that names its replica (Pulumi's times are UTC)."""
    out = []
    for h in entries:
        found = REPLICA_FIELD.search(h.message)
        if found:
            started = datetime.fromisoformat(h.start_time)
            out.append((found.group(1), started if started.tzinfo else started.replace(tzinfo=UTC), h))
    return out


def assert_each_step_once(
    histories: dict[str, list[HistoryEntry]], canary_commit: str, cut_off: str | None = None
) -> None:
    """Each step of the canary succeeded exactly once — or, for ``cut_off``, failed once:
    an update the API server stopped answering mid-way still records its outputs (the
    status moved on), so the next replica goes on from the step after it (or retries it,
    when the update failed before recording)."""
    for name, entries in histories.items():
        counts = steps_applied([(h.result, h.message) for h in entries])
        assert counts and all(n == 1 for n in counts.values()), (name, counts)
        done = {what for commit, what in counts if canary_commit.startswith(commit)}
        if cut_off is not None:
            failed = [(h.result, h.message) for identity, _, h in by_replica(entries) if identity == cut_off]
            cut = steps_applied([("succeeded", message) for result, message in failed if result == "failed"])
            assert all(n == 1 for n in cut.values()), (name, counts, cut)
            done |= {what for commit, what in cut if canary_commit.startswith(commit)}
        assert done >= CANARY_STEPS, (name, counts)


def healthy_at(commit: str) -> Callable[[RolloutStatus], bool]:
    return lambda s: s.phase is Phase.HEALTHY and not s.in_flight and canary_done(s, commit)


def canary_done(status: RolloutStatus, commit: str) -> bool:
    return commit.startswith(status.git_commit[:12]) if status.git_commit else False


def test_three_replicas_share_the_rollouts_each_step_once_and_every_event_once(fleet: Fleet) -> None:
    v1 = fleet.commit("v1", pause=2)
    for identity in REPLICAS:
        fleet.start(identity)
    started = time.monotonic()
    fleet.wait_all(healthy_at(v1), 300, "v1 deployed", *REPLICAS)
    v2 = fleet.commit("v2", pause=2)
    fleet.wait_all(healthy_at(v2), 400, "v2 promoted", *REPLICAS)
    elapsed = time.monotonic() - started
    holders = fleet.holders()
    assert set(holders) == {fleet.stack(n) for n in fleet.names}, holders
    assert set(holders.values()) <= set(REPLICAS), holders
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "kulta.cli",
            "status",
            "--env",
            ENV,
            "--state-dir",
            str(fleet.tmp / "status"),
            "--kubeconfig",
            str(fleet.kubeconfig),
            "--lease-namespace",
            fleet.lease_ns,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PULUMI_BACKEND_URL": fleet.backend_url},
        check=False,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert {row[0] for row in rows} == {f"{fleet.ns}/{n}" for n in fleet.names}, status.stdout
    assert all(row[1] in REPLICAS for row in rows), status.stdout
    wait_until(fleet.outboxes_drained, 120, "every replica's outbox to drain")
    for identity in REPLICAS:
        assert fleet.stop(identity) == 0, fleet.replicas[identity].logs()[-3000:]
    histories = fleet.histories()
    assert_each_step_once(histories, v2)
    # the canaries were shared: every replica applied steps of v2
    drivers: dict[str, set[str]] = {}
    for name, entries in histories.items():
        for identity, _, h in by_replica(entries):
            if h.result == "succeeded" and v2[:12] in h.message:
                drivers.setdefault(identity, set()).add(name)
    assert set(drivers) == set(REPLICAS), drivers
    events, repeats = events_by_id(fleet.receiver)
    chains = assert_complete_chains(events)
    assert repeats == 0, repeats
    assert len(chains) == 2 * LEASE_ROLLOUTS, sorted(chains)
    for r in fleet.replicas.values():
        assert "Traceback" not in r.logs(), r.logs()[-3000:]
    # a clean stop gives every lease back
    assert set(fleet.holders().values()) == {""}
    share = {identity: len(names) for identity, names in sorted(drivers.items())}
    print(
        f"LEASES: {LEASE_ROLLOUTS} rollouts, {len(REPLICAS)} replicas, v1 + v2 in {elapsed:.0f}s; "
        f"v2 canaries driven per replica {share}; {len(events)} events, {repeats} repeated; each step once"
    )


def test_kill_9_mid_step_hands_the_rollouts_over_within_the_lease_plus_one_step(fleet: Fleet) -> None:
    v1 = fleet.commit("v1", pause=4)
    for identity in REPLICAS:
        fleet.start(identity)
    fleet.wait_all(healthy_at(v1), 300, "v1 deployed", *REPLICAS)
    victim = REPLICAS[0]
    progress = fleet.replicas[victim].logs().count("  → ")
    # the sink refuses events from here until the kill: the victim's v2 events stay undelivered
    fleet.receiver.status = 503
    v2 = fleet.commit("v2", pause=4)
    # mid-step: the victim has just started an update of v2
    wait_until(lambda: fleet.replicas[victim].logs().count("  → ") > progress, 120, "the victim's next update")
    held = {key for key, holder in fleet.holders().items() if holder == victim}
    fleet.kill(victim)
    killed = datetime.now(UTC)
    fleet.receiver.status = 202
    assert held, "the victim held no rollout"
    survivors = REPLICAS[1:]
    fleet.wait_all(healthy_at(v2), 400, "v2 promoted without the victim", *survivors)
    histories = fleet.histories()
    assert_each_step_once(histories, v2)
    failovers = []
    for name, entries in histories.items():
        if fleet.stack(name) not in held:
            continue
        after = [t for identity, t, _ in by_replica(entries) if identity != victim and t >= killed]
        assert after, (name, [h.message for h in entries])
        failovers.append((min(after) - killed).total_seconds())
    bound = LEASE_SECONDS + LEASE_SECONDS / 3 + STEP_SECONDS
    assert max(failovers) <= bound, (failovers, bound)
    assert math.isfinite(max(failovers))
    # nothing the victim recorded is lost with its disk: the events of its last updates
    # travel in the stacks (pendingEvents) and the survivors deliver them
    wait_until(lambda: every_chain_complete(fleet.receiver), 120, "every event delivered by the survivors")
    events, repeats = events_by_id(fleet.receiver)
    print(
        f"LEASES: kill -9 of {victim} holding {len(held)} of {LEASE_ROLLOUTS} rollouts mid-step: resumed on "
        f"another replica after {min(failovers):.1f}-{max(failovers):.1f}s (lease {LEASE_SECONDS:g}s, "
        f"bound {bound:g}s); each step once; {len(events)} events, none lost, {repeats} sent twice"
    )


def every_chain_complete(receiver: EventReceiver) -> bool:
    """Two complete chains (v1, v2) per rollout, every link's target received."""
    events, _ = events_by_id(receiver)
    try:
        chains = assert_complete_chains(events)
    except AssertionError:
        return False
    return len(chains) == 2 * LEASE_ROLLOUTS


def test_a_replica_cut_from_the_api_server_makes_no_update_after_its_lease_ran_out(fleet: Fleet) -> None:
    config = yaml.safe_load(fleet.kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    proxy = TcpProxy(int(server.rsplit(":", 1)[1]))
    proxy.start()
    config["clusters"][0]["cluster"]["server"] = re.sub(r":\d+$", f":{proxy.port}", server)
    proxied = fleet.tmp / "kubeconfig-via-proxy.yaml"
    proxied.write_text(yaml.safe_dump(config))
    cut_off = REPLICAS[2]
    try:
        v1 = fleet.commit("v1", pause=4)
        for identity in REPLICAS:
            fleet.start(identity, kubeconfig=proxied if identity == cut_off else None)
        fleet.wait_all(healthy_at(v1), 300, "v1 deployed", *REPLICAS)
        progress = fleet.replicas[cut_off].logs().count("  → ")
        v2 = fleet.commit("v2", pause=4)
        wait_until(lambda: fleet.replicas[cut_off].logs().count("  → ") > progress, 120, "an update of v2 by it")
        held = {key for key, holder in fleet.holders().items() if holder == cut_off}
        proxy.stop()
        cut = datetime.now(UTC)
        assert held, "the replica held no rollout when it was cut off"
        fleet.wait_all(healthy_at(v2), 400, "v2 promoted by the others", *REPLICAS)
        fleet.alive(cut_off)  # cut off, not dead: it keeps retrying
    finally:
        proxy.stop()
    histories = fleet.histories()
    assert_each_step_once(histories, v2, cut_off)
    # its lease ran out at the latest one duration after its last renewal, which was before the cut
    expiry = cut.timestamp() + LEASE_SECONDS
    late = [
        (name, t.isoformat(), h.message)
        for name, entries in histories.items()
        for identity, t, h in by_replica(entries)
        if identity == cut_off and t.timestamp() >= expiry
    ]
    assert not late, late
    own = [t for entries in histories.values() for identity, t, _ in by_replica(entries) if identity == cut_off]
    last_own = max(t.timestamp() for t in own) - cut.timestamp()
    taken = [
        t.timestamp() - cut.timestamp()
        for name, entries in histories.items()
        if fleet.stack(name) in held
        for identity, t, _ in by_replica(entries)
        if identity != cut_off and t >= cut
    ]
    assert taken, "nobody took over the cut-off replica's rollouts"
    print(
        f"LEASES: {cut_off} cut from the API server holding {len(held)} rollouts: its last update started "
        f"{last_own:+.1f}s from the cut (lease {LEASE_SECONDS:g}s: none after), the others took over "
        f"{min(taken):.1f}s after the cut"
    )
