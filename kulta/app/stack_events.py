"""Events kept in the stack until delivered: what replicas sharing rollouts share.

With ``--lease-namespace`` a rollout moves between replicas, and a replica's own
outbox (its disk) may go with it. So, as on the CI path
(``kulta.core.pending_events``), each update also records its CDEvents in the
stack output ``pendingEvents``; whichever replica turns the rollout next puts the
unacknowledged ones into its outbox (ids already delivered or pending there are
skipped), and once a stack's events have all reached the sink the replica sets
the stack tag ``kulta-events-acked`` to the last id, so the next update drops
them. An event is lost only if the backend is; after a takeover one may be sent
twice, with the same id (at least once, as the outbox promises).

``kulta events`` (the CI path) is the same ledger used once: load every stack,
deliver, acknowledge.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kulta.adapters.outbox import Outbox
from kulta.adapters.stacks import StackManager
from kulta.core.constants import OUTPUT_PENDING_EVENTS, TAG_EVENTS_ACKED
from kulta.core.events import CDEvent
from kulta.core.pending_events import carry_pending, read_pending, unacknowledged
from kulta.errors import KultaError, OutboxFullError

__all__ = ["LoadedEvents", "StackEventLedger"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedEvents:
    """What ``StackEventLedger.load`` found in one stack's ``pendingEvents``."""

    #: recorded and not acknowledged (sent or not)
    unacknowledged: int
    #: put into the outbox now (the others were there already, or it is full)
    queued: int
    #: entries that do not parse as CDEvents (skipped)
    unreadable: int


class StackEventLedger:
    """Per stack: the ``pendingEvents`` last recorded and the id acknowledged (thread-safe)."""

    def __init__(self, stacks: StackManager, outbox: Outbox) -> None:
        self.stacks = stacks
        self.outbox = outbox
        self._pending: dict[str, object] = {}
        self._acked: dict[str, str] = {}
        #: the last id this process put into the outbox, per stack
        self._queued: dict[str, str] = {}
        self._guard = threading.Lock()

    def read_acked(self, name: str) -> str:
        return self.stacks.get_tag(name, TAG_EVENTS_ACKED) or ""

    def load(self, name: str, outputs: Mapping[str, Any], acked: str) -> LoadedEvents:
        """At the start of a turn: remember the stack's events; queue those not yet acknowledged.

        Queued once per process: while the last unacknowledged id is the one this
        ledger queued before, the outbox (a directory scan) is not asked again. A
        full outbox is no reason to stop the rollout: the events stay in the stack
        (``outputs_for`` carries them) until the outbox can take them.
        """
        raw = outputs.get(OUTPUT_PENDING_EVENTS)
        read = read_pending(raw)
        if read.unreadable:
            log.warning(
                "%d unreadable entries in %s skipped", read.unreadable, OUTPUT_PENDING_EVENTS, extra={"stack": name}
            )
        with self._guard:
            self._pending[name] = raw
            self._acked[name] = acked
            queued_before = self._queued.get(name)
        events = unacknowledged(read.events, acked)
        if not events or events[-1].id == queued_before:
            return LoadedEvents(len(events), 0, read.unreadable)
        try:
            queued = self.outbox.put(list(events), rollout_key=name)
        except OutboxFullError as exc:
            log.warning("recorded events stay in the stack until the outbox drains: %s", exc, extra={"stack": name})
            return LoadedEvents(len(events), 0, read.unreadable)
        with self._guard:
            self._queued[name] = events[-1].id
        return LoadedEvents(len(events), queued, read.unreadable)

    def outputs_for(self, name: str, events: Sequence[CDEvent]) -> list[dict[str, Any]]:
        """The ``pendingEvents`` output of the next update: the unacknowledged ones, then ``events``."""
        with self._guard:
            previous, acked = self._pending.get(name), self._acked.get(name, "")
        raw, carried = carry_pending(previous, acked, events)
        if carried.dropped or carried.unreadable:
            log.warning(
                "pendingEvents: %d oldest dropped, %d unreadable",
                carried.dropped,
                carried.unreadable,
                extra={"stack": name},
            )
        return raw

    def recorded(self, name: str, outputs: Mapping[str, Any]) -> None:
        with self._guard:
            self._pending[name] = outputs.get(OUTPUT_PENDING_EVENTS)

    def acknowledge_delivered(self) -> dict[str, str]:
        """Set ``kulta-events-acked`` on each stack whose recorded events all reached the sink;
        returns the id acknowledged per stack.

        A tag that cannot be written is logged and tried again after the next delivery.
        """
        with self._guard:
            seen = dict(self._pending)
            acked = dict(self._acked)
        done: dict[str, str] = {}
        for name, raw in seen.items():
            events = unacknowledged(read_pending(raw).events, acked.get(name, ""))
            if not events:
                continue
            last = events[-1].id
            try:
                if self.outbox.pending(rollout_key=name):
                    continue
                self.stacks.set_tag(name, TAG_EVENTS_ACKED, last)
            except KultaError as exc:  # the outbox's disk or the backend: tried again next delivery
                log.warning("cannot acknowledge delivered events: %s", exc, extra={"stack": name})
                continue
            with self._guard:
                self._acked[name] = last
            done[name] = last
        return done
