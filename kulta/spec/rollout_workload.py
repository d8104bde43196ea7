"""What a Rollout runs: ``spec.selector``, ``spec.template`` and ``spec.workloadRef``.

The pod template is checked lightly (Kubernetes validates the rest on apply); the
selector must match the template's labels, as a ReplicaSet's must. A ``workloadRef``
names a Deployment whose template is used; that Deployment is looked up across
files by ``kulta.spec.loader``.
"""

from __future__ import annotations

import copy
import datetime
import math
from collections.abc import Mapping
from typing import Any

from kulta.core.purl import ImageReferenceError, parse_image
from kulta.model.rollout import WorkloadRef
from kulta.spec.common import unsupported
from kulta.spec.fields import (
    MISSING,
    Issues,
    Shape,
    child,
    index,
    read_list,
    read_mapping,
    read_str,
    read_string_map,
    show,
)

__all__ = [
    "WORKLOAD_API_VERSION",
    "WORKLOAD_KIND",
    "check_pod_template",
    "parse_selector",
    "parse_workload_ref",
    "selector_matches",
    "template_labels",
]

#: the only workload a ``workloadRef`` may name.
WORKLOAD_KIND = "Deployment"
WORKLOAD_API_VERSION = "apps/v1"

_SELECTOR = Shape(("matchLabels", "matchExpressions"))
_EXPRESSION = Shape(("key", "operator", "values"))
_WORKLOAD_REF = Shape(
    ("apiVersion", "kind", "name"),
    {"scaleDown": unsupported("workloadRef.scaleDown", "KULTA never scales the referenced Deployment")},
)


def parse_selector(issues: Issues, value: Any, path: str) -> dict[str, Any] | None:
    """A label selector (``matchLabels`` and ``matchExpressions``); an empty one is refused."""
    before = len(issues)
    data = _SELECTOR.read(issues, value, path)
    if data is None:
        return None
    labels = read_string_map(issues, data.get("matchLabels", MISSING), child(path, "matchLabels"))
    expressions: list[dict[str, Any]] = []
    items = read_list(issues, data.get("matchExpressions", MISSING), child(path, "matchExpressions"))
    for position, item in enumerate(items or ()):
        where = index(child(path, "matchExpressions"), position)
        entry = _EXPRESSION.read(issues, item, where)
        if entry is None:
            continue
        key = read_str(issues, entry.get("key", MISSING), child(where, "key"), required=True)
        operator = read_str(issues, entry.get("operator", MISSING), child(where, "operator"), required=True)
        values = read_list(issues, entry.get("values", MISSING), child(where, "values")) or []
        if operator is not None and operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            issues.add(child(where, "operator"), f"{show(operator)} is not one of In, NotIn, Exists, DoesNotExist")
        elif operator in ("In", "NotIn") and not values:
            issues.add(child(where, "values"), f"must list at least one value for {operator}")
        elif operator in ("Exists", "DoesNotExist") and values:
            issues.add(child(where, "values"), f"must be empty for {operator}")
        if not all(isinstance(v, str) for v in values):
            issues.add(child(where, "values"), "must be strings: quote them")
        if key is not None and operator is not None:
            expressions.append({"key": key, "operator": operator, "values": list(values)})
    if not labels and not expressions and len(issues) == before:
        issues.add(path, "is empty; an empty selector would match every pod: add matchLabels")
    if len(issues) != before:
        return None
    selector: dict[str, Any] = {}
    if labels:
        selector["matchLabels"] = labels
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """True when ``labels`` satisfy a Kubernetes label selector."""
    for key, value in dict(selector.get("matchLabels", {})).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _check_image(issues: Issues, image: str, path: str) -> None:
    """A container image reference, by the rule CDEvents' artifact ids are built with (``core.purl``).

    ``parse_image`` ignores surrounding whitespace; Kubernetes refuses it in every Pod the
    template makes (``validateContainersOnlyForPod``: "must not have leading or trailing
    whitespace"), so it is refused here first.
    """
    if image != image.strip():
        issues.add(
            path, f"{show(image)} has leading or trailing whitespace, which Kubernetes refuses in a Pod: remove it"
        )
        return
    try:
        parse_image(image)
    except ImageReferenceError as exc:
        issues.add(path, f"{show(image)} is not a valid image reference: {exc.reason}")


def _value_problem(value: Any) -> str | None:
    """Why ``value`` cannot be in a Kubernetes object (JSON: strings, numbers, booleans, null), or ``None``."""
    if value is None or isinstance(value, str | int):
        return None
    if isinstance(value, float):
        return (
            None
            if math.isfinite(value)
            else f"{show(value)} is not a number Kubernetes accepts (JSON has no inf or nan)"
        )
    if isinstance(value, datetime.date):
        text = value.isoformat()
        return f'{text} is read as a date, which a Kubernetes object cannot hold: quote it ("{text}")'
    return f"is YAML {type(value).__name__} data, which a Kubernetes object cannot hold: write a string instead"


def _check_json(issues: Issues, value: Any, path: str, skip: frozenset[str]) -> None:
    """String keys and JSON values everywhere in ``value`` (iteratively: no recursion depth limit).

    A Kubernetes object has only string keys; a template mixing ``1:`` and ``"a":`` keys
    would also make the revision hash (canonical JSON with sorted keys) fail. ``skip``
    holds paths checked elsewhere (label and annotation maps).
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if where in skip:
            continue
        if isinstance(item, Mapping):
            entries: list[tuple[Any, str]] = []
            for key, entry in item.items():
                if isinstance(key, str):
                    entries.append((entry, child(where, key)))
                else:
                    issues.add(where, f"field names must be strings, got {show(key)}: quote it")
            stack.extend(reversed(entries))
        elif isinstance(item, list):
            stack.extend(reversed([(entry, index(where, position)) for position, entry in enumerate(item)]))
        else:
            problem = _value_problem(item)
            if problem is not None:
                issues.add(where, problem)


def check_pod_template(issues: Issues, value: Any, path: str) -> dict[str, Any] | None:
    """Light checks of a PodTemplateSpec (Kubernetes validates the rest on apply).

    Every key must be a string and every value a JSON value; each container needs a
    unique name and a valid image reference.
    """
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    metadata_path = child(path, "metadata")
    metadata = read_mapping(issues, data.get("metadata", MISSING), metadata_path)
    if metadata is not None:
        read_string_map(issues, metadata.get("labels", MISSING), child(metadata_path, "labels"))
        read_string_map(issues, metadata.get("annotations", MISSING), child(metadata_path, "annotations"))
    _check_json(issues, data, path, frozenset((child(metadata_path, "labels"), child(metadata_path, "annotations"))))
    spec = read_mapping(issues, data.get("spec", MISSING), child(path, "spec"))
    if spec is None:
        if "spec" not in data:
            issues.add(child(path, "spec"), "is required: a pod template needs spec.containers")
    else:
        containers_path = child(child(path, "spec"), "containers")
        containers = read_list(issues, spec.get("containers", MISSING), containers_path)
        if not containers and len(issues) == before:
            issues.add(containers_path, "must list at least one container")
        names: set[str] = set()
        for position, item in enumerate(containers or ()):
            where = index(containers_path, position)
            container = read_mapping(issues, item, where)
            if container is None:
                continue
            name = read_str(issues, container.get("name", MISSING), child(where, "name"), required=True)
            image = read_str(issues, container.get("image", MISSING), child(where, "image"), required=True)
            if image is not None:
                _check_image(issues, image, child(where, "image"))
            if name is not None:
                if name in names:
                    issues.add(child(where, "name"), f'container "{name}" appears twice; names must be unique')
                names.add(name)
        init_path = child(child(path, "spec"), "initContainers")
        init_containers = spec.get("initContainers")
        for position, item in enumerate(init_containers if isinstance(init_containers, list) else ()):
            image = item.get("image") if isinstance(item, Mapping) else None
            if isinstance(image, str):
                _check_image(issues, image, child(index(init_path, position), "image"))
    if len(issues) != before:
        return None
    return copy.deepcopy(dict(data))


def template_labels(template: Mapping[str, Any]) -> dict[str, str]:
    """The labels of a checked pod template (empty when it has none)."""
    metadata = template.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return dict(labels) if isinstance(labels, Mapping) else {}


def parse_workload_ref(issues: Issues, value: Any, path: str) -> WorkloadRef | None:
    """``spec.workloadRef``: an ``apps/v1`` Deployment whose pod template the Rollout uses."""
    before = len(issues)
    data = _WORKLOAD_REF.read(issues, value, path)
    if data is None:
        return None
    api_version = read_str(issues, data.get("apiVersion", MISSING), child(path, "apiVersion"), required=True)
    kind = read_str(issues, data.get("kind", MISSING), child(path, "kind"), required=True)
    name = read_str(issues, data.get("name", MISSING), child(path, "name"), required=True)
    if kind is not None and kind != WORKLOAD_KIND:
        issues.add(child(path, "kind"), f"{show(kind)} is not supported; KULTA takes templates from a Deployment")
    if api_version is not None and api_version != WORKLOAD_API_VERSION:
        issues.add(child(path, "apiVersion"), f"{show(api_version)} is not supported; use apps/v1")
    if len(issues) != before or api_version is None or kind is None or name is None:
        return None
    return WorkloadRef(api_version=api_version, kind=kind, name=name)
