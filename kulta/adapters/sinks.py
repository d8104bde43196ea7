"""Where CDEvents go: CloudEvents over HTTP, or a JSON-lines file.

CDEvents travel as CloudEvents (the CDEvents CloudEvents binding): the CloudEvent
``id``/``source``/``type``/``time`` mirror ``context.id``/``source``/``type``/
``timestamp``, ``subject`` is ``subject.id``, and the data is the whole CDEvent
JSON. The CloudEvents SDK (2.x, ``cloudevents.core``) does the encoding, httpx
the transport. Binary mode (``ce-*`` headers, CDEvent as the body) is the
default because routers can filter on headers without parsing bodies;
structured mode (``application/cloudevents+json``) is there for sinks that want
one self-contained document. A sink signals "try again later" with
``TemporaryError`` so the outbox keeps the event; the auth header value is read
from an environment variable and never logged.

Configuration is checked when it is built, so ``kulta run`` stops at start-up
instead of at the first delivery: the URL (``validate_sink_url``: http or
https, a host, a port in range, parseable by httpx), the auth header name (an
HTTP token) and its value (visible ASCII, no line breaks). At send time every
exception httpx can raise becomes ``TemporaryError`` (timeouts, connection and
remote protocol errors: the sink may come back) or ``PermanentError`` (a
request httpx refuses to build: retrying the same request cannot help); the
message names the URL with its credentials masked and never carries the auth
header value or the URL's password.
"""

from __future__ import annotations

import base64
import enum
import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import unquote

import httpx
from cloudevents.core.bindings.http import HTTPMessage, to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from kulta.core.events import CDEvent
from kulta.errors import ConfigError, PermanentError, TemporaryError
from kulta.redact import MESSAGE_LIMIT, redact_url, safe_text

__all__ = [
    "CDEVENT_CONTENT_TYPE",
    "EVENTS_FILE_FLAG",
    "SINK_URL_FLAG",
    "EventSink",
    "FileSink",
    "HttpSink",
    "SinkConfig",
    "SinkMode",
    "encode",
    "to_cloudevent",
    "validate_events_file",
    "validate_sink_url",
]

log = logging.getLogger(__name__)

#: ``datacontenttype`` of a CDEvent carried as CloudEvent data.
CDEVENT_CONTENT_TYPE = "application/json"
_CLOUDEVENTS_SPEC_VERSION = "1.0"
SINK_URL_FLAG = "--sink-url"
_AUTHORIZATION = "authorization"
EVENTS_FILE_FLAG = "--events-file"
_SINK_SCHEMES = ("http", "https")
_MAX_PORT = 65535
#: RFC 9110 token: what an HTTP header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A header value httpx and h11 accept: visible ASCII, spaces and tabs (no CR, LF, NUL).
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")
_URL_FIX = (
    "give an http:// or https:// URL with a host, e.g. https://events.example.com/cdevents "
    "(percent-encode '/', '@' and ':' inside a user name or password)"
)


def _url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a sink URL, or None. httpx's own detail is left out when the URL has userinfo."""
    if not url.strip():
        return "is empty"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as err:
        has_userinfo = "@" in url
        return "cannot be parsed" if has_userinfo else f"cannot be parsed ({safe_text(str(err), limit=200)})"
    if parsed.scheme not in _SINK_SCHEMES:
        return f"has scheme {parsed.scheme or 'none'!r}, not http or https"
    if not parsed.host:
        return "has no host"
    if parsed.port is not None and not 0 < parsed.port <= _MAX_PORT:
        return f"has port {parsed.port}, outside 1..{_MAX_PORT}"
    return None


def validate_sink_url(url: str, flag: str = SINK_URL_FLAG) -> str:
    """Return ``url`` if it can receive CDEvents; else ``ConfigError`` naming ``flag``, the problem and the fix.

    The URL is shown with its credentials masked (``kulta.redact.redact_url``).
    """
    problem = _url_problem(url)
    if problem is not None:
        raise ConfigError(f"{flag} {redact_url(url)!r} {problem}; {_URL_FIX}")
    return url


def validate_events_file(path: Path, flag: str = EVENTS_FILE_FLAG) -> Path:
    """Return ``path`` unless it names an existing directory (events are appended to a file)."""
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; give a file path such as {path / 'events.jsonl'}")
    return path


class SinkMode(enum.Enum):
    """CloudEvents HTTP content modes."""

    BINARY = "binary"
    STRUCTURED = "structured"


@dataclass(frozen=True)
class SinkConfig:
    """HTTP sink settings. ``auth_header_env`` names the env var holding the header value.

    Checked when built: a bad ``url`` (``--sink-url``), header name or timeout
    is a ``ConfigError``.
    """

    url: str
    mode: SinkMode = SinkMode.BINARY
    auth_header_env: str | None = None
    auth_header_name: str = "Authorization"
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        validate_sink_url(self.url)
        if not _HEADER_NAME.fullmatch(self.auth_header_name):
            raise ConfigError(f"event sink: auth header name {self.auth_header_name!r} is not an HTTP header name")
        if not self.timeout_seconds > 0:
            raise ConfigError(f"event sink: timeout {self.timeout_seconds!r} must be a positive number of seconds")
        if self.auth_header_env and self.auth_header_name.lower() == _AUTHORIZATION and _userinfo_parts(self.url):
            # httpx would silently replace the header with Basic credentials made from the URL
            raise ConfigError(
                f"{SINK_URL_FLAG} {redact_url(self.url)!r}: give the credentials either in the URL or in "
                f"{self.auth_header_env} (--sink-auth-env), not both"
            )


class EventSink(Protocol):
    """Something that accepts one event or raises ``TemporaryError``."""

    def send(self, ev: CDEvent) -> None: ...


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if parsed.tzinfo is None:
        raise ValueError(f"CDEvent timestamp {value!r} has no UTC offset")
    return parsed


def to_cloudevent(ev: CDEvent) -> CloudEvent:
    """The CloudEvent carrying ``ev`` per the CDEvents CloudEvents binding."""
    attributes = {
        "specversion": _CLOUDEVENTS_SPEC_VERSION,
        "id": ev.id,
        "source": ev.source,
        "type": ev.type.value,
        "subject": ev.subject_id,
        "time": _parse_time(ev.timestamp),
        "datacontenttype": CDEVENT_CONTENT_TYPE,
    }
    return CloudEvent(attributes=attributes, data=dict(ev.to_json_dict()["body"]))


def encode(ev: CDEvent, mode: SinkMode) -> HTTPMessage:
    """Headers and body of the HTTP request that carries ``ev`` in ``mode``."""
    event = to_cloudevent(ev)
    if mode is SinkMode.STRUCTURED:
        return to_structured_event(event, JSONFormat())
    return to_binary_event(event, JSONFormat())


class HttpSink:
    """POSTs each event to ``config.url``; transport trouble is temporary, an unbuildable request permanent."""

    def __init__(self, config: SinkConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._auth: dict[str, str] = {}
        # quoted, so the ':' that follows in messages is not read as part of a masked query value
        self._display_url = repr(redact_url(config.url))
        self._secrets: list[str] = _url_secrets(config.url)
        if config.auth_header_env:
            value = os.environ.get(config.auth_header_env)
            if not value:
                raise ConfigError(
                    f"event sink: environment variable {config.auth_header_env} (auth header "
                    f"{config.auth_header_name}) is not set"
                )
            if not _HEADER_VALUE.fullmatch(value):
                raise ConfigError(
                    f"event sink: environment variable {config.auth_header_env} (auth header "
                    f"{config.auth_header_name}) holds characters an HTTP header cannot carry "
                    "(only visible ASCII and spaces; no line breaks)"
                )
            self._auth[config.auth_header_name] = value
            self._secrets.append(value)
        self._client = httpx.Client(timeout=config.timeout_seconds, transport=transport)

    def _failure(self, ev: CDEvent, what: str, err: BaseException) -> str:
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return safe_text(
            f"event sink {self._display_url}: {what} event {ev.id}: {detail}", self._secrets, limit=MESSAGE_LIMIT
        )

    def send(self, ev: CDEvent) -> None:
        try:
            message = encode(ev, self.config.mode)
        except (ValueError, TypeError) as err:
            raise PermanentError(self._failure(ev, "cannot encode", err)) from None
        headers = {**message.headers, **self._auth}
        try:
            response = self._client.post(self.config.url, content=message.body, headers=headers)
        except httpx.TimeoutException as err:
            raise TemporaryError(
                self._failure(ev, f"no answer within {self.config.timeout_seconds}s for", err)
            ) from None
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as err:
            raise PermanentError(self._failure(ev, "cannot build the request for", err)) from None
        except httpx.HTTPError as err:
            raise TemporaryError(self._failure(ev, "sending", err)) from None
        except (httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError) as err:
            raise PermanentError(self._failure(ev, "cannot build the request for", err)) from None
        except (UnicodeError, ValueError, TypeError) as err:
            # httpx encodes header values as ASCII; anything else is refused before a byte is sent
            raise PermanentError(self._failure(ev, "cannot build the request for", err)) from None
        if not 200 <= response.status_code < 300:
            raise TemporaryError(
                f"event sink {self._display_url}: event {ev.id} rejected with HTTP {response.status_code}"
            )
        log.debug("sent CDEvent %s (%s) to %s", ev.id, ev.type.value, self._display_url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _userinfo_parts(url: str) -> list[str]:
    """The literal userinfo of ``url`` and its user and password parts (to mask them in error text)."""
    _, mark, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if not mark or not at:
        return []
    user, _, password = userinfo.partition(":")
    return [userinfo, user, password]


def _url_secrets(url: str) -> list[str]:
    """What of ``url``'s credentials may be echoed: the userinfo as written and decoded, and the
    ``Basic`` value httpx builds from it (base64 of ``user:password``)."""
    parts = _userinfo_parts(url)
    if not parts:
        return []
    userinfo, user, password = parts
    basic = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return [p for p in [userinfo, unquote(userinfo), password, unquote(password), basic] if p]


class FileSink:
    """Appends one structured CloudEvent JSON per line, fsynced: for CI and offline use.

    A directory is refused when configured (``--events-file``). The file is
    opened non-blocking, so a FIFO without a reader is a ``TemporaryError``
    instead of a hang; writes then block as usual, and only regular files are
    fsynced (``/dev/stdout`` works).
    """

    def __init__(self, path: Path) -> None:
        self.path = validate_events_file(path)

    def send(self, ev: CDEvent) -> None:
        try:
            line = encode(ev, SinkMode.STRUCTURED).body + b"\n"
        except (ValueError, TypeError) as err:
            raise PermanentError(f"event file {self.path}: cannot encode event {ev.id}: {err}") from None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
            try:
                os.set_blocking(fd, True)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.fsync(fd)  # a pipe or terminal (/dev/stdout) cannot be fsynced
            finally:
                os.close(fd)
        except OSError as err:
            raise TemporaryError(f"event file {self.path}: cannot append event {ev.id}: {err}") from err
