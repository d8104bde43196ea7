"""What the two HTTP metric providers (``prometheus``, ``web``) share.

A client measures one metric per call and never raises: every failure becomes
an Error measurement. Both read an answer up to a byte bound and finish a
measurement the same way: its message redacted (header values and the run's
secret arguments too) and capped, its times from ``now`` and a monotonic clock,
one log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from kulta.core.times import format_time
from kulta.errors import KultaError
from kulta.model.analysis import Metric
from kulta.model.status import Measurement, MeasurementPhase
from kulta.redact import safe_text

__all__ = ["MAX_MESSAGE_LENGTH", "HttpMetricClient", "read_limited"]

log = logging.getLogger(__name__)

#: a measurement's message (an error text from a dependency) is cut to this length
MAX_MESSAGE_LENGTH = 500


def read_limited(response: httpx.Response, limit: int, too_large: Callable[[], KultaError]) -> bytes:
    """The body of ``response``, raising ``too_large()`` as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


class HttpMetricClient:
    """A ``MetricProvider`` over HTTP; ``transport`` is for tests, ``clock`` is monotonic."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._clock = clock

    def _finish(
        self,
        metric: Metric,
        now: datetime,
        started: float,
        phase: MeasurementPhase,
        value: str,
        message: str,
        secrets: list[str],
    ) -> Measurement:
        elapsed = max(0.0, self._clock() - started)
        safe = safe_text(message, secrets, MAX_MESSAGE_LENGTH)
        if phase is MeasurementPhase.ERROR:
            log.warning("metric %s: measurement error: %s", metric.name, safe)
        else:
            log.info("metric %s: %s (value %s)", metric.name, phase.value, value)
        return Measurement(
            metric=metric.name,
            phase=phase,
            started_at=format_time(now),
            finished_at=format_time(now + timedelta(seconds=elapsed)),
            value=value,
            message=safe,
        )
