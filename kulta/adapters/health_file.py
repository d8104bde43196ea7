"""``<state-dir>/health.json``: the loop's view of failing rollouts, for ``kulta status``.

Written atomically after every pass by ``kulta run``; read by ``kulta status``
on the same machine. A missing or unreadable file means "nothing known", never
an error: it is a convenience view, the stacks stay the source of truth.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["HEALTH_FILE", "read_health", "write_health"]

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"
#: a health file larger than this is not read (it is KULTA's own, but on a shared disk)
MAX_BYTES = 4 * 1024 * 1024


def write_health(state_dir: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
    path = state_dir / HEALTH_FILE
    tmp = path.with_suffix(".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            json.dump({"rollouts": dict(entries)}, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot write the health file", extra={"path": str(path), "error": str(exc)})


def read_health(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Failing rollouts by stack name (empty when there is no readable file)."""
    path = state_dir / HEALTH_FILE
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.info("health file unreadable", extra={"path": str(path), "error": str(exc)})
        return {}
    rollouts = data.get("rollouts") if isinstance(data, dict) else None
    if not isinstance(rollouts, dict):
        return {}
    return {str(k): v for k, v in rollouts.items() if isinstance(v, dict)}
