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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kulta.adapters.outbox import Deliverer, DeliveryReport, Outbox
from kulta.adapters.stacks import StackManager
from kulta.app.stack_events import StackEventLedger

__all__ = ["EventsReport", "StackEvents", "deliver_recorded_events"]


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
    """One round of the ledger ``kulta run`` keeps with replicas: load, deliver, acknowledge."""
    ledger = StackEventLedger(stacks, outbox)
    loaded = {name: ledger.load(name, stacks.outputs(name), ledger.read_acked(name)) for name in names}
    found = any(events.unacknowledged for events in loaded.values())
    delivery = deliverer.deliver_due(now) if found else None
    acked = ledger.acknowledge_delivered()
    return EventsReport(
        tuple(
            StackEvents(name, events.unacknowledged, acked.get(name, ""), events.unreadable)
            for name, events in loaded.items()
        ),
        delivery,
    )
