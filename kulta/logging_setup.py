"""Configure KULTA's logs: one line per record, text for people or JSON for log pipelines.

Modules log with ``extra={"rollout": ..., "namespace": ..., "step": ...}``;
both formats carry those fields so a rollout's story can be filtered out of a
busy reconciler's output. Every record passes through ``RedactingFilter``
before it is written, so a credential that slipped into a message, an
argument, an extra field (also inside a dict or list) or a traceback is masked,
and every message is capped (see ``kulta.redact``).

The HTTP client libraries log each request line (with its query string) at
INFO/DEBUG; a Prometheus query can carry a secret analysis argument, and
queries are never logged. ``QUIET_LOGGERS`` are therefore held at WARNING
whatever ``--log-level`` says, and their records below WARNING are dropped by
the handler too, in case something lowers their level again.
"""

from __future__ import annotations

import datetime as dt
import json as jsonlib
import logging
import sys
from typing import Any, TextIO

from kulta.errors import ConfigError
from kulta.redact import MESSAGE_LIMIT, REDACTED, TRACEBACK_LIMIT, is_secret_key, redact_value, safe_text

__all__ = [
    "LEVELS",
    "QUIET_LOGGERS",
    "JsonFormatter",
    "QuietLibrariesFilter",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "record_extras",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Libraries that log request lines (URL and query) below WARNING: kept at WARNING.
QUIET_LOGGERS = ("httpx", "httpcore", "urllib3")
_HANDLER_MARK = "_kulta_handler"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("name", logging.INFO, "path", 1, "msg", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of ``record``, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _utc_time(record: logging.LogRecord) -> str:
    stamp = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _rendered_message(record: logging.LogRecord) -> str:
    """``msg % args``; a call whose arguments do not fit its format still yields a line saying so."""
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError) as err:
        return f"{record.msg!s} (log arguments {record.args!r} do not fit the message: {err})"


class RedactingFilter(logging.Filter):
    """Masks credentials in the message, extras, exception and stack text of each record, and caps them.

    The message is rendered (``msg % args``), redacted and capped once, so
    formatters and every later handler see only the safe text. Extras are
    walked (``kulta.redact.redact_value``): strings inside dicts and lists are
    redacted, an extra named like a secret (``token=...``) is masked whole.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = safe_text(_rendered_message(record), limit=MESSAGE_LIMIT)
        record.args = None
        for key, value in record_extras(record).items():
            setattr(record, key, REDACTED if is_secret_key(key) else redact_value(value, limit=MESSAGE_LIMIT))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = safe_text(record.exc_text, limit=TRACEBACK_LIMIT)
        if record.stack_info:
            record.stack_info = safe_text(record.stack_info, limit=TRACEBACK_LIMIT)
        return True


class QuietLibrariesFilter(logging.Filter):
    """Drops records below WARNING from ``QUIET_LOGGERS`` (request lines with URLs and queries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == name or record.name.startswith(f"{name}.") for name in QUIET_LOGGERS)


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    parts: list[str] = []
    if record.exc_info and not record.exc_text:
        record.exc_text = safe_text(formatter.formatException(record.exc_info), limit=TRACEBACK_LIMIT)
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the extras.

    The standard keys win over an extra of the same name; values that are not
    JSON types are written with ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = dict(record_extras(record))
        body.update(
            {
                "time": _utc_time(record),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
        )
        exception = _exception_text(self, record)
        if exception:
            body["exception"] = exception
        return jsonlib.dumps(body, default=str, ensure_ascii=False)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text == "" or any(ch.isspace() or ch in "=\"'" for ch in text):
        return jsonlib.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``2025-01-02T03:04:05.678Z INFO  kulta.app.loop: step 2 done rollout=web step=2``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc_time(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{k}={_text_value(v)}" for k, v in record_extras(record).items())
        if extras:
            line = f"{line} {extras}"
        exception = _exception_text(self, record)
        return f"{line}\n{exception}" if exception else line


def configure_logging(level: str = "INFO", json: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records to ``stream`` (stderr) as text or JSON lines, redacted.

    Calling it again replaces the handler it installed before (handlers added
    by others, like pytest's, are left alone). ``QUIET_LOGGERS`` stay at
    WARNING whatever ``level`` is. Returns the installed handler; an unknown
    ``level`` is a ``ConfigError`` naming the valid ones.
    """
    name = level.strip().upper()
    if name not in LEVELS:
        raise ConfigError(f"--log-level: {level!r} is not one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(QuietLibrariesFilter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(name)
    for quiet in QUIET_LOGGERS:
        logging.getLogger(quiet).setLevel(logging.WARNING)
    return handler
