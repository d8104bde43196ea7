"""Builders for Rollout documents used by the spec and plan tests."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from kulta.spec import LoadResult, load_text

FILE = "rollouts/web.yaml"


def base_rollout(**spec_changes: Any) -> dict[str, Any]:
    """A valid Argo Rollout with Gateway API routing and no steps."""
    doc: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:v1"}]},
            },
            "strategy": {
                "canary": {
                    "canaryService": "web-canary",
                    "stableService": "web-stable",
                    "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}},
                    "steps": [],
                }
            },
        },
    }
    doc["spec"].update(spec_changes)
    return doc


def template_doc(name: str = "success-rate", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metrics": [
            {
                "name": "errors",
                "interval": "10s",
                "count": 3,
                "successCondition": "result[0] < 0.05",
                "provider": {"prometheus": {"address": "http://127.0.0.1:9090", "query": "vector(0)"}},
            }
        ]
    }
    body.update(spec)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def canary(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["spec"]["strategy"]["canary"]
    return result


def with_steps(*steps: Any, **canary_changes: Any) -> dict[str, Any]:
    doc = base_rollout()
    canary(doc)["steps"] = copy.deepcopy(list(steps))
    canary(doc).update(canary_changes)
    return doc


def dump(*docs: Any) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def load(*docs: Any) -> LoadResult:
    return load_text(dump(*docs), FILE)


def error_lines(result: LoadResult) -> list[str]:
    return [str(error) for error in result.errors]
