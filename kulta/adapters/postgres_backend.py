"""Pulumi's DIY PostgreSQL backend read directly: outputs, tags and locks in one ``psql`` call each.

Pulumi's PostgreSQL backend (``pkg/backend/diy/postgres``) is the DIY blob
layout (``diy_state``) in one table: ``key TEXT PRIMARY KEY, data JSON,
updated_at``, every key starting with the URL's database name
(``<db>/.pulumi/stacks/kulta/<stack>.json``) and every blob kept as
``{"data": "<base64>"}``. A write is one ``INSERT ... ON CONFLICT DO UPDATE``,
so a reader sees a whole blob, old or new, never half of one.

Why ``psql`` and not the CLI: ``pulumi stack export`` costs ~0.4 s of CPU per
read on a 2-core machine and a pass reads outputs and tags of every rollout;
``psql`` answers in ~17 ms (``bench/README.md``). It is Debian's ``postgresql-client``
(``dev/toolchain postgresql`` installs it); where it is missing, the stack
manager falls back to the CLI (``StackManager``), slower but the same answer.

The password reaches ``psql`` as ``PGPASSWORD`` in its environment, never on
its command line (``ps`` shows argv to every user). Values reach the SQL as
``psql`` variables (``:'name'`` quotes them as literals); the table name is
checked as a plain SQL name by ``backend_url``.

Dead locks: a lock blob holds the pid and hostname of the ``pulumi`` process
that took it (``diy/lock.go``). As on the file backend, a lock whose process
was on this host and is gone is deleted before an update; any other lock is
left alone. Replicas sharing one database must therefore have distinct
hostnames (Pods of one Deployment or StatefulSet do; two clusters with the
same StatefulSet name writing one table would not).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kulta.adapters.backend_url import BackendKind, BackendUrl
from kulta.adapters.diy_state import (
    CHECKPOINT_SUFFIXES,
    GZIP_SUFFIX,
    MAX_CHECKPOINT_BYTES,
    TAGS_SUFFIX,
    checkpoint_latest,
    decode_blob,
    lock_is_dead,
    lock_prefix,
    parse_tags,
    stack_outputs,
    stacks_prefix,
)
from kulta.errors import Dependency, DependencyError
from kulta.redact import safe_text

__all__ = ["PSQL_TIMEOUT_SECONDS", "PostgresBackend", "find_psql"]

log = logging.getLogger(__name__)

PSQL_TIMEOUT_SECONDS = 30.0
#: libpq gives up connecting after this (``connect_timeout`` in the URL wins)
CONNECT_TIMEOUT_SECONDS = "10"
#: most rows one listing returns (stacks of a KULTA installation, locks of one stack)
MAX_ROWS = 100_000
_ENVELOPE_KEY = "data"


def find_psql() -> str | None:
    """``psql`` on PATH, else ``None`` (the stack manager then reads through the CLI)."""
    return shutil.which("psql")


@dataclass(frozen=True)
class PostgresBackend:
    """Reads (and deletes dead locks in) the blobs of one Pulumi PostgreSQL backend."""

    backend: BackendUrl
    project: str
    psql: str

    def __post_init__(self) -> None:
        if self.backend.kind is not BackendKind.POSTGRES:
            raise ValueError(f"not a PostgreSQL backend: {self.backend.display}")

    # -- reads ---------------------------------------------------------------------
    def checkpoints(self, stacks: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """The latest deployment of each stack (``None`` for one that does not exist), in one query."""
        keys = {stack: [self._checkpoint_key(stack, suffix) for suffix in CHECKPOINT_SUFFIXES] for stack in stacks}
        what = f"the state of stack {stacks[0]}" if len(stacks) == 1 else f"the state of {len(stacks)} stacks"
        blobs = self._blobs_by_key([key for pair in keys.values() for key in pair], what)
        found: dict[str, dict[str, Any] | None] = {}
        for stack, pair in keys.items():
            key = next((k for k in pair if k in blobs), None)
            found[stack] = None if key is None else checkpoint_latest(stack, blobs[key])
        return found

    def checkpoint(self, stack: str) -> dict[str, Any] | None:
        """The stack's latest deployment (``None`` when the stack does not exist)."""
        return self.checkpoints([stack])[stack]

    def outputs(self, stack: str) -> dict[str, Any]:
        return stack_outputs(self.checkpoint(stack) or {})

    def outputs_of(self, stacks: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The outputs of several stacks with one ``psql`` (``kulta status``)."""
        if not stacks:
            return {}
        return {stack: stack_outputs(latest or {}) for stack, latest in self.checkpoints(stacks).items()}

    def tags(self, stack: str) -> dict[str, str]:
        key = self._checkpoint_key(stack, TAGS_SUFFIX)
        blobs = self._blobs_by_key([key], f"the tags of stack {stack}")
        return parse_tags(stack, blobs[key]) if key in blobs else {}

    def stack_names(self) -> list[str]:
        prefix = self._key(stacks_prefix(self.project))
        rows = self._query(
            "SELECT coalesce(json_agg(key ORDER BY key), '[]'::json) FROM (SELECT key FROM {table} "
            "WHERE starts_with(key, :'prefix') ORDER BY key LIMIT :max_rows) AS k",
            {"prefix": prefix, "max_rows": str(MAX_ROWS)},
            "listing stacks",
        )
        names: set[str] = set()
        for key in rows or []:
            rest = str(key)[len(prefix) :]
            for suffix in CHECKPOINT_SUFFIXES:
                if rest.endswith(suffix) and "/" not in rest:
                    names.add(rest[: -len(suffix)])
        return sorted(names)

    # -- locks ---------------------------------------------------------------------
    def locks(self, stack: str) -> dict[str, Any]:
        """Every readable lock blob of ``stack``: key → its JSON (pid, hostname, username, timestamp)."""
        prefix = self._key(lock_prefix(self.project, stack))
        rows = self._query(
            "SELECT coalesce(json_object_agg(key, data), '{{}}'::json) FROM (SELECT key, data FROM {table} "
            "WHERE starts_with(key, :'prefix') LIMIT :max_rows) AS l",
            {"prefix": prefix, "max_rows": str(MAX_ROWS)},
            f"the locks of stack {stack}",
        )
        if rows is None:
            return {}
        if not isinstance(rows, dict):
            raise DependencyError(Dependency.PULUMI_BACKEND, f"the locks of stack {stack}: not a JSON object")
        locks: dict[str, Any] = {}
        for key, envelope in rows.items():
            try:
                locks[str(key)] = self._decode(str(key), envelope)
            except DependencyError as exc:  # never judged, as an unreadable lock file is not
                log.warning("skipping an unreadable lock of stack %s: %s", stack, exc)
        return locks

    def recover_dead_locks(
        self,
        stack: str,
        host: str,
        alive: Callable[[int], bool],
        owner_gone: Callable[[str, datetime], bool] | None = None,
    ) -> bool:
        """Delete the locks of ``stack`` left by processes that are gone (``lock_is_dead``)."""
        removed = False
        for key, info in self.locks(stack).items():
            if not lock_is_dead(info, host, alive, owner_gone):
                continue
            log.warning(
                "removing stale Pulumi lock left by dead process",
                extra={"stack": stack, "pid": info.get("pid"), "lock": key.rsplit("/", 1)[-1]},
            )
            self._query(
                "WITH d AS (DELETE FROM {table} WHERE key = :'key' RETURNING 1) SELECT to_json(count(*)) FROM d",
                {"key": key},
                f"removing a dead lock of stack {stack}",
            )
            removed = True
        return removed

    # -- plumbing ------------------------------------------------------------------
    def _key(self, path: str) -> str:
        return self.backend.key_prefix + path

    def _checkpoint_key(self, stack: str, suffix: str) -> str:
        return self._key(stacks_prefix(self.project) + stack + suffix)

    def _blobs_by_key(self, keys: Sequence[str], what: str) -> dict[str, Any]:
        """The blobs of ``keys`` that exist (the keys travel as one JSON array variable)."""
        rows = self._query(
            "SELECT coalesce(json_object_agg(key, data), '{{}}'::json) FROM {table} "
            "WHERE key IN (SELECT json_array_elements_text(:'keys'::json))",
            {"keys": json.dumps(list(keys))},
            what,
        )
        if rows is None:
            return {}
        if not isinstance(rows, dict):
            raise DependencyError(Dependency.PULUMI_BACKEND, f"{what}: not a JSON object")
        return {str(k): self._decode(str(k), v) for k, v in rows.items()}

    def _decode(self, key: str, envelope: Any) -> Any:
        """``{"data": "<base64>"}`` → the blob's JSON."""
        encoded = envelope.get(_ENVELOPE_KEY) if isinstance(envelope, dict) else None
        if not isinstance(encoded, str):
            raise DependencyError(Dependency.PULUMI_BACKEND, f'blob {key}: not Pulumi\'s {{"data": base64}} form')
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise DependencyError(Dependency.PULUMI_BACKEND, f"blob {key}: {type(exc).__name__}") from exc
        return decode_blob(f"blob {key}", raw, key.endswith(GZIP_SUFFIX))

    def _query(self, sql: str, variables: Mapping[str, str], what: str) -> Any:
        """Run one statement whose single result is one JSON value; return it parsed
        (``None`` while Pulumi has not created its table yet)."""
        args = [self.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.backend.libpq_uri]
        for name, value in variables.items():
            args += ["-v", f"{name}={value}"]
        env = dict(os.environ)
        env.update(self.backend.engine_env())
        env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS)
        # Pulumi creates its table on first use: until then there is no stack (JSON null)
        statement = "\n".join(
            (
                "SELECT to_regclass(:'kulta_table') IS NOT NULL AS kulta_table_present \\gset",
                "\\if :kulta_table_present",
                sql.format(table=self.backend.table) + ";",
                "\\else",
                "SELECT 'null';",
                "\\endif",
                "",
            )
        )
        args += ["-v", f"kulta_table={self.backend.table}"]
        try:
            proc = subprocess.run(
                args,
                input=statement,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",  # psql's answer is JSON; anything else is reported, not raised
                env=env,
                timeout=PSQL_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DependencyError(Dependency.PULUMI_BACKEND, f"{what}: {type(exc).__name__}") from exc
        if proc.returncode != 0:
            detail = safe_text(proc.stderr.strip(), self.backend.secrets, limit=500)
            raise DependencyError(Dependency.PULUMI_BACKEND, f"{what} ({self.backend.display}): {detail}")
        out = proc.stdout.strip()
        if len(out) > MAX_CHECKPOINT_BYTES * 2:
            raise DependencyError(Dependency.PULUMI_BACKEND, f"{what}: answer of {len(out)} bytes")
        try:
            return json.loads(out)
        except ValueError as exc:
            raise DependencyError(Dependency.PULUMI_BACKEND, f"{what}: psql answered no JSON") from exc
