"""Argo Rollouts' defaults that depend on other fields (``utils/defaults/defaults.go``).

The model keeps ``None`` where the file leaves a field unset; these functions say
what that means, exactly as Argo's ``Get…OrDefault`` helpers do, so no caller reads
a raw optional field and guesses.
"""

from __future__ import annotations

from kulta.model.rollout import BlueGreenStrategy, CanaryStrategy

__all__ = [
    "DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS",
    "DEFAULT_SCALE_DOWN_DELAY_SECONDS",
    "abort_scale_down_delay_seconds",
    "scale_down_delay_seconds",
]

#: Argo's ``DefaultScaleDownDelaySeconds`` (blue-green and traffic-routed canaries)
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30
#: Argo's ``DefaultAbortScaleDownDelaySeconds`` (blue-green and traffic-routed canaries)
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30


def scale_down_delay_seconds(strategy: CanaryStrategy | BlueGreenStrategy) -> int:
    """Seconds the previous stable keeps its pods after a promotion.

    Argo's ``GetScaleDownDelaySecondsOrDefault``: 30 (or the field) for
    blue-green and with trafficRouting; 0 for a canary without it, where a
    Service over both revisions would otherwise keep sending traffic to the old pods.
    """
    if isinstance(strategy, BlueGreenStrategy):
        value = strategy.scale_down_delay_seconds
        return DEFAULT_SCALE_DOWN_DELAY_SECONDS if value is None else value
    if strategy.traffic_routing is None:
        return 0
    if strategy.scale_down_delay_seconds is None:
        return DEFAULT_SCALE_DOWN_DELAY_SECONDS
    return strategy.scale_down_delay_seconds


def abort_scale_down_delay_seconds(strategy: CanaryStrategy | BlueGreenStrategy) -> int | None:
    """Seconds an aborted canary (or preview) keeps its pods; ``None`` means never scale it down.

    Argo's ``GetAbortScaleDownDelaySecondsOrDefault``: for blue-green and with
    trafficRouting the default is 30 and an explicit 0 returns nil (the new
    ReplicaSet is left running); a canary without trafficRouting is scaled down at once.
    """
    if isinstance(strategy, BlueGreenStrategy):
        value = strategy.abort_scale_down_delay_seconds
    elif strategy.traffic_routing is None:
        return 0
    else:
        value = strategy.abort_scale_down_delay_seconds
    if value is None:
        return DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS
    if value == 0:
        return None
    return value
