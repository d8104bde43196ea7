"""``kulta plan`` for a blue-green Rollout: its stages instead of canary steps.

The stages are those ``kulta.core.bluegreen`` walks (Argo's ``rollout/bluegreen.go``):
preview, switch (with postPromotionAnalysis, the post-promotion stage), promotion, abort.
Each row says which revision each Service selects and how many pods each side runs.
"""

from __future__ import annotations

from kulta.app.text_table import table
from kulta.core.bluegreen import needs_controller_pause, preview_replicas
from kulta.core.defaults import abort_scale_down_delay_seconds, scale_down_delay_seconds
from kulta.model.rollout import AnalysisRef, BlueGreenStrategy, Rollout

__all__ = ["render_blue_green_plan"]

_HEADERS = ("stage", "action", "active selects", "preview selects", "stable pods", "new pods", "wait")
_STABLE, _NEW = "stable", "new"


def _analysis(kind: str, ref: AnalysisRef | None) -> str:
    return f"{kind} {','.join(t.name for t in ref.templates)}" if ref is not None else ""


def _pause(blue_green: BlueGreenStrategy) -> str:
    if not needs_controller_pause(blue_green):
        return ""
    if not blue_green.auto_promotion_enabled:
        return "pause until promoted"
    return f"pause {blue_green.auto_promotion_seconds}s"


def _waits(*parts: str) -> str:
    return "; then ".join(part for part in parts if part) or "-"


def render_blue_green_plan(rollout: Rollout, blue_green: BlueGreenStrategy) -> list[str]:
    """The service and table lines of a blue-green plan (after the Rollout's heading lines)."""
    spec = rollout.spec
    replicas = str(spec.replicas)
    preview = blue_green.preview_service
    lines = [
        f"  strategy: blueGreen; active Service {blue_green.active_service}, "
        f"preview Service {preview or '- (none)'}; no trafficRouting (the switch is the active Service's selector)"
    ]
    preview_selects = _NEW if preview else "-"
    delay = scale_down_delay_seconds(blue_green)
    abort_delay = abort_scale_down_delay_seconds(blue_green)
    kept = "kept (abortScaleDownDelaySeconds: 0)" if abort_delay is None else f"0 after {abort_delay}s"
    rows: list[tuple[str, ...]] = [_HEADERS]
    rows.append(
        (
            "0",
            "preview",
            _STABLE,
            preview_selects,
            replicas,
            str(preview_replicas(spec, blue_green)),
            _waits(_analysis("prePromotionAnalysis", blue_green.pre_promotion_analysis), _pause(blue_green)),
        )
    )
    post = blue_green.post_promotion_analysis
    rows.append(
        (
            "1" if post is not None else "end",
            "switch (new pods available first)" if post is not None else "promote: switch (new pods available first)",
            _NEW,
            preview_selects,
            replicas if post is not None else f"{replicas}, 0 after {delay}s",
            replicas,
            _waits(_analysis("postPromotionAnalysis", post)),
        )
    )
    if post is not None:
        rows.append(("end", "promote", _NEW, preview_selects, f"{replicas}, 0 after {delay}s", replicas, "-"))
    rows.append(("abort", "abort (any stage)", _STABLE, preview_selects, replicas, kept, "-"))
    lines.extend("  " + line for line in table(rows))
    return lines
