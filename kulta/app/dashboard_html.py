"""The dashboard's HTML: a page shell, the overview and a rollout's page, all server-rendered.

Plain HTML and one small script of our own (``dashboard_static/dashboard.js``), no front-end
dependency: the script re-fetches the page's ``main`` every few seconds
(``?fragment=1``) and sends the buttons' commands as POSTs carrying the token
in a header. Every string from a status, a history message or a template is
escaped with ``html.escape`` (quotes too) before it reaches the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from kulta.app.dashboard_svg import metric_chart, weight_bar, weight_chart
from kulta.app.dashboard_view import DetailView, OverviewRow, StepState, TimelineStep
from kulta.core.commands import CommandKind
from kulta.model.status import Phase

__all__ = [
    "REFRESH_SECONDS",
    "detail_fragment",
    "overview_fragment",
    "page",
    "rollout_path",
]

REFRESH_SECONDS = 3
PHASE_CLASS = {
    Phase.HEALTHY: "healthy",
    Phase.PROGRESSING: "progressing",
    Phase.PAUSED: "paused",
    Phase.DEGRADED: "degraded",
    Phase.ABORTED: "aborted",
}
BUTTONS = (
    (CommandKind.PROMOTE, "Promote", "skip the current pause or analysis"),
    (CommandKind.PROMOTE_FULL, "Promote fully", "go to 100% now, skipping every remaining step"),
    (CommandKind.ABORT, "Abort", "send all traffic back to stable"),
    (CommandKind.RETRY, "Retry", "restart the aborted canary from step 0"),
)


def rollout_path(namespace: str, rollout: str) -> str:
    return f"/rollouts/{quote(namespace, safe='')}/{quote(rollout, safe='')}"


def page(title: str, body: str, token: str) -> str:
    """The shell around a fragment; the token is for the script's requests (same origin only)."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="kulta-token" content="{escape(token)}">'
        f'<meta name="kulta-refresh" content="{REFRESH_SECONDS}">'
        f"<title>{escape(title)} · KULTA</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script></head><body>'
        '<header><a class="brand" href="/">KULTA</a><span class="muted">progressive delivery</span>'
        '<span id="refreshed" class="muted"></span></header>'
        f'<div id="notice" role="status"></div><main id="main">{body}</main></body></html>\n'
    )


def _phase(phase: Phase | None) -> str:
    if phase is None:
        return '<span class="phase">—</span>'
    return f'<span class="phase {PHASE_CLASS[phase]}">{escape(phase.value)}</span>'


def _step(row: OverviewRow) -> str:
    return f"{row.step}/{row.step_count}" if row.phase is not None else "—"


def overview_fragment(environment: str, rows: Sequence[OverviewRow]) -> str:
    head = f'<h1>Rollouts <span class="muted">in environment {escape(environment)}</span></h1>'
    if not rows:
        return head + '<p class="muted">no rollout has a stack in this environment yet</p>'
    out = [
        head,
        '<table class="rollouts"><thead><tr><th>Rollout</th><th>Phase</th><th>Step</th><th>Canary weight</th>'
        "<th>Stable</th><th>Canary</th><th>Message</th></tr></thead><tbody>",
    ]
    for row in rows:
        name = f"{row.namespace}/{row.rollout}"
        failing = f'<div class="failing">{escape(row.failing)}</div>' if row.failing else ""
        out.append(
            f'<tr class="rollout" data-rollout="{escape(name)}">'
            f'<td><a href="{escape(rollout_path(row.namespace, row.rollout))}">{escape(name)}</a></td>'
            f"<td>{_phase(row.phase)}</td>"
            f'<td class="step">{_step(row)}</td>'
            f'<td class="weight">{weight_bar(row.canary_weight)} <span class="num">{row.canary_weight}%</span></td>'
            f"<td><code>{escape(row.stable_revision or '—')}</code></td>"
            f"<td><code>{escape(row.canary_revision or '—')}</code></td>"
            f'<td class="message">{escape(row.message)}{failing}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def _buttons(view: DetailView) -> str:
    allowed = {
        CommandKind.PROMOTE: view.can_promote,
        CommandKind.PROMOTE_FULL: view.can_promote,
        CommandKind.ABORT: view.can_abort,
        CommandKind.RETRY: view.can_retry,
    }
    action = f"/api{rollout_path(view.row.namespace, view.row.rollout)}"
    out = [f'<div class="actions" data-action="{escape(action)}">']
    for kind, label, title in BUTTONS:
        disabled = "" if allowed[kind] else " disabled"
        css = "danger" if kind is CommandKind.ABORT else "primary" if kind is CommandKind.PROMOTE else ""
        out.append(
            f'<button type="button" class="{css}" data-command="{kind.value}" title="{escape(title)}"{disabled}>'
            f"{escape(label)}</button>"
        )
    out.append("</div>")
    return "".join(out)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _time(text: str) -> str:
    return text[:19].replace("T", " ")


STEP_MARK = {StepState.DONE: "✔", StepState.CURRENT: "▶", StepState.ABORTED: "✖", StepState.PENDING: "·"}


def _timeline(steps: Sequence[TimelineStep], step_count: int) -> str:
    if not steps:
        return '<p class="muted">no canary steps recorded yet</p>'
    out = ['<ol class="steps">']
    for cell in steps:
        label = "promoted" if cell.index == step_count else f"step {cell.index}"
        when = _time(cell.reached_at)[11:] if cell.reached_at else "—"
        weight = f"{escape(cell.canary)} canary" if cell.canary else ""
        out.append(
            f'<li class="{cell.state.value}" data-step="{cell.index}"><b>{STEP_MARK[cell.state]} {label}</b>'
            f'<span>{escape(when)}</span><span class="muted">{weight}</span></li>'
        )
    out.append("</ol>")
    return "".join(out)


def detail_fragment(view: DetailView) -> str:
    row = view.row
    name = f"{row.namespace}/{row.rollout}"
    out = [
        f'<p class="crumbs"><a href="/">all rollouts</a></p><h1>{escape(name)} '
        f'<span class="muted">({escape(view.environment)})</span></h1>',
        f'<div class="summary" data-rollout="{escape(name)}">{_phase(row.phase)}'
        f'<span>step <b class="step">{_step(row)}</b></span>'
        f'<span class="weight">{weight_bar(row.canary_weight)} <b class="num">{row.canary_weight}%</b> canary</span>'
        f"<span>stable <code>{escape(row.stable_revision or '—')}</code></span>"
        f"<span>canary <code>{escape(row.canary_revision or '—')}</code></span></div>",
        f'<p class="message">{escape(row.message)}</p>',
        _buttons(view),
        "<section><h2>Canary weight over time</h2>",
        weight_chart(view.weights),
        "</section>",
        "<section><h2>Step timeline</h2>",
        _timeline(view.timeline, view.row.step_count),
        "</section>",
    ]
    if view.analysis:
        out.append("<section><h2>Analysis</h2>")
        for series in view.analysis:
            condition = (
                f"successCondition <code>{escape(series.condition)}</code>"
                if series.condition
                else "successCondition unknown (start the dashboard with --file to show it)"
            )
            out.append(
                f'<div class="metric"><h3>{escape(series.metric)} <span class="muted">{escape(series.run)}, '
                f'{escape(series.where)}</span></h3><p class="muted">{condition}</p>'
                f"{metric_chart(series)}</div>"
            )
        out.append("</section>")
    out.append("<section><h2>Recent events</h2>")
    out.append(
        _table(("Time", "Result", "What happened"), [(_time(e.time), e.result, e.text) for e in view.events], "events")
    )
    out.append("</section>")
    return "".join(out)
