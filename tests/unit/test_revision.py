"""Revision identity: the pod-template hash and template resolution."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kulta.core.revision import SAFE_ALPHABET, fnv1a_32, pod_template_hash, resolve_template, safe_encode
from kulta.errors import SpecError
from tests.unit.spec_helpers import base_rollout, load

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "1"}},
    "spec": {"containers": [{"name": "web", "image": "registry.local/web:v1", "ports": [{"containerPort": 8080}]}]},
}


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foobar", 0xBF9CF968)],  # published FNV-1a test vectors
)
def test_fnv1a_32_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_32(data) == expected


def test_safe_encode_maps_digits_like_kubernetes() -> None:
    # ord("0") == 48, 48 % 27 == 21 -> "4"; ord("9") == 57, 57 % 27 == 3 -> "f"
    assert safe_encode("0") == "4"
    assert safe_encode("9") == "f"


def test_hash_is_stable_short_and_safe() -> None:
    value = pod_template_hash(TEMPLATE)
    assert value == pod_template_hash(copy.deepcopy(TEMPLATE))
    assert 1 <= len(value) <= 10
    assert set(value) <= set(SAFE_ALPHABET)
    assert value == safe_encode(
        str(
            fnv1a_32(
                b'{"metadata":{"annotations":{"a":"1"},"labels":{"app":"web"}},"spec":{"containers":[{"image":'
                b'"registry.local/web:v1","name":"web","ports":[{"containerPort":8080}]}]}}'
            )
        )
    )


def test_key_order_does_not_matter() -> None:
    reordered = {"spec": TEMPLATE["spec"], "metadata": {"annotations": {"a": "1"}, "labels": {"app": "web"}}}
    assert pod_template_hash(reordered) == pod_template_hash(TEMPLATE)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t["spec"]["containers"][0].update(image="registry.local/web:v2"),
        lambda t: t["metadata"]["labels"].update(tier="front"),
        lambda t: t["metadata"]["annotations"].update(a="2"),
        lambda t: t["spec"]["containers"][0]["ports"][0].update(containerPort=8081),
        lambda t: t["spec"].update(terminationGracePeriodSeconds=5),
        lambda t: t["spec"]["containers"].append({"name": "side", "image": "x"}),
    ],
)
def test_any_change_gives_a_new_hash(change: Any) -> None:
    changed = copy.deepcopy(TEMPLATE)
    change(changed)
    assert pod_template_hash(changed) != pod_template_hash(TEMPLATE)


def test_resolve_template_from_the_rollout_or_its_deployment() -> None:
    result = load(base_rollout())
    (rollout,) = result.rollouts
    assert resolve_template(rollout, ()) is rollout.spec.template
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
    }
    ref_doc = base_rollout(workloadRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    del ref_doc["spec"]["template"]
    result = load(deployment, ref_doc)
    (rollout,) = result.rollouts
    assert resolve_template(rollout, result.others) == TEMPLATE
    with pytest.raises(SpecError, match=r'spec\.workloadRef\.name: Deployment "web" in namespace "shop" was not'):
        resolve_template(rollout, ())
