"""`kulta preview --format markdown|json` from hand-written previews: the expected output is written out."""

from __future__ import annotations

import json
import re

from hypothesis import assume, given
from hypothesis import strategies as st

from kulta.adapters.stacks import PreviewChange, PreviewReport
from kulta.app.markdown import code, html_text, truncate
from kulta.app.preview import PreviewResult, RolloutPreview, StepPreview, StepRole
from kulta.app.preview_render import (
    MAX_MARKDOWN_CHARS,
    SCHEMA,
    OutputFormat,
    render_json,
    render_markdown,
)
from kulta.cli import _PREVIEW_FORMATS
from kulta.core.preview import ChangeKind, ChangeSummary
from kulta.errors import SpecError
from kulta.spec.escape import one_line

RS = "kubernetes:apps/v1:ReplicaSet"
PATCH = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoutePatch"

CREATE_CANARY = PreviewChange(
    urn_name="web-5c977dd6b6",
    type=RS,
    op="create",
    diffs=(),
    detailed={},
    inputs={"spec": {"replicas": 1}},
)
ROUTE_25 = PreviewChange(
    urn_name="httproute-shop-web",
    type=PATCH,
    op="update",
    diffs=("spec",),
    detailed={
        "spec.rules[0].backendRefs[1].weight": (0, 25),
        "spec.rules[0].backendRefs[0].weight": (100, 75),
    },
)
SAME = PreviewChange(urn_name="web-f669c5747", type=RS, op="same", diffs=(), detailed={})


def step(index: int | None, role: StepRole, action: str, canary: int, pods: tuple[int, int], *changes: PreviewChange):
    return StepPreview(
        step=index,
        role=role,
        label="",
        action=action,
        canary_weight=canary,
        stable_pods=pods[0],
        canary_pods=pods[1],
        report=PreviewReport(changes=(SAME, *changes), summary={}),
    )


def one_rollout(file: str, change: ChangeSummary, *steps: StepPreview) -> PreviewResult:
    """A file with one Rollout, shop/web, as its first document."""
    return PreviewResult(file=file, rollouts=(RolloutPreview("shop", "web", f"{file}#1", change, steps),))


NEW_REVISION = PreviewResult(
    file="rollouts/web.yaml",
    rollouts=(
        RolloutPreview(
            namespace="shop",
            name="web",
            source="rollouts/web.yaml#1",
            change=ChangeSummary(ChangeKind.NEW_REVISION, "5c977dd6b6", "f669c5747", "", None, False),
            steps=(
                step(0, StepRole.STEP, "setWeight 25", 25, (4, 1), CREATE_CANARY, ROUTE_25),
                step(1, StepRole.STEP, "pause", 25, (4, 1)),
                step(
                    2,
                    StepRole.PROMOTION,
                    "promote",
                    0,
                    (4, 0),
                    PreviewChange(
                        urn_name="httproute-shop-web",
                        type=PATCH,
                        op="update",
                        diffs=("spec",),
                        detailed={"spec.rules[0].backendRefs[1].weight": (25, 0)},
                    ),
                ),
            ),
        ),
    ),
)

EXPECTED_MARKDOWN = """## KULTA preview of `rollouts/web.yaml`

### Rollout `shop/web` (`rollouts/web.yaml#1`)

**New revision**: this PR starts a new canary of revision 5c977dd6b6 from step 0 (stable f669c5747).

| Step | Action | Stable weight | Canary weight | Stable pods | Canary pods | Resource changes |
|---|---|---|---|---|---|---|
| 0 | `setWeight 25` | 75% | 25% | 4 | 1 | 2 |
| 1 | `pause` | 75% | 25% | 4 | 1 | 0 |
| end | `promote` | 100% | 0% | 4 | 0 | 1 |

No resource change at step(s) 1.

<details open><summary>Step 0: <code>setWeight 25</code> — 1 create, 1 update</summary>

| Resource | Change | Field | Old | New |
|---|---|---|---|---|
| `ReplicaSet web-5c977dd6b6` | `create` | | | `replicas 1` |
| `HTTPRoutePatch httproute-shop-web` | `update` | `spec.rules[0].backendRefs[0].weight` | `100` | `75` |
| `HTTPRoutePatch httproute-shop-web` | `update` | `spec.rules[0].backendRefs[1].weight` | `0` | `25` |

</details>

<details open><summary>Step end: <code>promote</code> — 1 update</summary>

| Resource | Change | Field | Old | New |
|---|---|---|---|---|
| `HTTPRoutePatch httproute-shop-web` | `update` | `spec.rules[0].backendRefs[1].weight` | `25` | `0` |

</details>
"""


def test_markdown_of_a_new_revision() -> None:
    assert render_markdown(NEW_REVISION) == EXPECTED_MARKDOWN


def test_markdown_of_a_strategy_change_says_the_canary_restarts() -> None:
    result = one_rollout(
        "web.yaml", ChangeSummary(ChangeKind.STRATEGY_CHANGED, "5c977dd6b6", "f669c5747", "5c977dd6b6", 2, True)
    )
    assert render_markdown(result).splitlines()[4] == (
        "**Strategy changed**: this PR changes only the strategy: the running canary of 5c977dd6b6 "
        "(at step 2) restarts from step 0."
    )


def test_markdown_of_an_invalid_file_lists_every_error_as_validate_prints_it() -> None:
    result = PreviewResult(
        file="rollouts/web.yaml",
        errors=(
            SpecError("rollouts/web.yaml", 1, "spec.strategy.canary.steps[0].setWeight", "120 is outside 0..100"),
            SpecError("rollouts/web.yaml", 1, "spec.replicas", "must be an integer (got 'four')"),
        ),
    )
    assert render_markdown(result) == (
        "## KULTA preview of `rollouts/web.yaml`\n"
        "\n"
        "**Invalid**: 2 error(s), nothing was previewed. Each names the file, the field and the fix "
        "(as `kulta validate` prints them):\n"
        "\n"
        "- `rollouts/web.yaml#1 spec.strategy.canary.steps[0].setWeight: 120 is outside 0..100`\n"
        "- `rollouts/web.yaml#1 spec.replicas: must be an integer (got 'four')`\n"
    )


def test_markdown_of_a_file_without_a_rollout() -> None:
    assert render_markdown(PreviewResult(file="svc.yaml")) == (
        "## KULTA preview of `svc.yaml`\n\n**Invalid**: no Rollout in this file: nothing to preview.\n"
    )


# --------------------------------------------------------------------------- escaping


def test_code_span_fences_longer_than_any_backtick_run_and_escapes_pipes() -> None:
    assert code("a|b") == "`a\\|b`"
    assert code("x``y") == "```x``y```"
    assert code("`tick`") == "`` `tick` ``"
    assert code("two\nlines") == "`two\\nlines`"
    assert code("") == ""


def test_html_text_has_no_tag_no_entity_no_mention() -> None:
    assert html_text('<img src=x onerror="alert(1)">&@alice') == (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#64;alice"
    )


def test_truncate_says_the_full_length() -> None:
    assert truncate("abcdef", 4) == "abcd… (6 chars)"
    assert truncate("abcd", 4) == "abcd"


HOSTILE = "x|y`z</summary><script>@alice\n| injected | row |"


def hostile_result() -> PreviewResult:
    change = PreviewChange(
        urn_name=HOSTILE,
        type=PATCH,
        op="update",
        diffs=("spec",),
        detailed={f"spec.rules[0].matches[0].headers[0].{HOSTILE}": ("```", HOSTILE)},
    )
    return one_rollout(
        "evil|`<b>.yaml",
        ChangeSummary(ChangeKind.NEW_REVISION, "5c977dd6b6", "f669c5747", "", None, False),
        step(0, StepRole.STEP, f"setHeaderRoute {HOSTILE}", 25, (4, 1), change),
    )


def test_hostile_names_and_values_stay_inside_their_cells() -> None:
    lines = render_markdown(hostile_result()).splitlines()
    row = lines[lines.index("|---|---|---|---|---|") + 1]
    assert row == (
        "| ``HTTPRoutePatch x\\|y`z</summary><script>@alice\\n\\| injected \\| row \\|`` | `update` "
        "| ``spec.rules[0].matches[0].headers[0].x\\|y`z</summary><script>@alice\\n\\| injected \\| row \\|`` "
        "| ```` ``` ```` | ``x\\|y`z</summary><script>@alice\\n\\| injected \\| row \\|`` |"
    )
    summary = next(line for line in lines if line.startswith("<details"))
    assert summary == (
        "<details open><summary>Step 0: <code>setHeaderRoute x|y`z&lt;/summary&gt;&lt;script&gt;&#64;alice\\n"
        "| injected | row |</code> — 1 update</summary>"
    )
    assert lines[0] == "## KULTA preview of ``evil\\|`<b>.yaml``"


def test_every_table_row_has_exactly_its_columns_whatever_the_names() -> None:
    for line in render_markdown(hostile_result()).splitlines():
        if line.startswith("|"):
            # cells are split on pipes not escaped by a backslash (GFM tables)
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            assert len(cells) in (5, 7), line


def test_a_long_value_is_cut_in_the_markdown_and_whole_in_the_json() -> None:
    long = "v" * 500
    change = PreviewChange("cm", PATCH, "update", ("data",), {"data.big": ("", long)})
    result = one_rollout(
        "f.yaml",
        ChangeSummary(ChangeKind.NEW_REVISION, "b", "a", "", None, False),
        step(0, StepRole.STEP, "setWeight 5", 5, (4, 1), change),
    )
    assert f"`{'v' * 120}… (500 chars)`" in render_markdown(result)
    assert json.loads(render_json(result))["rollouts"][0]["steps"][0]["changes"][0]["fields"][0]["new"] == long


def test_a_comment_stays_under_the_size_limit_and_names_the_command_for_the_rest() -> None:
    fields = {f"data.key{i:03d}": ("", "w" * 200) for i in range(40)}
    change = PreviewChange("cm", PATCH, "update", ("data",), fields)
    steps = tuple(step(i, StepRole.STEP, f"setWeight {i + 1}", i + 1, (4, 1), change) for i in range(30))
    result = one_rollout("f.yaml", ChangeSummary(ChangeKind.NEW_REVISION, "b", "a", "", None, False), *steps)
    text = render_markdown(result)
    assert len(text) <= MAX_MARKDOWN_CHARS
    assert "Diff of step 29 left out (comment size limit): run `kulta preview f.yaml --step 29`." in text


# --------------------------------------------------------------------------- JSON


def test_json_of_a_new_revision() -> None:
    document = json.loads(render_json(NEW_REVISION))
    assert document == {
        "schema": "kulta.preview/v1",
        "file": "rollouts/web.yaml",
        "valid": True,
        "errors": [],
        "rollouts": [
            {
                "namespace": "shop",
                "name": "web",
                "source": "rollouts/web.yaml#1",
                "change": {
                    "kind": "new-revision",
                    "summary": "this PR starts a new canary of revision 5c977dd6b6 from step 0 (stable f669c5747)",
                    "revision": "5c977dd6b6",
                    "stableRevision": "f669c5747",
                    "canaryRevision": "",
                    "currentStep": None,
                    "strategyChanged": False,
                },
                "steps": [
                    {
                        "step": 0,
                        "role": "step",
                        "label": "",
                        "action": "setWeight 25",
                        "stableWeight": 75,
                        "canaryWeight": 25,
                        "stablePods": 4,
                        "canaryPods": 1,
                        "changes": [
                            {
                                "op": "create",
                                "type": RS,
                                "kind": "ReplicaSet",
                                "name": "web-5c977dd6b6",
                                "created": "replicas 1",
                                "fields": [],
                            },
                            {
                                "op": "update",
                                "type": PATCH,
                                "kind": "HTTPRoutePatch",
                                "name": "httproute-shop-web",
                                "created": "",
                                "fields": [
                                    {"path": "spec.rules[0].backendRefs[0].weight", "old": 100, "new": 75},
                                    {"path": "spec.rules[0].backendRefs[1].weight", "old": 0, "new": 25},
                                ],
                            },
                        ],
                    },
                    {
                        "step": 1,
                        "role": "step",
                        "label": "",
                        "action": "pause",
                        "stableWeight": 75,
                        "canaryWeight": 25,
                        "stablePods": 4,
                        "canaryPods": 1,
                        "changes": [],
                    },
                    {
                        "step": 2,
                        "role": "promotion",
                        "label": "",
                        "action": "promote",
                        "stableWeight": 100,
                        "canaryWeight": 0,
                        "stablePods": 4,
                        "canaryPods": 0,
                        "changes": [
                            {
                                "op": "update",
                                "type": PATCH,
                                "kind": "HTTPRoutePatch",
                                "name": "httproute-shop-web",
                                "created": "",
                                "fields": [{"path": "spec.rules[0].backendRefs[1].weight", "old": 25, "new": 0}],
                            }
                        ],
                    },
                ],
            }
        ],
    }
    assert document["schema"] == SCHEMA


def test_json_of_an_invalid_file() -> None:
    error = SpecError("rollouts/web.yaml", 2, "spec.replicas", "must be an integer (got 'four')")
    assert json.loads(render_json(PreviewResult(file="rollouts/web.yaml", errors=(error,)))) == {
        "schema": "kulta.preview/v1",
        "file": "rollouts/web.yaml",
        "valid": False,
        "errors": [
            {
                "file": "rollouts/web.yaml",
                "document": 2,
                "path": "spec.replicas",
                "message": "must be an integer (got 'four')",
                "text": "rollouts/web.yaml#2 spec.replicas: must be an integer (got 'four')",
            }
        ],
        "rollouts": [],
    }


def test_the_cli_offers_every_output_format_text_first() -> None:
    assert _PREVIEW_FORMATS == ("text", "markdown", "json")
    assert tuple(f.value for f in OutputFormat) == _PREVIEW_FORMATS


def read_code_cell(cell: str) -> str:
    """A GFM table cell holding one code span, read back as a renderer would (CommonMark 6.1)."""
    text = cell.replace("\\|", "|")  # the table's escaped pipes
    fence = len(text) - len(text.lstrip("`"))
    assert fence and text.endswith("`" * fence) and not text.endswith("`" * (fence + 1)), cell
    inner = text[fence:-fence]
    assert fence not in [len(run) for run in re.findall("`+", inner)], cell  # no run that closes early
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip(" "):
        inner = inner[1:-1]
    return inner


#: the characters that break a table cell or a code span, mixed into any text
MARKDOWN_BREAKERS = st.one_of(st.sampled_from("|`\\ \n<>&@*_["), st.characters())


@given(st.text(alphabet=MARKDOWN_BREAKERS, max_size=40))
def test_any_text_in_a_code_cell_reads_back_as_written_and_stays_one_cell(text: str) -> None:
    assume(text.strip(" "))
    cell = code(text)
    assert len(re.split(r"(?<!\\)\|", f"| {cell} |")) == 3, cell
    assert read_code_cell(cell) == one_line(text)
