"""``kulta preview --format markdown|json``: a preview as a PR comment, or as data for tools.

Rendering is pure: a ``PreviewResult`` in, a string out (the CLI prints it). The markdown
is what a reviewer reads on a pull request: what merging does to the live rollout (a new
canary, a restart, nothing), a table of the steps with each side's weight and pods, and
per step the resource diff of its real Pulumi preview in a ``<details>`` block (collapsed
when long). Every string from the files or the cluster goes through ``kulta.app.markdown``.
A comment stays under GitHub's 65,536-character limit: values are cut at
``MAX_VALUE_CHARS``, a step lists at most ``MAX_FIELDS_PER_STEP`` fields, and past
``MAX_MARKDOWN_CHARS`` the remaining steps' diffs are left out with the command that shows
them. The JSON schema (``SCHEMA``) is documented in docs/commands.md; its values are whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kulta.adapters.stacks import PreviewChange
from kulta.app.commands import created_summary
from kulta.app.markdown import code, html_text, truncate
from kulta.app.preview import PreviewResult, RolloutPreview, StepPreview, StepRole
from kulta.core.preview import ChangeKind, ChangeSummary
from kulta.errors import SpecError

__all__ = [
    "MAX_FIELDS_PER_STEP",
    "MAX_MARKDOWN_CHARS",
    "MAX_VALUE_CHARS",
    "SCHEMA",
    "OutputFormat",
    "change_sentence",
    "render_json",
    "render_markdown",
]

#: the ``schema`` field of the JSON output; a new version when a field changes meaning or goes
SCHEMA = "kulta.preview/v1"
#: a value longer than this is cut in the markdown (the JSON keeps it whole)
MAX_VALUE_CHARS = 120
#: a step's diff lists at most this many fields in the markdown
MAX_FIELDS_PER_STEP = 40
#: the markdown stops adding step diffs past this size (GitHub refuses comments over 65,536)
MAX_MARKDOWN_CHARS = 60_000
#: a step's diff with at most this many rows is shown open; a longer one is collapsed
OPEN_ROWS = 6
#: operations that are no change
_NO_CHANGE_OPS = frozenset({"same", "read"})
_ABSENT = "∅"

_KIND_TITLE = {
    ChangeKind.FIRST_DEPLOYMENT: "First deployment",
    ChangeKind.NEW_REVISION: "New revision",
    ChangeKind.STRATEGY_CHANGED: "Strategy changed",
    ChangeKind.BACK_TO_STABLE: "Back to stable",
    ChangeKind.ABORTED: "Canary aborted",
    ChangeKind.NO_CHANGE: "No change",
}


class OutputFormat(Enum):
    """``kulta preview --format``."""

    TEXT = "text"
    MARKDOWN = "markdown"
    JSON = "json"


@dataclass(frozen=True)
class _FieldDiff:
    path: str
    old: Any
    new: Any


def _changed(step: StepPreview) -> list[PreviewChange]:
    """The changed resources, by type then name (the engine reports them in no fixed order)."""
    changed = [c for c in step.report.changes if c.op not in _NO_CHANGE_OPS]
    return sorted(changed, key=lambda c: (c.type, c.urn_name))


def _fields(change: PreviewChange) -> list[_FieldDiff]:
    return [_FieldDiff(path, old, new) for path, (old, new) in sorted(change.detailed.items())]


def _kind(change: PreviewChange) -> str:
    return change.type.split(":")[-1]


def change_sentence(change: ChangeSummary) -> str:
    """What merging the file does to the live rollout, in one plain sentence."""
    step = change.current_step
    if change.kind is ChangeKind.FIRST_DEPLOYMENT:
        return (
            f"no stack yet: this PR deploys revision {change.revision} as stable; the steps apply to the next revision"
        )
    if change.kind is ChangeKind.NEW_REVISION:
        text = (
            f"this PR starts a new canary of revision {change.revision} from step 0 (stable {change.stable_revision})"
        )
        if change.canary_revision:
            text += f"; it replaces the canary of {change.canary_revision} in flight at step {step}"
        return text
    if change.kind is ChangeKind.STRATEGY_CHANGED:
        return (
            f"this PR changes only the strategy: the running canary of {change.revision} "
            f"(at step {step}) restarts from step 0"
        )
    if change.kind is ChangeKind.BACK_TO_STABLE:
        return (
            f"this PR points at the stable revision {change.revision} again: the canary of "
            f"{change.canary_revision} is aborted and all traffic goes back to stable"
        )
    if change.kind is ChangeKind.ABORTED:
        return f"the canary of {change.revision} is aborted: this PR does not restart it (kulta retry does)"
    if change.canary_revision:
        text = f"no change: the canary of {change.revision} goes on at step {step}"
        return text + (" under the new fields" if change.strategy_changed else "")
    text = f"no change: revision {change.revision} is already stable"
    if change.strategy_changed:
        text += "; the new strategy applies to the next revision's canary"
    return text


# --------------------------------------------------------------------------- markdown


#: the step column of the updates that are no step
_ROLE_NAME = {StepRole.FIRST_DEPLOYMENT: "first", StepRole.PROMOTION: "end"}


def _step_name(step: StepPreview) -> str:
    return _ROLE_NAME.get(step.role, str(step.step))


def _value(value: Any) -> str:
    if value is None:
        return _ABSENT
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return truncate(text, MAX_VALUE_CHARS)


def _diff_rows(step: StepPreview) -> list[str]:
    rows: list[str] = []
    listed = 0
    hidden = 0
    for change in _changed(step):
        resource = code(f"{_kind(change)} {change.urn_name}")
        fields = _fields(change)
        if not fields:
            created = created_summary(change).strip(" ()") if change.op == "create" else ""
            rows.append(f"| {resource} | {code(change.op)} | | | {code(created)} |")
            continue
        for diff in fields:
            if listed >= MAX_FIELDS_PER_STEP:
                hidden += 1
                continue
            listed += 1
            rows.append(
                f"| {resource} | {code(change.op)} | {code(truncate(diff.path, MAX_VALUE_CHARS))} "
                f"| {code(_value(diff.old))} | {code(_value(diff.new))} |"
            )
    if hidden:
        rows.append(f"| … | | {hidden} more field(s) | | |")
    return rows


def _step_details(step: StepPreview) -> list[str]:
    changed = _changed(step)
    counts: dict[str, int] = {}
    for change in changed:
        counts[change.op] = counts.get(change.op, 0) + 1
    what = ", ".join(f"{n} {op}" for op, n in sorted(counts.items()))
    rows = _diff_rows(step)
    opened = " open" if len(rows) <= OPEN_ROWS else ""
    return [
        f"<details{opened}><summary>Step {html_text(_step_name(step))}: <code>{html_text(step.action)}</code>"
        f" — {html_text(what)}</summary>",
        "",
        "| Resource | Change | Field | Old | New |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "</details>",
        "",
    ]


def _rollout_markdown(file: str, rollout: RolloutPreview, used: int) -> list[str]:
    lines = [
        f"### Rollout {code(f'{rollout.namespace}/{rollout.name}')} ({code(rollout.source)})",
        "",
        f"**{_KIND_TITLE[rollout.change.kind]}**: {html_text(change_sentence(rollout.change))}.",
        "",
        "| Step | Action | Stable weight | Canary weight | Stable pods | Canary pods | Resource changes |",
        "|---|---|---|---|---|---|---|",
    ]
    for step in rollout.steps:
        lines.append(
            f"| {_step_name(step)} | {code(step.action)} | {100 - step.canary_weight}% | {step.canary_weight}% "
            f"| {step.stable_pods} | {step.canary_pods} | {len(_changed(step))} |"
        )
    lines.append("")
    unchanged = [_step_name(step) for step in rollout.steps if not _changed(step)]
    if unchanged:
        lines.extend([f"No resource change at step(s) {', '.join(unchanged)}.", ""])
    size = used + sum(len(line) + 1 for line in lines)
    for step in rollout.steps:
        if not _changed(step):
            continue
        block = _step_details(step)
        block_size = sum(len(line) + 1 for line in block)
        if size + block_size > MAX_MARKDOWN_CHARS:
            where = "--all" if step.role is StepRole.FIRST_DEPLOYMENT else f"--step {step.step}"
            lines.extend(
                [
                    f"Diff of step {_step_name(step)} left out (comment size limit): run "
                    f"{code(f'kulta preview {file} {where}')}.",
                    "",
                ]
            )
            continue
        lines.extend(block)
        size += block_size
    return lines


def _errors_markdown(errors: Sequence[SpecError]) -> list[str]:
    if not errors:
        return ["**Invalid**: no Rollout in this file: nothing to preview.", ""]
    return [
        f"**Invalid**: {len(errors)} error(s), nothing was previewed. "
        f"Each names the file, the field and the fix (as {code('kulta validate')} prints them):",
        "",
        *(f"- {code(str(error))}" for error in errors),
        "",
    ]


def render_markdown(result: PreviewResult) -> str:
    """The PR comment for ``result``: the file's errors, or each rollout's steps and diffs."""
    lines = [f"## KULTA preview of {code(result.file)}", ""]
    if not result.valid:
        lines.extend(_errors_markdown(result.errors))
        return "\n".join(lines)
    for rollout in result.rollouts:
        used = sum(len(line) + 1 for line in lines)
        lines.extend(_rollout_markdown(result.file, rollout, used))
    return "\n".join(lines)


# --------------------------------------------------------------------------- JSON


def _change_json(change: PreviewChange) -> dict[str, Any]:
    return {
        "op": change.op,
        "type": change.type,
        "kind": _kind(change),
        "name": change.urn_name,
        "created": created_summary(change).strip(" ()") if change.op == "create" else "",
        "fields": [{"path": f.path, "old": f.old, "new": f.new} for f in _fields(change)],
    }


def _step_json(step: StepPreview) -> dict[str, Any]:
    return {
        "step": step.step,
        "role": step.role.value,
        "label": step.label,
        "action": step.action,
        "stableWeight": 100 - step.canary_weight,
        "canaryWeight": step.canary_weight,
        "stablePods": step.stable_pods,
        "canaryPods": step.canary_pods,
        "changes": [_change_json(change) for change in _changed(step)],
    }


def _rollout_json(rollout: RolloutPreview) -> dict[str, Any]:
    change = rollout.change
    return {
        "namespace": rollout.namespace,
        "name": rollout.name,
        "source": rollout.source,
        "change": {
            "kind": change.kind.value,
            "summary": change_sentence(change),
            "revision": change.revision,
            "stableRevision": change.stable_revision,
            "canaryRevision": change.canary_revision,
            "currentStep": change.current_step,
            "strategyChanged": change.strategy_changed,
        },
        "steps": [_step_json(step) for step in rollout.steps],
    }


def render_json(result: PreviewResult) -> str:
    """``result`` as one JSON document (schema ``SCHEMA``, docs/commands.md)."""
    document = {
        "schema": SCHEMA,
        "file": result.file,
        "valid": result.valid,
        "errors": [
            {"file": e.file, "document": e.document, "path": e.path, "message": e.message, "text": str(e)}
            for e in result.errors
        ],
        "rollouts": [_rollout_json(rollout) for rollout in result.rollouts],
    }
    return json.dumps(document, indent=2, default=str)
