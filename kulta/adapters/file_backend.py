"""Pulumi's DIY file backend read directly: a stack's outputs and tags without a CLI process.

Every Pulumi CLI process costs about 0.3 s on a 2-core machine. For the file
backend (KULTA's embedded default) the state is plain files that the CLI
replaces atomically (write, then rename), so KULTA reads them itself:

    <root>/.pulumi/stacks/<project>/<stack>.json[.gz]   the checkpoint (latest state)
    <root>/.pulumi/stacks/<project>/<stack>.pulumi-tags  the stack's tags (Pulumi ≥ 3.211)

Reading is cheap enough to do on every pass, so a change by another writer
(CI's ``pulumi up``, ``kulta promote`` from another machine) is seen by the
next pass without any cache to invalidate. Other backends (S3, GCS, Azure,
PostgreSQL, Pulumi Cloud) go through the CLI as before. Only what KULTA needs
is read; an unknown layout or a file that does not parse is a DependencyError.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from kulta.errors import Dependency, DependencyError

__all__ = ["FileBackend", "file_backend_root"]

log = logging.getLogger(__name__)

_STACK_TYPE = "pulumi:pulumi:Stack"
_TAGS_SUFFIX = ".pulumi-tags"
_CHECKPOINT_SUFFIXES = (".json", ".json.gz")
#: a checkpoint of one rollout is a few dozen KiB; refuse to parse anything absurd
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024


def file_backend_root(url: str) -> Path | None:
    """The directory of a ``file://`` backend URL, or ``None`` for any other backend."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


@dataclass(frozen=True)
class FileBackend:
    root: Path
    project: str

    @property
    def stacks_dir(self) -> Path:
        return self.root / ".pulumi" / "stacks" / self.project

    def _read(self, path: Path) -> Any:
        try:
            size = path.stat().st_size
            if size > MAX_CHECKPOINT_BYTES:
                raise DependencyError(Dependency.PULUMI_BACKEND, f"{path} is {size} bytes: not a KULTA checkpoint")
            raw = path.read_bytes()
            if path.suffix == ".gz":
                raw = gzip.decompress(raw)
            return json.loads(raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            raise DependencyError(Dependency.PULUMI_BACKEND, f"reading {path}: {type(exc).__name__}: {exc}") from exc

    def checkpoint(self, stack: str) -> dict[str, Any] | None:
        """The stack's latest deployment (``None`` when the stack does not exist)."""
        for suffix in _CHECKPOINT_SUFFIXES:
            data = self._read(self.stacks_dir / f"{stack}{suffix}")
            if data is None:
                continue
            if not isinstance(data, dict):
                raise DependencyError(Dependency.PULUMI_BACKEND, f"checkpoint of {stack} is not a JSON object")
            latest = (data.get("checkpoint") or {}).get("latest") or {}
            return latest if isinstance(latest, dict) else {}
        return None

    def outputs(self, stack: str) -> dict[str, Any]:
        """The root Stack resource's outputs: the last update's (empty for a new stack)."""
        latest = self.checkpoint(stack) or {}
        for resource in latest.get("resources", []) or []:
            if isinstance(resource, dict) and resource.get("type") == _STACK_TYPE:
                outputs = resource.get("outputs") or {}
                return dict(outputs) if isinstance(outputs, dict) else {}
        return {}

    def tags(self, stack: str) -> dict[str, str]:
        data = self._read(self.stacks_dir / f"{stack}{_TAGS_SUFFIX}")
        if data is None:
            return {}
        tags = data.get("tags") if isinstance(data, dict) else None
        if not isinstance(tags, dict):
            raise DependencyError(Dependency.PULUMI_BACKEND, f"tags of {stack} are not a JSON object")
        return {str(k): str(v) for k, v in tags.items()}

    def stack_names(self) -> list[str]:
        try:
            names = {
                p.name[: -len(suffix)]
                for p in self.stacks_dir.iterdir()
                for suffix in _CHECKPOINT_SUFFIXES
                if p.name.endswith(suffix) and p.is_file()
            }
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DependencyError(Dependency.PULUMI_BACKEND, f"listing {self.stacks_dir}: {exc}") from exc
        return sorted(names)
