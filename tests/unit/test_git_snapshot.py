"""A replica whose Git snapshot is older than the stack's last update waits (bounded)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kulta.core.git_snapshot import WAIT_LIMIT, behind_the_stack, keep_waiting

A, B = "a" * 40, "b" * 40


def test_a_recorded_commit_the_clone_lacks_is_a_snapshot_behind():
    assert behind_the_stack(recorded=B, snapshot=A, snapshot_holds_recorded=False) is True


def test_the_same_commit_or_one_the_clone_holds_is_not():
    assert behind_the_stack(recorded=A, snapshot=A, snapshot_holds_recorded=False) is False
    # held but not the snapshot: an older commit, or one force-pushed away later: decide as usual
    assert behind_the_stack(recorded=B, snapshot=A, snapshot_holds_recorded=True) is False


def test_a_stack_without_a_recorded_commit_never_waits():
    assert behind_the_stack(recorded="", snapshot=A, snapshot_holds_recorded=False) is False


def test_the_wait_is_bounded_to_five_minutes():
    first = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert timedelta(minutes=5) == WAIT_LIMIT
    assert keep_waiting(first, first + timedelta(minutes=4, seconds=59)) is True
    assert keep_waiting(first, first + timedelta(minutes=5)) is False
