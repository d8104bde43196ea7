"""Argo's and the Gateway API plugin's own files (tests/corpus_upstream/) validate and plan.

Each file is a copy whose header names the repository, path and commit; a file whose
traffic router is not the Gateway API plugin has it swapped, marked ``EDITED``. Expected
weights come from the upstream tests' own assertions (the plugin's chainsaw
``assertions/*.yaml``), not from KULTA.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from kulta.app.spec_commands import plan_command, validate_command

UPSTREAM = Path(__file__).resolve().parents[1] / "corpus_upstream"
VALID = [
    "argo-example-istio-mirror.yaml",
    "argo-examples/rollout-secret.yaml",
    "argo-mirror-route-istio-mirror-host.yaml",
    "argo-rollout-secret-withArgs.yaml",
    "argo-rollout-secret.yaml",
    "gatewayapi-advanced-header-based-grpcroute.yaml",
    "gatewayapi-single-grpcroute-filters.yaml",
    "gatewayapi-single-grpcroute.yaml",
    "gatewayapi-single-header-based-grpcroute.yaml",
]
REFUSED_CONDITION = (
    "is not a valid condition: member access ('.') is not allowed (at character 6): KULTA's conditions have "
    "no maps: select the field with the web metric's jsonPath (e.g. {$.major}) and compare result"
)


def run(command: object, *args: object) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = command(*args, out)  # type: ignore[operator]
    return code, out.getvalue().splitlines()


def test_every_upstream_file_is_listed_and_names_its_origin() -> None:
    files = sorted(str(p.relative_to(UPSTREAM)) for p in UPSTREAM.rglob("*.yaml"))
    assert files == sorted([*VALID, *REFUSED])
    for name in files:
        header = (UPSTREAM / name).read_text().splitlines()[0]
        assert header.startswith(("# Verbatim copy", "# Copy of")), name
        assert "argoproj" in header, name


@pytest.mark.parametrize("name", VALID)
def test_upstream_file_validates_and_plans(name: str) -> None:
    path = str(UPSTREAM / name)
    code, lines = run(validate_command, [path])
    assert (code, [line for line in lines if not line.startswith("OK: 1 file(s): 1 rollout(s)")]) == (0, [])
    code, lines = run(plan_command, path)
    assert code == 0
    assert lines[0].startswith("Rollout default/")
    assert lines[-1].startswith(("  abort  abort (any step)", "  note: "))


def plan_rows(name: str) -> list[list[str]]:
    """The plan's step rows split on runs of two or more spaces: step, action, canary%, stable%, ..."""
    code, lines = run(plan_command, str(UPSTREAM / name))
    assert code == 0
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("step "))
    rows = []
    for line in lines[header + 1 :]:
        if line.startswith("  note: "):
            break
        rows.append([cell for cell in line.strip().split("  ") if cell.strip()])
    return [[cell.strip() for cell in row] for row in rows]


def test_grpc_route_weights_are_the_plugins_chainsaw_assertions() -> None:
    """advanced-header-based-grpcroute/assertions: 70/30 after setWeight 30 (grpcroute-canary.yaml of
    single-grpcroute says the same) and 10/90 after setWeight 90 (grpcroute-after-weight-90.yaml), with
    both header routes set."""
    rows = plan_rows("gatewayapi-advanced-header-based-grpcroute.yaml")
    by_step = {row[0]: row for row in rows}
    assert by_step["0"][1:4] == ["setWeight 30", "30", "70"]
    assert by_step["6"][1:4] == ["setWeight 90", "90", "10"]
    assert by_step["6"][-2] == "canary-route1,canary-route2"
    single = {row[0]: row for row in plan_rows("gatewayapi-single-grpcroute.yaml")}
    assert single["0"][1:4] == ["setWeight 30", "30", "70"]


def test_argo_mirror_steps_plan_as_argo_sets_and_removes_mirror_routes() -> None:
    """istio-mirror-host.yaml: mirror-route-1 at 100%, mirror-route-2 at 80%, then mirror-route-1
    replaced (same name), then removed (setMirrorRoute with only a name)."""
    rows = {row[0]: row for row in plan_rows("argo-mirror-route-istio-mirror-host.yaml")}
    assert rows["2"][-2] == "mirror-route-1(100%),mirror-route-2(80%)"
    assert rows["7"][1] == "setMirrorRoute mirror-route-1 (remove)"
    assert rows["7"][-2] == "mirror-route-2(80%)"
    assert rows["end"][-2] == "-"


def test_argo_istio_mirror_example_scales_the_canary_and_mirrors_without_weight() -> None:
    """examples/istio/istio-mirror.yaml: setCanaryScale weight 50 of 4 replicas is 2 canary pods
    with no traffic (Argo's SetCanaryScale), then half of POST /color is mirrored to them."""
    rows = {row[0]: row for row in plan_rows("argo-example-istio-mirror.yaml")}
    assert rows["0"][1:6] == ["setCanaryScale weight=50", "0", "100", "4", "2"]
    assert rows["1"][-2] == "mirror-route(50%)"


REFUSED = [
    "argo-analysistemplate-web-background-inconclusive.yaml",
    "argo-analysistemplate-web-background.yaml",
]


def test_argo_web_background_templates_are_refused_naming_the_condition_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """``result.major == '1'`` reads a field of a JSON object; KULTA's conditions have no maps
    (docs/analysis.md, Web metrics), so the condition is refused by name with the way out."""
    monkeypatch.chdir(UPSTREAM)
    code, lines = run(validate_command, ["argo-analysistemplate-web-background.yaml"])
    assert code == 1
    assert lines[0] == (
        "argo-analysistemplate-web-background.yaml#1 spec.metrics[0].successCondition: "
        f"\"result.major == '1'\" {REFUSED_CONDITION}"
    )
    code, lines = run(validate_command, ["argo-analysistemplate-web-background-inconclusive.yaml"])
    assert code == 1
    where = "argo-analysistemplate-web-background-inconclusive.yaml#1 spec.metrics[0]"
    assert lines[:2] == [
        f'{where}.successCondition: "result.Status == 999" {REFUSED_CONDITION}',
        f'{where}.failureCondition: "result.Status == -1" {REFUSED_CONDITION}',
    ]
