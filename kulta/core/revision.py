"""Revision identity: a short, stable hash of the pod template.

Like Kubernetes' ``pod-template-hash``, the hash names a revision's ReplicaSet
(``<rollout>-<hash>``) and labels its pods, so the same template always maps to the
same ReplicaSet and any change to the template makes a new one. We hash canonical
JSON (sorted keys, no whitespace) with 32-bit FNV-1a, then spell the decimal number
with Kubernetes' "safe" alphabet (no vowels, no look-alike characters), which gives
at most 10 characters that can never form words.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any

from kulta.errors import SpecError
from kulta.model.rollout import OtherDocument, Rollout

__all__ = [
    "SAFE_ALPHABET",
    "fnv1a_32",
    "pod_template_hash",
    "resolve_template",
    "safe_encode",
    "strategy_hash",
]

#: Kubernetes' rand.SafeEncodeString alphabet.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_SEPARATORS = (",", ":")


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a of ``data``."""
    value = _FNV_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """Map each character to the safe alphabet, as Kubernetes does for hashes."""
    return "".join(SAFE_ALPHABET[ord(char) % len(SAFE_ALPHABET)] for char in text)


def _json_key(key: Any) -> str:
    """A mapping key as ``json.dumps`` writes it (``True`` -> ``"true"``); ``str()`` for the rest."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def _string_keys(value: Any) -> Any:
    """``value`` with every mapping key a string, keys sorted as strings (iteratively: no recursion limit)."""
    root: list[Any] = [None]
    stack: list[tuple[Any, list[Any] | dict[str, Any], int | str]] = [(value, root, 0)]
    while stack:
        item, parent, slot = stack.pop()
        if isinstance(item, Mapping):
            converted: dict[str, Any] = {}
            for key in sorted(item, key=_json_key):
                converted[_json_key(key)] = None
                stack.append((item[key], converted, _json_key(key)))
            parent[slot] = converted  # type: ignore[index]
        elif isinstance(item, list | tuple):
            items: list[Any] = [None] * len(item)
            stack.extend((entry, items, position) for position, entry in enumerate(item))
            parent[slot] = items  # type: ignore[index]
        else:
            parent[slot] = item  # type: ignore[index]
    return root[0]


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace: equal templates give equal bytes.

    A template whose keys are all strings (every template the loader accepts) is
    written by ``json.dumps(sort_keys=True)``; one with other keys, which that cannot
    sort (``1`` and ``"a"``), gets its keys written as strings first, so hashing never
    raises. Values JSON cannot hold are written with ``str``.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=_SEPARATORS, ensure_ascii=False, default=str)
    except TypeError:
        text = json.dumps(_string_keys(value), sort_keys=True, separators=_SEPARATORS, ensure_ascii=False, default=str)
    return text.encode("utf-8", errors="surrogatepass")


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """The revision hash of a pod template (at most 10 characters of ``SAFE_ALPHABET``)."""
    return safe_encode(str(fnv1a_32(canonical_json(template))))


def _plain(value: Any) -> Any:
    """A model value as JSON-able data: enums by value, sets sorted, dataclasses by field."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (frozenset, set)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def strategy_hash(rollout: Rollout) -> str:
    """Hash of what a canary walks through: its steps, background analysis and traffic routing.

    Argo restarts a canary from step 0 when its steps change
    (``PodTemplateOrStepsChanged``); KULTA also counts the background analysis
    and the routed HTTPRoutes and GRPCRoutes, whose change would otherwise silently change a
    canary in flight. Replicas, surge and metadata are not part of it.
    """
    strategy = rollout.spec.strategy
    routing = _plain(strategy.traffic_routing)
    if isinstance(routing, dict) and not routing["grpc_routes"]:
        # a rollout without GRPCRoutes hashes as it did before they were supported,
        # so upgrading KULTA does not restart canaries in flight
        del routing["grpc_routes"]
    steps = _plain(strategy.steps)
    for step in steps if isinstance(steps, list) else ():
        if isinstance(step, dict) and step.get("set_mirror_route") is None:
            # likewise a step without setMirrorRoute hashes as before it was supported
            step.pop("set_mirror_route", None)
    parts = {
        "steps": steps,
        "analysis": _plain(strategy.analysis),
        "trafficRouting": routing,
    }
    if rollout.spec.blue_green is not None:
        # a canary's hash stays as it was; a blue-green strategy records its fields
        parts["blueGreen"] = _plain(rollout.spec.blue_green)
    return safe_encode(str(fnv1a_32(canonical_json(parts))))


def resolve_template(rollout: Rollout, others: Sequence[OtherDocument]) -> Mapping[str, Any]:
    """The pod template a Rollout runs: its own, or its ``workloadRef`` Deployment's.

    Raises SpecError when the Deployment is not among ``others`` (the loader already
    reports that, so this only happens when callers pass a different set of documents).
    """
    if rollout.spec.template is not None:
        return rollout.spec.template
    ref = rollout.spec.workload_ref
    if ref is None:
        raise SpecError(rollout.source.file, rollout.source.document, "spec.template", "is required")
    for other in others:
        if other.kind == ref.kind and other.name == ref.name and other.namespace == rollout.namespace:
            spec = other.body.get("spec")
            template = spec.get("template") if isinstance(spec, Mapping) else None
            if isinstance(template, Mapping):
                return template
            raise SpecError(other.source.file, other.source.document, "spec.template", "is required")
    raise SpecError(
        rollout.source.file,
        rollout.source.document,
        "spec.workloadRef.name",
        f'{ref.kind} "{ref.name}" in namespace "{rollout.namespace}" was not found: add it to the files',
    )
