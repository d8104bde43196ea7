"""The events ledger kept in a stack (``pendingEvents`` + ``kulta-events-acked``).

Real parts: a file-backend stack updated by the Pulumi engine, its tags set by
the Pulumi CLI, KULTA's outbox on disk and a file sink. The events are those of
a worked canary (``tests.event_scenarios``); what the ledger must do is read
back from the stack, the outbox directory and the sink's file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pulumi
import pytest

from kulta.adapters.outbox import Deliverer, Outbox
from kulta.adapters.sinks import FileSink
from kulta.adapters.stacks import StackManager, StackSettings
from kulta.app.stack_events import LoadedEvents, StackEventLedger
from kulta.core.constants import OUTPUT_PENDING_EVENTS, TAG_EVENTS_ACKED
from kulta.core.events import CDEvent
from tests.event_scenarios import full_rollout_events

STACK = "dev.events.web"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def recorded(toolchain, tmp_path: Path) -> tuple[StackManager, list[CDEvent]]:
    """A stack whose last update recorded the first five events of a canary, none acknowledged."""
    events = full_rollout_events()[:5]
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state"))
    raw = [e.to_json_dict() for e in events]
    stacks.up(STACK, lambda: pulumi.export(OUTPUT_PENDING_EVENTS, raw), "record five events")
    return stacks, events


def test_a_full_outbox_leaves_the_events_in_the_stack_and_the_turn_goes_on(recorded, tmp_path: Path) -> None:
    stacks, events = recorded
    ids = [e.id for e in events]
    ledger = StackEventLedger(stacks, Outbox(tmp_path / "outbox", max_events=3))
    loaded = ledger.load(STACK, stacks.outputs(STACK), ledger.read_acked(STACK))
    assert loaded == LoadedEvents(unacknowledged=5, queued=0, unreadable=0)
    assert not list((tmp_path / "outbox").rglob("*.json"))
    # the next update carries all five, then its own
    later = full_rollout_events()[5:6]
    carried = ledger.outputs_for(STACK, later)
    assert [e["id"] for e in carried] == [*ids, later[0].id]
    # once the outbox can take them, the next turn queues them
    roomy = StackEventLedger(stacks, Outbox(tmp_path / "outbox", max_events=100))
    assert roomy.load(STACK, stacks.outputs(STACK), "").queued == 5


def test_events_are_queued_once_delivered_then_acknowledged_in_the_stack(recorded, tmp_path: Path) -> None:
    stacks, events = recorded
    ids = [e.id for e in events]
    outbox = Outbox(tmp_path / "outbox")
    ledger = StackEventLedger(stacks, outbox)
    assert ledger.load(STACK, stacks.outputs(STACK), "").queued == 5
    # the next turn (same process, same events) does not ask the outbox again:
    # with its directory replaced by a file, a scan would raise
    (tmp_path / "outbox").rename(tmp_path / "outbox.kept")
    (tmp_path / "outbox").write_text("not a directory\n")
    assert ledger.load(STACK, stacks.outputs(STACK), "") == LoadedEvents(5, 0, 0)
    (tmp_path / "outbox").unlink()
    (tmp_path / "outbox.kept").rename(tmp_path / "outbox")
    sink_file = tmp_path / "events.jsonl"
    report = Deliverer(outbox, FileSink(sink_file)).deliver_due(NOW)
    assert report.sent == 5
    assert ledger.acknowledge_delivered() == {STACK: ids[-1]}
    assert stacks.get_tag(STACK, TAG_EVENTS_ACKED) == ids[-1]
    assert [json.loads(line)["id"] for line in sink_file.read_text().splitlines()] == ids
    # acknowledged: a new process finds nothing to send, and the next update drops them
    fresh = StackEventLedger(stacks, Outbox(tmp_path / "outbox"))
    assert fresh.load(STACK, stacks.outputs(STACK), fresh.read_acked(STACK)) == LoadedEvents(0, 0, 0)
    assert fresh.outputs_for(STACK, []) == []
