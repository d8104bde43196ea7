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
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

import httpx
from cloudevents.core.bindings.http import HTTPMessage, to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from kulta.core.events import CDEvent
from kulta.errors import ConfigError, TemporaryError

__all__ = [
    "CDEVENT_CONTENT_TYPE",
    "EventSink",
    "FileSink",
    "HttpSink",
    "SinkConfig",
    "SinkMode",
    "encode",
    "to_cloudevent",
]

log = logging.getLogger(__name__)

#: ``datacontenttype`` of a CDEvent carried as CloudEvent data.
CDEVENT_CONTENT_TYPE = "application/json"
_CLOUDEVENTS_SPEC_VERSION = "1.0"


class SinkMode(enum.Enum):
    """CloudEvents HTTP content modes."""

    BINARY = "binary"
    STRUCTURED = "structured"


@dataclass(frozen=True)
class SinkConfig:
    """HTTP sink settings. ``auth_header_env`` names the env var holding the header value."""

    url: str
    mode: SinkMode = SinkMode.BINARY
    auth_header_env: str | None = None
    auth_header_name: str = "Authorization"
    timeout_seconds: float = 5.0


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
    """POSTs each event to ``config.url``; any non-2xx or transport error is temporary."""

    def __init__(self, config: SinkConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._auth: dict[str, str] = {}
        if config.auth_header_env:
            value = os.environ.get(config.auth_header_env)
            if not value:
                raise ConfigError(
                    f"event sink: environment variable {config.auth_header_env} (auth header "
                    f"{config.auth_header_name}) is not set"
                )
            self._auth[config.auth_header_name] = value
        self._client = httpx.Client(timeout=config.timeout_seconds, transport=transport)

    def send(self, ev: CDEvent) -> None:
        message = encode(ev, self.config.mode)
        headers = {**message.headers, **self._auth}
        try:
            response = self._client.post(self.config.url, content=message.body, headers=headers)
        except httpx.HTTPError as err:
            raise TemporaryError(
                f"event sink {self.config.url}: sending event {ev.id} failed: {type(err).__name__}: {err}"
            ) from err
        if not 200 <= response.status_code < 300:
            raise TemporaryError(
                f"event sink {self.config.url}: event {ev.id} rejected with HTTP {response.status_code}"
            )
        log.debug("sent CDEvent %s (%s) to %s", ev.id, ev.type.value, self.config.url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FileSink:
    """Appends one structured CloudEvent JSON per line, fsynced: for CI and offline use."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, ev: CDEvent) -> None:
        line = encode(ev, SinkMode.STRUCTURED).body + b"\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise TemporaryError(f"event file {self.path}: cannot append event {ev.id}: {err}") from err
