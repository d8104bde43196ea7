"""Charts for the dashboard as inline SVG, drawn on the server.

No charting library in the browser: a chart is a few dozen SVG elements, the
page stays readable without JavaScript, and a test can count the points
(``circle.point``). Every text that reaches the SVG is HTML-escaped. Colours
come from classes styled by the page's stylesheet (the Content-Security-Policy
allows no inline styles).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from kulta.app.dashboard_view import MetricSeries, WeightPoint
from kulta.core.times import parse_time
from kulta.model.status import MeasurementPhase

__all__ = ["CHART_HEIGHT", "CHART_WIDTH", "metric_chart", "weight_bar", "weight_chart"]

CHART_WIDTH = 900
CHART_HEIGHT = 220
PAD_LEFT = 44
PAD_RIGHT = 16
PAD_TOP = 12
PAD_BOTTOM = 28
BAR_WIDTH = 120
BAR_HEIGHT = 10
PHASE_CLASS = {
    MeasurementPhase.SUCCESSFUL: "ok",
    MeasurementPhase.FAILED: "bad",
    MeasurementPhase.ERROR: "err",
    MeasurementPhase.INCONCLUSIVE: "err",
}


def _seconds(times: Sequence[str]) -> list[float]:
    """Seconds since the first time; unparseable times sit at the previous one."""
    moments: list[datetime | None] = []
    for text in times:
        try:
            moments.append(parse_time(text))
        except ValueError:
            moments.append(None)
    known = [m for m in moments if m is not None]
    if not known:
        return [float(i) for i in range(len(times))]
    start = min(known)
    out: list[float] = []
    for m in moments:
        out.append((m - start).total_seconds() if m is not None else (out[-1] if out else 0.0))
    return out


def _x_positions(times: Sequence[str]) -> list[float]:
    seconds = _seconds(times)
    span = max(seconds, default=0.0) or 1.0
    inner = CHART_WIDTH - PAD_LEFT - PAD_RIGHT
    if max(seconds, default=0.0) == 0.0 and len(seconds) > 1:  # all at once: spread evenly
        return [PAD_LEFT + inner * i / (len(seconds) - 1) for i in range(len(seconds))]
    return [PAD_LEFT + inner * s / span for s in seconds]


def _y(value: float, low: float, high: float) -> float:
    inner = CHART_HEIGHT - PAD_TOP - PAD_BOTTOM
    span = (high - low) or 1.0
    return PAD_TOP + inner * (1 - (value - low) / span)


def _frame(label: str, ticks: Sequence[tuple[float, str]], first: str, last: str) -> list[str]:
    bottom = CHART_HEIGHT - PAD_BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="{escape(label)}">',
        f'<line class="axis" x1="{PAD_LEFT}" y1="{bottom}" x2="{CHART_WIDTH - PAD_RIGHT}" y2="{bottom}"/>',
        f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{bottom}"/>',
    ]
    for y, text in ticks:
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" y1="{y:.1f}" x2="{CHART_WIDTH - PAD_RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    parts.append(f'<text class="tick" x="{PAD_LEFT}" y="{CHART_HEIGHT - 8}">{escape(first)}</text>')
    right = CHART_WIDTH - PAD_RIGHT
    parts.append(f'<text class="tick" x="{right}" y="{CHART_HEIGHT - 8}" text-anchor="end">{escape(last)}</text>')
    return parts


def _clock(text: str) -> str:
    return text[11:19] if len(text) >= 19 else text


def weight_chart(points: Sequence[WeightPoint]) -> str:
    """Canary weight (0-100 %) over time: a step line and one ``circle.point`` per update."""
    if not points:
        return '<p class="muted">no update recorded yet</p>'
    ticks = [(_y(v, 0, 100), f"{v}%") for v in (0, 25, 50, 75, 100)]
    parts = _frame("canary weight over time", ticks, _clock(points[0].time), _clock(points[-1].time))
    xs = _x_positions([p.time for p in points])
    ys = [_y(p.canary, 0, 100) for p in points]
    path = [f"{xs[0]:.1f},{ys[0]:.1f}"]
    for i in range(1, len(points)):
        path.append(f"{xs[i]:.1f},{ys[i - 1]:.1f}")
        path.append(f"{xs[i]:.1f},{ys[i]:.1f}")
    parts.append(f'<polyline class="line" points="{" ".join(path)}"/>')
    for p, x, y in zip(points, xs, ys, strict=True):
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" data-step="{escape(p.step)}" '
            f'data-canary="{p.canary}"><title>{escape(p.time)}: step {escape(p.step)}, {p.canary}% canary</title>'
            "</circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def metric_chart(series: MetricSeries) -> str:
    """A metric's numeric measurements coloured by outcome, and the threshold of its condition."""
    numeric = [(t, v, phase, text) for t, v, phase, text in series.points if v is not None]
    if not numeric:
        return '<p class="muted">no numeric measurement to plot</p>'
    values = [v for _, v, _, _ in numeric]
    if series.threshold is not None:
        values.append(series.threshold.value)
    # measurements of one sign are drawn from 0: an error ratio of 0.2 is not near 0.19
    low, high = min([*values, 0.0]), max([*values, 0.0])
    if low == high:
        low, high = low - 1, high + 1
    margin = (high - low) * 0.1
    low, high = (low - margin if low < 0 else low), high + margin
    ticks = [(_y(v, low, high), f"{v:.3g}") for v in (low, (low + high) / 2, high)]
    parts = _frame(f"{series.metric} measurements", ticks, _clock(numeric[0][0]), _clock(numeric[-1][0]))
    if series.threshold is not None:
        y = _y(series.threshold.value, low, high)
        parts.append(
            f'<line class="threshold" x1="{PAD_LEFT}" y1="{y:.1f}" x2="{CHART_WIDTH - PAD_RIGHT}" y2="{y:.1f}"/>'
        )
        label = f"success: result {series.threshold.op} {series.threshold.value:g}"
        parts.append(f'<text class="tick" x="{CHART_WIDTH - PAD_RIGHT}" y="{y - 4:.1f}" text-anchor="end">')
        parts.append(f"{escape(label)}</text>")
    xs = _x_positions([t for t, _, _, _ in numeric])
    for (t, v, phase, text), x in zip(numeric, xs, strict=True):
        parts.append(
            f'<circle class="measurement {PHASE_CLASS[phase]}" cx="{x:.1f}" cy="{_y(v, low, high):.1f}" r="4">'
            f"<title>{escape(t)}: {escape(text)} ({phase.value})</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def weight_bar(canary: int) -> str:
    """A small stable/canary split bar for the overview table."""
    width = round(BAR_WIDTH * max(0, min(canary, 100)) / 100)
    return (
        f'<svg class="bar" viewBox="0 0 {BAR_WIDTH} {BAR_HEIGHT}" width="{BAR_WIDTH}" height="{BAR_HEIGHT}" '
        f'role="img" aria-label="{canary}% canary">'
        f'<rect class="stable" width="{BAR_WIDTH}" height="{BAR_HEIGHT}"/>'
        f'<rect class="canary" width="{width}" height="{BAR_HEIGHT}"/></svg>'
    )
