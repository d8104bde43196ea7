"""The durable outbox: write before send, order per rollout, backoff, bound, idempotent replay."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

from kulta.adapters.outbox import (
    Deliverer,
    DeliveryReport,
    Outbox,
    OutboxCorruptError,
    OutboxEntry,
    rollout_dir_name,
)
from kulta.adapters.sinks import FileSink
from kulta.core.events import CDEvent
from kulta.errors import Dependency, DependencyError, OutboxFullError, PermanentError, TemporaryError
from tests.event_scenarios import aborted_by_analysis, full_rollout, replay, stable_a

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


class RecordingSink:
    """A sink that keeps what it got and fails while ``down`` is set."""

    def __init__(self) -> None:
        self.received: list[CDEvent] = []
        self.down = False
        self.fail_ids: set[str] = set()

    def send(self, ev: CDEvent) -> None:
        if self.down or ev.id in self.fail_ids:
            raise TemporaryError(f"sink down for {ev.id}")
        self.received.append(ev)


def rollout_events() -> list[CDEvent]:
    return [e for batch in replay(full_rollout(), stable_a()) for e in batch]


def abort_events() -> list[CDEvent]:
    return [e for batch in replay(aborted_by_analysis(), stable_a()) for e in batch]


def test_put_writes_sortable_files_per_rollout(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    events = rollout_events()
    assert outbox.put(events, "prod/shop/web") == len(events)
    rollout_dir = tmp_path / "prod%2Fshop%2Fweb"
    names = sorted(p.name for p in rollout_dir.iterdir())
    assert len(names) == len(events)
    assert [n.split("-", 1)[1].removesuffix(".json") for n in names] == [e.id for e in events]
    assert outbox.pending("prod/shop/web") == events
    stored = json.loads((rollout_dir / names[0]).read_text())
    assert stored["attempts"] == 0
    assert stored["event"]["id"] == events[0].id
    assert not [p for p in rollout_dir.iterdir() if p.name.startswith(".tmp-")]


def test_put_of_known_ids_is_a_no_op(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    events = rollout_events()
    outbox.put(events[:3], "web")
    assert outbox.put(events, "web") == len(events) - 3
    assert outbox.put(events, "web") == 0
    assert outbox.pending("web") == events


def test_replay_after_delivery_is_a_no_op(tmp_path: Path) -> None:
    outbox, sink = Outbox(tmp_path), RecordingSink()
    events = rollout_events()
    outbox.put(events, "web")
    Deliverer(outbox, sink).deliver_due(T0)
    assert outbox.put(events, "web") == 0
    assert Deliverer(outbox, sink).deliver_due(T0) == DeliveryReport(sent=0, failed=0, pending=0)
    assert [e.id for e in sink.received] == [e.id for e in events]


def test_delivers_in_order_and_removes_only_after_success(tmp_path: Path) -> None:
    outbox, sink = Outbox(tmp_path), RecordingSink()
    events = rollout_events()
    outbox.put(events, "web")
    report = Deliverer(outbox, sink).deliver_due(T0)
    assert report == DeliveryReport(sent=len(events), failed=0, pending=0)
    assert sink.received == events
    assert outbox.pending() == []


def test_failed_head_blocks_its_rollout_only_and_keeps_backoff_across_restart(tmp_path: Path) -> None:
    web, api = rollout_events(), abort_events()
    api = [CDEvent.from_json_dict({**e.to_json_dict(), "id": f"api-{e.id}"}) for e in api]
    outbox, sink = Outbox(tmp_path), RecordingSink()
    outbox.put(web, "web")
    outbox.put(api, "api")
    sink.fail_ids = {web[0].id}
    deliverer = Deliverer(outbox, sink, base_delay=2.0, max_delay=60.0, rng=random.Random(7))
    report = deliverer.deliver_due(T0)
    assert report == DeliveryReport(sent=len(api), failed=1, pending=len(web))
    assert sink.received == api

    stored = json.loads(next((tmp_path / "web").glob("000000000001-*.json")).read_text())
    assert stored["attempts"] == 1
    next_at = datetime.fromisoformat(stored["nextAttemptAt"])
    assert T0 + timedelta(seconds=1) <= next_at <= T0 + timedelta(seconds=2)
    assert "sink down" in stored["lastError"]

    # A restarted process sees the persisted schedule: nothing is tried before it.
    sink.fail_ids = set()
    restarted = Deliverer(Outbox(tmp_path), sink)
    assert restarted.deliver_due(next_at - timedelta(milliseconds=1)) == DeliveryReport(0, 0, len(web))
    assert restarted.deliver_due(next_at) == DeliveryReport(sent=len(web), failed=0, pending=0)
    assert sink.received == api + web


def test_attempts_accumulate_and_backoff_grows(tmp_path: Path) -> None:
    outbox, sink = Outbox(tmp_path), RecordingSink()
    outbox.put(rollout_events()[:1], "web")
    sink.down = True
    deliverer = Deliverer(outbox, sink, base_delay=1.0, max_delay=8.0, rng=random.Random(1))
    now = T0
    waits = []
    for attempt in range(1, 7):
        assert deliverer.deliver_due(now).failed == 1
        (path,) = (tmp_path / "web").glob("*.json")
        stored = json.loads(path.read_text())
        assert stored["attempts"] == attempt
        next_at = datetime.fromisoformat(stored["nextAttemptAt"])
        waits.append((next_at - now).total_seconds())
        now = next_at
    ceilings = [1, 2, 4, 8, 8, 8]
    for wait, ceiling in zip(waits, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling


@pytest.mark.parametrize(
    ("attempts", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (7, 32.0), (8, 60.0), (30, 60.0)],
)
def test_backoff_is_exponential_capped_and_jittered(tmp_path: Path, attempts: int, ceiling: float) -> None:
    deliverer = Deliverer(Outbox(tmp_path), RecordingSink(), rng=random.Random(attempts))
    samples = [deliverer.backoff(attempts) for _ in range(200)]
    assert all(ceiling / 2 <= s <= ceiling for s in samples)
    assert len(set(samples)) > 100, "jitter spreads retries"


def test_size_bound_raises_and_stores_nothing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, max_events=5)
    events = rollout_events()
    outbox.put(events[:4], "web")
    with pytest.raises(OutboxFullError, match="max_events=5") as info:
        outbox.put(events[4:], "web")
    assert "holds 4 undelivered events" in str(info.value)
    assert outbox.count() == 4
    assert outbox.put(events[4:5], "web") == 1


def test_rollout_keys_cannot_escape_the_directory(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "box")
    ev = rollout_events()[0]
    outbox.put([ev], "..")
    outbox.put([CDEvent.from_json_dict({**ev.to_json_dict(), "id": "other"})], "../../etc")
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) == ["%2E%2E", "%2E%2E%2F%2E%2E%2Fetc"]
    with pytest.raises(ValueError, match="rollout_key"):
        outbox.put([ev], "")


def test_naive_clock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Deliverer(Outbox(tmp_path), RecordingSink()).deliver_due(datetime(2026, 1, 1))


def test_corrupt_entry_is_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.put(rollout_events()[:1], "web")
    (path,) = (tmp_path / "web").glob("*.json")
    path.write_text("{not json")
    with pytest.raises(OutboxCorruptError, match=path.name):
        outbox.entries(tmp_path / "web")
    with pytest.raises(OutboxCorruptError, match=path.name):
        outbox.pending()


def test_crash_after_send_before_cleanup_does_not_resend(tmp_path: Path) -> None:
    outbox, sink = Outbox(tmp_path), RecordingSink()
    events = rollout_events()[:2]
    outbox.put(events, "web")
    # Simulate: the id reached the delivered ledger but the file removal did not happen.
    (tmp_path / "web" / "delivered.log").write_text(events[0].id + "\n")
    report = Deliverer(outbox, sink).deliver_due(T0)
    assert report == DeliveryReport(sent=1, failed=0, pending=0)
    assert sink.received == events[1:]


def test_leftover_temp_files_are_cleaned_on_open(tmp_path: Path) -> None:
    Outbox(tmp_path).put(rollout_events()[:1], "web")
    leftover = tmp_path / "web" / ".tmp-000000000002-x.json"
    leftover.write_text("{")
    outbox = Outbox(tmp_path)
    assert not leftover.exists()
    assert len(outbox.pending()) == 1


def test_file_sink_appends_structured_cloudevents(tmp_path: Path) -> None:
    path = tmp_path / "ci" / "events.jsonl"
    outbox = Outbox(tmp_path / "outbox")
    events = abort_events()
    outbox.put(events, "web")
    report = Deliverer(outbox, FileSink(path)).deliver_due(T0)
    assert report.sent == len(events)
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(events)
    for line, ev in zip(lines, events, strict=True):
        parsed = from_structured_event(HTTPMessage(headers={"content-type": "application/cloudevents+json"}, body=line))
        assert parsed.get_id() == ev.id
        assert parsed.get_type() == ev.type.value
        assert parsed.get_subject() == ev.subject_id
        assert parsed.get_data() == ev.body


def test_file_sink_failure_is_temporary(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TemporaryError, match="cannot append"):
        FileSink(blocker / "events.jsonl").send(rollout_events()[0])


def test_outbox_files_are_private(tmp_path: Path) -> None:
    Outbox(tmp_path).put(rollout_events()[:1], "web")
    (path,) = (tmp_path / "web").glob("*.json")
    assert os.stat(path).st_mode & 0o077 == 0


# --------------------------------------------------------------------------- issue 11: hostile files, long outages


def _entry_with(path: Path, **changes: object) -> str:
    """The JSON text of the entry at ``path`` with top-level fields replaced (``None`` deletes one)."""
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


def _corrupt_variants(path: Path) -> dict[str, bytes]:
    good = json.loads(path.read_text())
    event_no_offset = {**good["event"], "timestamp": "2026-11-25T14:00:00"}
    return {
        "a JSON list": b"[1, 2, 3]",
        "a JSON string": b'"just a string"',
        "a JSON number": b"42",
        "attempts 1e999": _entry_with(path).replace('"attempts": 0', '"attempts": 1e999').encode(),
        "attempts -1": _entry_with(path, attempts=-1).encode(),
        "attempts true": _entry_with(path, attempts=True).encode(),
        "attempts as text": _entry_with(path, attempts="3").encode(),
        "nextAttemptAt without offset": _entry_with(path, nextAttemptAt="2026-11-25T14:00:00").encode(),
        "nextAttemptAt a number": _entry_with(path, nextAttemptAt=5).encode(),
        "event timestamp without offset": _entry_with(path, event=event_no_offset).encode(),
        "event a list": _entry_with(path, event=[1]).encode(),
        "event body a list": _entry_with(path, event={**good["event"], "body": ["ab"]}).encode(),
        "event type unknown": _entry_with(path, event={**good["event"], "type": "dev.cdevents.nope"}).encode(),
        "event id of another file": _entry_with(path, event={**good["event"], "id": "someone-else"}).encode(),
        "rolloutKey of another rollout": _entry_with(path, rolloutKey="api").encode(),
        "rolloutKey missing": _entry_with(path, rolloutKey=None).encode(),
        "lastError a dict": _entry_with(path, lastError={"a": 1}).encode(),
        "formatVersion 2": _entry_with(path, formatVersion=2).encode(),
        "not UTF-8": b'{"attempts": "\xff\xfe"}',
        "deeply nested": b"[" * 100_000 + b"]" * 100_000,
        "empty": b"",
    }


def _two_rollouts(tmp_path: Path) -> tuple[Outbox, list[CDEvent], list[CDEvent]]:
    outbox = Outbox(tmp_path)
    web = rollout_events()[:3]
    api = [CDEvent.from_json_dict({**e.to_json_dict(), "id": f"api-{e.id}"}) for e in abort_events()[:2]]
    outbox.put(web, "web")
    outbox.put(api, "api")
    return outbox, web, api


@pytest.mark.parametrize(
    "variant",
    [
        "a JSON list",
        "a JSON string",
        "a JSON number",
        "attempts 1e999",
        "attempts -1",
        "attempts true",
        "attempts as text",
        "nextAttemptAt without offset",
        "nextAttemptAt a number",
        "event timestamp without offset",
        "event a list",
        "event body a list",
        "event type unknown",
        "event id of another file",
        "rolloutKey of another rollout",
        "rolloutKey missing",
        "lastError a dict",
        "formatVersion 2",
        "not UTF-8",
        "deeply nested",
        "empty",
    ],
)
def test_every_corrupt_entry_is_an_outbox_corrupt_error_and_is_quarantined_by_delivery(
    tmp_path: Path, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, web, api = _two_rollouts(tmp_path)
    head = sorted((tmp_path / "web").glob("*.json"))[0]
    bad = _corrupt_variants(head)[variant]
    head.write_bytes(bad)

    with pytest.raises(OutboxCorruptError, match=head.name):
        outbox.entries(tmp_path / "web")
    with pytest.raises(OutboxCorruptError, match=head.name):
        outbox.pending("web")

    sink = RecordingSink()
    report = Deliverer(outbox, sink).deliver_due(T0)
    # the bad head is moved aside; the rest of its rollout and the other rollout still go out
    assert report == DeliveryReport(sent=len(web) - 1 + len(api), failed=0, pending=0, quarantined=1)
    assert [e.id for e in sink.received] == [e.id for e in api + web[1:]]
    assert not head.exists()
    assert (tmp_path / ".corrupt" / "web" / head.name).read_bytes() == bad
    assert any(r.levelname == "ERROR" and head.name in r.getMessage() for r in caplog.records)


def test_non_utf8_ledger_is_corrupt_for_readers_and_quarantined_by_delivery_and_put(tmp_path: Path) -> None:
    outbox, web, api = _two_rollouts(tmp_path)
    ledger = tmp_path / "web" / "delivered.log"
    ledger.write_bytes(b"\xff\xfe not utf-8\n")
    with pytest.raises(OutboxCorruptError, match=r"delivered\.log"):
        outbox.delivered_ids(tmp_path / "web")

    assert outbox.put(rollout_events()[3:4], "web") == 1  # put quarantines the ledger and goes on
    assert (tmp_path / ".corrupt" / "web" / "delivered.log").read_bytes() == b"\xff\xfe not utf-8\n"
    ledger.write_bytes(b"\xff\n")
    sink = RecordingSink()
    report = Deliverer(outbox, sink).deliver_due(T0)
    assert report == DeliveryReport(sent=len(web) + 1 + len(api), failed=0, pending=0, quarantined=1)
    assert (tmp_path / ".corrupt" / "web" / "delivered.log.1").read_bytes() == b"\xff\n"
    assert outbox.delivered_ids(tmp_path / "web") == {e.id for e in [*web, rollout_events()[3]]}


def _deliver_in_thread(deliverer: Deliverer) -> DeliveryReport:
    """Run one delivery pass with a deadline: a pass that blocks (on a FIFO) fails the test instead of hanging it."""
    result: list[DeliveryReport] = []
    worker = threading.Thread(target=lambda: result.append(deliverer.deliver_due(T0)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "delivery blocked"
    return result[0]


@pytest.mark.parametrize("where", ["entry", "ledger"])
def test_a_fifo_in_the_outbox_never_blocks_delivery(tmp_path: Path, where: str) -> None:
    outbox, web, api = _two_rollouts(tmp_path)
    fifo = tmp_path / "web" / ("000000000099-fifo.json" if where == "entry" else "delivered.log")
    os.mkfifo(fifo)
    sink = RecordingSink()
    report = _deliver_in_thread(Deliverer(outbox, sink))
    assert report == DeliveryReport(sent=len(web) + len(api), failed=0, pending=0, quarantined=1)
    assert stat.S_ISFIFO((tmp_path / ".corrupt" / "web" / fifo.name).lstat().st_mode)
    assert {e.id for e in sink.received} == {e.id for e in web + api}


def test_a_fifo_as_staged_events_is_quarantined_not_read(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    (tmp_path / ".staged").mkdir()
    os.mkfifo(tmp_path / ".staged" / "web.json")
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(outbox.recover_staged("web", "x")), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "recover_staged blocked on a FIFO"
    assert result == [0]
    assert stat.S_ISFIFO((tmp_path / ".corrupt" / ".staged" / "web.json").lstat().st_mode)


@pytest.mark.parametrize("content", [b'{"not": "a list"}', b"[1]", b'[{"id": "x", "body": []}]', b"\xff"])
def test_unreadable_staged_events_are_quarantined_and_nothing_is_stored(tmp_path: Path, content: bytes) -> None:
    outbox = Outbox(tmp_path)
    (tmp_path / ".staged").mkdir()
    (tmp_path / ".staged" / "web.json").write_bytes(content)
    assert outbox.recover_staged("web", "x") == 0
    assert (tmp_path / ".corrupt" / ".staged" / "web.json").read_bytes() == content
    assert outbox.count() == 0


def test_a_symlinked_entry_is_not_followed(tmp_path: Path) -> None:
    outbox, web, api = _two_rollouts(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_text((sorted((tmp_path / "web").glob("*.json"))[0]).read_text())
    link = tmp_path / "web" / "000000000099-link.json"
    link.symlink_to(outside)
    report = Deliverer(outbox, RecordingSink()).deliver_due(T0)
    assert report == DeliveryReport(sent=len(web) + len(api), failed=0, pending=0, quarantined=1)
    assert (tmp_path / ".corrupt" / "web" / link.name).is_symlink()


@pytest.mark.parametrize("attempts", [1024, 1025, 5000, 10**6, 10**30])
def test_backoff_never_overflows_after_a_long_outage(tmp_path: Path, attempts: int) -> None:
    deliverer = Deliverer(Outbox(tmp_path), RecordingSink(), base_delay=0.5, max_delay=60.0, rng=random.Random(3))
    assert 30.0 <= deliverer.backoff(attempts) <= 60.0


def test_an_event_failing_for_a_day_keeps_its_schedule(tmp_path: Path) -> None:
    outbox, sink = Outbox(tmp_path), RecordingSink()
    outbox.put(rollout_events()[:1], "web")
    (path,) = (tmp_path / "web").glob("*.json")
    path.write_text(_entry_with(path, attempts=5000))
    sink.down = True
    assert Deliverer(outbox, sink, rng=random.Random(1)).deliver_due(T0).failed == 1
    stored = json.loads(path.read_text())
    assert stored["attempts"] == 5001
    assert T0 + timedelta(seconds=30) <= datetime.fromisoformat(stored["nextAttemptAt"]) <= T0 + timedelta(seconds=60)


_LONG_KEYS = [
    "production." + "n" * 63 + "." + "r" * 253,  # env.namespace.rollout at Kubernetes' length limits
    "é" * 300,  # every character grows to %C3%A9
]


@pytest.mark.parametrize("key", _LONG_KEYS)
def test_long_rollout_keys_keep_every_file_name_under_255_bytes(tmp_path: Path, key: str) -> None:
    outbox, sink = Outbox(tmp_path), RecordingSink()
    events = rollout_events()
    outbox.stage(events, key)
    assert outbox.recover_staged(key, events[-1].id) == len(events)
    assert outbox.pending(key) == events
    sink.down = True
    Deliverer(outbox, sink).deliver_due(T0)  # writes the attempt back (a temp file next to the entry)
    names = [p.name for p in tmp_path.rglob("*")]
    assert max(len(n.encode()) for n in names) < 255
    sink.down = False
    assert Deliverer(outbox, sink).deliver_due(T0 + timedelta(hours=1)).sent == len(events)
    assert outbox.put(events, key) == 0, "the ledger is found again under the shortened name"


def test_a_shortened_directory_name_is_a_readable_prefix_and_the_sha256_of_the_key() -> None:
    key = "production." + "n" * 63 + "." + "r" * 253
    expected_prefix = "production%2E" + "n" * 50  # 63 encoded characters
    assert rollout_dir_name(key) == f"{expected_prefix}~{hashlib.sha256(key.encode()).hexdigest()}"
    assert rollout_dir_name("prod/shop/web") == "prod%2Fshop%2Fweb"


def test_long_keys_with_the_same_prefix_do_not_share_a_directory(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    first, second = "x" * 300 + "a", "x" * 300 + "b"
    events = rollout_events()
    outbox.put(events[:1], first)
    outbox.put(events[:1], second)
    assert outbox.pending(first) == events[:1]
    assert outbox.pending(second) == events[:1]
    assert outbox.count() == 2


def test_an_event_id_unfit_for_a_file_name_is_stored_under_a_hash(tmp_path: Path) -> None:
    outbox, sink = Outbox(tmp_path), RecordingSink()
    odd = CDEvent.from_json_dict({**rollout_events()[0].to_json_dict(), "id": "../a b/\n" + "z" * 300})
    assert outbox.put([odd], "web") == 1
    (path,) = (tmp_path / "web").glob("*.json")
    assert path.name == f"000000000001-~{hashlib.sha256(odd.id.encode()).hexdigest()}.json"
    assert Deliverer(outbox, sink).deliver_due(T0).sent == 1
    assert sink.received == [odd]
    assert outbox.put([odd], "web") == 0


class FailingSink:
    """Raises the given error for every event."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def send(self, ev: CDEvent) -> None:
        raise self.error


def test_sink_credentials_never_reach_last_error_and_it_is_capped(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.put(rollout_events()[:1], "web")
    message = "event sink https://bot:hunter2secret@sink.test/events?token=tok3nvalue refused: " + "x" * 5000
    Deliverer(outbox, FailingSink(TemporaryError(message))).deliver_due(T0)
    (path,) = (tmp_path / "web").glob("*.json")
    last_error = json.loads(path.read_text())["lastError"]
    assert "hunter2secret" not in last_error
    assert "tok3nvalue" not in last_error
    assert last_error.startswith("event sink https://***@sink.test/events?token=*** refused: xxx")
    assert len(last_error) == 2000
    assert last_error.endswith(" more characters)")


def test_a_permanent_sink_error_keeps_the_event_and_the_loop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path)
    events = rollout_events()[:2]
    outbox.put(events, "web")
    report = Deliverer(outbox, FailingSink(PermanentError("sink URL refused by httpx"))).deliver_due(T0)
    assert report == DeliveryReport(sent=0, failed=1, pending=2)
    assert json.loads(sorted((tmp_path / "web").glob("*.json"))[0].read_text())["attempts"] == 1
    assert [r.levelname for r in caplog.records if "not delivered" in r.getMessage()] == ["ERROR"]


def test_a_disk_error_in_one_rollout_does_not_stop_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outbox, web, api = _two_rollouts(tmp_path)
    original = Outbox.mark_delivered

    def full_disk_for_web(self: Outbox, entry: OutboxEntry) -> None:
        if entry.rollout_key == "web":
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, entry)

    monkeypatch.setattr(Outbox, "mark_delivered", full_disk_for_web)
    sink = RecordingSink()
    report = Deliverer(outbox, sink).deliver_due(T0)
    assert report == DeliveryReport(sent=len(api), failed=1, pending=len(web))


def test_an_outbox_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "outbox").write_text("")
    with pytest.raises(OutboxCorruptError, match="cannot be opened as a directory"):
        Outbox(tmp_path / "outbox")


def test_a_file_where_a_rollout_directory_belongs_is_quarantined_by_put(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    (tmp_path / "web").write_text("stray")
    assert outbox.put(rollout_events()[:1], "web") == 1
    assert outbox.pending("web") == rollout_events()[:1]
    assert (tmp_path / ".corrupt" / tmp_path.name / "web").read_text() == "stray"


def test_a_broken_outbox_directory_is_a_dependency_error_naming_it(tmp_path: Path) -> None:
    """The state directory's outbox replaced by a file (as a full or unmounted disk would
    break it): each call the reconciler makes says which directory and what it was doing,
    as a DependencyError the loop retries, never a bare OSError (an "internal error")."""
    directory = tmp_path / "outbox"
    outbox = Outbox(directory)
    events = rollout_events()
    outbox.put(events[:1], "web")
    directory.rename(tmp_path / "moved")
    directory.write_text("not a directory\n")
    calls = {
        "storing events of web": lambda: outbox.put(events[1:2], "web"),
        "staging events of web": lambda: outbox.stage(events[1:2], "web"),
        "unstaging events of web": lambda: outbox.unstage("web"),
        "reading pending events": lambda: outbox.pending("web"),
        "counting events": outbox.count,
    }
    for what, call in calls.items():
        with pytest.raises(DependencyError) as info:
            call()
        assert info.value.dependency is Dependency.STATE_DIR
        assert str(info.value).startswith(f"state directory unreachable: event outbox {directory}: {what}: "), (
            info.value
        )
