"""Values at the paths of Pulumi's detailed diff, for `kulta preview`'s old → new columns."""

from __future__ import annotations

import pytest

from kulta.adapters.stacks import property_value

INPUTS = {
    "metadata": {
        "annotations": {"pulumi.com/waitFor": "jsonpath={.status.readyReplicas}=2", "a.b": 1},
        "labels": {"kulta.io/role": "stable"},
    },
    "spec": {"rules": [{"backendRefs": [{"weight": 100}, {"weight": 0}]}]},
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ('metadata.annotations["pulumi.com/waitFor"]', "jsonpath={.status.readyReplicas}=2"),
        ('metadata.annotations["a.b"]', 1),
        ('metadata.labels["kulta.io/role"]', "stable"),
        ("spec.rules[0].backendRefs[1].weight", 0),
        ("spec.rules[0].backendRefs[0].weight", 100),
        ("spec.rules[1].backendRefs[0].weight", None),
        ('metadata.labels["absent"]', None),
        ("spec.rules.backendRefs", None),
    ],
)
def test_property_value(path: str, value: object) -> None:
    assert property_value(INPUTS, path) == value
