"""``kulta events``: deliver the CDEvents that ``pulumi up`` (the CI path) recorded.

The CI program keeps each update's events in the stack output ``pendingEvents``
(``kulta.core.pending_events``). This command, run after ``pulumi up``, puts the
unacknowledged ones into the outbox, delivers them through the same sink code as
``kulta run`` (same ids, same order, same retries), and only when every event of
a stack has reached the sink sets the stack tag ``kulta-events-acked`` to the last
id. A retried CI step finds them acknowledged and sends nothing again; a failed
delivery leaves the tag where it was, so the next run sends them (at least once,
with stable ids a consumer can deduplicate on).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kulta.adapters.outbox import Deliverer, DeliveryReport, Outbox
from kulta.adapters.stacks import StackManager
from kulta.core.constants import OUTPUT_PENDING_EVENTS, TAG_EVENTS_ACKED
from kulta.core.pending_events import read_pending, unacknowledged

__all__ = ["EventsReport", "StackEvents", "deliver_recorded_events"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackEvents:
    """One stack: events found unacknowledged, and the id acknowledged after delivery ("" = none)."""

    stack: str
    found: int
    acked_id: str
    unreadable: int = 0


@dataclass(frozen=True)
class EventsReport:
    stacks: tuple[StackEvents, ...]
    delivery: DeliveryReport | None

    @property
    def complete(self) -> bool:
        """Every event found reached the sink (nothing left pending)."""
        return all(s.found == 0 or s.acked_id for s in self.stacks)


def deliver_recorded_events(
    stacks: StackManager, names: Sequence[str], outbox: Outbox, deliverer: Deliverer, now: datetime
) -> EventsReport:
    found: dict[str, list[str]] = {}
    unreadable: dict[str, int] = {}
    for name in names:
        acked = stacks.get_tag(name, TAG_EVENTS_ACKED) or ""
        read = read_pending(stacks.outputs(name).get(OUTPUT_PENDING_EVENTS))
        events = unacknowledged(read.events, acked)
        unreadable[name] = read.unreadable
        if read.unreadable:
            log.warning(
                "%d unreadable entries in %s skipped", read.unreadable, OUTPUT_PENDING_EVENTS, extra={"stack": name}
            )
        found[name] = [e.id for e in events]
        if events:
            outbox.put(list(events), rollout_key=name)
    delivery = deliverer.deliver_due(now) if any(found.values()) else None
    results: list[StackEvents] = []
    for name in names:
        ids = found[name]
        acked_id = ""
        if ids and not outbox.pending(rollout_key=name):
            acked_id = ids[-1]
            stacks.set_tag(name, TAG_EVENTS_ACKED, acked_id)
        results.append(StackEvents(name, len(ids), acked_id, unreadable[name]))
    return EventsReport(tuple(results), delivery)
