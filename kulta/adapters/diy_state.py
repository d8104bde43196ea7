"""The layout and formats of Pulumi's DIY backends, shared by every direct reader.

A DIY backend (``file://``, ``s3://``, ``postgres://`` ...) is a blob store
with one layout (``pkg/backend/diy``): under ``.pulumi/``,

    stacks/<project>/<stack>.json[.gz]          the checkpoint (latest state)
    stacks/<project>/<stack>.pulumi-tags        the stack's tags (Pulumi ≥ 3.211)
    locks/organization/<project>/<stack>/<id>.json   one blob per update in flight

KULTA reads the checkpoint and the tags itself where reading a blob is cheap
(``file_backend``, ``postgres_backend``). This module only parses: what the
blobs mean, independent of where they are kept.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kulta.errors import Dependency, DependencyError

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "GZIP_SUFFIX",
    "MAX_CHECKPOINT_BYTES",
    "TAGS_SUFFIX",
    "checkpoint_latest",
    "decode_blob",
    "lock_is_dead",
    "lock_prefix",
    "lock_time",
    "parse_tags",
    "stack_outputs",
    "stacks_prefix",
]

STACK_TYPE = "pulumi:pulumi:Stack"
TAGS_SUFFIX = ".pulumi-tags"
GZIP_SUFFIX = ".gz"
CHECKPOINT_SUFFIXES = (".json", ".json.gz")
#: a checkpoint of one rollout is a few dozen KiB; refuse to parse anything absurd
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024


def stacks_prefix(project: str) -> str:
    return f".pulumi/stacks/{project}/"


def lock_prefix(project: str, stack: str) -> str:
    return f".pulumi/locks/organization/{project}/{stack}/"


def decode_blob(what: str, raw: bytes, gzipped: bool) -> Any:
    """A blob's JSON (gunzipped first for ``.gz`` names); bad data is a DependencyError."""
    if len(raw) > MAX_CHECKPOINT_BYTES:
        raise DependencyError(Dependency.PULUMI_BACKEND, f"{what} is {len(raw)} bytes: not a KULTA checkpoint")
    try:
        return json.loads(gzip.decompress(raw) if gzipped else raw)
    except (OSError, ValueError, EOFError) as exc:
        raise DependencyError(Dependency.PULUMI_BACKEND, f"reading {what}: {type(exc).__name__}: {exc}") from exc


def checkpoint_latest(stack: str, data: Any) -> dict[str, Any]:
    """``checkpoint.latest`` of a stack file (``{}`` for a stack never updated)."""
    if not isinstance(data, dict):
        raise DependencyError(Dependency.PULUMI_BACKEND, f"checkpoint of {stack} is not a JSON object")
    checkpoint = data.get("checkpoint") or {}
    latest = checkpoint.get("latest") or {} if isinstance(checkpoint, dict) else None
    if not isinstance(latest, dict):
        # never read as "no status": that would deploy the rollout from scratch
        raise DependencyError(
            Dependency.PULUMI_BACKEND, f"checkpoint of {stack} has no JSON object at checkpoint.latest"
        )
    return latest


def stack_outputs(latest: dict[str, Any]) -> dict[str, Any]:
    """The root Stack resource's outputs: the last update's (empty for a new stack)."""
    resources = latest.get("resources") or []
    for resource in resources if isinstance(resources, list) else []:
        if isinstance(resource, dict) and resource.get("type") == STACK_TYPE:
            outputs = resource.get("outputs") or {}
            return dict(outputs) if isinstance(outputs, dict) else {}
    return {}


def parse_tags(stack: str, data: Any) -> dict[str, str]:
    tags = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(tags, dict):
        raise DependencyError(Dependency.PULUMI_BACKEND, f"tags of {stack} are not a JSON object")
    return {str(k): str(v) for k, v in tags.items()}


def lock_time(info: Any) -> datetime | None:
    """When a lock blob was written (its ``timestamp``, Go's RFC 3339), or None."""
    raw = info.get("timestamp") if isinstance(info, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def lock_is_dead(
    info: Any,
    host: str,
    alive: Callable[[int], bool],
    owner_gone: Callable[[str, datetime], bool] | None = None,
) -> bool:
    """Whether a lock blob (``{"pid", "hostname", "timestamp", ...}``, ``diy/lock.go``) was
    left by a process that is gone: one of ``host`` whose pid no longer runs, or, when
    ``owner_gone`` is given (replicas sharing rollouts through Leases), one whose
    replica pod the Kubernetes API shows gone or started after the lock was taken.
    Any other lock of another host is never judged: its process may be alive there."""
    if not isinstance(info, dict):
        return False
    try:
        pid = int(info.get("pid", 0) or 0)
    except (TypeError, ValueError):
        return False
    hostname = info.get("hostname")
    if hostname == host and pid > 0 and not alive(pid):
        return True
    locked_at = lock_time(info)
    if owner_gone is None or not isinstance(hostname, str) or not hostname or locked_at is None:
        return False
    return owner_gone(hostname, locked_at)
