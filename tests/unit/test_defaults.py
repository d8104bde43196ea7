"""Scale-down delays as Argo's Get…OrDefault helpers give them (utils/defaults/defaults.go).

Worked values: without trafficRouting both delays are 0 (Argo ignores the fields there,
and KULTA refuses them by name); with trafficRouting and the fields unset both are 30
(DefaultScaleDownDelaySeconds, DefaultAbortScaleDownDelaySeconds); an explicit
``abortScaleDownDelaySeconds: 0`` with trafficRouting means never scale the aborted
canary down (Argo returns nil).
"""

from __future__ import annotations

from typing import Any

import pytest

from kulta.core.defaults import abort_scale_down_delay_seconds, scale_down_delay_seconds
from kulta.model.rollout import CanaryStrategy
from tests.unit.spec_helpers import base_rollout, canary, error_lines, load


def strategy(**canary_fields: Any) -> CanaryStrategy:
    """The canary strategy KULTA reads from a Rollout file with these fields."""
    doc = base_rollout()
    routing = canary_fields.pop("trafficRouting", canary(doc)["trafficRouting"])
    canary(doc).update(canary_fields)
    if routing is None:
        del canary(doc)["trafficRouting"]
    else:
        canary(doc)["trafficRouting"] = routing
    result = load(doc)
    assert error_lines(result) == []
    return result.rollouts[0].spec.strategy


@pytest.mark.parametrize(
    ("fields", "scale_down", "abort_scale_down"),
    [
        ({"trafficRouting": None}, 0, 0),
        ({}, 30, 30),
        ({"scaleDownDelaySeconds": 0}, 0, 30),
        ({"scaleDownDelaySeconds": 90, "abortScaleDownDelaySeconds": 15}, 90, 15),
        ({"abortScaleDownDelaySeconds": 0}, 30, None),
    ],
    ids=["no-trafficRouting", "trafficRouting-unset", "scaleDown-0", "both-set", "abort-0-means-never"],
)
def test_scale_down_delays_follow_argos_defaults(
    fields: dict[str, Any], scale_down: int, abort_scale_down: int | None
) -> None:
    parsed = strategy(**fields)
    assert scale_down_delay_seconds(parsed) == scale_down
    assert abort_scale_down_delay_seconds(parsed) == abort_scale_down


def test_the_model_keeps_unset_delays_unset() -> None:
    parsed = strategy()
    assert (parsed.scale_down_delay_seconds, parsed.abort_scale_down_delay_seconds) == (None, None)
