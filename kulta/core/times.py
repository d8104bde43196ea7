"""RFC 3339 times as the status stores them: one formatter, one parser.

Status times are UTC strings with a ``Z`` (``2026-11-25T14:00:00Z``) or ``""``
where a field is unset. ``parse_time`` reads any RFC 3339 offset;
``parse_status_time`` is the same parser for fields that may be unset.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time", "parse_status_time", "parse_time"]


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with a ``Z``; milliseconds only when not zero."""
    if moment.tzinfo is None:
        raise ValueError("status times must be timezone-aware")
    utc = moment.astimezone(UTC)
    base = utc.strftime("%Y-%m-%dT%H:%M:%S")
    millis = utc.microsecond // 1000
    return f"{base}.{millis:03d}Z" if millis else f"{base}Z"


def parse_time(text: str) -> datetime:
    """Inverse of ``format_time`` (accepts any RFC 3339 offset; naive means UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_status_time(text: str) -> datetime | None:
    """A status time, or ``None`` where the status leaves it unset (``""``)."""
    return parse_time(text) if text else None
