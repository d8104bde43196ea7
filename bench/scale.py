"""Many rollouts through the real ``kulta run`` loop: the cost curve for 1, 10, 50 … rollouts.

Why: one small reconciler must drive many rollouts at the pace their pauses
allow (issue 12, goals 3 and 4). This benchmark measures that in one run, with
the real loop as a subprocess, the real engine and the local cluster, for each
size N given with ``--rollouts``:

1. a fresh namespace with N Gateway API HTTPRoutes (applied with kubectl, as
   a user's GitOps tool would), a fresh bare Git repository and a fresh state
   directory (Pulumi file backend); ``kulta run --interval 2`` is started on it;
2. v1 of the N Rollouts (2 replicas, ``setWeight 25, pause, setWeight 50,
   pause``) in one commit: time until all are Healthy; then the loop at rest
   (it must start no Pulumi process);
3. v2 of the N Rollouts in one commit: per rollout, commit → first canary
   weight visible in its HTTPRoute (the API server polled) and commit →
   Healthy; each pause's overrun; steps per minute, update latency, Pulumi CLI
   processes per step, CPU seconds per step, peak RSS;
4. ``kulta status`` over the N stacks, as a subprocess on the same state.

Every ``pulumi`` process is logged by a shim put first on PATH (start, end,
exit code, CPU time, stack, update message). The update message names the
step it applies (``kulta step=2/4 … phase=Progressing commit=…``), so the
shim log says when each step was applied without any clock of KULTA's.

Run (cluster from ``python -m kulta.cli dev up``, toolchain from ``dev/env``):

    source dev/env
    python bench/scale.py --rollouts 1,10,50
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import urllib3  # noqa: E402
from kubernetes import client, config  # noqa: E402

from bench import step_latency  # noqa: E402
from bench.step_latency import DEFAULT_KUBECONFIG, GROUP, PLURAL, ROUTE, VERSION, kubectl  # noqa: E402
from kulta.adapters.file_backend import FileBackend  # noqa: E402
from kulta.adapters.stacks import stack_name_for  # noqa: E402
from kulta.cli import default_concurrency  # noqa: E402
from kulta.core.constants import PULUMI_PROJECT  # noqa: E402
from kulta.core.routes import route_weights  # noqa: E402
from kulta.core.times import parse_time  # noqa: E402
from kulta.errors import DependencyError  # noqa: E402

__all__ = [
    "SHIM",
    "CliProc",
    "Goal",
    "UpdateMessage",
    "descendants",
    "first_canary_goal",
    "main",
    "parse_bash_times",
    "parse_proc_stat",
    "parse_shim_line",
    "parse_sizes",
    "parse_update_message",
    "pause_overruns",
    "percentile",
    "process_table",
    "status_field_kb",
]

ENV = "bench"
NAME = "web-{index:03d}"
FIRST_WEIGHT, SECOND_WEIGHT = 25, 50
#: the steps' indexes: setWeight 25, pause, setWeight 50, pause; promotion is index 4
PAUSE_STEPS = (1, 3)
STEP_COUNT = 4
REPLICAS = 2
#: goal 4: all Healthy within (sum of pauses) + this
SLACK_SECONDS = 180.0
STATUS_GOAL_SECONDS = 2.0
RSS_GOAL_MB = 150.0
PROCS_PER_STEP_GOAL = 2.0
STATUS_RUNS = 3
STARTUP_TIMEOUT = 180.0
STOP_TIMEOUT = 90.0
COMMAND_TIMEOUT = 300.0
SAMPLE_INTERVAL = 0.5
API_TIMEOUT = 10.0
MB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")
UP = "up"
HEALTHY = "Healthy"

ROLLOUT = """apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: web
          image: registry.local/{name}:{tag}
          ports: [{{name: http, containerPort: 8080}}]
  strategy:
    canary:
      canaryService: {name}-canary
      stableService: {name}-stable
      trafficRouting:
        gatewayAPI: {{httpRoute: {name}}}
      steps:
        - setWeight: {first}
        - pause: {{duration: {pause}s}}
        - setWeight: {second}
        - pause: {{duration: {pause}s}}
"""

# One tab-separated line per pulumi process: start, end (epoch seconds), exit code,
# user and system CPU seconds of the process and its waited-for children (bash
# `times`), command (the first word that is no flag, two for stack/config/plugin),
# --stack, --message. `times` runs in this shell: a subshell would report no children.
SHIM = r"""#!/usr/bin/env bash
start=$EPOCHREALTIME
"{real}" "$@"
rc=$?
end=$EPOCHREALTIME
times > "{log}.times.$$"
{{ read -r _ _; read -r cu cs; }} < "{log}.times.$$"
rm -f "{log}.times.$$"
stack=""
message=""
prev=""
for a in "$@"; do
  case "$prev" in
    --stack) stack="$a" ;;
    --message) message="$a" ;;
  esac
  prev="$a"
done
cmd=""
for a in "$@"; do
  case "$a" in -*) continue ;; esac
  if [ -n "$cmd" ]; then cmd="$cmd $a"; break; fi
  cmd="$a"
  case "$a" in stack|config|plugin) ;; *) break ;; esac
done
message="${{message//$'\t'/ }}"
message="${{message//$'\n'/ }}"
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$start" "$end" "$rc" "$cu" "$cs" "$cmd" "$stack" "$message" >> "{log}"
exit $rc
"""

_TIMES_RE = re.compile(r"^(\d+)m([\d.,]+)s$")
_MESSAGE_RE = re.compile(r"^kulta step=(\d+)/(\d+) canary=\d+% phase=(\w+) commit=(\S+)")


# -- pure helpers (tests/unit/test_bench_scale.py) ------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def parse_bash_times(text: str) -> float:
    """Seconds from one field of bash's ``times`` output (``1m2.500s`` → 62.5)."""
    match = _TIMES_RE.match(text.strip())
    if match is None:
        raise ValueError(f"not a bash `times` field: {text!r}")
    return int(match.group(1)) * 60 + float(match.group(2).replace(",", "."))


@dataclass(frozen=True)
class CliProc:
    """One ``pulumi`` process as the shim logged it."""

    start: float
    end: float
    code: int
    cpu: float
    command: str
    stack: str
    message: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


def parse_shim_line(line: str) -> CliProc:
    start, end, code, user, system, command, stack, message = line.rstrip("\n").split("\t", 7)
    return CliProc(
        start=float(start.replace(",", ".")),
        end=float(end.replace(",", ".")),
        code=int(code),
        cpu=parse_bash_times(user) + parse_bash_times(system),
        command=command,
        stack=stack,
        message=message,
    )


@dataclass(frozen=True)
class UpdateMessage:
    """What KULTA writes as the message of each update (``_update_message``)."""

    step: int
    step_count: int
    phase: str
    commit: str


def parse_update_message(text: str) -> UpdateMessage | None:
    match = _MESSAGE_RE.match(text)
    if match is None:
        return None
    return UpdateMessage(int(match.group(1)), int(match.group(2)), match.group(3), match.group(4))


def parse_proc_stat(text: str, ticks_per_second: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) in seconds from a ``/proc/<pid>/stat`` line.

    The command name may hold spaces and parentheses: fields are counted after
    the last ``)``; utime is field 14 of proc(5), so the 12th after it.
    """
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / ticks_per_second, (cutime + cstime) / ticks_per_second


def status_field_kb(text: str, key: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``)."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    raise KeyError(key)


def descendants(root: int, parents: Mapping[int, int]) -> set[int]:
    """Every process below ``root`` in a pid → parent pid table."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def pause_overruns(
    pause_started: Mapping[tuple[str, int], float],
    applied: Mapping[tuple[str, int], float],
    pause_seconds: float,
) -> dict[tuple[str, int], float]:
    """Per (stack, pause step index): next step applied - pauseStartedAt - the pause.

    ``applied[(stack, i)]`` is when the update of step ``i`` ended; a pause at
    index ``i`` ends when step ``i + 1`` is applied. Pauses without both times
    are left out.
    """
    out: dict[tuple[str, int], float] = {}
    for (stack, index), started in pause_started.items():
        ended = applied.get((stack, index + 1))
        if ended is not None:
            out[(stack, index)] = ended - started - pause_seconds
    return out


def first_canary_goal(interval: float, rollouts: int, step_latency: float, workers: int) -> float:
    """Goal 3: the slowest rollout's first canary weight within interval + N x step latency / workers.

    With fewer rollouts than workers only N workers can be busy, so the
    divisor is ``min(N, workers)``: one rollout alone needs one whole step.
    """
    return interval + rollouts * step_latency / min(rollouts, workers)


@dataclass(frozen=True)
class Goal:
    """A measured figure next to its goal (``at_most``)."""

    label: str
    value: float
    at_most: float
    unit: str

    @property
    def met(self) -> bool:
        return self.value <= self.at_most

    @property
    def limit_text(self) -> str:
        limit = f"{self.at_most:g}" if float(self.at_most).is_integer() else f"{self.at_most:.2f}"
        return f"<= {limit}{self.unit}"

    def verdict(self) -> str:
        if self.met:
            return "met"
        over = self.value - self.at_most
        ratio = f", {self.value / self.at_most:.1f}x" if self.at_most > 0 else ""
        return f"MISSED by {over:.1f}{self.unit}{ratio}"


# -- processes and files ---------------------------------------------------------------
class ShimLog:
    """A ``pulumi`` first on PATH (for this process and its children) logging every call."""

    def __init__(self, directory: Path) -> None:
        real = shutil.which("pulumi")
        if real is None:
            raise SystemExit("pulumi is not on PATH: run `source dev/env` first")
        self.path = directory / "pulumi-calls.tsv"
        self.path.touch()
        shim = directory / "bin" / "pulumi"
        shim.parent.mkdir(parents=True)
        shim.write_text(SHIM.format(real=real, log=self.path))
        shim.chmod(0o755)
        os.environ["PATH"] = f"{shim.parent}{os.pathsep}{os.environ['PATH']}"
        self.procs: list[CliProc] = []
        self._offset = 0

    def refresh(self) -> list[CliProc]:
        """Read the complete lines appended since the last call; return them."""
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        fresh = [parse_shim_line(line) for line in data[:end].decode().splitlines() if line]
        self.procs.extend(fresh)
        return fresh

    def between(self, start: float, end: float) -> list[CliProc]:
        """Processes that started in [start, end]."""
        self.refresh()
        return [p for p in self.procs if start <= p.start <= end]


def read_text(path: str) -> str | None:
    """A /proc file, or None when the process has exited meanwhile (a normal race)."""
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def process_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command name) of every process."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        text = read_text(f"/proc/{entry}/stat")
        if text is None:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        table[int(entry)] = (ppid, comm)
    return table


def child_kind(comm: str) -> str:
    if comm == "pulumi":
        return "pulumi CLI"
    if comm.startswith("pulumi-resourc"):  # comm is cut at 15 characters
        return "provider plugin"
    if comm.startswith("pulumi-languag"):
        return "language host"
    if comm == "bash":
        return "shim (bash)"
    if comm.startswith("git"):
        return "git"
    return "other"


#: the kinds that make up "engine subprocesses" (the shim's bash is the benchmark's own)
ENGINE_KINDS = ("pulumi CLI", "provider plugin", "language host")


@dataclass(frozen=True)
class CpuTimes:
    own: float
    children: float


def cpu_times(pid: int) -> CpuTimes:
    text = read_text(f"/proc/{pid}/stat")
    if text is None:
        raise RuntimeError(f"process {pid} has exited")
    own, children = parse_proc_stat(text, CLK_TCK)
    return CpuTimes(own, children)


class RssSampler(threading.Thread):
    """Samples the RSS of the reconciler's descendants (engine subprocesses apart)."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.stop_event = threading.Event()
        self.engine_peak = 0  # bytes: pulumi + plugins alive at one instant
        self.kind_peak: Counter[str] = Counter()  # bytes: the largest single process of each kind
        self.samples = 0

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_INTERVAL):
            self.sample()

    def sample(self) -> None:
        table = process_table()
        below = descendants(self.pid, {pid: ppid for pid, (ppid, _) in table.items()})
        engine = 0
        for pid in below:
            statm = read_text(f"/proc/{pid}/statm")
            if statm is None:
                continue
            rss = int(statm.split()[1]) * PAGE_SIZE
            if rss == 0:
                continue  # a zombie waiting to be reaped holds no memory
            kind = child_kind(table[pid][1])
            self.kind_peak[kind] = max(self.kind_peak[kind], rss)
            if kind in ENGINE_KINDS:
                engine += rss
        self.engine_peak = max(self.engine_peak, engine)
        self.samples += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def rollout_yaml(name: str, ns: str, tag: str, pause: int) -> str:
    return ROLLOUT.format(
        name=name, ns=ns, tag=tag, pause=pause, replicas=REPLICAS, first=FIRST_WEIGHT, second=SECOND_WEIGHT
    )


# -- one size --------------------------------------------------------------------------
@dataclass
class Observed:
    """What the poll loop saw during the v2 phase."""

    first_weight: dict[str, float] = field(default_factory=dict)  # rollout → first 25 seen
    second_weight: dict[str, float] = field(default_factory=dict)
    #: (stack, step index) → pauseStartedAt read from the stack's outputs
    pause_started: dict[tuple[str, int], float] = field(default_factory=dict)
    api_errors: int = 0
    output_errors: int = 0


@dataclass
class SizeResult:
    rollouts: int
    namespace: str
    v1_healthy_seconds: float
    v1_updates: int
    v1_procs: int
    idle_seconds: float
    idle_procs: int
    v2_healthy_seconds: float
    first_canary: list[float]
    second_canary: list[float]
    healthy: list[float]
    overruns: list[float]
    #: per pause: the next step's `pulumi up` start - pauseStartedAt - the pause (the wait before the update)
    late_starts: list[float]
    overrun_source: str
    steps: int
    failed_updates: int
    steps_per_minute: float
    step_p50: float
    step_p95: float
    procs: int
    procs_by_command: dict[str, int]
    cpu_reconciler_per_step: float
    cpu_children_per_step: float
    cpu_engine_per_step: float
    vm_hwm_mb: float
    engine_rss_peak_mb: float
    largest_child_mb: dict[str, float]
    status_seconds: list[float]
    status_procs: int
    python_start_seconds: float
    api_errors: int
    output_errors: int
    #: successful updates in the stacks' history and successful `pulumi up` the shim logged (must be equal)
    history_updates: int = 0
    shim_updates: int = 0

    @property
    def procs_per_step(self) -> float:
        return self.procs / self.steps if self.steps else float("nan")

    def goals(self, args: argparse.Namespace) -> list[Goal]:
        goals = [
            Goal(
                "commit -> first canary weight, slowest rollout",
                max(self.first_canary),
                first_canary_goal(args.interval, self.rollouts, self.step_p50, args.concurrency),
                " s",
            ),
            Goal("pause overrun, worst pause", max(self.overruns), self.step_p50, " s") if self.overruns else None,
            Goal("v2 commit -> all Healthy", self.v2_healthy_seconds, 2 * args.pause + SLACK_SECONDS, " s"),
            Goal("kulta status (median)", statistics.median(self.status_seconds), STATUS_GOAL_SECONDS, " s"),
            Goal("reconciler peak RSS (VmHWM)", self.vm_hwm_mb, RSS_GOAL_MB, " MB"),
            Goal("Pulumi CLI processes per step", self.procs_per_step, PROCS_PER_STEP_GOAL, ""),
            Goal("Pulumi CLI processes at rest", self.idle_procs, 0, ""),
        ]
        return [g for g in goals if g is not None]


class SizeRun:
    """Everything for one size N: namespace, repository, state, the ``kulta run`` process."""

    def __init__(self, n: int, args: argparse.Namespace, shim: ShimLog, api: client.ApiClient, work: Path) -> None:
        self.n, self.args, self.shim, self.api = n, args, shim, api
        self.kubeconfig = str(args.kubeconfig)
        self.work = work / f"n{n}"
        self.work.mkdir()
        self.ns = f"bench-scale-{n}-{uuid.uuid4().hex[:5]}"
        self.names = [NAME.format(index=i) for i in range(n)]
        self.stacks = {stack_name_for(ENV, self.ns, name): name for name in self.names}
        self.state = self.work / "state"
        self.backend = FileBackend(self.state / "backend", PULUMI_PROJECT)
        self.log_path = self.work / "kulta-run.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.objects = client.CustomObjectsApi(api)
        self.timeout = args.timeout if args.timeout else 300.0 + 30.0 * n
        self.bare = self.work / "remote.git"
        self.clone = self.work / "clone"
        self.ns_created = False

    # -- set-up ------------------------------------------------------------------------
    def setup(self) -> None:
        kubectl(self.kubeconfig, "create", "namespace", self.ns)
        self.ns_created = True
        routes = "\n---\n".join(
            ROUTE.format(name=name, ns=self.ns, stable=f"{name}-stable", canary=f"{name}-canary") for name in self.names
        )
        kubectl(self.kubeconfig, "apply", "-f", "-", stdin=routes)
        git(self.work, "init", "--bare", "-b", "main", str(self.bare))
        git(self.work, "clone", str(self.bare), str(self.clone))
        git(self.clone, "config", "user.email", "bench@example.test")
        git(self.clone, "config", "user.name", "bench")
        (self.clone / "rollouts").mkdir()
        (self.clone / "rollouts" / "README").write_text("rollouts of bench/scale.py\n")
        self.commit("no rollouts yet")

    def commit(self, message: str, tag: str | None = None) -> tuple[str, float]:
        """Commit (and push) every rollout at ``tag``; returns (commit, time the push returned)."""
        if tag is not None:
            for name in self.names:
                (self.clone / "rollouts" / f"{name}.yaml").write_text(rollout_yaml(name, self.ns, tag, self.args.pause))
        git(self.clone, "add", "-A")
        git(self.clone, "commit", "-q", "-m", message)
        git(self.clone, "push", "-q", "origin", "HEAD:main")
        pushed = time.time()
        return git(self.clone, "rev-parse", "HEAD").strip(), pushed

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        cmd = [
            sys.executable, "-m", "kulta.cli", "run",
            "--repo", f"file://{self.bare}", "--branch", "main", "--path", "rollouts",
            "--interval", str(self.args.interval), "--concurrency", str(self.args.concurrency),
            "--state-dir", str(self.state), "--env", ENV, "--kubeconfig", self.kubeconfig,
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.work, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "pass 1: commit" not in self.log_path.read_text(errors="replace"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"kulta run printed no first pass within {STARTUP_TIMEOUT:.0f}s\n{self.log_tail()}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"kulta run exited with {self.proc.returncode}\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])

    # -- waiting -------------------------------------------------------------------------
    def healthy_at(self, commit: str, since: float) -> dict[str, float]:
        """stack → end of its successful update that made ``commit`` Healthy (from the shim log)."""
        self.shim.refresh()
        done: dict[str, float] = {}
        for p in self.shim.procs:
            if p.command != UP or p.code != 0 or p.stack not in self.stacks or p.start < since:
                continue
            msg = parse_update_message(p.message)
            if msg is not None and msg.phase == HEALTHY and commit.startswith(msg.commit):
                done.setdefault(p.stack, p.end)
        return done

    def wait_healthy(self, commit: str, since: float, observe: Callable[[], None] | None = None) -> dict[str, float]:
        deadline = time.monotonic() + self.timeout
        while True:
            if observe is not None:
                observe()
            done = self.healthy_at(commit, since)
            if len(done) == len(self.stacks):
                return done
            self.check_alive()
            if time.monotonic() > deadline:
                missing = sorted(set(self.stacks) - set(done))
                raise RuntimeError(
                    f"{len(missing)} of {self.n} rollouts not Healthy at {commit[:12]} within {self.timeout:.0f}s "
                    f"(--timeout): {', '.join(missing[:5])}\n{self.log_tail()}"
                )
            time.sleep(self.args.poll_interval)

    def observer(self, since: float, commit: str, seen: Observed) -> Callable[[], None]:
        """One poll: every HTTPRoute (one list call) and the outputs of stacks whose checkpoint changed."""
        mtimes: dict[str, int] = {}

        def observe() -> None:
            now = time.time()
            try:
                routes = cast(
                    dict[str, Any],
                    self.objects.list_namespaced_custom_object(
                        GROUP, VERSION, self.ns, PLURAL, _request_timeout=API_TIMEOUT
                    ),
                )
            except (client.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                seen.api_errors += 1
                print(f"  (HTTPRoute list failed, polled again: {type(exc).__name__}: {exc})")
            else:
                for item in routes.get("items", []):
                    name = item["metadata"]["name"]
                    if name not in self.names:
                        continue
                    weights = route_weights(item["spec"].get("rules", []), f"{name}-stable", f"{name}-canary")
                    if weights is None:
                        continue
                    if weights[1] == FIRST_WEIGHT:
                        seen.first_weight.setdefault(name, now)
                    elif weights[1] == SECOND_WEIGHT:
                        seen.second_weight.setdefault(name, now)
            for stack in self.stacks:
                path = self.backend.stacks_dir / f"{stack}.json"
                try:
                    mtime = path.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                if mtimes.get(stack) == mtime:
                    continue
                mtimes[stack] = mtime
                try:
                    outputs = self.backend.outputs(stack)
                except DependencyError as exc:
                    seen.output_errors += 1
                    print(f"  (reading the outputs of {stack} failed, read again: {exc})")
                    mtimes.pop(stack, None)
                    continue
                index = outputs.get("currentStepIndex")
                started = outputs.get("pauseStartedAt")
                if index in PAUSE_STEPS and started and outputs.get("gitCommit") == commit:
                    seen.pause_started.setdefault((stack, int(index)), parse_time(str(started)).timestamp())

        return observe

    # -- the scenario --------------------------------------------------------------------
    def run(self) -> SizeResult:
        print(f"\n== {self.n} rollout(s): namespace {self.ns}, work dir {self.work}")
        self.setup()
        self.start()
        sampler = RssSampler(self.pid)
        sampler.start()
        try:
            result = self._measure(sampler)
        finally:
            sampler.stop()
        self.stop()
        result.history_updates = self.history_updates()
        result.shim_updates = sum(
            1 for p in self.shim.between(0, time.time()) if p.command == UP and p.code == 0 and p.stack in self.stacks
        )
        if result.history_updates != result.shim_updates:
            print(
                f"  WARNING: the stacks' history holds {result.history_updates} successful updates, the shim logged "
                f"{result.shim_updates} successful `pulumi up`: the figures per step are not trustworthy"
            )
        return result

    def history_updates(self) -> int:
        """Successful updates in the file backend's history of our stacks (a cross-check of the shim)."""
        count = 0
        for stack in self.stacks:
            folder = self.backend.root / ".pulumi" / "history" / PULUMI_PROJECT / stack
            for path in folder.glob("*.history.json"):
                entry = json.loads(path.read_text())
                if entry.get("kind") == "update" and entry.get("result") == "succeeded":
                    count += 1
        return count

    def _measure(self, sampler: RssSampler) -> SizeResult:
        args = self.args
        c1, t1 = self.commit("v1", "v1")
        print(f"  v1 committed ({c1[:12]}): waiting for {self.n} first deployments")
        v1_done = self.wait_healthy(c1, t1)
        t1_end = max(v1_done.values())
        v1_procs = self.shim.between(t1, t1_end)
        v1_updates = sum(1 for p in v1_procs if p.command == UP and p.code == 0)
        print(f"  v1 all Healthy after {t1_end - t1:.1f}s ({v1_updates} updates, {len(v1_procs)} pulumi processes)")

        idle = 2 * args.interval + 1
        idle_start = time.time()
        time.sleep(idle)
        self.check_alive()
        idle_procs = self.shim.between(idle_start, time.time())
        print(f"  at rest for {idle:.0f}s: {len(idle_procs)} pulumi processes")

        seen = Observed()
        cpu_before = cpu_times(self.pid)
        c2, t2 = self.commit("v2", "v2")
        print(f"  v2 committed ({c2[:12]}): waiting for {self.n} canaries to walk their steps")
        healthy = self.wait_healthy(c2, t2, self.observer(t2, c2, seen))
        t2_end = max(healthy.values())
        cpu_after = cpu_times(self.pid)
        print(f"  v2 all Healthy after {t2_end - t2:.1f}s")

        status_seconds, status_procs = self.status_runs()
        python_start = self.python_start()
        hwm_text = read_text(f"/proc/{self.pid}/status")
        if hwm_text is None:
            raise RuntimeError("kulta run exited before its peak RSS was read")
        vm_hwm = status_field_kb(hwm_text, "VmHWM") * 1024
        sampler.sample()

        # read after the status runs: a process started before t2_end has ended and been logged by now
        procs = self.shim.between(t2, t2_end)
        ups = [p for p in procs if p.command == UP and p.stack in self.stacks]
        steps = [p for p in ups if p.code == 0]

        applied: dict[tuple[str, int], float] = {}
        started: dict[tuple[str, int], float] = {}
        pause_from_updates: dict[tuple[str, int], float] = {}
        for p in steps:
            msg = parse_update_message(p.message)
            if msg is None or not c2.startswith(msg.commit):
                continue
            applied.setdefault((p.stack, msg.step), p.end)
            started.setdefault((p.stack, msg.step), p.start)
            if msg.step in PAUSE_STEPS:
                # pauseStartedAt is the clock at the decision, in whole seconds, just before this process
                pause_from_updates.setdefault((p.stack, msg.step), float(math.floor(p.start)))
        pause_started = dict(seen.pause_started)
        source = "pauseStartedAt from the stack outputs"
        missing = set(pause_from_updates) - set(pause_started)
        if missing:
            source += f" ({len(missing)} from the pause update's start, outputs not seen)"
            pause_started.update({k: pause_from_updates[k] for k in missing})
        overruns = pause_overruns(pause_started, applied, args.pause)
        late_starts = pause_overruns(pause_started, started, args.pause)

        missing_weight = sorted(set(self.names) - set(seen.first_weight))
        if missing_weight:
            raise RuntimeError(f"canary weight {FIRST_WEIGHT} never seen on {', '.join(missing_weight[:5])}")

        durations = [p.seconds for p in steps]
        window = t2_end - t2
        engine_cpu = sum(p.cpu for p in procs)
        return SizeResult(
            rollouts=self.n,
            namespace=self.ns,
            v1_healthy_seconds=t1_end - t1,
            v1_updates=v1_updates,
            v1_procs=len(v1_procs),
            idle_seconds=idle,
            idle_procs=len(idle_procs),
            v2_healthy_seconds=window,
            first_canary=[seen.first_weight[name] - t2 for name in self.names],
            second_canary=[seen.second_weight[name] - t2 for name in self.names if name in seen.second_weight],
            healthy=[healthy[stack] - t2 for stack in self.stacks],
            overruns=list(overruns.values()),
            late_starts=list(late_starts.values()),
            overrun_source=source,
            steps=len(steps),
            failed_updates=len(ups) - len(steps),
            steps_per_minute=len(steps) / window * 60,
            step_p50=percentile(durations, 50),
            step_p95=percentile(durations, 95),
            procs=len(procs),
            procs_by_command=dict(Counter(p.command for p in procs).most_common()),
            cpu_reconciler_per_step=(cpu_after.own - cpu_before.own) / len(steps),
            cpu_children_per_step=(cpu_after.children - cpu_before.children) / len(steps),
            cpu_engine_per_step=engine_cpu / len(steps),
            vm_hwm_mb=vm_hwm / MB,
            engine_rss_peak_mb=sampler.engine_peak / MB,
            largest_child_mb={k: v / MB for k, v in sampler.kind_peak.most_common()},
            status_seconds=status_seconds,
            status_procs=status_procs,
            python_start_seconds=python_start,
            api_errors=seen.api_errors,
            output_errors=seen.output_errors,
        )

    def kulta_cli(self, *argv: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "kulta.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.work,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return time.perf_counter() - start, proc

    def status_runs(self) -> tuple[list[float], int]:
        """``kulta status`` over the N stacks, STATUS_RUNS times; (wall times, pulumi processes started)."""
        walls: list[float] = []
        start = time.time()
        for _ in range(STATUS_RUNS):
            wall, proc = self.kulta_cli("status", "--state-dir", str(self.state), "--env", ENV)
            if proc.returncode != 0:
                raise RuntimeError(f"kulta status failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
            absent = [name for name in self.names if name not in proc.stdout]
            if absent:
                raise RuntimeError(f"kulta status left out {', '.join(absent[:5])}:\n{proc.stdout[-2000:]}")
            walls.append(wall)
        # the loop may run its scale-down updates meanwhile (`up`); `kulta status` never updates
        return walls, sum(1 for p in self.shim.between(start, time.time()) if p.command != UP)

    def python_start(self) -> float:
        """Wall time of ``python -m kulta.cli --version``: interpreter start-up and the CLI's imports."""
        wall, proc = self.kulta_cli("--version")
        if proc.returncode != 0:
            raise RuntimeError(f"kulta --version failed: {proc.stderr.strip()}")
        return wall

    def stop(self) -> None:
        """SIGTERM to the loop's process group (it finishes the update in flight), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"  kulta run did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM: SIGKILL")
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def cleanup(self) -> None:
        if self.args.keep:
            print(f"  kept namespace {self.ns} and {self.work}")
            return
        if self.ns_created:
            kubectl(self.kubeconfig, "delete", "namespace", self.ns, "--wait=false")


# -- report ------------------------------------------------------------------------------
def fmt_dist(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {percentile(values, 50):6.1f}  p95 {percentile(values, 95):6.1f}  "
        f"max {max(values):6.1f} s  (n={len(values)})"
    )


def print_size(r: SizeResult, args: argparse.Namespace) -> None:
    goals = {g.label: g for g in r.goals(args)}
    rows: list[tuple[str, str, str]] = []

    def row(label: str, value: str, goal_label: str | None = None) -> None:
        g = goals.get(goal_label or "")
        rows.append((label, value, f"{g.limit_text}: {g.verdict()}" if g else ""))

    row("v1 commit -> all Healthy", f"{r.v1_healthy_seconds:.1f} s ({r.v1_updates} updates, {r.v1_procs} processes)")
    row(
        f"at rest ({r.idle_seconds:.0f} s after v1)",
        f"{r.idle_procs} Pulumi processes",
        "Pulumi CLI processes at rest",
    )
    row(
        f"v2 commit -> weight {FIRST_WEIGHT} visible",
        fmt_dist(r.first_canary),
        "commit -> first canary weight, slowest rollout",
    )
    row(f"v2 commit -> weight {SECOND_WEIGHT} visible", fmt_dist(r.second_canary))
    row("v2 commit -> Healthy, per rollout", fmt_dist(r.healthy))
    row(f"pause overrun ({args.pause} s pauses)", fmt_dist(r.overruns), "pause overrun, worst pause")
    row("  of which before the update started", fmt_dist(r.late_starts))
    row("v2 commit -> all Healthy", f"{r.v2_healthy_seconds:.1f} s", "v2 commit -> all Healthy")
    row("steps (updates) per minute", f"{r.steps_per_minute:.1f} ({r.steps} updates, {r.failed_updates} failed)")
    row("step latency (`pulumi up` process)", f"p50 {r.step_p50:.2f} s  p95 {r.step_p95:.2f} s")
    by_cmd = ", ".join(f"{c} {n}" for c, n in r.procs_by_command.items())
    row("Pulumi CLI processes per step", f"{r.procs_per_step:.2f} ({by_cmd})", "Pulumi CLI processes per step")
    row(
        "CPU s per step",
        f"reconciler {r.cpu_reconciler_per_step:.2f}, children {r.cpu_children_per_step:.2f} "
        f"(of which Pulumi processes {r.cpu_engine_per_step:.2f})",
    )
    row("reconciler peak RSS (VmHWM)", f"{r.vm_hwm_mb:.0f} MB", "reconciler peak RSS (VmHWM)")
    largest = ", ".join(f"{k} {v:.0f}" for k, v in r.largest_child_mb.items())
    row("engine subprocesses RSS", f"peak {r.engine_rss_peak_mb:.0f} MB at once; largest single: {largest} MB")
    row(
        f"kulta status ({STATUS_RUNS} runs)",
        f"median {statistics.median(r.status_seconds):.2f} s, max {max(r.status_seconds):.2f} s, "
        f"{r.status_procs} Pulumi processes (`kulta --version` alone: {r.python_start_seconds:.2f} s)",
        "kulta status (median)",
    )
    width = max(len(label) for label, _, _ in rows)
    print(f"\n{r.rollouts} rollout(s), --concurrency {args.concurrency}, --interval {args.interval:g} s")
    for label, value, verdict in rows:
        print(f"  {label:<{width}}  {value}" + (f"\n  {'':<{width}}    goal {verdict}" if verdict else ""))
    if r.api_errors or r.output_errors:
        print(f"  (polling errors: {r.api_errors} HTTPRoute lists, {r.output_errors} output reads)")
    print(f"  overrun measured from {r.overrun_source}")
    print(f"  cross-check: {r.history_updates} successful updates in the stacks' history, {r.shim_updates} logged")


def print_curve(results: Sequence[SizeResult], args: argparse.Namespace) -> None:
    header = (
        "N",
        "v1 s",
        "v2 s",
        "goal s",
        "1st wt max s",
        "overrun p95/max s",
        "steps/min",
        "step p50/p95 s",
        "procs/step",
        "CPU/step rec/child s",
        "RSS MB",
        "engine RSS MB",
        "status s",
    )
    rows = [header]
    for r in results:
        rows.append(
            (
                str(r.rollouts),
                f"{r.v1_healthy_seconds:.1f}",
                f"{r.v2_healthy_seconds:.1f}",
                f"{2 * args.pause + SLACK_SECONDS:.0f}",
                f"{max(r.first_canary):.1f}",
                f"{percentile(r.overruns, 95):.1f}/{max(r.overruns):.1f}" if r.overruns else "-",
                f"{r.steps_per_minute:.1f}",
                f"{r.step_p50:.2f}/{r.step_p95:.2f}",
                f"{r.procs_per_step:.2f}",
                f"{r.cpu_reconciler_per_step:.2f}/{r.cpu_children_per_step:.2f}",
                f"{r.vm_hwm_mb:.0f}",
                f"{r.engine_rss_peak_mb:.0f}",
                f"{statistics.median(r.status_seconds):.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(f"\ncost curve (--concurrency {args.concurrency}, --interval {args.interval:g} s, pauses {args.pause} s)")
    for i, row in enumerate(rows):
        print("  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    missed = [(r.rollouts, g) for r in results for g in r.goals(args) if not g.met]
    if missed:
        print("\ngoals missed:")
        for n, g in missed:
            print(f"  N={n}: {g.label}: {g.value:.2f}{g.unit} against {g.limit_text}: {g.verdict()}")
    else:
        print("\nevery goal met")


def summary_json(results: Sequence[SizeResult], args: argparse.Namespace) -> dict[str, Any]:
    sizes = []
    for r in results:
        data = asdict(r)
        data["procs_per_step"] = r.procs_per_step
        data["goals"] = [{**asdict(g), "met": g.met} for g in r.goals(args)]
        sizes.append(data)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "concurrency": args.concurrency,
        "interval": args.interval,
        "pause": args.pause,
        "sizes": sizes,
    }


# -- entry point ---------------------------------------------------------------------------
def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--rollouts wants numbers separated by commas: {text!r}") from exc
    if not sizes or any(n < 1 or n > 999 for n in sizes):
        raise argparse.ArgumentTypeError("--rollouts wants sizes between 1 and 999")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rollouts", type=parse_sizes, default=[1, 10, 50], help="sizes, e.g. 1,10,50 (the default)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=default_concurrency(),
        help="kulta run --concurrency (default: KULTA's, one per CPU)",
    )
    p.add_argument(
        "--step-iterations",
        type=int,
        default=10,
        help="first run bench/step_latency.py with this many steps (goal 1: one step vs kubectl patch); 0 skips it",
    )
    p.add_argument("--pause", type=int, default=5, help="seconds of each of the two pauses (default 5)")
    p.add_argument("--interval", type=float, default=2.0, help="kulta run --interval in seconds (default 2)")
    p.add_argument(
        "--poll-interval", type=float, default=0.25, help="seconds between HTTPRoute/outputs reads (default 0.25)"
    )
    p.add_argument("--timeout", type=float, help="seconds to wait for all Healthy per phase (default 300 + 30 N)")
    p.add_argument(
        "--kubeconfig",
        default=os.environ.get("KULTA_BENCH_KUBECONFIG") or os.environ.get("KUBECONFIG") or str(DEFAULT_KUBECONFIG),
        help="cluster to run on (default $KUBECONFIG, else the `kulta dev up` cluster)",
    )
    p.add_argument("--json", action="store_true", help="also print every figure as one JSON line")
    p.add_argument("--keep", action="store_true", help="keep the namespaces and the work directory")
    args = p.parse_args(argv)
    if args.concurrency < 1 or args.pause < 1 or args.interval <= 0 or args.poll_interval <= 0:
        p.error("--concurrency and --pause must be >= 1, --interval and --poll-interval > 0")
    if not Path(args.kubeconfig).is_file():
        p.error(f"kubeconfig {args.kubeconfig} does not exist (start a cluster with `python -m kulta.cli dev up`)")
    return args


def run(args: argparse.Namespace) -> list[SizeResult]:
    for tool in ("kubectl", "git"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH: run `source dev/env` first")
    work = Path(tempfile.mkdtemp(prefix="kulta-scale-"))
    shim = ShimLog(work)
    api = config.new_client_from_config(config_file=str(args.kubeconfig))  # type: ignore[no-untyped-call]
    results: list[SizeResult] = []
    try:
        for n in args.rollouts:
            size = SizeRun(n, args, shim, api, work)
            try:
                result = size.run()
            finally:
                size.stop()
                size.cleanup()
            print_size(result, args)
            results.append(result)
        print_curve(results, args)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.step_iterations > 0:
        # goal 1 (one step against kubectl patch) in the same run, before the sizes
        print(f"== one step vs kubectl patch (bench/step_latency.py --iterations {args.step_iterations})")
        step_latency.main(["--iterations", str(args.step_iterations), "--kubeconfig", str(args.kubeconfig)])
    results = run(args)
    if args.json:
        print(json.dumps(summary_json(results, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
