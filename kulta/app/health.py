"""Which rollouts cannot be reconciled right now, since when, and when KULTA tries again.

A dependency that does not answer (API server, Pulumi backend, Prometheus,
sink, Git) or any other failure of one rollout's pass is recorded here per
rollout: one line in the log when it starts and one when it ends, a retry
time with exponential backoff and jitter, and a snapshot that ``kulta run``
writes to ``<state-dir>/health.json`` for ``kulta status``. One rollout's
failure never stops the others or the loop.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from kulta.core.times import format_time
from kulta.redact import safe_text

__all__ = ["INTERNAL_ERROR", "Failure", "HealthBook", "retry_delay"]

log = logging.getLogger(__name__)

#: what a failure is attributed to when no dependency is named (a bug, a bad file)
INTERNAL_ERROR = "internal error"
#: the first retry after 2 s, doubling, never more than 5 minutes apart
BASE_DELAY = 2.0
MAX_DELAY = 300.0
#: at most this many characters of an error are kept
MESSAGE_LIMIT = 500


def retry_delay(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, capped, with ±25 % jitter.

    The exponent is capped before it is computed, so a day-long outage never overflows.
    """
    exponent = min(max(attempts - 1, 0), 16)
    base = min(MAX_DELAY, BASE_DELAY * 2.0**exponent)
    return base * (0.75 + 0.5 * rng())


@dataclass(frozen=True)
class Failure:
    """A rollout that failed its last attempts: why, since when, and the next try."""

    dependency: str
    since: datetime
    error: str
    attempts: int
    next_retry: datetime

    def describe(self) -> str:
        return (
            f"{self.dependency} failing since {self.since.strftime('%H:%M:%S')} "
            f"({self.attempts} attempt{'s' if self.attempts != 1 else ''}), "
            f"next retry {self.next_retry.strftime('%H:%M:%S')}: {self.error}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "dependency": self.dependency,
            "since": format_time(self.since),
            "error": self.error,
            "attempts": self.attempts,
            "nextRetry": format_time(self.next_retry),
        }


class HealthBook:
    """Failures per rollout (stack name); safe to use from the worker threads."""

    def __init__(self, rng: Callable[[], float] = random.random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._failures: dict[str, Failure] = {}

    def failed(self, key: str, dependency: str, error: str, now: datetime) -> Failure:
        """Record one more failed attempt; logs one line when a failure starts or changes cause."""
        text = safe_text(error, limit=MESSAGE_LIMIT)
        with self._lock:
            old = self._failures.get(key)
            attempts = (old.attempts if old else 0) + 1
            since = old.since if old is not None and old.dependency == dependency else now
            failure = Failure(
                dependency=dependency,
                since=since,
                error=text,
                attempts=attempts,
                next_retry=now + timedelta(seconds=retry_delay(attempts, self._rng)),
            )
            self._failures[key] = failure
        if old is None or old.dependency != dependency:
            log.warning("%s: %s", key, failure.describe(), extra={"stack": key, "dependency": dependency})
        else:
            log.info("%s: %s", key, failure.describe(), extra={"stack": key, "dependency": dependency})
        return failure

    def succeeded(self, key: str, now: datetime) -> None:
        with self._lock:
            old = self._failures.pop(key, None)
        if old is not None:
            seconds = int((now - old.since).total_seconds())
            log.warning(
                "%s: recovered after %ds (%s, %d attempts)",
                key,
                seconds,
                old.dependency,
                old.attempts,
                extra={"stack": key, "dependency": old.dependency},
            )

    def get(self, key: str) -> Failure | None:
        with self._lock:
            return self._failures.get(key)

    def snapshot(self) -> Mapping[str, Failure]:
        with self._lock:
            return dict(self._failures)

    def forget(self, keys: set[str]) -> None:
        """Drop rollouts no longer in Git."""
        with self._lock:
            for key in set(self._failures) - keys:
                del self._failures[key]
