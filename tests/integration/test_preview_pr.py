"""`kulta preview FILE --all --format markdown|json` as a pull request's CI runs it.

The real CLI in a process, the real engine's preview against a live stack that `kulta run
--once` built from a real Git repository, on the local control plane: a PR with a new
revision, a PR that changes only the steps of the canary in flight, and a PR whose file
does not validate. Weights and pods are Argo's for 2 replicas with traffic routing
(canary ``ceil(2 * weight / 100)`` pods, stable kept at 2: ``dynamicStableScale`` off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kulta.adapters.stacks import StackManager, StackSettings
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.spec.loader import load_paths
from tests.integration import test_gitops as gitops
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.cluster

#: the Git repository fixture of the GitOps tests (a bare remote and a clone)
repo = gitops.repo

OTHER_STEPS = """        - setWeight: 30
        - pause: {}
        - setWeight: 80"""
BAD_STEPS = """        - setWeight: 120
        - pause: {}"""
TABLE_HEAD = [
    "| Step | Action | Stable weight | Canary weight | Stable pods | Canary pods | Resource changes |",
    "|---|---|---|---|---|---|---|",
]


def pr_file(tmp_path: Path, ns: str, tag: str, steps: str) -> Path:
    """The Rollout file as the pull request's checkout has it."""
    path = tmp_path / "pr" / "rollouts" / "shop.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(gitops.ROLLOUT.format(ns=ns, tag=tag, steps=steps))
    return path


def revision_of(path: Path) -> str:
    loaded = load_paths([str(path)])
    assert not loaded.errors, loaded.errors
    return pod_template_hash(resolve_template(loaded.rollouts[0], loaded.others))


def preview(cluster, state: Path, path: Path, output: str, *extra: str, code: int = 0) -> str:
    done = gitops.kulta(cluster, state, "preview", str(path), *extra, "--format", output)
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout


def table(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index(TABLE_HEAD[0])
    return lines[start + 2 : lines.index("", start)]


def details(markdown: str, summary: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index(summary)
    return lines[start + 4 : lines.index("</details>", start) - 1]


def steps_of(document: dict) -> list[tuple]:
    return [
        (s["step"], s["role"], s["action"], s["stableWeight"], s["canaryWeight"], s["stablePods"], s["canaryPods"])
        for s in document["rollouts"][0]["steps"]
    ]


def route_fields(document: dict, index: int) -> list[dict]:
    changes = document["rollouts"][0]["steps"][index]["changes"]
    route = next(c for c in changes if c["kind"] == "HTTPRoutePatch")
    return [f for f in route["fields"] if "weight" in f["path"]]


def test_pr_comments_for_a_new_revision_a_strategy_change_and_an_invalid_file(cluster, repo, tmp_path):
    bare, work = repo
    ns = gitops.namespace(cluster, "preview-pr")
    state = tmp_path / "state"
    run = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts")
    gitops.commit(work, ns, "v1", gitops.HOLD_STEPS, "v1")
    first = gitops.kulta(cluster, state, *run)
    assert first.returncode == 0, first.stdout + first.stderr
    stacks = StackManager(StackSettings(state_dir=state, kubeconfig=cluster.kubeconfig))
    stable = gitops.status_of(stacks, ns).stable_revision
    route = f"`HTTPRoutePatch httproute-{ns}-shop` | `update`"

    # a PR with a new image: a new canary from step 0, every step previewed against the live stack
    new = pr_file(tmp_path, ns, "v2", gitops.HOLD_STEPS)
    rev2 = revision_of(new)
    markdown = preview(cluster, state, new, "markdown", "--all")
    lines = markdown.splitlines()
    assert lines[:5] == [
        f"## KULTA preview of `{new}`",
        "",
        f"### Rollout `{ns}/shop` (`{new}#1`)",
        "",
        f"**New revision**: this PR starts a new canary of revision {rev2} from step 0 (stable {stable}).",
    ]
    assert table(markdown) == [
        "| 0 | `setWeight 50` | 50% | 50% | 2 | 1 | 4 |",
        "| 1 | `pause` | 50% | 50% | 2 | 1 | 4 |",
        "| 2 | `setWeight 80` | 20% | 80% | 2 | 2 | 4 |",
        "| end | `promote` | 100% | 0% | 2 | 0 | 5 |",
    ]
    step0 = details(markdown, "<details open><summary>Step 0: <code>setWeight 50</code> — 1 create, 3 update</summary>")
    assert f"| `ReplicaSet shop-{rev2}` | `create` | | | `replicas 1` |" in step0
    assert (
        f"| `Service shop-canary` | `update` | `spec.selector.rollouts-pod-template-hash` | `{stable}` | `{rev2}` |"
        in (step0)
    )
    assert [row for row in step0 if "weight` |" in row] == [
        f"| {route} | `spec.rules[0].backendRefs[0].weight` | `100` | `50` |",
        f"| {route} | `spec.rules[0].backendRefs[1].weight` | `0` | `50` |",
    ]
    document = json.loads(preview(cluster, state, new, "json", "--all"))
    assert (document["schema"], document["valid"], document["errors"]) == ("kulta.preview/v1", True, [])
    assert document["rollouts"][0]["change"] == {
        "kind": "new-revision",
        "summary": f"this PR starts a new canary of revision {rev2} from step 0 (stable {stable})",
        "revision": rev2,
        "stableRevision": stable,
        "canaryRevision": "",
        "currentStep": None,
        "strategyChanged": False,
    }
    assert steps_of(document) == [
        (0, "step", "setWeight 50", 50, 50, 2, 1),
        (1, "step", "pause", 50, 50, 2, 1),
        (2, "step", "setWeight 80", 20, 80, 2, 2),
        (3, "promotion", "promote", 100, 0, 2, 0),
    ]
    assert route_fields(document, 2) == [
        {"path": "spec.rules[0].backendRefs[0].weight", "old": 100, "new": 20},
        {"path": "spec.rules[0].backendRefs[1].weight", "old": 0, "new": 80},
    ]

    # the PR is merged: the canary of v2 runs and holds at its pause (step 1)
    gitops.commit(work, ns, "v2", gitops.HOLD_STEPS, "v2")
    second = gitops.kulta(cluster, state, *run)
    assert second.returncode == 0, second.stdout + second.stderr
    live = gitops.status_of(stacks, ns)
    assert (live.canary_revision, live.current_step_index) == (rev2, 1), live

    # a PR that changes only the steps: the running canary restarts from step 0 (at 30%, from 50%)
    steps_only = pr_file(tmp_path, ns, "v2", OTHER_STEPS)
    markdown = preview(cluster, state, steps_only, "markdown", "--all")
    assert markdown.splitlines()[4] == (
        f"**Strategy changed**: this PR changes only the strategy: the running canary of {rev2} "
        "(at step 1) restarts from step 0."
    )
    assert table(markdown) == [
        "| 0 | `setWeight 30` | 70% | 30% | 2 | 1 | 1 |",
        "| 1 | `pause` | 70% | 30% | 2 | 1 | 1 |",
        "| 2 | `setWeight 80` | 20% | 80% | 2 | 2 | 2 |",
        "| end | `promote` | 100% | 0% | 2 | 0 | 4 |",
    ]
    assert details(markdown, "<details open><summary>Step 0: <code>setWeight 30</code> — 1 update</summary>") == [
        f"| {route} | `spec.rules[0].backendRefs[0].weight` | `50` | `70` |",
        f"| {route} | `spec.rules[0].backendRefs[1].weight` | `50` | `30` |",
    ]
    document = json.loads(preview(cluster, state, steps_only, "json", "--all"))
    assert document["rollouts"][0]["change"] == {
        "kind": "strategy-changed",
        "summary": f"this PR changes only the strategy: the running canary of {rev2} (at step 1) restarts from step 0",
        "revision": rev2,
        "stableRevision": stable,
        "canaryRevision": rev2,
        "currentStep": 1,
        "strategyChanged": True,
    }
    assert route_fields(document, 0) == [
        {"path": "spec.rules[0].backendRefs[0].weight", "old": 50, "new": 70},
        {"path": "spec.rules[0].backendRefs[1].weight", "old": 50, "new": 30},
    ]
    # the text format is as before
    assert preview(cluster, state, steps_only, "text", "--step", "0") == (
        "── step 0: setWeight\n"
        f"   update   HTTPRoutePatch httproute-{ns}-shop\n"
        "            spec.rules[0].backendRefs[0].weight: 50 → 70\n"
        "            spec.rules[0].backendRefs[1].weight: 50 → 30\n"
    )
    assert gitops.status_of(stacks, ns) == live  # a preview changes nothing

    # a PR whose file does not validate: the comment lists `kulta validate`'s errors, exit 1
    bad = pr_file(tmp_path, ns, "v3", BAD_STEPS)
    validate = subprocess.run(
        [sys.executable, "-m", "kulta.cli", "validate", str(bad)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    errors = validate.stdout.splitlines()[:-1]
    assert validate.returncode == 1 and len(errors) == 1 and "setWeight" in errors[0], validate.stdout
    assert preview(cluster, state, bad, "markdown", "--all", code=1) == (
        f"## KULTA preview of `{bad}`\n"
        "\n"
        "**Invalid**: 1 error(s), nothing was previewed. Each names the file, the field and the fix "
        "(as `kulta validate` prints them):\n"
        "\n"
        f"- `{errors[0]}`\n"
        "\n"
    )
    document = json.loads(preview(cluster, state, bad, "json", "--all", code=1))
    assert (document["valid"], [e["text"] for e in document["errors"]], document["rollouts"]) == (False, errors, [])
    assert document["errors"][0]["path"] == "spec.strategy.canary.steps[0].setWeight"
