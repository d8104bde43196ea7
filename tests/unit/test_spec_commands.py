"""`kulta validate` and `kulta plan` output."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kulta.app.spec_commands import format_duration, plan_command, validate_command
from tests.unit.spec_helpers import dump, template_doc, with_steps


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


def run(command: object, *args: object) -> tuple[int, str]:
    out = io.StringIO()
    code = command(*args, out)  # type: ignore[operator]
    return code, out.getvalue()


def test_validate_prints_every_error_and_a_summary(workdir: Path) -> None:
    (workdir / "rollouts").mkdir()
    (workdir / "rollouts" / "web.yaml").write_text(dump(with_steps({"setWeight": 120}, {"pause": {"x": 1}})))
    (workdir / "rollouts" / "ok.yaml").write_text(dump(template_doc()))
    code, text = run(validate_command, ["rollouts"])
    assert code == 1
    assert text.splitlines() == [
        "rollouts/web.yaml#1 spec.strategy.canary.steps[0].setWeight: 120 is outside 0..100",
        "rollouts/web.yaml#1 spec.strategy.canary.steps[1].pause.x: unknown field; the fields here are: duration",
        "FAILED: 2 file(s): 0 rollout(s), 1 analysis template(s), 2 error(s)",
    ]


def test_validate_ok(workdir: Path) -> None:
    (workdir / "a.yaml").write_text(dump(with_steps({"setWeight": 10}), template_doc()))
    assert run(validate_command, ["a.yaml"]) == (0, "OK: 1 file(s): 1 rollout(s), 1 analysis template(s), 0 error(s)\n")


def test_validate_nothing_found(workdir: Path) -> None:
    (workdir / "empty").mkdir()
    assert run(validate_command, ["empty"]) == (1, "no YAML files found: pass files, directories or globs\n")


def test_plan_prints_a_table(workdir: Path) -> None:
    steps = [
        {
            "setCanaryScale": {"replicas": 1},
            "setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Beta", "headerValue": {"exact": "1"}}]},
        },
        {"setWeight": 25},
        {"pause": {"duration": 90}},
        {"analysis": {"templates": [{"templateName": "success-rate"}]}},
        {"pause": {}},
    ]
    routing = {"managedRoutes": [{"name": "beta"}], "plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}}
    (workdir / "web.yaml").write_text(dump(with_steps(*steps, trafficRouting=routing)))
    (workdir / "templates.yaml").write_text(dump(template_doc()))
    code, text = run(plan_command, "web.yaml")
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == "Rollout shop/web (web.yaml#1)"
    assert lines[1].startswith("  replicas: 4; revision (pod-template-hash): ")
    assert lines[2] == (
        "  traffic: HTTPRoute shop/web; services web-stable (stable), web-canary (canary); dynamicStableScale: false"
    )
    assert lines[3:] == [
        "  step   action                                           canary%  stable%  stable pods  canary pods  "
        "header routes  wait",
        "  0      setCanaryScale replicas=1 + setHeaderRoute beta  0        100      4            1            "
        "beta           -",
        "  1      setWeight 25                                     25       75       4            1            "
        "beta           -",
        "  2      pause                                            25       75       4            1            "
        "beta           1m30s",
        "  3      analysis success-rate                            25       75       4            1            "
        "beta           analysis success-rate",
        "  4      pause                                            25       75       4            1            "
        "beta           until promoted",
        "  end    promote                                          100      0        0            4            "
        "-              -",
        "  abort  abort (any step)                                 0        100      4            0            "
        "-              -",
    ]


def test_plan_reports_only_the_files_errors(workdir: Path) -> None:
    (workdir / "web.yaml").write_text(dump(with_steps({"setWeight": 101})))
    (workdir / "other.yaml").write_text("broken: [\n")
    code, text = run(plan_command, "web.yaml")
    assert code == 1
    assert text.splitlines() == [
        "web.yaml#1 spec.strategy.canary.steps[0].setWeight: 101 is outside 0..100",
        "FAILED: 1 error(s) in web.yaml",
    ]


def test_plan_without_rollouts_or_file(workdir: Path) -> None:
    (workdir / "t.yaml").write_text(dump(template_doc()))
    assert run(plan_command, "t.yaml") == (1, "no Rollout found in t.yaml\n")
    assert run(plan_command, "gone.yaml") == (1, "gone.yaml: no such file: pass one YAML file\n")


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (5, "5s"), (90, "1m30s"), (3600, "1h"), (5405, "1h30m5s")])
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


# --- one loading rule for validate, plan (and preview): named files + their directory's YAML files

ANALYSIS_STEP = {"analysis": {"templates": [{"templateName": "success-rate"}]}}


def test_validate_and_plan_both_find_a_template_in_a_sibling_file(workdir: Path) -> None:
    (workdir / "rollout.yaml").write_text(dump(with_steps({"setWeight": 10}, ANALYSIS_STEP)))
    (workdir / "templates.yaml").write_text(dump(template_doc()))
    assert run(validate_command, ["rollout.yaml"]) == (
        0,
        "OK: 1 file(s): 1 rollout(s), 0 analysis template(s), 0 error(s); "
        "1 more file(s) of their directories read for references\n",
    )
    code, text = run(plan_command, "rollout.yaml")
    assert code == 0
    assert text.splitlines()[0] == "Rollout shop/web (rollout.yaml#1)"


def test_validate_and_plan_report_the_same_missing_template(workdir: Path) -> None:
    (workdir / "apps").mkdir()
    (workdir / "apps" / "analysis").mkdir()
    (workdir / "apps" / "rollout.yaml").write_text(dump(with_steps(ANALYSIS_STEP)))
    # below the Rollout's directory, not in it: neither command reads it
    (workdir / "apps" / "analysis" / "templates.yaml").write_text(dump(template_doc()))
    error = (
        'apps/rollout.yaml#1 spec.strategy.canary.steps[0].analysis: AnalysisTemplate "success-rate" in namespace '
        '"shop" is not in the files KULTA read: add it or fix the name'
    )
    code, text = run(validate_command, ["apps/rollout.yaml"])
    assert (code, text.splitlines()[0]) == (1, error)
    assert run(plan_command, "apps/rollout.yaml") == (1, f"{error}\nFAILED: 1 error(s) in apps/rollout.yaml\n")
    # naming the subdirectory too makes its templates part of the files read
    assert run(validate_command, ["apps/rollout.yaml", "apps/analysis"])[0] == 0


def test_errors_and_rollouts_of_sibling_files_are_not_reported(workdir: Path) -> None:
    (workdir / "web.yaml").write_text(dump(with_steps({"setWeight": 10})))
    (workdir / "broken.yaml").write_text("broken: [\n")
    other = with_steps({"setWeight": 200})
    other["metadata"]["name"] = "other"
    (workdir / "other.yaml").write_text(dump(other))
    assert run(validate_command, ["web.yaml"]) == (
        0,
        "OK: 1 file(s): 1 rollout(s), 0 analysis template(s), 0 error(s); "
        "2 more file(s) of their directories read for references\n",
    )
    code, text = run(plan_command, "web.yaml")
    assert (code, text.count("Rollout shop/")) == (0, 1)
    # named, the same files are checked
    code, text = run(validate_command, ["."])
    assert code == 1
    assert text.splitlines()[-1] == "FAILED: 3 file(s): 1 rollout(s), 0 analysis template(s), 2 error(s)"


def test_a_refused_template_in_a_sibling_file_is_still_named_as_the_blocker(workdir: Path) -> None:
    (workdir / "rollout.yaml").write_text(dump(with_steps(ANALYSIS_STEP)))
    bad = template_doc()
    bad["spec"]["metrics"][0]["provider"] = {"web": {"url": "http://shop/health", "body": "x"}}
    (workdir / "templates.yaml").write_text(dump(bad))
    expected = (
        'rollout.yaml#1 spec.strategy.canary.steps[0].analysis: AnalysisTemplate "success-rate" (templates.yaml#1) '
        "cannot be used: spec.metrics[0].provider.web.method: a body needs method POST or PUT (Argo refuses a GET "
        "with a body)"
    )
    code, text = run(validate_command, ["rollout.yaml"])
    assert (code, text.splitlines()[0]) == (1, expected)
    assert run(plan_command, "rollout.yaml") == (1, f"{expected}\nFAILED: 1 error(s) in rollout.yaml\n")


NO_STEPS = """apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.local/web:1"}]
  strategy:
    canary: {maxSurge: 1, maxUnavailable: 0}
"""


def test_plan_of_a_rollout_without_steps_lists_argos_paced_moves(tmp_path):
    from kulta.app.spec_commands import plan_command

    path = tmp_path / "web.yaml"
    path.write_text(NO_STEPS)
    out = io.StringIO()
    assert plan_command(str(path), out) == 0
    moves = [line.split() for line in out.getvalue().splitlines() if line.strip().startswith("move")]
    # (stable pods, canary pods) of each move: never more than 5 pods, never fewer than 4 serving
    assert [(int(m[6]), int(m[7])) for m in moves] == [(4, 1), (3, 1), (3, 2), (2, 2), (2, 3), (1, 3), (1, 4), (0, 4)]


def test_plan_of_a_huge_rollout_without_steps_lists_a_bounded_number_of_moves(tmp_path):
    from kulta.app.spec_commands import MAX_PLAN_MOVES, plan_command

    path = tmp_path / "web.yaml"
    path.write_text(NO_STEPS.replace("replicas: 4", "replicas: 2000000000"))
    out = io.StringIO()
    assert plan_command(str(path), out) == 0
    text = out.getvalue()
    assert sum(line.strip().startswith("move") for line in text.splitlines()) == MAX_PLAN_MOVES == 40
    assert "more than 40 moves" in text


def test_plan_names_http_and_grpc_routes_by_kind(workdir: Path) -> None:
    routing = {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web", "grpcRoutes": [{"name": "rpc"}]}}}
    (workdir / "web.yaml").write_text(dump(with_steps({"setWeight": 25}, trafficRouting=routing)))
    code, text = run(plan_command, "web.yaml")
    assert code == 0
    assert text.splitlines()[2] == (
        "  traffic: HTTPRoute shop/web; GRPCRoute shop/rpc; services web-stable (stable), web-canary (canary); "
        "dynamicStableScale: false"
    )
