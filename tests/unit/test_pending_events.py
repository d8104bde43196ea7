"""The CI path's outbox in the stack outputs: carry, acknowledge, cap."""

from __future__ import annotations

from kulta.core.events import CDEvent, EventType
from kulta.core.pending_events import carry_pending, read_pending, unacknowledged


def event(n: int) -> CDEvent:
    return CDEvent(
        id=f"00000000-0000-0000-0000-{n:012d}",
        type=EventType.SERVICE_DEPLOYED,
        source="/kulta/dev",
        subject_id=f"demo/web-{n}",
        timestamp="2026-12-01T12:00:00Z",
        body={"context": {"id": f"00000000-0000-0000-0000-{n:012d}", "chainId": "c"}, "subject": {"id": "x"}},
    )


def ids(raw: list[dict[str, object]]) -> list[str]:
    return [str(e["id"]) for e in raw]


ID1, ID2, ID3, ID4 = (f"00000000-0000-0000-0000-{n:012d}" for n in range(1, 5))


def test_first_update_pends_its_events():
    raw, pending = carry_pending(None, "", [event(1), event(2)])
    assert ids(raw) == [ID1, ID2]
    assert pending.dropped == 0 and pending.unreadable == 0


def test_unacknowledged_events_are_kept_and_new_ones_appended():
    previous, _ = carry_pending(None, "", [event(1), event(2)])
    raw, _ = carry_pending(previous, "", [event(3)])
    assert ids(raw) == [ID1, ID2, ID3]


def test_acknowledged_events_are_dropped_up_to_and_including_the_acked_id():
    previous, _ = carry_pending(None, "", [event(1), event(2), event(3)])
    raw, _ = carry_pending(previous, ID2, [event(4)])
    assert ids(raw) == [ID3, ID4]


def test_an_acked_id_not_pending_keeps_everything():
    """The tag names an id of an older update, already dropped: nothing newer is lost."""
    previous, _ = carry_pending(None, "", [event(3)])
    raw, _ = carry_pending(previous, ID1, [])
    assert ids(raw) == [ID3]


def test_a_replayed_update_adds_no_duplicate():
    previous, _ = carry_pending(None, "", [event(1), event(2)])
    raw, _ = carry_pending(previous, "", [event(2)])
    assert ids(raw) == [ID1, ID2]


def test_the_cap_drops_the_oldest_and_says_how_many():
    previous, _ = carry_pending(None, "", [event(1), event(2)], limit=3)
    raw, pending = carry_pending(previous, "", [event(3), event(4)], limit=3)
    assert ids(raw) == [ID2, ID3, ID4]
    assert pending.dropped == 1


def test_events_round_trip_through_the_output_unchanged():
    raw, _ = carry_pending(None, "", [event(1)])
    assert read_pending(raw).events == (event(1),)
    assert raw[0]["body"] == {"context": {"id": ID1, "chainId": "c"}, "subject": {"id": "x"}}


def test_unreadable_entries_are_counted_not_raised():
    good, _ = carry_pending(None, "", [event(1)])
    read = read_pending([*good, "junk", {"id": "no type"}, 7])
    assert [e.id for e in read.events] == [ID1]
    assert read.unreadable == 3
    assert read_pending("a string").unreadable == 1
    assert read_pending(None).unreadable == 0 and read_pending(None).events == ()


def test_unacknowledged_of_a_list():
    evs = [event(1), event(2), event(3)]
    assert [e.id for e in unacknowledged(evs, ID1)] == [ID2, ID3]
    assert [e.id for e in unacknowledged(evs, ID3)] == []
    assert [e.id for e in unacknowledged(evs, "")] == [ID1, ID2, ID3]
