"""The traffic simulator's arithmetic and weight sources (no process, no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kulta.adapters.trafficsim import (
    Backend,
    FileWeightSource,
    TrafficSimulator,
    backends_from_document,
    weights_from_route,
)
from kulta.errors import ConfigError


def route(*rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": refs} for refs in rules]},
    }


SERVICES = {"stable": "web-stable", "canary": "web-canary"}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            route([{"name": "web-stable", "port": 80, "weight": 80}, {"name": "web-canary", "port": 80, "weight": 20}]),
            {"stable": 80, "canary": 20},
        ),
        (
            route([{"name": "web-stable", "port": 80, "weight": 100}, {"name": "web-canary", "port": 80, "weight": 0}]),
            {"stable": 100, "canary": 0},
        ),
        # weight defaults to 1 (Gateway API)
        (route([{"name": "web-stable", "port": 80}]), {"stable": 1, "canary": 0}),
        # header-route rules add up per Service
        (
            route(
                [{"name": "web-stable", "weight": 90}, {"name": "web-canary", "weight": 10}],
                [{"name": "web-canary", "weight": 100}],
            ),
            {"stable": 90, "canary": 110},
        ),
        # other kinds and unrelated services are ignored
        (
            route(
                [
                    {"name": "web-stable", "weight": 50},
                    {"name": "web-canary", "kind": "ServiceImport", "weight": 50},
                    {"name": "x", "weight": 7},
                ]
            ),
            {"stable": 50, "canary": 0},
        ),
        ({"spec": {}}, {"stable": 0, "canary": 0}),
    ],
)
def test_weights_from_route(obj: dict[str, Any], expected: dict[str, int]) -> None:
    assert weights_from_route(obj, SERVICES) == expected


def test_weights_file_is_parsed_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(
        json.dumps({"stable": {"hash": "aaa", "weight": 80}, "canary": {"hash": "bbb", "weight": 20, "errorRate": 0.2}})
    )
    assert FileWeightSource(path).backends() == (Backend("stable", "aaa", 80, 0.0), Backend("canary", "bbb", 20, 0.2))
    with pytest.raises(ConfigError, match="cannot read the weights file"):
        FileWeightSource(tmp_path / "missing.json").backends()


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ([], "expected an object of roles"),
        ({"stable": 3}, "stable must be an object"),
        ({"stable": {"weight": 1}}, "stable.hash must be a non-empty string"),
        ({"stable": {"hash": "a", "weight": -1}}, "whole number >= 0"),
        ({"stable": {"hash": "a", "weight": 1.5}}, "whole number >= 0"),
        ({"stable": {"hash": "a", "weight": 1, "errorRate": 1.5}}, "between 0 and 1"),
    ],
)
def test_bad_weight_documents(document: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        backends_from_document(document, "w.json")
    assert fragment in str(caught.value)


class Static:
    def __init__(self, *backends: Backend) -> None:
        self.value: tuple[Backend, ...] = backends
        self.fail = False

    def backends(self) -> tuple[Backend, ...]:
        if self.fail:
            raise ConfigError("file half written")
        return self.value


def count(sim: TrafficSimulator, revision: str, code: str) -> float:
    value = sim.registry.get_sample_value("http_requests_total", {"revision": revision, "code": code})
    assert value is not None
    return value


def test_split_follows_weights_and_error_rates() -> None:
    source = Static(Backend("stable", "aaa", 80), Backend("canary", "bbb", 20, 0.25))
    sim = TrafficSimulator(source, rate=100)
    sim.tick(2.0)
    assert count(sim, "aaa", "200") == pytest.approx(160)
    assert count(sim, "aaa", "500") == 0
    assert count(sim, "bbb", "200") == pytest.approx(30)
    assert count(sim, "bbb", "500") == pytest.approx(10)
    assert sim.registry.get_sample_value("trafficsim_backend_weight", {"role": "canary", "revision": "bbb"}) == 20
    # an unreadable source keeps the previous split
    source.fail = True
    sim.tick(1.0)
    assert count(sim, "aaa", "200") == pytest.approx(240)
    # new weights: the old revision's gauge disappears, its counters stop growing
    source.fail = False
    source.value = (Backend("stable", "aaa", 0), Backend("canary", "ccc", 100))
    sim.tick(1.0)
    assert count(sim, "aaa", "200") == pytest.approx(240)
    assert count(sim, "ccc", "200") == pytest.approx(100)
    assert sim.registry.get_sample_value("trafficsim_backend_weight", {"role": "canary", "revision": "bbb"}) is None


def test_zero_total_weight_sends_nothing() -> None:
    sim = TrafficSimulator(Static(Backend("stable", "aaa", 0)), rate=100)
    sim.tick(5.0)
    assert count(sim, "aaa", "200") == 0
