"""Commands a person runs: status, history, promote/abort/retry, preview, run.

Every command works from any machine that reaches the Pulumi backend: reads
come from stack outputs and history, and manual commands are written as a stack
tag (``kulta-command``; tags are stored in the backend, unlike config files)
that the reconciler applies on its next pass and records in the outputs
(``lastCommandId``), so a command is applied once.
Formatting lives here; the CLI only parses arguments.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from kulta.adapters.stacks import HistoryEntry, PreviewChange, PreviewReport, StackManager, stack_name_for
from kulta.app.text_table import table
from kulta.core.bluegreen import active_revision, stage_label, step_count
from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.constants import TAG_COMMAND
from kulta.core.plan import WaitKind, desired_state
from kulta.core.times import format_time
from kulta.errors import ConfigError
from kulta.model.rollout import Rollout
from kulta.model.status import Phase, RolloutStatus

__all__ = [
    "StackRef",
    "allowed_commands",
    "created_summary",
    "find_stacks",
    "format_history",
    "format_preview",
    "format_health",
    "format_health_lines",
    "format_status_detail",
    "format_status_table",
    "read_status_rows",
    "request_command",
    "send_command",
    "update_fields",
    "weight_bar",
]

log = logging.getLogger(__name__)

BAR_WIDTH = 20
PHASE_MARK = {
    Phase.HEALTHY: "✔",
    Phase.PROGRESSING: "◐",
    Phase.PAUSED: "॥",
    Phase.DEGRADED: "✖",
    Phase.ABORTED: "✖",
}
MESSAGE_FIELDS = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class StackRef:
    name: str
    environment: str
    namespace: str
    rollout: str


def find_stacks(stacks: StackManager, environment: str, rollout: str | None = None) -> list[StackRef]:
    """Stacks of ``environment``; ``rollout`` may be ``name`` or ``namespace/name``."""
    refs = []
    for name in stacks.list_stacks():
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != environment:
            continue
        ref = StackRef(name, parts[0], parts[1], parts[2])
        if rollout is None or rollout in (ref.rollout, f"{ref.namespace}/{ref.rollout}"):
            refs.append(ref)
    if rollout is not None and not refs:
        raise ConfigError(
            f"no rollout {rollout!r} in environment {environment!r} (see `kulta status --env {environment}`)"
        )
    if rollout is not None and len(refs) > 1:
        names = ", ".join(f"{r.namespace}/{r.rollout}" for r in refs)
        raise ConfigError(f"{rollout!r} is ambiguous ({names}): name it as namespace/name")
    return refs


def read_status_rows(
    stacks: StackManager, environment: str, rollout: str | None = None
) -> list[tuple[StackRef, RolloutStatus | None]]:
    """Each stack of ``environment`` (or the one ``rollout``) with its status (``None``: no update yet)."""
    refs = find_stacks(stacks, environment, rollout)
    every_outputs = stacks.outputs_of([ref.name for ref in refs])  # one read for all on PostgreSQL
    rows = []
    for ref in refs:
        outputs = every_outputs[ref.name]
        rows.append((ref, RolloutStatus.from_outputs(outputs) if outputs.get("phase") else None))
    return rows


def request_command(
    stacks: StackManager, environment: str, rollout: str, kind: CommandKind, now: datetime
) -> tuple[StackRef, ManualCommand]:
    """Check that ``kind`` makes sense for the rollout now, then leave it for the reconciler.

    Retry needs an aborted rollout; promote and abort need a canary in flight. Anything else
    is a ``ConfigError`` that says why, and no tag is written.
    """
    ((ref, status),) = read_status_rows(stacks, environment, rollout)
    if kind in allowed_commands(status):
        return ref, send_command(stacks, ref.name, kind, now)
    if kind is CommandKind.RETRY:
        raise ConfigError(f"{ref.namespace}/{ref.rollout} is not aborted: nothing to retry")
    phase = status.phase.value if status else "not deployed yet"
    verb = "promote" if kind is CommandKind.PROMOTE_FULL else kind.value
    raise ConfigError(f"{ref.namespace}/{ref.rollout} has no canary in flight ({phase}): nothing to {verb}")


def allowed_commands(status: RolloutStatus | None) -> frozenset[CommandKind]:
    """Retry needs an aborted rollout; promote and abort need a canary in flight."""
    if status is None:
        return frozenset()
    if status.aborted:
        return frozenset({CommandKind.RETRY})
    if status.in_flight:
        return frozenset({CommandKind.PROMOTE, CommandKind.PROMOTE_FULL, CommandKind.ABORT})
    return frozenset()


def weight_bar(canary: int, width: int = BAR_WIDTH) -> str:
    filled = round(width * canary / 100)
    return "[" + "█" * filled + "░" * (width - filled) + f"] {canary:3d}% canary"


def format_status_table(
    rows: Sequence[tuple[StackRef, RolloutStatus | None]],
    out: TextIO,
    holders: Mapping[str, str] | None = None,
) -> None:
    """The table; with ``holders`` (stack → replica, from the leases) a HOLDER column."""
    header: tuple[str, ...] = ("ROLLOUT", "PHASE", "STEP", "CANARY", "STABLE", "CANARY REV", "COMMIT", "MESSAGE")
    if holders is not None:
        header = (*header[:1], "HOLDER", *header[1:])
    lines = [header]
    for ref, st in rows:
        if st is None:
            line: tuple[str, ...] = (f"{ref.namespace}/{ref.rollout}", "-", "-", "-", "-", "-", "-", "no update yet")
        else:
            weight = f"{st.weights[0].canary}%" if st.weights else "-"
            line = (
                f"{st.namespace}/{st.rollout}",
                f"{PHASE_MARK.get(st.phase, '')} {st.phase.value}",
                f"{min(st.current_step_index, st.step_count)}/{st.step_count}",
                weight,
                st.stable_revision,
                st.canary_revision or "-",
                st.git_commit[:8] or "-",
                st.message[:60],
            )
        if holders is not None:
            line = (line[0], holders.get(ref.name) or "-", *line[1:])
        lines.append(line)
    for text in table(lines):
        out.write(text + "\n")


def format_health(stack: str, entry: Mapping[str, Any]) -> str:
    """One line for a rollout the loop cannot reconcile right now (from ``health.json``)."""
    since = str(entry.get("since", "?"))[11:19] or "?"
    retry = str(entry.get("nextRetry", "?"))[11:19] or "?"
    attempts = entry.get("attempts", "?")
    return (
        f"! {stack}: {entry.get('dependency', '?')} failing since {since} ({attempts} attempts), "
        f"next retry {retry}: {entry.get('error', '')}"
    )


def format_health_lines(health: Mapping[str, Mapping[str, Any]], stacks: Sequence[str], out: TextIO) -> None:
    for stack in stacks:
        entry = health.get(stack)
        if entry is not None:
            out.write(format_health(stack, entry) + "\n")


def format_status_detail(st: RolloutStatus, rollout: Rollout | None, out: TextIO) -> None:
    out.write(f"{st.namespace}/{st.rollout}  ({st.environment})\n")
    out.write(f"  phase      {PHASE_MARK.get(st.phase, '')} {st.phase.value}  — {st.message}\n")
    out.write(f"  stable     {st.stable_revision}   canary {st.canary_revision or '-'}\n")
    out.write(f"  commit     {st.git_commit or '-'}   images {', '.join(st.images) or '-'}\n")
    for w in st.weights:
        out.write(f"  route      {w.namespace}/{w.route}  {weight_bar(w.canary)}\n")
    for rs, n in sorted(st.replicas.items()):
        out.write(f"  replicaset {rs}  {n} replicas\n")
    if rollout is not None and rollout.spec.blue_green is not None:
        blue_green = rollout.spec.blue_green
        services = f"{blue_green.active_service} → {active_revision(rollout, st)}"
        if blue_green.preview_service:
            services += f"   {blue_green.preview_service} → {st.canary_revision or st.stable_revision}"
        out.write(f"  services   {services}\n")
        out.write("  stages\n")
        for stage in range(step_count(rollout.spec)):
            if st.in_flight and not st.aborted:
                mark = "✔" if stage < st.current_step_index else ("▶" if stage == st.current_step_index else " ")
            else:
                mark = "✔" if st.phase is Phase.HEALTHY else " "
            out.write(f"   {mark} {stage:>2} {stage_label(stage)}\n")
    elif rollout is not None:
        out.write("  steps\n")
        for i, step in enumerate(rollout.spec.strategy.steps):
            ds = desired_state(rollout.spec, i)
            if st.in_flight and not st.aborted:
                mark = "✔" if i < st.current_step_index else ("▶" if i == st.current_step_index else " ")
            else:
                mark = "✔" if st.phase is Phase.HEALTHY else " "
            wait = ""
            if ds.wait.kind is WaitKind.PAUSE_DURATION:
                wait = f" pause {ds.wait.seconds}s"
            elif ds.wait.kind is WaitKind.PAUSE_UNTIL_PROMOTED:
                wait = " pause until promoted"
            elif ds.wait.kind is WaitKind.ANALYSIS:
                wait = " analysis"
            out.write(f"   {mark} {i:>2} {step.kind.value:<15} canary {ds.canary_weight:>3}%{wait}\n")
    for run in st.analysis_runs:
        where = "background" if run.step_index is None else f"step {run.step_index}"
        out.write(f"  analysis   {run.name} ({where}): {run.phase.value} {run.message}\n")
        for m in run.measurements[-10:]:
            out.write(f"    {m.finished_at}  {m.metric:<20} {m.phase.value:<12} {m.value}\n")


def send_command(stacks: StackManager, stack: str, kind: CommandKind, now: datetime) -> ManualCommand:
    cmd = ManualCommand(id=uuid.uuid4().hex, kind=kind, issued_at=format_time(now))
    stacks.set_tag(stack, TAG_COMMAND, cmd.to_config())
    return cmd


def update_fields(message: str) -> dict[str, str]:
    """``step``, ``canary``, ``phase``, ``commit`` of an update message KULTA wrote (before ``::``)."""
    head = message.split("::", 1)[0]
    return dict(MESSAGE_FIELDS.findall(head))


def format_history(entries: Sequence[HistoryEntry], out: TextIO) -> None:
    """One row per update; an ACTIVE column for blue-green (the active Service's revision) and a
    REPLICA column when replicas shared the rollouts (leases)."""
    ordered = sorted(entries, key=lambda x: x.version)
    shared = any("replica" in update_fields(e.message) for e in ordered)
    header: tuple[str, ...] = ("#", "TIME", "STEP", "CANARY", "PHASE", "COMMIT", "RESULT", "CHANGES", "WHY")
    if any("active" in update_fields(e.message) for e in ordered):
        header = (*header[:3], "ACTIVE", *header[4:])
    if shared:
        header = (*header[:6], "REPLICA", *header[6:])
    rows = [header]
    for e in ordered:
        f = update_fields(e.message)
        why = e.message.split("::", 1)[1].strip() if "::" in e.message else e.message
        changes = ",".join(f"{k}={v}" for k, v in sorted(e.changes.items()) if k != "same") or "-"
        row: tuple[str, ...] = (
            str(e.version),
            e.start_time[:19].replace("T", " "),
            f.get("step", "-"),
            f.get("canary", f.get("active", "-")),
            f.get("phase", "-"),
            f.get("commit", "-"),
            e.result,
            changes,
            why[:70],
        )
        rows.append((*row[:6], f.get("replica", "-"), *row[6:]) if shared else row)
    for text in table(rows):
        out.write(text + "\n")


def format_preview(step_label: str, report: PreviewReport, out: TextIO) -> None:
    out.write(f"── {step_label}\n")
    changed = [c for c in report.changes if c.op not in ("same", "read")]
    if not changed:
        out.write("   no changes\n")
        return
    for c in changed:
        kind = c.type.split(":")[-1]
        out.write(f"   {c.op:<8} {kind} {c.urn_name}{created_summary(c) if c.op == 'create' else ''}\n")
        for path, (old, new) in sorted(c.detailed.items()):
            if _interesting(path):
                out.write(f"            {path}: {_short(old)} → {_short(new)}\n")


def created_summary(change: PreviewChange) -> str:
    spec = change.inputs.get("spec", {}) if isinstance(change.inputs.get("spec"), Mapping) else {}
    if "replicas" in spec:
        return f" (replicas {spec['replicas']})"
    weights = [
        f"{ref.get('name')}={ref.get('weight')}"
        for rule in spec.get("rules", []) or []
        for ref in rule.get("backendRefs", []) or []
        if "weight" in ref
    ]
    return f" (weights {', '.join(weights)})" if weights else ""


def _interesting(path: str) -> bool:
    return any(k in path for k in ("weight", "replicas", "selector", "labels", "rules", "name"))


def _short(value: object) -> str:
    text = str(value) if value is not None else "∅"
    return text if len(text) <= 80 else text[:77] + "..."


def stack_of(environment: str, namespace: str, rollout: str) -> str:
    return stack_name_for(environment, namespace, rollout)
