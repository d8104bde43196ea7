"""Every file in examples/ is valid, and the demo plans as the README promises.

examples/ci/ holds CI workflows (GitHub Actions), not KULTA files: only the top level is read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kulta.core.plan import WaitKind, full_plan
from kulta.spec import load_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: the Rollout examples (examples/ci/ holds CI workflow files, not Kubernetes documents)
FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_validates_with_no_errors(path: Path) -> None:
    # Each file alone, with the other examples available for references.
    result = load_paths([path, *FILES], base=EXAMPLES)
    assert [str(e) for e in result.errors] == []


def test_demo_rollout_plan() -> None:
    result = load_paths(FILES, base=EXAMPLES)
    demo = next(r for r in result.rollouts if r.name == "demo")
    assert (demo.namespace, demo.spec.replicas) == ("demo", 4)
    plan = full_plan(demo.spec)
    assert [s.canary_weight for s in plan] == [25, 25, 50, 50, 75, 75, 100]
    assert [s.canary_replicas for s in plan] == [1, 1, 2, 2, 3, 3, 4]
    assert [s.wait.kind for s in plan] == [
        WaitKind.NONE,
        WaitKind.PAUSE_DURATION,
        WaitKind.NONE,
        WaitKind.ANALYSIS,
        WaitKind.NONE,
        WaitKind.PAUSE_DURATION,
        WaitKind.NONE,
    ]
    template = next(t for t in result.templates if t.name == "success-rate")
    (metric,) = template.metrics
    assert (metric.interval_seconds, metric.count, metric.failure_limit) == (5, 3, 1)
    assert metric.provider.address == "http://127.0.0.1:9090"
    assert "{{args.canary-hash}}" in metric.provider.query
