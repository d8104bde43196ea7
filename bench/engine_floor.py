"""What Pulumi itself costs per update on this machine: the floor under a KULTA step.

Prints, each the median of ``--iterations`` runs:

- ``pulumi version``: a bare CLI process start;
- ``pulumi up`` of an unchanged one-resource stack (a ConfigMap) through the same
  lean path KULTA uses (``StackManager.up``: one CLI process, the inline Python
  program over gRPC, the kubernetes provider plugin started by the engine);
- the same ``pulumi up`` changing the ConfigMap (one resource update);
- ``kubectl patch`` of the same ConfigMap, the cheapest way to make the change by hand.

Run (cluster from ``python -m kulta.cli dev up``, toolchain from ``dev/env``):

    source dev/env
    python bench/engine_floor.py --iterations 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pulumi  # noqa: E402
import pulumi_kubernetes as k8s  # noqa: E402

from kulta.adapters.stacks import StackManager, StackSettings  # noqa: E402

__all__ = ["main"]

DEFAULT_KUBECONFIG = Path.home() / ".cache" / "kulta" / "dev" / "kulta-dev" / "kubeconfig.yaml"


def timed(action: Callable[[], object], iterations: int) -> list[float]:
    out = []
    for _ in range(iterations):
        start = time.monotonic()
        action()
        out.append(time.monotonic() - start)
    return out


def program(namespace: str, value: str) -> Callable[[], None]:
    def run() -> None:
        k8s.core.v1.ConfigMap(
            "floor",
            metadata={"name": "floor", "namespace": namespace},
            data={"value": value},
        )
        pulumi.export("value", value)

    return run


def kubectl(kubeconfig: str, *args: str) -> None:
    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], check=True, capture_output=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--kubeconfig", default=str(DEFAULT_KUBECONFIG))
    args = p.parse_args(argv)
    ns = f"bench-floor-{uuid.uuid4().hex[:5]}"
    kubectl(args.kubeconfig, "create", "namespace", ns)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stacks = StackManager(StackSettings(state_dir=Path(tmp), kubeconfig=args.kubeconfig))
            name = "floor.bench.floor"
            stacks.up(name, program(ns, "0"), "create")
            counter = iter(range(1, 10_000))
            version = timed(lambda: subprocess.run(["pulumi", "version"], check=True, capture_output=True), 3)
            same = timed(lambda: stacks.up(name, program(ns, "0"), "unchanged"), args.iterations)
            change = timed(lambda: stacks.up(name, program(ns, str(next(counter))), "changed"), args.iterations)
            patch = timed(
                lambda: kubectl(
                    args.kubeconfig,
                    "-n",
                    ns,
                    "patch",
                    "configmap",
                    "floor",
                    "-p",
                    f'{{"data":{{"value":"k{next(counter)}"}}}}',
                ),
                args.iterations,
            )
    finally:
        kubectl(args.kubeconfig, "delete", "namespace", ns, "--wait=false")
    rows = [
        ("pulumi version (CLI start)", version),
        ("pulumi up, unchanged one-resource stack", same),
        ("pulumi up, one ConfigMap changed", change),
        ("kubectl patch, the same change", patch),
    ]
    print(f"{'measure':45} {'median':>8} {'min':>8} {'max':>8}")
    for label, values in rows:
        print(f"{label:45} {statistics.median(values):8.3f} {min(values):8.3f} {max(values):8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
