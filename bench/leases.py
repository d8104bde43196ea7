"""One lease per rollout or leases per shard: API calls, balance and failover, measured.

Why: replicas of ``kulta run`` share rollouts through ``coordination.k8s.io/v1``
Leases (docs/adr/0007-one-lease-per-rollout.md). Two layouts were candidates:

* **per rollout** — one Lease per rollout; a replica renews each one it holds;
* **per shard** — S Leases; a rollout belongs to shard ``sha256(stack) mod S`` and
  a replica drives every rollout of the shards it holds.

Both run through the same ``LeaseKeeper`` (for shards, its keys are the shard
names), in-process, against a real API server: R replicas tick every
``duration / 3``. The benchmark reports, per layout: API calls per tick per
replica (counted in ``LeaseApi.calls``) and the time a tick takes; how evenly the
rollouts end up spread; the fence's extra ``get`` per update; and the failover
time when one replica stops ticking (a kill -9 as the others see it) until the
others hold all of its rollouts.

Run (cluster from ``python -m kulta.cli dev up``):

    source dev/env
    python bench/leases.py --rollouts 50 --replicas 3 --shards 8 --duration 6
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kulta.adapters.leases import LeaseApi, LeaseKeeper, LeaseSettings  # noqa: E402


@dataclass(frozen=True)
class LayoutResult:
    layout: str
    leases: int
    calls_per_tick: float
    tick_ms_median: float
    rollouts_per_replica: list[int]
    failover_seconds: float
    calls_per_second_all_replicas: float


def shard_of(stack: str, shards: int) -> str:
    return f"shard-{int(hashlib.sha256(stack.encode()).hexdigest(), 16) % shards}"


def run_layout(
    layout: str, stacks: list[str], key_of: Callable[[str], str], replicas: int, duration: float, kubeconfig: str | None
) -> LayoutResult:
    """Settle, count a steady state's calls, then stop replica 0 and time the takeover."""
    keys = sorted({key_of(s) for s in stacks})
    namespace = f"bench-leases-{uuid.uuid4().hex[:5]}"
    kubectl = ["kubectl", *(["--kubeconfig", kubeconfig] if kubeconfig else [])]
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    try:
        keepers = [
            LeaseKeeper(
                LeaseSettings(namespace, f"replica-{n}", "bench", duration),
                LeaseApi(namespace, kubeconfig, timeout=duration / 3),
            )
            for n in range(replicas)
        ]
        wanted = set(keys)
        ticks = 0
        # settle: until every key is held and no tick changes anything
        deadline = time.monotonic() + 20 * duration
        while time.monotonic() < deadline:
            changed = False
            for k in keepers:
                report = k.tick(wanted, ())
                changed = changed or bool(report.gained or report.lost)
            ticks += 1
            held = set().union(*(k.held() for k in keepers))
            if held == wanted and not changed and ticks > 2:
                break
            time.sleep(keepers[0].period)
        # steady state: count calls over 5 ticks of every replica
        calls_before = [sum(k.api.calls.values()) for k in keepers]
        steady_ms: list[float] = []
        for _ in range(5):
            for k in keepers:
                started = time.monotonic()
                k.tick(wanted, ())
                steady_ms.append((time.monotonic() - started) * 1000)
            time.sleep(keepers[0].period)
        calls = [sum(k.api.calls.values()) - before for k, before in zip(keepers, calls_before, strict=True)]
        per_tick = statistics.mean(calls) / 5
        spread = [len([s for s in stacks if key_of(s) in k.held()]) for k in keepers]
        # failover: replica 0 stops ticking; the others tick on until they hold its keys
        victim, survivors = keepers[0], keepers[1:]
        orphaned = set(victim.held())
        stopped = time.monotonic()
        failover = float("nan")
        while time.monotonic() - stopped < 10 * duration:
            for k in survivors:
                k.tick(wanted, ())
            if orphaned <= set().union(*(k.held() for k in survivors)):
                failover = time.monotonic() - stopped
                break
            time.sleep(victim.period)
        return LayoutResult(
            layout=layout,
            leases=len(keys),
            calls_per_tick=round(per_tick, 1),
            tick_ms_median=round(statistics.median(steady_ms), 1),
            rollouts_per_replica=spread,
            failover_seconds=round(failover, 1),
            calls_per_second_all_replicas=round(per_tick * replicas / keepers[0].period, 1),
        )
    finally:
        subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"], check=False, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--duration", type=float, default=6.0, help="lease seconds (ticks every third)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stacks = [f"bench.shop.app-{n}" for n in range(args.rollouts)]
    shards = args.shards
    results = [
        run_layout("per-rollout", stacks, lambda s: s, args.replicas, args.duration, args.kubeconfig),
        run_layout(
            f"per-shard ({shards})",
            stacks,
            lambda s: shard_of(s, shards),
            args.replicas,
            args.duration,
            args.kubeconfig,
        ),
    ]
    for r in results:
        sys.stdout.write(
            f"{r.layout:<16} leases {r.leases:>3}  calls/tick/replica {r.calls_per_tick:>5}  "
            f"tick {r.tick_ms_median:>6} ms  all replicas {r.calls_per_second_all_replicas:>5} calls/s  "
            f"rollouts per replica {r.rollouts_per_replica}  failover {r.failover_seconds}s\n"
        )
    sys.stdout.write(
        f"{args.rollouts} rollouts, {args.replicas} replicas, lease {args.duration:g}s; "
        "the fence adds one get per Pulumi update in both layouts\n"
    )
    if args.json:
        sys.stdout.write(json.dumps([asdict(r) for r in results]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
