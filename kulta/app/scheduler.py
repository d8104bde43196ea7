"""A work queue of rollouts, each due at its own time (Kubernetes' "requeue after").

The loop does not walk every rollout in lock-step passes: each rollout is
reconciled when it is due (a pause ends, a measurement is due, a retry after a
failure, or at the latest one poll interval after its last turn), by one of a
bounded number of workers. A rollout that waits holds no worker, and a rollout
with many steps in a row yields its worker after a few updates, so one busy
rollout cannot starve the others. Ties go to the rollout that has waited
longest (first in, first out).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from datetime import datetime

__all__ = ["WorkQueue"]


class WorkQueue:
    """Keys with due times; ``pop_due`` hands out the earliest due key not in progress."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str]] = []
        self._due: dict[str, datetime] = {}
        self._busy: set[str] = set()
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def schedule(self, key: str, due: datetime) -> None:
        """Make ``key`` due at ``due``, or earlier if it already is."""
        with self._lock:
            current = self._due.get(key)
            if current is not None and current <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))

    def forget(self, keys: set[str]) -> None:
        """Drop every key not in ``keys`` (rollouts no longer in Git)."""
        with self._lock:
            for key in set(self._due) - keys:
                del self._due[key]

    def pop_due(self, now: datetime) -> str | None:
        """The earliest key due by ``now`` that is not being worked on (marked busy)."""
        with self._lock:
            skipped: list[tuple[datetime, int, str]] = []
            found = None
            while self._heap and self._heap[0][0] <= now:
                due, seq, key = heapq.heappop(self._heap)
                if self._due.get(key) != due:
                    continue  # superseded by an earlier schedule, or forgotten
                if key in self._busy:
                    skipped.append((due, seq, key))
                    continue
                del self._due[key]
                self._busy.add(key)
                found = key
                break
            for item in skipped:
                heapq.heappush(self._heap, item)
            return found

    def done(self, key: str) -> None:
        with self._lock:
            self._busy.discard(key)

    def next_due(self) -> datetime | None:
        with self._lock:
            live = [due for due, _, key in self._heap if self._due.get(key) == due and key not in self._busy]
            return min(live) if live else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._due)
