"""The durable outbox: write before send, order per rollout, backoff, bound, idempotent replay."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

from kulta.adapters.outbox import Deliverer, DeliveryReport, Outbox, OutboxCorruptError
from kulta.adapters.sinks import FileSink
from kulta.core.events import CDEvent
from kulta.errors import OutboxFullError, TemporaryError
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
        Deliverer(outbox, RecordingSink()).deliver_due(T0)


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
