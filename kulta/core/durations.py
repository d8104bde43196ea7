"""Duration text as Argo writes it in a Rollout or an analysis metric: ``90`` or ``1h30m5s``.

Pure and shared: ``kulta.spec.fields.parse_duration`` reads a literal from a file, and
``kulta.core.metric_fields`` reads a metric's ``interval`` or ``initialDelay`` once its
``{{args.*}}`` placeholders are rendered, so both accept exactly the same text.
"""

from __future__ import annotations

import re

__all__ = ["DURATION_BEYOND", "DURATION_HELP", "duration_seconds", "format_seconds"]

#: ASCII digits only: ``str.isdigit`` and ``\d`` also take ``²`` and Arabic-Indic digits.
_DIGITS = re.compile(r"[0-9]+")
_DURATION_PART = re.compile(r"([0-9]+)(h|m|s)")
_DURATION_UNITS = {"h": 3600, "m": 60, "s": 1}
#: what to write instead of a text that is not a duration.
DURATION_HELP = "use whole seconds (90) or a duration like 30s, 5m, 1h, 1h30m"
#: an int64 has at most 19 decimal digits; a duration's number with more is never converted
#: (Python refuses ``int()`` of more than 4300 digits).
_INT64_DIGITS = 19
#: a duration longer than any int64 of seconds.
DURATION_BEYOND = 1 << 64


def format_seconds(seconds: int) -> str:
    """``90`` -> ``1m30s``; ``3600`` -> ``1h``; ``0`` -> ``0s``."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join((f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""))


def _whole_number(digits: str) -> int:
    """``int(digits)``, or ``DURATION_BEYOND`` when it has more significant digits than an int64."""
    significant = digits.lstrip("0")
    return DURATION_BEYOND if len(significant) > _INT64_DIGITS else int(significant or "0")


def duration_seconds(text: str) -> int | None:
    """Seconds of ``90`` or ``1h30m5s`` (each unit once, any order), ASCII digits only; else ``None``.

    Any length is read (no ``int()`` of thousands of digits): a duration longer than an
    int64 of seconds is ``DURATION_BEYOND``.
    """
    if _DIGITS.fullmatch(text):
        return _whole_number(text)
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        return None
    units = [u for _, u in parts]
    if len(set(units)) != len(units):
        return None
    return min(DURATION_BEYOND, sum(_whole_number(n) * _DURATION_UNITS[u] for n, u in parts))
