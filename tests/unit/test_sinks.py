"""Event sinks: configuration checked when built, every send failure a KULTA error, no secret in messages."""

from __future__ import annotations

import base64
import io
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kulta import cli
from kulta.adapters.sinks import FileSink, HttpSink, SinkConfig, validate_events_file, validate_sink_url
from kulta.app.runner import RunOptions, _deliverer, run
from kulta.core.events import CDEvent
from kulta.errors import ConfigError, KultaError, PermanentError, TemporaryError
from kulta.logging_setup import QUIET_LOGGERS
from tests.event_scenarios import full_rollout, replay, stable_a

AUTH_ENV = "KULTA_TEST_SINK_AUTH"
AUTH_VALUE = "Bearer s3cr3tSinkToken"
URL_PASSWORD = "hunter2urlpass"
QUERY_TOKEN = "tok3nInQuery"
SECRET_URL = f"http://bot:{URL_PASSWORD}@sink.test/events?token={QUERY_TOKEN}"
SHOWN_URL = "'http://***@sink.test/events?token=***'"
TOKEN_URL = f"http://sink.test/events?token={QUERY_TOKEN}"


def an_event() -> CDEvent:
    return next(e for batch in replay(full_rollout(), stable_a()) for e in batch)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, quiet_level in quiet.items():
        logging.getLogger(name).setLevel(quiet_level)


# --------------------------------------------------------------------------- the URL, checked when configured


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1/events", "cannot be parsed (Invalid port: ':1')"),
        ("ftp://host/events", "has scheme 'ftp', not http or https"),
        ("events.example/cdevents", "has scheme 'none', not http or https"),
        ("http:///events", "has no host"),
        ("https://host:99999/events", "has port 99999, outside 1..65535"),
        ("http://host/ev\nents", "cannot be parsed (Invalid non-printable ASCII character in URL"),
        ("", "is empty"),
    ],
)
def test_an_unusable_sink_url_is_a_config_error_naming_the_flag_and_the_fix(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_sink_url(url)
    message = str(info.value)
    assert message.startswith(f"--sink-url {url!r} {problem}")
    assert message.endswith(
        "give an http:// or https:// URL with a host, e.g. https://events.example.com/cdevents "
        "(percent-encode '/', '@' and ':' inside a user name or password)"
    )


def test_an_unparseable_url_with_credentials_never_shows_them() -> None:
    # httpx reads 'p' of 'p/ss' as a port and says so: its detail is left out when there is userinfo
    with pytest.raises(ConfigError) as info:
        validate_sink_url("http://user:p/ss-secret@host/events")
    assert str(info.value).startswith("--sink-url 'http://***@host/events' cannot be parsed;")
    assert "ss-secret" not in str(info.value)
    assert "'p'" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/events",
        "https://events.example.com/cdevents",
        "http://[::1]:9000/e",
        f"https://bot:{URL_PASSWORD}@events.example.com/e?token={QUERY_TOKEN}",
        "HTTPS://EVENTS.EXAMPLE.COM/",
    ],
)
def test_usable_sink_urls_pass(url: str) -> None:
    assert validate_sink_url(url) == url


def test_sink_config_checks_url_header_name_and_timeout() -> None:
    with pytest.raises(ConfigError, match=r"^--sink-url 'http://\[::1/events' cannot be parsed"):
        SinkConfig(url="http://[::1/events")
    with pytest.raises(ConfigError, match="auth header name 'X Token' is not an HTTP header name"):
        SinkConfig(url="http://h/e", auth_header_name="X Token")
    with pytest.raises(ConfigError, match="timeout 0 must be a positive number of seconds"):
        SinkConfig(url="http://h/e", timeout_seconds=0)


@pytest.mark.parametrize("value", ["Bearer abc\r\nX-Injected: 1", "Bearer ünïcode", "Bearer \x7fdel"])
def test_an_auth_value_no_header_can_carry_is_a_config_error_that_hides_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUTH_ENV, value)
    with pytest.raises(ConfigError) as info:
        HttpSink(SinkConfig(url="http://h/e", auth_header_env=AUTH_ENV))
    assert AUTH_ENV in str(info.value)
    assert "holds characters an HTTP header cannot carry" in str(info.value)
    assert value not in str(info.value)


def test_an_events_file_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^--events-file {tmp_path} is a directory; give a file path"):
        FileSink(tmp_path)
    assert validate_events_file(tmp_path / "events.jsonl") == tmp_path / "events.jsonl"


# --------------------------------------------------------------------------- the runner fails at start-up


def test_the_runner_refuses_a_bad_sink_url_before_any_pass(tmp_path: Path) -> None:
    out = io.StringIO()
    options = RunOptions(repo=str(tmp_path / "repo"), state_dir=tmp_path / "state", sink_url="http://[::1/events")
    with pytest.raises(ConfigError, match=r"^--sink-url 'http://\[::1/events' cannot be parsed"):
        run(options, out)
    assert out.getvalue() == ""
    assert not (tmp_path / "state" / "outbox").exists()


def test_the_runner_builds_no_outbox_for_a_bad_events_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--events-file"):
        _deliverer(RunOptions(repo="r", state_dir=tmp_path / "state", events_file=tmp_path))
    assert not (tmp_path / "state" / "outbox").exists()


def test_kulta_run_with_a_bad_sink_url_prints_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--repo", str(tmp_path), "--once", "--state-dir", str(tmp_path / "s"), "--sink-url", "ftp://h/e"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --sink-url 'ftp://h/e' has scheme 'ftp', not http or https; give an http://")
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- every send failure is a KULTA error

# Every exception class httpx exports, and what a send turns it into. A new httpx
# class makes test_every_httpx_exception_is_classified fail until it is listed here.
_TEMPORARY = [
    "CloseError",
    "ConnectError",
    "ConnectTimeout",
    "DecodingError",
    "HTTPError",
    "HTTPStatusError",
    "NetworkError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "RequestError",
    "TimeoutException",
    "TooManyRedirects",
    "TransportError",
    "WriteError",
    "WriteTimeout",
]
_PERMANENT = [
    "CookieConflict",
    "InvalidURL",
    "LocalProtocolError",
    "RequestNotRead",
    "ResponseNotRead",
    "StreamClosed",
    "StreamConsumed",
    "StreamError",
    "UnsupportedProtocol",
]


def test_every_httpx_exception_is_classified() -> None:
    exported = {
        name
        for name in httpx.__all__
        if isinstance(getattr(httpx, name), type) and issubclass(getattr(httpx, name), Exception)
    }
    assert exported == set(_TEMPORARY) | set(_PERMANENT)


def _httpx_error(name: str, request: httpx.Request) -> Exception:
    cls = getattr(httpx, name)
    detail = f"failed for {request.url} with {request.headers.get('authorization', '')}"
    if name == "HTTPStatusError":
        return cls(detail, request=request, response=httpx.Response(500, request=request))
    if name in {"RequestNotRead", "ResponseNotRead", "StreamClosed", "StreamConsumed"}:
        return cls()
    if name in {"HTTPError", "InvalidURL", "CookieConflict", "StreamError"}:
        return cls(detail)
    return cls(detail, request=request)


def _raising(name: str) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise _httpx_error(name, request)

    return handler


@pytest.fixture
def auth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTH_ENV, AUTH_VALUE)


@pytest.mark.usefixtures("auth_env")
@pytest.mark.parametrize(
    ("name", "kind"),
    [(n, TemporaryError) for n in _TEMPORARY] + [(n, PermanentError) for n in _PERMANENT],
)
@pytest.mark.parametrize(
    ("url", "auth_var", "shown"),
    [
        # credentials in the URL: httpx sends them as "Basic <base64 of bot:password>"
        (SECRET_URL, None, SHOWN_URL),
        # a token in the query and the auth header from the environment
        (TOKEN_URL, AUTH_ENV, "'http://sink.test/events?token=***'"),
    ],
)
def test_every_httpx_exception_becomes_a_kulta_error_without_secrets(
    name: str, kind: type[KultaError], url: str, auth_var: str | None, shown: str
) -> None:
    config = SinkConfig(url=url, auth_header_env=auth_var)
    with HttpSink(config, transport=httpx.MockTransport(_raising(name))) as sink, pytest.raises(KultaError) as info:
        sink.send(an_event())
    assert type(info.value) is kind
    message = str(info.value)
    assert message.startswith(f"event sink {shown}: ")
    basic = base64.b64encode(f"bot:{URL_PASSWORD}".encode()).decode()
    for secret in (URL_PASSWORD, QUERY_TOKEN, "s3cr3tSinkToken", basic):
        assert secret not in message


@pytest.mark.usefixtures("auth_env")
def test_credentials_in_the_url_and_an_auth_header_env_are_refused_together() -> None:
    # httpx would silently send the URL's Basic credentials instead of the configured header
    with pytest.raises(ConfigError) as info:
        SinkConfig(url=SECRET_URL, auth_header_env=AUTH_ENV)
    assert str(info.value) == (
        f"--sink-url 'http://***@sink.test/events?token=***': give the credentials either in the URL or in "
        f"{AUTH_ENV} (--sink-auth-env), not both"
    )
    # another header name does not collide with the URL's Basic credentials
    assert SinkConfig(url=SECRET_URL, auth_header_env=AUTH_ENV, auth_header_name="X-Api-Key").url == SECRET_URL


def test_a_timeout_says_how_long_was_waited() -> None:
    config = SinkConfig(url="http://sink.test/events", timeout_seconds=2.5)
    transport = httpx.MockTransport(_raising("ReadTimeout"))
    with HttpSink(config, transport=transport) as sink, pytest.raises(TemporaryError) as info:
        sink.send(an_event())
    assert str(info.value).startswith(
        f"event sink 'http://sink.test/events': no answer within 2.5s for event {an_event().id}: ReadTimeout: "
    )


@pytest.mark.usefixtures("auth_env")
def test_a_header_value_httpx_cannot_encode_is_permanent_not_a_crash() -> None:
    # the start-up check refuses such a value; this is the guard at the call site behind it
    sink = HttpSink(
        SinkConfig(url="http://sink.test/e", auth_header_env=AUTH_ENV),
        transport=httpx.MockTransport(lambda request: httpx.Response(204)),
    )
    sink._auth["Authorization"] = "Bearer ünïcode-s3cr3t"
    with pytest.raises(PermanentError) as info:
        sink.send(an_event())
    assert str(info.value).startswith(
        f"event sink 'http://sink.test/e': cannot build the request for event {an_event().id}: UnicodeEncodeError: "
    )
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
def test_a_non_2xx_answer_is_temporary_and_names_the_masked_url(status: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    with HttpSink(SinkConfig(url=SECRET_URL), transport=transport) as sink, pytest.raises(TemporaryError) as info:
        sink.send(an_event())
    assert str(info.value) == f"event sink {SHOWN_URL}: event {an_event().id} rejected with HTTP {status}"


def test_an_event_that_cannot_be_encoded_is_permanent() -> None:
    naive = CDEvent.from_json_dict({**an_event().to_json_dict(), "timestamp": "2026-11-25T14:00:00"})
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    with (
        HttpSink(SinkConfig(url="http://sink.test/e"), transport=transport) as sink,
        pytest.raises(PermanentError) as info,
    ):
        sink.send(naive)
    assert "cannot encode event" in str(info.value)
    assert "has no UTC offset" in str(info.value)
    with pytest.raises(PermanentError, match="cannot encode event"):
        FileSink(Path(os.devnull)).send(naive)


# --------------------------------------------------------------------------- the file sink never hangs


def test_a_fifo_without_reader_is_temporary_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            FileSink(fifo).send(an_event())
        except TemporaryError as err:
            errors.append(err)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "FileSink blocked on a FIFO without reader"
    assert len(errors) == 1
    assert "cannot append event" in str(errors[0])


def test_a_pipe_with_a_reader_receives_the_line_without_fsync(tmp_path: Path) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        FileSink(fifo).send(an_event())
        line = os.read(reader, 1 << 20)
    finally:
        os.close(reader)
    assert line.endswith(b"\n")
    assert an_event().id.encode() in line
