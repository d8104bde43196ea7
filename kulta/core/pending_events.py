"""The CI path's outbox: CDEvents carried in the stack's outputs until delivered.

``pulumi up`` from CI has no durable local disk (the runner is thrown away), so
the events of each update travel in the stack itself: the program appends the
update's events to the output ``pendingEvents``; ``kulta events``, run after
``pulumi up``, delivers them and sets the stack tag ``kulta-events-acked`` to the
last id it delivered; the next update drops what is acknowledged. Events are
recorded by the same update that records the status they describe, so an update
that fails records neither.

Pure: lists of JSON dicts in, lists of JSON dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kulta.core.events import CDEvent

__all__ = ["MAX_PENDING_EVENTS", "Pending", "carry_pending", "read_pending", "unacknowledged"]

#: a stack whose events nobody collects keeps at most this many (the newest);
#: about 2 KB each, so the outputs stay well under a megabyte
MAX_PENDING_EVENTS = 200


@dataclass(frozen=True)
class Pending:
    """Events still to deliver, and how many entries could not be read or were dropped."""

    events: tuple[CDEvent, ...]
    unreadable: int = 0
    dropped: int = 0


def read_pending(raw: object) -> Pending:
    """The events of a ``pendingEvents`` output; an entry that is not one is counted, not raised."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        return Pending((), unreadable=0 if raw in (None, "") else 1)
    events: list[CDEvent] = []
    unreadable = 0
    for item in raw:
        try:
            if not isinstance(item, Mapping):
                raise TypeError(type(item).__name__)
            events.append(CDEvent.from_json_dict(item))
        except (KeyError, TypeError, ValueError):
            unreadable += 1
    return Pending(tuple(events), unreadable=unreadable)


def unacknowledged(events: Sequence[CDEvent], acked_id: str) -> tuple[CDEvent, ...]:
    """``events`` after the one whose id is ``acked_id`` (all of them if it is not there)."""
    ids = [e.id for e in events]
    if acked_id and acked_id in ids:
        return tuple(events[ids.index(acked_id) + 1 :])
    return tuple(events)


def carry_pending(
    previous: object, acked_id: str, new: Sequence[CDEvent], limit: int = MAX_PENDING_EVENTS
) -> tuple[list[dict[str, Any]], Pending]:
    """The next ``pendingEvents`` output: the unacknowledged previous events, then ``new``.

    An id already pending is not added twice (the same update replayed). Beyond
    ``limit`` the oldest are dropped; the returned ``Pending`` says how many.
    """
    read = read_pending(previous)
    kept = list(unacknowledged(read.events, acked_id))
    seen = {e.id for e in kept}
    kept.extend(e for e in new if e.id not in seen)
    dropped = max(0, len(kept) - limit)
    kept = kept[dropped:]
    return [e.to_json_dict() for e in kept], Pending(tuple(kept), unreadable=read.unreadable, dropped=dropped)
