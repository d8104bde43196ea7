"""The corpus: realistic Rollout files that must parse and plan, and bad files with their exact errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kulta.app.spec_commands import render_plan
from kulta.core.plan import PlanMode, desired_state, full_plan
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.spec import load_paths

TESTS = Path(__file__).resolve().parent.parent
GOOD = sorted((TESTS / "corpus").glob("*.yaml"))
BAD = sorted((TESTS / "corpus_bad").glob("*.yaml"))
EXPECT = "# expect: "


def test_corpus_is_large_enough() -> None:
    assert len(GOOD) >= 20
    assert len(BAD) >= 10


@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
def test_good_file_parses_and_plans(path: Path) -> None:
    result = load_paths([path], base=path.parent)
    assert [str(e) for e in result.errors] == []
    assert result.rollouts
    for rollout in result.rollouts:
        plan = full_plan(rollout.spec)
        assert plan[-1].mode is PlanMode.PROMOTED
        assert plan[-1].canary_replicas == rollout.spec.replicas
        assert desired_state(rollout.spec, 0, PlanMode.ABORTED).canary_replicas == 0
        assert len(pod_template_hash(resolve_template(rollout, result.others))) <= 10
        lines = render_plan(rollout, result.others)
        assert lines[0] == f"Rollout {rollout.namespace}/{rollout.name} ({path.name}#{rollout.source.document})"
        assert len(lines) >= len(rollout.spec.strategy.steps) + 4


def test_whole_corpus_loads_together() -> None:
    result = load_paths([TESTS / "corpus"], base=TESTS / "corpus")
    assert [str(e) for e in result.errors] == []
    assert len(result.rollouts) == len(GOOD) + 1  # multi-rollouts.yaml holds two


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_file_gives_exactly_the_expected_errors(path: Path) -> None:
    expected = [line[len(EXPECT) :] for line in path.read_text().splitlines() if line.startswith(EXPECT)]
    assert expected, f"{path.name} declares no '# expect: ' lines"
    result = load_paths([path], base=path.parent)
    assert [str(e) for e in result.errors] == expected
    assert result.rollouts == ()
