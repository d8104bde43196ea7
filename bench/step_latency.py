"""How long one canary step takes through KULTA, next to the same edit by ``kubectl patch``.

Why: every KULTA step is a Pulumi update, so the price of auditability is paid
in wall time per step. This benchmark puts a number on that price on the local
cluster, in one run, with the cheapest possible baseline beside it: a
``kubectl patch --type=json`` that changes the same two HTTPRoute weights.

Both are timed the same way: from the call (``Reconciler.reconcile_rollout``
for KULTA, the ``kubectl`` process start for the baseline) to the moment a
poller on the API server (kubernetes client, tight loop) sees the new weight.
KULTA and kubectl steps alternate, so background load hits both alike.

The Rollout has one ReplicaSet replica and ``setWeight`` steps separated by
fixed pauses; a controllable clock passes each pause, so a measured step is a
pure weight change (the canary ReplicaSet keeps its one replica). Every
``pulumi`` process is counted and timed through a shim put first on PATH.

Run (cluster from ``python -m kulta.cli dev up``, toolchain from ``dev/env``):

    source dev/env
    python bench/step_latency.py --iterations 10
    python bench/step_latency.py --iterations 10 --backend postgres   # a throwaway PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402

from kulta.adapters.kube import KubeReader  # noqa: E402
from kulta.adapters.stacks import StackManager, StackSettings  # noqa: E402
from kulta.app.reconciler import Reconciler, ReconcilerConfig, RolloutOutcome  # noqa: E402
from kulta.core.routes import route_weights  # noqa: E402
from kulta.devpostgres import DevPostgres, start_postgres, stop_postgres  # noqa: E402
from kulta.model.status import Phase  # noqa: E402
from kulta.spec.loader import load_text  # noqa: E402

__all__ = ["main"]

DEFAULT_KUBECONFIG = Path.home() / ".cache" / "kulta" / "dev" / "kulta-dev" / "kubeconfig.yaml"
GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
KULTA_ROUTE = "web"
KUBECTL_ROUTE = "web-kubectl"
STABLE, CANARY = "web-stable", "web-canary"
PAUSE_SECONDS = 60
VISIBLE_TIMEOUT = 300.0

ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: registry.local/web:{tag}
          ports: [{{name: http, containerPort: 8080}}]
  strategy:
    canary:
      canaryService: {canary}
      stableService: {stable}
      trafficRouting:
        gatewayAPI: {{httpRoute: {route}}}
      steps:
{steps}
"""

ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}}}
spec:
  parentRefs: [{{name: demo-gateway, namespace: demo}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /}}}}]
      backendRefs:
        - {{name: {stable}, port: 8080, weight: 100}}
        - {{name: {canary}, port: 8080, weight: 0}}
"""

# Logs "<start ns> <end ns> <exit code> <args...>" for every pulumi process, then exits like it.
SHIM = """#!/usr/bin/env bash
start=$(date +%s%N)
"{real}" "$@"
rc=$?
echo "$start $(date +%s%N) $rc $*" >> "{log}"
exit $rc
"""


# -- small pieces ---------------------------------------------------------------------
@dataclass
class Clock:
    """The reconciler's clock: real time never passes a pause, ``advance`` does."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class NoMetrics:
    """The benchmark Rollout has no analysis; a measurement request is a bug."""

    def measure(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the benchmark rollout has no analysis")


@dataclass(frozen=True)
class CliCall:
    start: float
    end: float
    code: int
    args: tuple[str, ...]

    @property
    def command(self) -> str:
        words = [a for a in self.args if not a.startswith("-")]
        return " ".join(words[:2]) if words[:1] == ["stack"] else (words[0] if words else "?")


class PulumiShim:
    """A ``pulumi`` first on PATH that records each invocation, then runs the real one."""

    def __init__(self, directory: Path) -> None:
        real = shutil.which("pulumi")
        if real is None:
            raise SystemExit("pulumi is not on PATH: run `source dev/env` first")
        self.log = directory / "calls.log"
        self.log.touch()
        shim = directory / "bin" / "pulumi"
        shim.parent.mkdir()
        shim.write_text(SHIM.format(real=real, log=self.log))
        shim.chmod(0o755)
        os.environ["PATH"] = f"{shim.parent}{os.pathsep}{os.environ['PATH']}"
        self._seen = 0

    def take(self) -> list[CliCall]:
        """The calls logged since the previous ``take``."""
        lines = self.log.read_text().splitlines()
        fresh, self._seen = lines[self._seen :], len(lines)
        calls = []
        for line in fresh:
            start, end, code, *args = line.split(" ")
            calls.append(CliCall(int(start) / 1e9, int(end) / 1e9, int(code), tuple(args)))
        return calls


class RoutePoller:
    """Polls one HTTPRoute until its (stable, canary) weights equal the expected pair."""

    def __init__(self, api: client.ApiClient, namespace: str, route: str, interval: float) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.namespace, self.route, self.interval = namespace, route, interval

    def weights(self) -> tuple[int, int] | None:
        obj = cast(
            dict[str, Any],
            self.objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.route),
        )
        return route_weights(obj["spec"]["rules"], STABLE, CANARY)

    def time_until_visible(self, expected: tuple[int, int], action: Callable[[], None]) -> tuple[float, float]:
        """Run ``action`` in a thread; returns (call→visible, call→return) in seconds."""
        seen: list[float] = []
        done: list[float] = []
        errors: list[Exception] = []

        def run() -> None:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, re-raised there
                errors.append(exc)
            finally:
                done.append(time.perf_counter())

        if self.weights() == expected:
            raise RuntimeError(f"{self.route} already shows {expected}: nothing to measure")
        worker = threading.Thread(target=run, name=f"step-{self.route}")
        start = time.perf_counter()
        worker.start()
        deadline = start + VISIBLE_TIMEOUT
        while not seen and time.perf_counter() < deadline:
            if self.weights() == expected:
                seen.append(time.perf_counter())
                break
            if done and not worker.is_alive() and errors:
                break
            time.sleep(self.interval)
        worker.join(VISIBLE_TIMEOUT)
        if errors:
            raise RuntimeError(f"step on {self.route} failed") from errors[0]
        if not seen:
            raise RuntimeError(f"{self.route} never showed {expected} (last {self.weights()})")
        return seen[0] - start, done[0] - start


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def step_weights(count: int) -> list[int]:
    """``count`` distinct increasing canary weights inside 1..99."""
    if not 1 <= count <= 99:
        raise SystemExit(f"need 1..99 setWeight steps, asked for {count}")
    return [max(1, round(i * 99 / count)) for i in range(1, count + 1)]


def rollout_yaml(ns: str, tag: str, weights: Sequence[int]) -> str:
    steps = "\n".join(f"        - setWeight: {w}\n        - pause: {{duration: {PAUSE_SECONDS}s}}" for w in weights)
    return ROLLOUT.format(ns=ns, tag=tag, stable=STABLE, canary=CANARY, route=KULTA_ROUTE, steps=steps)


def describe(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, math.ceil(0.9 * len(ordered)) - 1))]  # nearest rank
    return {"median": statistics.median(ordered), "p90": p90, "min": ordered[0], "max": ordered[-1]}


def fmt_ms(values: Sequence[float]) -> str:
    d = describe(values)
    return "  ".join(f"{k} {v * 1000:8.1f} ms" for k, v in d.items())


# -- the run --------------------------------------------------------------------------
@dataclass
class KultaSample:
    visible: float
    returned: float
    updates: int
    up_seconds: list[float]
    calls: list[CliCall]
    started_wall: float


def run(args: argparse.Namespace) -> dict[str, Any]:
    kubeconfig = str(args.kubeconfig)
    if shutil.which("kubectl") is None:
        raise SystemExit("kubectl is not on PATH: run `source dev/env` first")
    work = Path(tempfile.mkdtemp(prefix="kulta-bench-"))
    shim = PulumiShim(work)
    ns = f"bench-steps-{uuid.uuid4().hex[:6]}"
    total = args.warmup + args.iterations
    weights = step_weights(total + 1)  # step 0 opens the canary; each measured step is one more
    print(f"namespace {ns}, {args.iterations} measured steps (+{args.warmup} warm-up), weights {weights}")
    kubectl(kubeconfig, "create", "namespace", ns)
    server: DevPostgres | None = start_postgres() if args.backend == "postgres" else None
    print(f"Pulumi backend: {args.backend}")
    try:
        for route in (KULTA_ROUTE, KUBECTL_ROUTE):
            kubectl(kubeconfig, "apply", "-f", "-", stdin=ROUTE.format(name=route, ns=ns, stable=STABLE, canary=CANARY))
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        backend_url = server.url if server is not None else ""
        stacks = StackManager(StackSettings(state_dir=work / "state", backend_url=backend_url, kubeconfig=kubeconfig))
        clock = Clock()
        ups: list[float] = []
        rec = Reconciler(
            ReconcilerConfig(environment="bench", kubeconfig=kubeconfig),
            stacks,
            KubeReader(kubeconfig),
            NoMetrics(),
            clock=clock,
            observe_update=lambda seconds, _result: ups.append(seconds),
        )
        kulta_poll = RoutePoller(api, ns, KULTA_ROUTE, args.poll_interval)
        kubectl_poll = RoutePoller(api, ns, KUBECTL_ROUTE, args.poll_interval)

        # setup, not measured: v1 becomes stable, v2 opens the canary at weights[0] and pauses
        for tag, expected_step in (("v1", None), ("v2", 1)):
            loaded = load_text(rollout_yaml(ns, tag, weights), f"{ns}.yaml")
            if loaded.errors:
                raise SystemExit(f"benchmark rollout refused: {loaded.errors}")
            out = rec.reconcile_rollout(loaded.rollouts[0], loaded)
            if out.error or (expected_step is not None and out.step != expected_step):
                raise SystemExit(f"setup pass for {tag} ended unexpectedly: {out}")
        rollout = loaded.rollouts[0]
        kubectl_patch(kubeconfig, ns, weights[0])
        setup_calls = shim.take()
        print(f"setup: {len(setup_calls)} pulumi invocations, {len(ups)} updates")
        ups.clear()

        kulta: list[KultaSample] = []
        baseline: list[float] = []
        baseline_returned: list[float] = []
        for i in range(1, total + 1):
            want = (100 - weights[i], weights[i])
            clock.advance(PAUSE_SECONDS + 1)
            outcome: list[RolloutOutcome] = []

            def kulta_step(sink: list[RolloutOutcome] = outcome) -> None:
                sink.append(rec.reconcile_rollout(rollout, loaded))

            def kubectl_step(weight: int = want[1]) -> None:
                kubectl_patch(kubeconfig, ns, weight)

            started_wall = time.time()
            visible, returned = kulta_poll.time_until_visible(want, kulta_step)
            out = outcome[0]
            if out.error or out.phase is not Phase.PROGRESSING or out.step != 2 * i + 1:
                raise RuntimeError(f"KULTA step {i} ended unexpectedly: {out}")
            sample = KultaSample(visible, returned, out.updates, list(ups), shim.take(), started_wall)
            ups.clear()
            k_visible, k_returned = kubectl_poll.time_until_visible(want, kubectl_step)
            measured = i > args.warmup
            tag = "step" if measured else "warm-up"
            print(
                f"{tag} {i:3d} weight {want[1]:2d}: KULTA {visible * 1000:7.1f} ms "
                f"(pass {returned * 1000:7.1f} ms, {out.updates} updates, {len(sample.calls)} pulumi calls)  "
                f"kubectl {k_visible * 1000:6.1f} ms"
            )
            if measured:
                kulta.append(sample)
                baseline.append(k_visible)
                baseline_returned.append(k_returned)
        return report(kulta, baseline, baseline_returned)
    finally:
        if server is not None:
            stop_postgres(server)
        if args.keep:
            print(f"kept namespace {ns} and Pulumi state in {work}")
        else:
            kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false")
            shutil.rmtree(work, ignore_errors=True)


def kubectl_patch(kubeconfig: str, ns: str, canary_weight: int) -> None:
    patch = [
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 100 - canary_weight},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": canary_weight},
    ]
    kubectl(kubeconfig, "-n", ns, "patch", "httproute", KUBECTL_ROUTE, "--type=json", "-p", json.dumps(patch))


def report(kulta: list[KultaSample], baseline: list[float], baseline_returned: list[float]) -> dict[str, Any]:
    visible = [s.visible for s in kulta]
    k_med, b_med = statistics.median(visible), statistics.median(baseline)
    print()
    print(f"call -> weight visible in the API server, {len(kulta)} steps each")
    print(f"  KULTA step      {fmt_ms(visible)}")
    print(f"  kubectl patch   {fmt_ms(baseline)}")
    print(f"  ratio of medians KULTA / kubectl: {k_med / b_med:.1f}x")
    print()
    print("KULTA breakdown (per step):")
    print(f"  whole pass (call -> return)             {fmt_ms([s.returned for s in kulta])}")
    first_up = [s.up_seconds[0] for s in kulta if s.up_seconds]
    print(f"  first stacks.up (makes weight visible)  {fmt_ms(first_up)}")
    print(f"  all stacks.up in the pass               {fmt_ms([sum(s.up_seconds) for s in kulta])}")
    before_up: list[float] = []
    up_cli: list[float] = []
    for s in kulta:
        first = next((c for c in s.calls if c.command == "up"), None)
        if first is not None:
            before_up.append(first.start - s.started_wall)
            up_cli.append(first.end - first.start)
    if before_up:
        print(f"  call -> first `pulumi up` starts        {fmt_ms(before_up)}")
        print(f"  first `pulumi up` process               {fmt_ms(up_cli)}")
    print(f"  updates per pass: {Counter(s.updates for s in kulta)}")
    counts = [len(s.calls) for s in kulta]
    print(
        f"  pulumi CLI invocations per pass: median {statistics.median(counts)}, min {min(counts)}, max {max(counts)}"
    )
    by_command: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    for s in kulta:
        for c in s.calls:
            by_command[c.command] += 1
            seconds[c.command] = seconds.get(c.command, 0.0) + c.end - c.start
    n = len(kulta)
    for command, count in by_command.most_common():
        print(f"    pulumi {command:<22} {count / n:4.1f} per pass, {seconds[command] / count * 1000:7.1f} ms each")
    cli_total = [sum(c.end - c.start for c in s.calls) for s in kulta]
    overhead = [s.returned - t for s, t in zip(kulta, cli_total, strict=True)]
    print(f"  time in pulumi processes per pass       {fmt_ms(cli_total)}")
    print(f"  pass time outside pulumi processes      {fmt_ms(overhead)}")
    print(f"  kubectl patch process (call -> return)  {fmt_ms(baseline_returned)}")
    return {
        "kulta": describe(visible),
        "kubectl": describe(baseline),
        "ratio": k_med / b_med,
        "cli_calls_per_pass": statistics.median(counts),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--iterations", type=int, default=10, help="measured steps of each kind (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="steps of each kind run first and not counted (default 1)")
    p.add_argument(
        "--kubeconfig",
        default=os.environ.get("KULTA_BENCH_KUBECONFIG") or os.environ.get("KUBECONFIG") or str(DEFAULT_KUBECONFIG),
        help="cluster to run on (default $KUBECONFIG, else the `kulta dev up` cluster)",
    )
    p.add_argument("--poll-interval", type=float, default=0.005, help="seconds between HTTPRoute reads (default 0.005)")
    p.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
    p.add_argument("--keep", action="store_true", help="keep the namespace and Pulumi state for inspection")
    p.add_argument(
        "--backend",
        choices=["file", "postgres"],
        default="file",
        help="where the stacks live: a temp file backend, or a throwaway PostgreSQL (kulta/devpostgres.py)",
    )
    args = p.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        p.error("--iterations must be >= 1 and --warmup >= 0")
    if not Path(args.kubeconfig).is_file():
        p.error(f"kubeconfig {args.kubeconfig} does not exist (start a cluster with `python -m kulta.cli dev up`)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    summary = run(args)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
