"""A durable outbox: CDEvents survive sink outages and process crashes.

An event is written to disk before anyone tries to send it, and removed only
after the sink answered 2xx, so a crash or an outage delays events but never
loses them. Layout (one writer: the reconciler that owns the stacks)::

    <directory>/<rollout dir>/000000000042-<event id>.json
    <directory>/<rollout dir>/delivered.log
    <directory>/.staged/<rollout dir>.json
    <directory>/.corrupt/<rollout dir>/<file name>     (quarantined files)

``<rollout dir>`` is the rollout key %-encoded; a key whose encoding is longer
than 128 bytes becomes its first 63 encoded bytes, ``~`` and the SHA-256 of the
key (deterministic; every entry also stores its ``rolloutKey``), so no file
name comes near the 255-byte limit of common file systems. Event ids that are
not plain ``[A-Za-z0-9_-]`` (at most 128) are stored under ``~`` + a hash too.

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

Corruption: every read of a file (entry, ledger, staged events) goes through
one function that opens only regular files (never follows a symlink, never
blocks on a FIFO), reads at most 4 MiB and raises ``OutboxCorruptError`` for
anything it cannot parse or validate. The strict readers (``entries``,
``pending``, ``delivered_ids``) raise it; delivery, ``put`` and
``recover_staged`` instead move the bad file to ``<directory>/.corrupt/`` with
an ERROR log line naming it, and carry on with every other event, so one bad
file never stops the other rollouts' events. A quarantined ledger only costs
possible duplicate deliveries (at-least-once); a quarantined entry's event is
not sent until a human repairs it and moves it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kulta.adapters.sinks import EventSink
from kulta.core.events import CDEvent
from kulta.errors import Dependency, DependencyError, KultaError, OutboxFullError, PermanentError, TemporaryError
from kulta.redact import MESSAGE_LIMIT, safe_text

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "Deliverer",
    "DeliveryReport",
    "Outbox",
    "OutboxCorruptError",
    "OutboxEntry",
    "rollout_dir_name",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 10000
_ENTRY_SUFFIX = ".json"
_TMP_PREFIX = ".tmp-"
_LEDGER = "delivered.log"
#: events computed for an update in flight (hidden from the rollout listing by the dot)
_STAGED_DIR = ".staged"
#: where unreadable files are moved (hidden from the rollout listing by the dot)
_CORRUPT_DIR = ".corrupt"
#: Delivered ids remembered per rollout (the ledger is compacted beyond twice this).
_LEDGER_KEEP = 1000
_SEQ_WIDTH = 12
_ENTRY_NAME = re.compile(rf"(\d{{{_SEQ_WIDTH}}})-(.+)\.json")
_KEY_SAFE = re.compile(r"[A-Za-z0-9_-]")
_FORMAT_VERSION = 1
#: Longest rollout directory name; longer encodings are shortened with a hash.
_MAX_DIR_NAME = 128
#: Encoded bytes kept in front of ``~<sha256>`` in a shortened directory name.
_DIR_PREFIX = _MAX_DIR_NAME - 1 - 64
_HASH_MARK = "~"
#: Event ids stored under their own name; anything else is stored under a hash.
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
#: Largest file the outbox reads (a CDEvent is a few KB; the ledger ~80 KB).
_MAX_READ_BYTES = 4 * 1024 * 1024
#: The backoff exponent stops here: 2**62 * base_delay is past any max_delay, and 2.0**1024 overflows.
_MAX_BACKOFF_EXPONENT = 62


class OutboxCorruptError(PermanentError):
    """A file in the outbox cannot be read as an outbox entry; a human must look at it."""


def _encode_key(rollout_key: str) -> str:
    """Unreserved characters kept, the rest %XX (no dots, so never ``.``/``..`` or hidden)."""
    if not rollout_key:
        raise ValueError("outbox rollout_key must not be empty")
    return "".join(
        ch if _KEY_SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in rollout_key
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def rollout_dir_name(rollout_key: str) -> str:
    """The directory name of ``rollout_key``: its %-encoding, or ``<first 63>~<sha256>`` beyond 128 bytes.

    Deterministic, ASCII, at most 128 bytes; the key itself is stored in every
    entry (``rolloutKey``), which is how a shortened name is read back.
    """
    encoded = _encode_key(rollout_key)
    if len(encoded) <= _MAX_DIR_NAME:
        return encoded
    return f"{encoded[:_DIR_PREFIX]}{_HASH_MARK}{_digest(rollout_key)}"


def _file_id(event_id: str) -> str:
    """The id as it appears in file names and the ledger: itself when plain, else ``~`` + a hash."""
    if _PLAIN_ID.fullmatch(event_id):
        return event_id
    return f"{_HASH_MARK}{_digest(event_id)}"


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file; anything else (FIFO, symlink, directory, device, huge) is corrupt.

    Opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` before a
    byte is read, so a FIFO can never block delivery.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise OutboxCorruptError(f"outbox file {path} cannot be opened ({err}); move it away to unblock") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OutboxCorruptError(f"outbox file {path} is not a regular file; move it away to unblock")
        if info.st_size > _MAX_READ_BYTES:
            raise OutboxCorruptError(
                f"outbox file {path} is {info.st_size} bytes, more than {_MAX_READ_BYTES}; move it away to unblock"
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > _MAX_READ_BYTES:
                raise OutboxCorruptError(f"outbox file {path} grew past {_MAX_READ_BYTES} bytes while read")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as err:
        raise OutboxCorruptError(f"outbox file {path} cannot be read ({err}); move it away to unblock") from err
    finally:
        os.close(fd)


def _load_json(path: Path) -> Any:
    """``path`` parsed as UTF-8 JSON; every failure is an ``OutboxCorruptError`` naming the file."""
    raw = _read_regular(path)
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        detail = safe_text(f"{type(err).__name__}: {err}", limit=200)
        raise OutboxCorruptError(f"outbox file {path} is not UTF-8 JSON ({detail}); move it away to unblock") from err


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}")
    # a leftover of any type is removed; O_EXCL | O_NOFOLLOW never writes through a FIFO or a link
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
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
        """Read and validate one entry file; any defect is an ``OutboxCorruptError`` naming it."""
        data = _load_json(path)
        try:
            return cls._from_json(path, sequence, data)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as err:
            detail = safe_text(f"{type(err).__name__}: {err}", limit=300)
            raise OutboxCorruptError(f"outbox entry {path} is unreadable ({detail}); move it away to unblock") from err

    @classmethod
    def _from_json(cls, path: Path, sequence: int, data: Any) -> OutboxEntry:
        if not isinstance(data, Mapping):
            raise TypeError(f"the file holds a JSON {type(data).__name__}, not an object")
        version = data.get("formatVersion", _FORMAT_VERSION)
        if version != _FORMAT_VERSION or isinstance(version, bool):
            raise ValueError(f"formatVersion {version!r} is not {_FORMAT_VERSION}")
        rollout_key = _require(data, "rolloutKey", str)
        if not rollout_key or rollout_dir_name(rollout_key) != path.parent.name:
            raise ValueError(f"rolloutKey {rollout_key!r} does not belong in directory {path.parent.name!r}")
        attempts = data.get("attempts", 0)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            raise ValueError(f"attempts {attempts!r} is not a non-negative integer")
        next_at_text = data.get("nextAttemptAt", "")
        if not isinstance(next_at_text, str):
            raise TypeError(f"nextAttemptAt {next_at_text!r} is not a string")
        next_at = _aware_time(next_at_text, "nextAttemptAt") if next_at_text else None
        last_error = data.get("lastError", "")
        if not isinstance(last_error, str):
            raise TypeError(f"lastError {last_error!r} is not a string")
        event_data = _require(data, "event", Mapping)
        if not isinstance(event_data.get("body"), Mapping):
            raise TypeError("event.body is not an object")
        event = CDEvent.from_json_dict(event_data)
        match = _ENTRY_NAME.fullmatch(path.name)
        if match is None or match.group(2) != _file_id(event.id):
            raise ValueError(f"event id {event.id!r} does not match the file name")
        _aware_time(event.timestamp, "event.timestamp")
        return cls(
            path=path,
            rollout_key=rollout_key,
            sequence=sequence,
            event=event,
            attempts=attempts,
            next_attempt_at=next_at,
            last_error=last_error,
        )


def _require(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if not isinstance(value, kind):
        raise TypeError(f"{key} is a {type(value).__name__}, not a {kind.__name__}")
    return value


def _aware_time(text: str, field: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{field} {text!r} has no UTC offset")
    return moment


class Outbox:
    """Events on disk, per rollout, in order, bounded by ``max_events``."""

    def __init__(self, directory: Path, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError("outbox max_events must be at least 1")
        self.directory = directory
        self.max_events = max_events
        #: files this process moved to ``.corrupt/`` (``DeliveryReport.quarantined`` counts per pass)
        self.quarantined_count = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
            leftovers = list(directory.glob(f"*/{_TMP_PREFIX}*"))
            for leftover in leftovers:
                # A write cut short by a crash: its event was never stored (put is replayed).
                if stat.S_ISDIR(leftover.lstat().st_mode):
                    self.quarantine(leftover, "a directory where a temporary file belongs")
                else:
                    leftover.unlink(missing_ok=True)
        except OSError as err:
            raise OutboxCorruptError(f"event outbox {directory} cannot be opened as a directory: {err}") from err

    @contextlib.contextmanager
    def _disk(self, what: str) -> Iterator[None]:
        """A disk error (full, read-only, the directory replaced) as a DependencyError naming the outbox."""
        try:
            yield
        except OSError as err:
            detail = safe_text(f"{type(err).__name__}: {err}", limit=300)
            raise DependencyError(Dependency.STATE_DIR, f"event outbox {self.directory}: {what}: {detail}") from err

    # -- reading

    def _rollout_dirs(self) -> list[Path]:
        """Real directories only (a symlink is never followed); dot names are KULTA's own."""
        return sorted(
            p for p in self.directory.iterdir() if not p.name.startswith(".") and stat.S_ISDIR(p.lstat().st_mode)
        )

    @staticmethod
    def _entry_files(rollout_dir: Path) -> list[tuple[int, str, Path]]:
        found = []
        for path in rollout_dir.iterdir():
            match = _ENTRY_NAME.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), match.group(2), path))
        return sorted(found)

    def entries(self, rollout_dir: Path) -> list[OutboxEntry]:
        """The entries of one rollout directory, oldest first; a bad file raises ``OutboxCorruptError``."""
        return [OutboxEntry.read(path, seq) for seq, _, path in self._entry_files(rollout_dir)]

    def sound_entries(self, rollout_dir: Path) -> list[OutboxEntry]:
        """The readable entries of one rollout directory, oldest first; bad files are quarantined."""
        found: list[OutboxEntry] = []
        for seq, _, path in self._entry_files(rollout_dir):
            try:
                found.append(OutboxEntry.read(path, seq))
            except OutboxCorruptError as err:
                self.quarantine(path, str(err))
        return found

    def rollout_dirs(self) -> Iterator[Path]:
        yield from self._rollout_dirs()

    def count(self) -> int:
        with self._disk("counting events"):
            return self._count()

    def _count(self) -> int:
        return sum(len(self._entry_files(d)) for d in self._rollout_dirs())

    def pending(self, rollout_key: str | None = None) -> list[CDEvent]:
        """Events not yet delivered, per rollout in put order (all rollouts when key is None)."""
        with self._disk("reading pending events"):
            return self._pending(rollout_key)

    def _pending(self, rollout_key: str | None) -> list[CDEvent]:
        if rollout_key is not None:
            rollout_dir = self.directory / rollout_dir_name(rollout_key)
            dirs = [rollout_dir] if rollout_dir in self._rollout_dirs() else []
        else:
            dirs = self._rollout_dirs()
        return [entry.event for d in dirs for entry in self.entries(d)]

    @staticmethod
    def delivered_ids(rollout_dir: Path) -> set[str]:
        """Ids (as in file names) recently delivered for a rollout; a bad ledger raises ``OutboxCorruptError``."""
        ledger = rollout_dir / _LEDGER
        if not os.path.lexists(ledger):
            return set()
        raw = _read_regular(ledger)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise OutboxCorruptError(f"outbox ledger {ledger} is not UTF-8 ({err}); move it away") from err
        return {line.strip() for line in text.splitlines() if line.strip()}

    def known_delivered(self, rollout_dir: Path) -> set[str]:
        """``delivered_ids``, but a bad ledger is quarantined and counts as empty."""
        try:
            return self.delivered_ids(rollout_dir)
        except OutboxCorruptError as err:
            # Forgetting delivered ids costs at most duplicate sends (consumers dedupe on ce-id).
            self.quarantine(rollout_dir / _LEDGER, str(err))
            return set()

    # -- quarantine

    def quarantine(self, path: Path, reason: str) -> Path:
        """Move a bad file to ``<directory>/.corrupt/<rollout dir>/`` (never overwriting); log and return where."""
        target_dir = self.directory / _CORRUPT_DIR / path.parent.name
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        suffix = 0
        while os.path.lexists(target):
            suffix += 1
            target = target_dir / f"{path.name}.{suffix}"
        os.rename(path, target)
        _fsync_dir(path.parent)
        self.quarantined_count += 1
        log.error(
            "outbox: moved unreadable file %s to %s; the other events are delivered, this one waits for a human: %s",
            path,
            target,
            safe_text(reason, limit=MESSAGE_LIMIT),
        )
        return target

    # -- writing

    def put(self, events: Sequence[CDEvent], rollout_key: str) -> int:
        """Store ``events`` (in order) for ``rollout_key``; return how many were new.

        Ids already pending or recently delivered are skipped. Raises
        ``OutboxFullError`` (and stores nothing) when the new events would pass
        ``max_events``. A corrupt ledger is quarantined, not fatal.
        """
        with self._disk(f"storing events of {rollout_key}"):
            return self._put(events, rollout_key)

    def _put(self, events: Sequence[CDEvent], rollout_key: str) -> int:
        rollout_dir = self.directory / rollout_dir_name(rollout_key)
        exists = rollout_dir in self._rollout_dirs()
        if not exists and os.path.lexists(rollout_dir):
            self.quarantine(rollout_dir, "a rollout's place in the outbox is taken by something not a directory")
        known: set[str] = self.known_delivered(rollout_dir) if exists else set()
        total = 0
        for d in self._rollout_dirs():
            files = self._entry_files(d)
            total += len(files)
            if d == rollout_dir:
                known.update(file_id for _, file_id, _ in files)
        fresh: list[CDEvent] = []
        for ev in events:
            file_id = _file_id(ev.id)
            if file_id not in known:
                known.add(file_id)
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
            path = rollout_dir / f"{sequence:0{_SEQ_WIDTH}d}-{_file_id(ev.id)}{_ENTRY_SUFFIX}"
            entry = OutboxEntry(path=path, rollout_key=rollout_key, sequence=sequence, event=ev)
            _atomic_write(path, entry.to_json())
        log.debug("outbox: stored %d event(s) for %s", len(fresh), rollout_key)
        return len(fresh)

    # -- staging around an update

    def _staged_file(self, rollout_key: str) -> Path:
        return self.directory / _STAGED_DIR / f"{rollout_dir_name(rollout_key)}{_ENTRY_SUFFIX}"

    def stage(self, events: Sequence[CDEvent], rollout_key: str) -> None:
        """Keep the events an update is about to record, durably, until ``unstage``."""
        if not events:
            return
        path = self._staged_file(rollout_key)
        with self._disk(f"staging events of {rollout_key}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, json.dumps([e.to_json_dict() for e in events]).encode("utf-8"))

    def unstage(self, rollout_key: str) -> None:
        with self._disk(f"unstaging events of {rollout_key}"):
            self._staged_file(rollout_key).unlink(missing_ok=True)

    @staticmethod
    def _read_staged(path: Path) -> list[CDEvent]:
        data = _load_json(path)
        try:
            if not isinstance(data, list):
                raise TypeError(f"the file holds a JSON {type(data).__name__}, not a list")
            events = []
            for item in data:
                if not isinstance(item, Mapping) or not isinstance(item.get("body"), Mapping):
                    raise TypeError("a staged event is not an object with an object body")
                events.append(CDEvent.from_json_dict(item))
                _aware_time(events[-1].timestamp, "event.timestamp")
            return events
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as err:
            detail = safe_text(f"{type(err).__name__}: {err}", limit=300)
            raise OutboxCorruptError(f"staged events {path} are unreadable ({detail})") from err

    def recover_staged(self, rollout_key: str, last_event_id: str) -> int:
        """Store events staged by a process that died during or right after an update.

        They happened exactly when the recorded outputs name their last id
        (``last_event_id``); otherwise the update never completed and they are
        dropped. An unreadable staged file is quarantined. Returns how many were stored.
        """
        with self._disk(f"recovering staged events of {rollout_key}"):
            return self._recover_staged(rollout_key, last_event_id)

    def _recover_staged(self, rollout_key: str, last_event_id: str) -> int:
        path = self._staged_file(rollout_key)
        if not os.path.lexists(path):
            return 0
        try:
            events = self._read_staged(path)
        except OutboxCorruptError as err:
            self.quarantine(path, str(err))
            return 0
        added = 0
        if events and last_event_id == events[-1].id:
            added = self.put(events, rollout_key=rollout_key)
            log.info("recovered staged events after a crash", extra={"stack": rollout_key, "events": added})
        path.unlink(missing_ok=True)
        return added

    def record_failure(self, entry: OutboxEntry, next_attempt_at: datetime, error: str) -> OutboxEntry:
        """Persist one more failed attempt; ``error`` is stored redacted and capped (``kulta.redact.safe_text``)."""
        updated = OutboxEntry(
            path=entry.path,
            rollout_key=entry.rollout_key,
            sequence=entry.sequence,
            event=entry.event,
            attempts=entry.attempts + 1,
            next_attempt_at=next_attempt_at,
            last_error=safe_text(error, limit=MESSAGE_LIMIT),
        )
        _atomic_write(entry.path, updated.to_json())
        return updated

    def mark_delivered(self, entry: OutboxEntry) -> None:
        """Remember the id, then drop the file (a crash in between only re-drops it)."""
        rollout_dir = entry.path.parent
        ledger = rollout_dir / _LEDGER
        if os.path.lexists(ledger) and not stat.S_ISREG(ledger.lstat().st_mode):
            self.quarantine(ledger, "the ledger is not a regular file")
        # O_NOFOLLOW | O_NONBLOCK: a link or FIFO put there meanwhile fails instead of blocking
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        try:
            os.write(fd, f"{_file_id(entry.event.id)}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._compact_ledger(ledger)
        self.discard(entry)

    @staticmethod
    def discard(entry: OutboxEntry) -> None:
        entry.path.unlink(missing_ok=True)
        _fsync_dir(entry.path.parent)

    def _compact_ledger(self, ledger: Path) -> None:
        try:
            lines = _read_regular(ledger).decode("utf-8").splitlines()
        except (OutboxCorruptError, UnicodeDecodeError) as err:
            self.quarantine(ledger, str(err))
            return
        if len(lines) > 2 * _LEDGER_KEEP:
            _atomic_write(ledger, ("\n".join(lines[-_LEDGER_KEEP:]) + "\n").encode())


@dataclass(frozen=True)
class DeliveryReport:
    """One delivery pass: events sent, send attempts that failed, events still waiting, files quarantined."""

    sent: int
    failed: int
    pending: int
    quarantined: int = 0


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
        """Seconds to wait after the ``attempts``-th failure: exponential, capped, half jittered.

        The exponent stops growing at 62, so a day-long outage (thousands of
        attempts) never overflows a float.
        """
        exponent = min(max(attempts - 1, 0), _MAX_BACKOFF_EXPONENT)
        ceiling = min(self.max_delay, self.base_delay * 2.0**exponent)
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def deliver_due(self, now: datetime) -> DeliveryReport:
        """Send every due event, oldest first per rollout; stop a rollout at its first failure.

        Never raises for one rollout's trouble: a corrupt file is quarantined
        (``Outbox.quarantine``), a disk error is logged and the next rollout
        goes on. A ``PermanentError`` from the sink (a request that cannot be
        made as configured) is retried with the same backoff, logged at ERROR.
        """
        _require_aware(now)
        sent = failed = 0
        quarantined_before = self.outbox.quarantined_count
        try:
            rollout_dirs = list(self.outbox.rollout_dirs())
        except OSError as err:
            log.error("outbox %s cannot be listed; no event delivered this pass: %s", self.outbox.directory, err)
            return DeliveryReport(sent=0, failed=1, pending=0)
        for rollout_dir in rollout_dirs:
            try:
                rollout_sent, rollout_failed = self._deliver_rollout(rollout_dir, now)
            except OSError as err:
                failed += 1
                log.error("outbox: delivery for %s stopped by a disk error: %s", rollout_dir.name, err)
                continue
            sent += rollout_sent
            failed += rollout_failed
        try:
            pending = self.outbox.count()
        except DependencyError as err:
            log.error("outbox %s cannot be counted: %s", self.outbox.directory, err)
            pending = 0
        return DeliveryReport(
            sent=sent,
            failed=failed,
            pending=pending,
            quarantined=self.outbox.quarantined_count - quarantined_before,
        )

    def _deliver_rollout(self, rollout_dir: Path, now: datetime) -> tuple[int, int]:
        sent = 0
        delivered = self.outbox.known_delivered(rollout_dir)
        for entry in self.outbox.sound_entries(rollout_dir):
            if _file_id(entry.event.id) in delivered:
                # Sent before a crash cut the cleanup short.
                self.outbox.discard(entry)
                continue
            if not entry.due(now):
                break
            try:
                self.sink.send(entry.event)
            except KultaError as err:
                wait = self.backoff(entry.attempts + 1)
                updated = self.outbox.record_failure(entry, now + timedelta(seconds=wait), str(err))
                level = logging.WARNING if isinstance(err, TemporaryError) else logging.ERROR
                log.log(
                    level,
                    "event %s for %s not delivered (attempt %d, next in %.1fs): %s",
                    entry.event.id,
                    entry.rollout_key,
                    updated.attempts,
                    wait,
                    updated.last_error,
                )
                return sent, 1
            self.outbox.mark_delivered(entry)
            sent += 1
        return sent, 0
