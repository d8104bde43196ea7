"""A durable outbox: CDEvents survive sink outages and process crashes.

An event is written to disk before anyone tries to send it, and removed only
after the sink answered 2xx, so a crash or an outage delays events but never
loses them. Layout (one writer: the reconciler that owns the stacks)::

    <directory>/<rollout key, %-encoded>/000000000042-<event id>.json
    <directory>/<rollout key, %-encoded>/delivered.log
    <directory>/.staged/<rollout key, %-encoded>.json

Staging covers the window of an update: the events an update will record are
staged before it runs (``stage``). If the process dies after the engine
recorded the outputs but before ``put``, the next pass finds them
(``recover_staged``) and stores them exactly when the recorded outputs name
the last staged id; otherwise the update never completed and they are dropped.

File names sort by a per-rollout sequence number, so a rollout's events leave
in the order they were put; a failing head blocks only its own rollout. Files
are written atomically (temp file, fsync, rename, fsync of the directory) and
carry the attempt count and the next attempt time, so a restarted process keeps
the backoff. Ids are deterministic (``kulta.core.events``): putting an id that
is pending, or was delivered recently (``delivered.log``), is a no-op, which
makes a replay after a crash harmless. Delivery is at-least-once with a stable
id: consumers deduplicate on ``ce-id``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kulta.adapters.sinks import EventSink
from kulta.core.events import CDEvent
from kulta.errors import OutboxFullError, PermanentError, TemporaryError

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "Deliverer",
    "DeliveryReport",
    "Outbox",
    "OutboxCorruptError",
    "OutboxEntry",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 10000
_ENTRY_SUFFIX = ".json"
_TMP_PREFIX = ".tmp-"
_LEDGER = "delivered.log"
#: events computed for an update in flight (hidden from the rollout listing by the dot)
_STAGED_DIR = ".staged"
#: Delivered ids remembered per rollout (the ledger is compacted beyond twice this).
_LEDGER_KEEP = 1000
_SEQ_WIDTH = 12
_ENTRY_NAME = re.compile(rf"(\d{{{_SEQ_WIDTH}}})-(.+)\.json")
_KEY_SAFE = re.compile(r"[A-Za-z0-9_-]")
_FORMAT_VERSION = 1


class OutboxCorruptError(PermanentError):
    """A file in the outbox cannot be read as an outbox entry; a human must look at it."""


def _encode_key(rollout_key: str) -> str:
    """A directory name for any key: unreserved characters kept, the rest %XX (no dots)."""
    if not rollout_key:
        raise ValueError("outbox rollout_key must not be empty")
    return "".join(ch if _KEY_SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode()) for ch in rollout_key)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("outbox clock values must be timezone-aware datetimes")


@dataclass(frozen=True)
class OutboxEntry:
    """One stored event with its delivery bookkeeping."""

    path: Path
    rollout_key: str
    sequence: int
    event: CDEvent
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str = ""

    def due(self, now: datetime) -> bool:
        return self.next_attempt_at is None or self.next_attempt_at <= now

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "formatVersion": _FORMAT_VERSION,
            "rolloutKey": self.rollout_key,
            "attempts": self.attempts,
            "nextAttemptAt": self.next_attempt_at.isoformat() if self.next_attempt_at else "",
            "lastError": self.last_error,
            "event": self.event.to_json_dict(),
        }
        return json.dumps(data, sort_keys=True, indent=1).encode("utf-8")

    @classmethod
    def read(cls, path: Path, sequence: int) -> OutboxEntry:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            next_at = str(data.get("nextAttemptAt", ""))
            return cls(
                path=path,
                rollout_key=str(data["rolloutKey"]),
                sequence=sequence,
                event=CDEvent.from_json_dict(data["event"]),
                attempts=int(data.get("attempts", 0)),
                next_attempt_at=datetime.fromisoformat(next_at) if next_at else None,
                last_error=str(data.get("lastError", "")),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise OutboxCorruptError(f"outbox entry {path} is unreadable ({err}); move it away to unblock") from err


class Outbox:
    """Events on disk, per rollout, in order, bounded by ``max_events``."""

    def __init__(self, directory: Path, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError("outbox max_events must be at least 1")
        self.directory = directory
        self.max_events = max_events
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob(f"*/{_TMP_PREFIX}*"):
            # A write cut short by a crash: its event was never stored (put is replayed).
            leftover.unlink()

    # -- reading

    def _rollout_dirs(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.is_dir() and not p.name.startswith("."))

    @staticmethod
    def _entry_files(rollout_dir: Path) -> list[tuple[int, str, Path]]:
        found = []
        for path in rollout_dir.iterdir():
            match = _ENTRY_NAME.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), match.group(2), path))
        return sorted(found)

    def entries(self, rollout_dir: Path) -> list[OutboxEntry]:
        """The entries of one rollout directory, oldest first."""
        return [OutboxEntry.read(path, seq) for seq, _, path in self._entry_files(rollout_dir)]

    def rollout_dirs(self) -> Iterator[Path]:
        yield from self._rollout_dirs()

    def count(self) -> int:
        return sum(len(self._entry_files(d)) for d in self._rollout_dirs())

    def pending(self, rollout_key: str | None = None) -> list[CDEvent]:
        """Events not yet delivered, per rollout in put order (all rollouts when key is None)."""
        if rollout_key is not None:
            rollout_dir = self.directory / _encode_key(rollout_key)
            dirs = [rollout_dir] if rollout_dir.is_dir() else []
        else:
            dirs = self._rollout_dirs()
        return [entry.event for d in dirs for entry in self.entries(d)]

    @staticmethod
    def delivered_ids(rollout_dir: Path) -> set[str]:
        ledger = rollout_dir / _LEDGER
        if not ledger.exists():
            return set()
        return {line.strip() for line in ledger.read_text(encoding="utf-8").splitlines() if line.strip()}

    # -- writing

    def put(self, events: Sequence[CDEvent], rollout_key: str) -> int:
        """Store ``events`` (in order) for ``rollout_key``; return how many were new.

        Ids already pending or recently delivered are skipped. Raises
        ``OutboxFullError`` (and stores nothing) when the new events would pass
        ``max_events``.
        """
        rollout_dir = self.directory / _encode_key(rollout_key)
        known: set[str] = set(self.delivered_ids(rollout_dir)) if rollout_dir.is_dir() else set()
        total = 0
        for d in self._rollout_dirs():
            files = self._entry_files(d)
            total += len(files)
            known.update(event_id for _, event_id, _ in files)
        fresh: list[CDEvent] = []
        for ev in events:
            if ev.id not in known:
                known.add(ev.id)
                fresh.append(ev)
        if not fresh:
            return 0
        if total + len(fresh) > self.max_events:
            raise OutboxFullError(
                f"event outbox {self.directory} is full: it holds {total} undelivered events (max_events="
                f"{self.max_events}) and cannot take {len(fresh)} more for rollout {rollout_key}; "
                "the event sink must accept events again (check its URL and health) or raise the outbox max_events"
            )
        rollout_dir.mkdir(parents=True, exist_ok=True)
        existing = self._entry_files(rollout_dir)
        sequence = existing[-1][0] if existing else 0
        for ev in fresh:
            sequence += 1
            path = rollout_dir / f"{sequence:0{_SEQ_WIDTH}d}-{ev.id}{_ENTRY_SUFFIX}"
            entry = OutboxEntry(path=path, rollout_key=rollout_key, sequence=sequence, event=ev)
            _atomic_write(path, entry.to_json())
        log.debug("outbox: stored %d event(s) for %s", len(fresh), rollout_key)
        return len(fresh)

    # -- staging around an update

    def _staged_file(self, rollout_key: str) -> Path:
        return self.directory / _STAGED_DIR / f"{_encode_key(rollout_key)}{_ENTRY_SUFFIX}"

    def stage(self, events: Sequence[CDEvent], rollout_key: str) -> None:
        """Keep the events an update is about to record, durably, until ``unstage``."""
        if not events:
            return
        path = self._staged_file(rollout_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, json.dumps([e.to_json_dict() for e in events]).encode("utf-8"))

    def unstage(self, rollout_key: str) -> None:
        self._staged_file(rollout_key).unlink(missing_ok=True)

    def recover_staged(self, rollout_key: str, last_event_id: str) -> int:
        """Store events staged by a process that died during or right after an update.

        They happened exactly when the recorded outputs name their last id
        (``last_event_id``); otherwise the update never completed and they are
        dropped. Returns how many were stored.
        """
        path = self._staged_file(rollout_key)
        if not path.exists():
            return 0
        try:
            events = [CDEvent.from_json_dict(e) for e in json.loads(path.read_text(encoding="utf-8"))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("unreadable staged events dropped", extra={"stack": rollout_key, "error": str(exc)})
            path.unlink(missing_ok=True)
            return 0
        added = 0
        if events and last_event_id == events[-1].id:
            added = self.put(events, rollout_key=rollout_key)
            log.info("recovered staged events after a crash", extra={"stack": rollout_key, "events": added})
        path.unlink(missing_ok=True)
        return added

    def record_failure(self, entry: OutboxEntry, next_attempt_at: datetime, error: str) -> OutboxEntry:
        updated = OutboxEntry(
            path=entry.path,
            rollout_key=entry.rollout_key,
            sequence=entry.sequence,
            event=entry.event,
            attempts=entry.attempts + 1,
            next_attempt_at=next_attempt_at,
            last_error=error,
        )
        _atomic_write(entry.path, updated.to_json())
        return updated

    def mark_delivered(self, entry: OutboxEntry) -> None:
        """Remember the id, then drop the file (a crash in between only re-drops it)."""
        rollout_dir = entry.path.parent
        ledger = rollout_dir / _LEDGER
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{entry.event.id}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._compact_ledger(ledger)
        self.discard(entry)

    @staticmethod
    def discard(entry: OutboxEntry) -> None:
        entry.path.unlink(missing_ok=True)
        _fsync_dir(entry.path.parent)

    @staticmethod
    def _compact_ledger(ledger: Path) -> None:
        lines = ledger.read_text(encoding="utf-8").splitlines()
        if len(lines) > 2 * _LEDGER_KEEP:
            _atomic_write(ledger, ("\n".join(lines[-_LEDGER_KEEP:]) + "\n").encode())


@dataclass(frozen=True)
class DeliveryReport:
    """One delivery pass: events sent, send attempts that failed, events still waiting."""

    sent: int
    failed: int
    pending: int


class Deliverer:
    """Drains an ``Outbox`` into a sink, in order per rollout, with backoff and jitter."""

    def __init__(
        self,
        outbox: Outbox,
        sink: EventSink,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("Deliverer needs 0 < base_delay <= max_delay")
        self.outbox = outbox
        self.sink = sink
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not security

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure: exponential, capped, half jittered."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(attempts - 1, 0))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def deliver_due(self, now: datetime) -> DeliveryReport:
        """Send every due event, oldest first per rollout; stop a rollout at its first failure."""
        _require_aware(now)
        sent = failed = 0
        for rollout_dir in self.outbox.rollout_dirs():
            delivered = self.outbox.delivered_ids(rollout_dir)
            for entry in self.outbox.entries(rollout_dir):
                if entry.event.id in delivered:
                    # Sent before a crash cut the cleanup short.
                    self.outbox.discard(entry)
                    continue
                if not entry.due(now):
                    break
                try:
                    self.sink.send(entry.event)
                except TemporaryError as err:
                    wait = self.backoff(entry.attempts + 1)
                    updated = self.outbox.record_failure(entry, now + timedelta(seconds=wait), str(err))
                    failed += 1
                    log.warning(
                        "event %s for %s not delivered (attempt %d, next in %.1fs): %s",
                        entry.event.id,
                        entry.rollout_key,
                        updated.attempts,
                        wait,
                        err,
                    )
                    break
                self.outbox.mark_delivered(entry)
                sent += 1
        return DeliveryReport(sent=sent, failed=failed, pending=self.outbox.count())
