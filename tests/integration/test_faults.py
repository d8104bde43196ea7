"""The fault suite: `kulta run` as a real loop process while its dependencies fail.

Real parts throughout: the loop process (killed with SIGKILL), the Pulumi engine
and file backend, the local control plane reached through a TCP proxy that can
be cut (an API server that stops answering, as KULTA and the kubernetes provider
see it), Prometheus scraping the traffic simulator, and an HTTP event sink that
can answer 503. Each test prints its figures (``FAULTS: …``) for the README.

What must hold whatever happens: the loop never exits on its own; every
rollout reaches the right end state; no step is applied twice (each
"applying step K" update succeeds exactly once per revision); the sink gets
every event (the CDEvents PATH links form a complete chain); no stack is left
locked; no promotion happens on missing data.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kulta.adapters.stacks import StackManager, StackSettings, stack_name_for
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.devcluster import free_port
from kulta.model.status import AnalysisPhase, Phase, RolloutStatus
from kulta.spec.loader import load_text
from tests.integration.conftest import ROOT, kubectl, route_yaml, unique
from tests.integration.eventsink import EventReceiver
from tests.integration.promserver import running_prometheus, wait_until
from tests.integration.test_analysis_rollout import set_profile, simulator

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

ENV = "chaos"
DOCS = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: errors, namespace: {ns}}}
spec:
  args: [{{name: canary-hash, valueFrom: {{podTemplateHashValue: Latest}}}}]
  metrics:
    - name: error-ratio
      interval: 1s
      count: 3
      initialDelay: 2s
      failureLimit: 0
      consecutiveErrorLimit: 2
      successCondition: result[0] <= 0.05
      provider:
        prometheus:
          address: {prom}
          timeout: 2
          query: >-
            (sum(rate(http_requests_total{{revision="{{{{args.canary-hash}}}}",code=~"5.."}}[5s])) or vector(0))
            / sum(rate(http_requests_total{{revision="{{{{args.canary-hash}}}}"}}[5s]))
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: pay, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: pay}}}}
  template:
    metadata: {{labels: {{app: pay}}}}
    spec:
      containers: [{{name: pay, image: "registry.local/pay:{tag}", ports: [{{containerPort: 8080}}]}}]
  strategy:
    canary:
      canaryService: pay-canary
      stableService: pay-stable
      scaleDownDelaySeconds: 0
      trafficRouting: {{gatewayAPI: {{httpRoute: pay}}}}
      steps:
        - setWeight: 25
        - pause: {{duration: {pause}s}}
        - setWeight: 50
        - analysis: {{templates: [{{templateName: errors}}]}}
        - setWeight: 75
"""


class TcpProxy:
    """A loopback TCP proxy to the API server that can be cut and restored (same port)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Cut: refuse new connections and reset every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would not on Linux
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@dataclass
class Chaos:
    ns: str
    tmp: Path
    bare: Path
    work: Path
    prom: Any
    profile: Path
    receiver: EventReceiver
    proxy: TcpProxy
    kubeconfig: Path
    state: Path
    metrics_port: int
    proc: subprocess.Popen[str] | None = None
    starts: int = 0

    @property
    def stack(self) -> str:
        return stack_name_for(ENV, self.ns, "pay")

    def docs(self, tag: str, pause: int) -> str:
        return DOCS.format(ns=self.ns, prom=self.prom.url, tag=tag, pause=pause)

    def commit(self, tag: str, pause: int) -> str:
        """Commit version ``tag``; returns its revision hash."""
        (self.work / "rollouts").mkdir(exist_ok=True)
        text = self.docs(tag, pause)
        (self.work / "rollouts" / "pay.yaml").write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-qm", tag)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        loaded = load_text(text, "pay.yaml")
        assert not loaded.errors, loaded.errors
        return pod_template_hash(resolve_template(loaded.rollouts[0], loaded.others))

    def start_loop(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": str(self.kubeconfig)}
        log = (self.tmp / f"loop-{self.starts}.log").open("w")
        self.starts += 1
        self.proc = subprocess.Popen(
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
                str(self.state),
                "--env",
                ENV,
                "--interval",
                "1",
                "--kubeconfig",
                str(self.kubeconfig),
                "--sink-url",
                self.receiver.url,
                "--metrics-port",
                str(self.metrics_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )

    def kill_loop(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, f"the loop exited on its own ({self.proc.returncode}): {self.logs()[-3000:]}"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop_loop(self) -> int:
        assert self.proc is not None
        assert self.proc.poll() is None, f"the loop exited on its own ({self.proc.returncode}): {self.logs()[-3000:]}"
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("loop-*.log")))

    def status(self) -> RolloutStatus | None:
        stacks = StackManager(StackSettings(state_dir=self.state, kubeconfig=str(self.kubeconfig)))
        try:
            outputs = stacks.outputs(self.stack)
        except Exception:  # noqa: BLE001 — the backend may be mid-write or cut on purpose
            return None
        return RolloutStatus.from_outputs(outputs) if outputs.get("phase") else None

    def wait_for(self, test: Callable[[RolloutStatus], bool], timeout: float, what: str) -> RolloutStatus:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.logs()[-3000:]
            last = self.status()
            if last is not None and test(last):
                return last
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last status {last}; log:\n{self.logs()[-3000:]}")

    def history_messages(self) -> list[tuple[str, str]]:
        stacks = StackManager(StackSettings(state_dir=self.state, kubeconfig=str(self.kubeconfig)))
        return [(h.result, h.message) for h in reversed(stacks.history(self.stack, page_size=1000))]


@pytest.fixture
def chaos(cluster, tmp_path) -> Iterator[Chaos]:
    ns = unique("chaos")
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="pay", stable="pay-stable", canary="pay-canary"))
    bare, work = tmp_path / "remote.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "config", "user.email", "ci@example.test")
    git(work, "config", "user.name", "CI")
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    api_port = int(re.search(r":(\d+)$", server).group(1))  # type: ignore[union-attr]
    proxy = TcpProxy(api_port)
    proxy.start()
    config["clusters"][0]["cluster"]["server"] = re.sub(r":\d+$", f":{proxy.port}", server)
    kubeconfig = tmp_path / "kubeconfig-via-proxy.yaml"
    kubeconfig.write_text(yaml.safe_dump(config))
    receiver = EventReceiver()
    receiver.start()
    with (
        simulator(cluster, ns, tmp_path / "sim") as (target, profile),
        running_prometheus([target], tmp_path / "prom") as prom,
    ):
        c = Chaos(
            ns=ns,
            tmp=tmp_path,
            bare=bare,
            work=work,
            prom=prom,
            profile=profile,
            receiver=receiver,
            proxy=proxy,
            kubeconfig=kubeconfig,
            state=tmp_path / "state",
            metrics_port=free_port(),
        )
        try:
            yield c
        finally:
            if c.proc is not None and c.proc.poll() is None:
                os.killpg(c.proc.pid, signal.SIGKILL)
                c.proc.wait(timeout=30)
            proxy.stop()
    receiver.stop()


def events_by_id(receiver: EventReceiver) -> tuple[dict[str, dict[str, Any]], int]:
    """Accepted events by id, and how many accepted requests repeated an id already seen."""
    seen: dict[str, dict[str, Any]] = {}
    repeats = 0
    for r in receiver.accepted():
        body = r.json()
        event_id = body["context"]["id"]
        if event_id in seen:
            repeats += 1
        seen[event_id] = body
    return seen, repeats


def assert_complete_chains(events: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Every PATH link points at an event the sink received; each chain starts and finishes once."""
    chains: dict[str, list[str]] = {}
    for body in events.values():
        context = body["context"]
        for link in context.get("links", []):
            assert link["from"]["contextId"] in events, f"lost: {link['from']['contextId']} (linked from {context})"
        chains.setdefault(context["chainId"], []).append(context["type"].split(".")[2])
    for chain, types in chains.items():
        assert types.count("pipelinerun") == 2, (chain, types)  # started and finished, once each
    return chains


def steps_applied(messages: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Succeeded updates per (revision commit, applied step): each must be exactly 1."""
    counts: dict[tuple[str, str], int] = {}
    for result, message in messages:
        if result != "succeeded":
            continue
        found = re.search(r"commit=(\S+) :: .*(applying step \d+|starting canary|promoted)", message)
        if found:
            key = (found.group(1), found.group(2))
            counts[key] = counts.get(key, 0) + 1
    return counts


def no_locks(state: Path) -> list[Path]:
    return [p for p in (state / "backend" / ".pulumi" / "locks").rglob("*") if p.is_file()]


def test_kill_9_at_20_instants_and_a_2_minute_sink_outage_lose_and_repeat_nothing(chaos):
    rng = random.Random(20261201)
    hashes = [chaos.commit("v1", pause=2)]
    set_profile(chaos.profile, hashes[0], "none", 0.0)
    chaos.receiver.status = 503  # the sink is down for the first two minutes
    outage_ends = time.monotonic() + 120
    chaos.start_loop()
    chaos.wait_for(lambda s: s.phase is Phase.HEALTHY, 120, "v1 deployed")
    version = 1
    kills = 0
    while kills < 20:
        st = chaos.status()
        if st is not None and st.phase is Phase.HEALTHY and st.stable_revision == hashes[-1]:
            version += 1
            hashes.append(chaos.commit(f"v{version}", pause=2))
            set_profile(chaos.profile, hashes[-2], hashes[-1], 0.0)
        time.sleep(rng.uniform(1.0, 5.0))  # a random instant: pass start, update, analysis, delivery
        chaos.kill_loop()
        kills += 1
        if time.monotonic() > outage_ends:
            chaos.receiver.status = 202
        chaos.start_loop()
    final = chaos.wait_for(
        lambda s: s.phase is Phase.HEALTHY and s.stable_revision == hashes[-1], 180, "the last version Healthy"
    )
    assert not final.in_flight
    wait_until(lambda: time.monotonic() > outage_ends, 150, "the sink outage to end")
    chaos.receiver.status = 202
    wait_until(lambda: not list((chaos.state / "outbox").rglob("0*.json")), 120, "the outbox to drain")
    assert chaos.stop_loop() == 0
    # no step applied twice, none skipped: every applied step of every revision exactly once
    counts = steps_applied(chaos.history_messages())
    assert counts and all(n == 1 for n in counts.values()), counts
    canaries = {commit for commit, what in counts if what == "starting canary"}
    for commit in canaries:
        assert {what for c, what in counts if c == commit} >= {
            "starting canary",
            "applying step 1",
            "applying step 2",
            "applying step 3",
            "applying step 4",
            "promoted",
        }, counts
    events, repeats = events_by_id(chaos.receiver)
    chains = assert_complete_chains(events)
    assert len(chains) == version  # one pipeline run per version
    assert not no_locks(chaos.state)
    assert "Traceback" not in chaos.logs()
    refused = sum(1 for r in chaos.receiver.requests() if not r.accepted)
    print(
        f"FAULTS: kill -9 at {kills} instants: {chaos.starts - 1}/{kills} resumed, {version} versions Healthy, "
        f"{len(events)} events, 0 lost, {repeats} resent with the same id, {refused} refused during the "
        f"2-minute sink outage, 0 stacks locked"
    )


def kill_as_the_outputs_land(chaos: Chaos, revision: str, step: int) -> RolloutStatus:
    """Kill the loop the instant the stack's outputs show ``revision`` at ``step`` or later."""
    deadline = time.monotonic() + 120
    while True:
        st = chaos.status()
        if st is not None and st.canary_revision == revision and st.current_step_index >= step:
            chaos.kill_loop()
            return st
        assert time.monotonic() < deadline, f"step {step} of {revision} never recorded; log:\n{chaos.logs()[-3000:]}"
        time.sleep(0.002)


def test_a_kill_after_the_outputs_and_before_the_history_entry_records_the_step_again(chaos):
    """Pulumi checkpoints an update's outputs about 0.1 s before it writes the update's
    history entry (it first shuts the kubernetes provider down). A kill -9 there left
    a step applied, recorded in the outputs, and missing from ``pulumi stack history``:
    the 20-kill test above caught it once in CI. The next turn finds the dead lock,
    sees the missing entry and records the same state again before going on."""
    h1 = chaos.commit("v1", pause=2)
    set_profile(chaos.profile, h1, "none", 0.0)
    chaos.start_loop()
    chaos.wait_for(lambda s: s.phase is Phase.HEALTHY, 120, "v1 deployed")
    lost: RolloutStatus | None = None
    revision = h1
    for version in ("v2", "v3"):
        revision = chaos.commit(version, pause=2)
        set_profile(chaos.profile, h1, revision, 0.0)
        for step in range(5):
            st = kill_as_the_outputs_land(chaos, revision, step)
            recorded = [m for result, m in chaos.history_messages() if result == "succeeded"]
            if not any(m.endswith(f":: {st.message}") for m in recorded):
                lost = st
                break
            chaos.start_loop()
        if lost is not None:
            break
        chaos.wait_for(lambda s, r=revision: s.phase is Phase.HEALTHY and s.stable_revision == r, 180, "promotion")
        h1 = revision
    assert lost is not None, "no kill landed between the outputs and the history entry in 10 tries"
    assert no_locks(chaos.state), "a killed update leaves its lock"
    chaos.start_loop()
    chaos.wait_for(lambda s: s.phase is Phase.HEALTHY and s.stable_revision == revision, 180, "the promotion")
    assert chaos.stop_loop() == 0
    assert not no_locks(chaos.state)
    messages = [m for result, m in chaos.history_messages() if result == "succeeded"]
    again = [m for m in messages if "recorded again" in m]
    assert len(again) == 1 and again[0].endswith(
        f":: {lost.message} (recorded again: its first update was killed before Pulumi wrote its history entry)"
    ), again
    counts = steps_applied(chaos.history_messages())
    commit = lost.git_commit[:12]
    assert {what: n for (c, what), n in counts.items() if c == commit} == {
        "starting canary": 1,
        "applying step 1": 1,
        "applying step 2": 1,
        "applying step 3": 1,
        "applying step 4": 1,
        "promoted": 1,
    }, counts
    assert "Traceback" not in chaos.logs()
    print(f"FAULTS: a kill between outputs and history at step {lost.current_step_index}: recorded again once")


def test_api_server_cut_for_30s_backend_cut_and_prometheus_stopped_never_promote(chaos):
    h1 = chaos.commit("v1", pause=20)
    set_profile(chaos.profile, h1, "none", 0.0)
    chaos.start_loop()
    chaos.wait_for(lambda s: s.phase is Phase.HEALTHY, 120, "v1 deployed")
    h2 = chaos.commit("v2", pause=20)
    set_profile(chaos.profile, h1, h2, 0.0)
    chaos.wait_for(lambda s: s.current_step_index == 1 and s.canary_revision == h2, 120, "v2 in its pause")
    # 1. the API server stops answering for 30 s while the canary pauses
    cut = time.monotonic()
    chaos.proxy.stop()
    wait_until(
        lambda: (
            "Kubernetes API server" in (chaos.state / "health.json").read_text()
            if (chaos.state / "health.json").exists()
            else False
        ),
        60,
        "health.json to name the API server",
    )
    health = json.loads((chaos.state / "health.json").read_text())["rollouts"][chaos.stack]
    status_out = subprocess.run(
        [sys.executable, "-m", "kulta.cli", "status", "--state-dir", str(chaos.state), "--env", ENV],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
        timeout=120,
    )
    assert "Kubernetes API server failing since" in status_out.stdout, status_out.stdout + status_out.stderr
    time.sleep(max(0.0, 30 - (time.monotonic() - cut)))
    assert chaos.proc is not None and chaos.proc.poll() is None
    chaos.proxy.start()
    outage = time.monotonic() - cut
    recovered_at = time.monotonic()
    st = chaos.wait_for(lambda s: s.current_step_index >= 3, 120, "the canary to reach its analysis")
    recovery = time.monotonic() - recovered_at
    assert st.stable_revision == h1
    # 2. the Pulumi backend is unusable for a few passes (root ignores permissions, so the
    #    backend directory is replaced by a file: every read and write fails)
    backend = chaos.state / "backend"
    backend.rename(chaos.state / "backend.off")
    backend.write_text("not a directory\n")
    time.sleep(4)
    assert chaos.proc is not None and chaos.proc.poll() is None, chaos.logs()[-3000:]
    backend.unlink()
    (chaos.state / "backend.off").rename(backend)
    # 3. Prometheus stops during the analysis: Error measurements, then abort; never a promotion
    st = chaos.wait_for(lambda s: s.current_step_index == 3 or s.aborted, 120, "the analysis step")
    chaos.prom.kill()
    st = chaos.wait_for(lambda s: s.aborted or not s.in_flight, 120, "the analysis to end the canary")
    assert st.phase is Phase.ABORTED and st.stable_revision == h1, st
    run = next(r for r in st.analysis_runs if r.step_index == 3)
    assert run.phase is AnalysisPhase.ERROR, run
    assert chaos.stop_loop() == 0
    logs = chaos.logs()
    assert "Traceback" not in logs, logs[-3000:]
    failure_lines = [ln for ln in logs.splitlines() if "failing since" in ln and "WARNING" in ln]
    metrics_seen = (chaos.state / "health.json").read_text()
    assert not no_locks(chaos.state)
    print(
        f"FAULTS: API server cut {outage:.0f}s: loop alive, {health['attempts']}+ retries with backoff, "
        f"{len(failure_lines)} warning line(s), step resumed {recovery:.1f}s after it came back; "
        f"backend unusable 4s: loop alive; Prometheus stopped mid-analysis: Aborted, never promoted; "
        f"health after: {metrics_seen.strip()[:80]}"
    )
