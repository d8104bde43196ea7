"""The work queue: each rollout due at its own time, none handed to two workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kulta.app.scheduler import WorkQueue

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_keys_come_out_in_due_order_and_only_when_due():
    q = WorkQueue()
    q.schedule("b", at(5))
    q.schedule("a", at(1))
    q.schedule("c", at(9))
    assert q.pop_due(at(0)) is None
    assert q.pop_due(at(6)) == "a"
    assert q.pop_due(at(6)) == "b"
    assert q.pop_due(at(6)) is None
    assert q.next_due() == at(9)


def test_an_earlier_schedule_wins_and_a_later_one_does_not_postpone():
    q = WorkQueue()
    q.schedule("a", at(10))
    q.schedule("a", at(2))
    q.schedule("a", at(30))
    assert q.next_due() == at(2)
    assert q.pop_due(at(2)) == "a"
    assert q.pop_due(at(100)) is None  # handed out once


def test_a_busy_key_is_not_handed_out_again_until_done():
    q = WorkQueue()
    q.schedule("a", at(0))
    assert q.pop_due(at(0)) == "a"
    q.schedule("a", at(0))  # due again while a worker still has it
    assert q.pop_due(at(1)) is None
    q.done("a")
    assert q.pop_due(at(1)) == "a"


def test_equal_due_times_are_first_in_first_out_so_a_requeued_rollout_goes_last():
    q = WorkQueue()
    for key in ("a", "b", "c"):
        q.schedule(key, at(0))
    assert q.pop_due(at(0)) == "a"
    q.done("a")
    q.schedule("a", at(0))  # its turn ended with more work: due again at once, behind b and c
    assert [q.pop_due(at(0)), q.pop_due(at(0)), q.pop_due(at(0))] == ["b", "c", "a"]


def test_forgotten_keys_never_come_out():
    q = WorkQueue()
    q.schedule("gone", at(0))
    q.schedule("kept", at(1))
    q.forget({"kept"})
    assert q.pop_due(at(5)) == "kept"
    assert q.pop_due(at(5)) is None and len(q) == 0
