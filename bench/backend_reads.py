"""What the Pulumi backend costs KULTA: file vs. PostgreSQL, direct reads vs. the CLI.

Every pass reads each rollout's outputs and its ``kulta-command`` tag before
deciding anything; ``kulta status`` reads the outputs of every stack; every
step is one ``pulumi up``. This prints, for a file backend in a temp dir and a
throwaway PostgreSQL server (``kulta/devpostgres.py``), each the median of
``--iterations`` runs:

- ``outputs + tag``: the two reads of one pass of one rollout, direct (files;
  ``psql`` for PostgreSQL) and through the Pulumi CLI (``stack export`` and
  ``stack tag ls``), for comparison;
- ``up``: one update of a stack whose program only exports outputs (no
  provider, no cluster): the engine and backend part of a step;
- ``kulta status``: the whole command as a process (interpreter start included),
  over ``--stacks`` stacks.

Run (toolchain from ``dev/env``; no cluster needed):

    source dev/env
    python bench/backend_reads.py --iterations 5 --stacks 10
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pulumi  # noqa: E402

from kulta.adapters.stacks import StackManager, StackSettings, stack_name_for  # noqa: E402
from kulta.devpostgres import start_postgres, stop_postgres  # noqa: E402
from kulta.model.status import Phase, RolloutStatus, RouteWeight  # noqa: E402

__all__ = ["main"]

ENV = "bench"


def median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def program(name: str, step: int) -> Callable[[], None]:
    """A stack whose outputs are a real status (so ``kulta status`` reads it) and no resource."""
    status = RolloutStatus(
        rollout=name,
        namespace="bench",
        environment=ENV,
        phase=Phase.PROGRESSING,
        current_step_index=step % 3,
        step_count=3,
        stable_revision="5d8c7b9f4",
        canary_revision="6f7a8b9c1",
        weights=(RouteWeight(route="web", namespace="bench", stable=80, canary=20),),
        replicas={"web-5d8c7b9f4": 4, "web-6f7a8b9c1": 1},
    )

    def run() -> None:
        for key, value in status.to_outputs().items():
            pulumi.export(key, value)

    return run


def measure(label: str, url: str, work: Path, iterations: int, stacks: int) -> dict[str, float]:
    state = work / label
    manager = StackManager(StackSettings(state_dir=state, backend_url=url))
    names = [stack_name_for(ENV, "bench", f"web{i}") for i in range(stacks)]
    for i, name in enumerate(names):
        manager.up(name, program(f"web{i}", 0), message=f"bench step=0 {name}")
        manager.set_tag(name, "kulta-command", "{}")
    first = names[0]
    counter = iter(range(1, 10_000))
    result = {
        "up": median_ms(lambda: manager.up(first, program("web0", next(counter)), message="bench"), iterations),
        "outputs+tag direct": median_ms(
            lambda: (manager.outputs(first), manager.get_tag(first, "kulta-command")), iterations * 4
        ),
    }
    through_cli = StackManager(StackSettings(state_dir=work / f"{label}-cli", backend_url=url))
    through_cli.direct = None
    through_cli.open(first)
    result["outputs+tag CLI"] = median_ms(
        lambda: (through_cli.outputs(first), through_cli.get_tag(first, "kulta-command")), iterations
    )
    env = {**os.environ, "PULUMI_BACKEND_URL": url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "kulta.cli", "status", "--env", ENV, "--state-dir", str(work / f"{label}-status")]

    def status() -> None:
        done = subprocess.run(command, env=env, check=False, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or done.stdout.count("Progressing") != stacks:
            raise SystemExit(f"kulta status failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr[-2000:]}")

    result[f"kulta status ({stacks} stacks)"] = median_ms(status, iterations)
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--iterations", type=int, default=5, help="runs of each measurement (default 5)")
    p.add_argument("--stacks", type=int, default=10, help="stacks listed by `kulta status` (default 10)")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.stacks < 1:
        p.error("--iterations and --stacks must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kulta-bench-backend-"))
    (work / "backend").mkdir()
    server = start_postgres()
    try:
        rows = {
            "file": measure("file", f"file://{work / 'backend'}", work, args.iterations, args.stacks),
            "postgres": measure("postgres", server.url, work, args.iterations, args.stacks),
        }
    finally:
        stop_postgres(server)
        shutil.rmtree(work)
    print(f"{'median ms':<28} {'file':>10} {'postgres':>10}")
    for key in rows["file"]:
        print(f"{key:<28} {rows['file'][key]:>10.2f} {rows['postgres'][key]:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
