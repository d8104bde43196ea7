"""``spec.strategy.blueGreen``: Argo Rollouts' blue-green strategy.

Every field of Argo's ``BlueGreenStrategy`` is either read here and honoured
(``kulta.core.bluegreen`` holds the promotion logic) or refused by name:
``antiAffinity`` (set pod anti-affinity in the template), ``maxUnavailable`` and
``scaleDownDelayRevisionLimit``. The two analyses take the same form as a canary
step's ``analysis`` (Argo's ``RolloutAnalysis``). Argo's ``ValidateRolloutStrategyBlueGreen``
refuses the same Service as active and preview; so does this module.
"""

from __future__ import annotations

from typing import Any

from kulta.model.rollout import BlueGreenStrategy
from kulta.spec.common import check_dns_label, unsupported
from kulta.spec.fields import MISSING, Issues, Shape, child, read_bool, read_int, read_str
from kulta.spec.rollout_analysis_refs import parse_step_analysis
from kulta.spec.rollout_canary import parse_pod_metadata

__all__ = ["parse_blue_green"]

_BLUE_GREEN = Shape(
    (
        "activeService",
        "previewService",
        "previewReplicaCount",
        "autoPromotionEnabled",
        "autoPromotionSeconds",
        "prePromotionAnalysis",
        "postPromotionAnalysis",
        "scaleDownDelaySeconds",
        "abortScaleDownDelaySeconds",
        "previewMetadata",
        "activeMetadata",
    ),
    {
        "antiAffinity": unsupported("antiAffinity", "set pod anti-affinity in spec.template instead"),
        "maxUnavailable": unsupported(
            "blueGreen.maxUnavailable", "the old ReplicaSet is scaled down in one move after scaleDownDelaySeconds"
        ),
        "scaleDownDelayRevisionLimit": unsupported("scaleDownDelayRevisionLimit"),
    },
)


def _service(issues: Issues, value: Any, path: str, *, required: bool) -> str | None:
    name = read_str(issues, value, path, required=required)
    if name is not None and not check_dns_label(issues, name, path):
        return None
    return name


def parse_blue_green(issues: Issues, value: Any, path: str) -> BlueGreenStrategy | None:
    """``spec.strategy.blueGreen`` with Argo's defaults (unset delays stay ``None``)."""
    before = len(issues)
    data = _BLUE_GREEN.read(issues, value, path)
    if data is None:
        return None
    active = _service(issues, data.get("activeService", MISSING), child(path, "activeService"), required=True)
    preview = _service(issues, data.get("previewService", MISSING), child(path, "previewService"), required=False)
    if active is not None and active == preview:
        issues.add(
            child(path, "previewService"),
            f'"{preview}" is also the activeService; two different Services are required',
        )
    # Argo's int32 fields; a preview of 0 pods is refused: Argo goes on with none, and a
    # prePromotionAnalysis would then measure no pod
    preview_count = read_int(
        issues, data.get("previewReplicaCount", MISSING), child(path, "previewReplicaCount"), minimum=1
    )
    auto = read_bool(issues, data.get("autoPromotionEnabled", MISSING), child(path, "autoPromotionEnabled"))
    auto_seconds = read_int(
        issues, data.get("autoPromotionSeconds", MISSING), child(path, "autoPromotionSeconds"), minimum=0
    )
    scale_down = read_int(
        issues, data.get("scaleDownDelaySeconds", MISSING), child(path, "scaleDownDelaySeconds"), minimum=0
    )
    abort_scale_down = read_int(
        issues, data.get("abortScaleDownDelaySeconds", MISSING), child(path, "abortScaleDownDelaySeconds"), minimum=0
    )
    pre = None
    if data.get("prePromotionAnalysis") is not None:
        pre = parse_step_analysis(issues, data["prePromotionAnalysis"], child(path, "prePromotionAnalysis"))
    post = None
    if data.get("postPromotionAnalysis") is not None:
        post = parse_step_analysis(issues, data["postPromotionAnalysis"], child(path, "postPromotionAnalysis"))
    preview_metadata = parse_pod_metadata(issues, data.get("previewMetadata", MISSING), child(path, "previewMetadata"))
    active_metadata = parse_pod_metadata(issues, data.get("activeMetadata", MISSING), child(path, "activeMetadata"))
    if auto is False and auto_seconds:
        issues.warn(
            child(path, "autoPromotionSeconds"),
            "has no effect with autoPromotionEnabled: false (as in Argo, the rollout waits for kulta promote)",
        )
    if len(issues) != before or active is None:
        return None
    return BlueGreenStrategy(
        active_service=active,
        preview_service=preview,
        preview_replica_count=preview_count,
        auto_promotion_enabled=True if auto is None else auto,
        auto_promotion_seconds=auto_seconds or 0,
        pre_promotion_analysis=pre,
        post_promotion_analysis=post,
        scale_down_delay_seconds=scale_down,
        abort_scale_down_delay_seconds=abort_scale_down,
        preview_metadata=preview_metadata,
        active_metadata=active_metadata,
    )
