"""Pulumi's DIY file backend read directly: a stack's outputs and tags without a CLI process.

Every Pulumi CLI process costs about 0.3 s on a 2-core machine. For the file
backend (KULTA's embedded default) the state is plain files that the CLI
replaces atomically (write, then rename), so KULTA reads them itself
(layout: ``diy_state``).

Reading is cheap enough to do on every pass, so a change by another writer
(CI's ``pulumi up``, ``kulta promote`` from another machine) is seen by the
next pass without any cache to invalidate. PostgreSQL is read directly too
(``postgres_backend``); other backends (S3, GCS, Azure, Pulumi Cloud) go
through the CLI. Only what KULTA needs is read; an unknown layout or a file
that does not parse is a DependencyError.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from kulta.adapters.diy_state import (
    CHECKPOINT_SUFFIXES,
    GZIP_SUFFIX,
    MAX_CHECKPOINT_BYTES,
    TAGS_SUFFIX,
    checkpoint_latest,
    decode_blob,
    parse_tags,
    stack_outputs,
    stacks_prefix,
)
from kulta.errors import Dependency, DependencyError

__all__ = ["MAX_CHECKPOINT_BYTES", "FileBackend", "file_backend_root"]

log = logging.getLogger(__name__)


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
        return self.root / stacks_prefix(self.project)

    def _read(self, path: Path) -> Any:
        try:
            size = path.stat().st_size
            if size > MAX_CHECKPOINT_BYTES:
                raise DependencyError(Dependency.PULUMI_BACKEND, f"{path} is {size} bytes: not a KULTA checkpoint")
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DependencyError(Dependency.PULUMI_BACKEND, f"reading {path}: {type(exc).__name__}: {exc}") from exc
        return decode_blob(str(path), raw, path.suffix == GZIP_SUFFIX)

    def checkpoint(self, stack: str) -> dict[str, Any] | None:
        """The stack's latest deployment (``None`` when the stack does not exist)."""
        for suffix in CHECKPOINT_SUFFIXES:
            data = self._read(self.stacks_dir / f"{stack}{suffix}")
            if data is not None:
                return checkpoint_latest(stack, data)
        return None

    def outputs(self, stack: str) -> dict[str, Any]:
        """The root Stack resource's outputs: the last update's (empty for a new stack)."""
        return stack_outputs(self.checkpoint(stack) or {})

    def tags(self, stack: str) -> dict[str, str]:
        data = self._read(self.stacks_dir / f"{stack}{TAGS_SUFFIX}")
        return {} if data is None else parse_tags(stack, data)

    def stack_names(self) -> list[str]:
        try:
            names = {
                p.name[: -len(suffix)]
                for p in self.stacks_dir.iterdir()
                for suffix in CHECKPOINT_SUFFIXES
                if p.name.endswith(suffix) and p.is_file()
            }
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DependencyError(Dependency.PULUMI_BACKEND, f"listing {self.stacks_dir}: {exc}") from exc
        return sorted(names)
