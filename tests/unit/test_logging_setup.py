"""configure_logging: JSON and text line formats, extras, and redaction of secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kulta import cli
from kulta.errors import ConfigError
from kulta.logging_setup import QUIET_LOGGERS, RedactingFilter, configure_logging

SECRET = "ghp_abcdefSECRET123456"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, quiet_level in quiet.items():
        logging.getLogger(name).setLevel(quiet_level)


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_standard_fields_and_extras() -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)

    logging.getLogger("kulta.app.loop").info(
        "step %d of %s done", 2, "web", extra={"rollout": "web", "namespace": "shop", "step": 2}
    )

    (line,) = lines(out)
    body = json.loads(line)
    assert body["message"] == "step 2 of web done"
    assert body["level"] == "INFO"
    assert body["logger"] == "kulta.app.loop"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["time"])
    assert (body["rollout"], body["namespace"], body["step"]) == ("web", "shop", 2)
    assert set(body) == {"time", "level", "logger", "message", "rollout", "namespace", "step"}


def test_json_standard_keys_win_and_odd_values_are_stringified() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    logging.getLogger("t").warning("hello", extra={"level": "fake", "workdir": Path("/var/cache/kulta")})
    body = json.loads(lines(out)[0])
    assert body["level"] == "WARNING"
    assert body["workdir"] == "/var/cache/kulta"


def test_json_exception_is_one_line_with_a_redacted_traceback() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    try:
        raise RuntimeError(f"clone of https://bot:{SECRET}@git.example/r.git failed")
    except RuntimeError:
        logging.getLogger("t").exception("sync failed")

    (line,) = lines(out)
    body = json.loads(line)
    assert "RuntimeError" in body["exception"]
    assert "https://***@git.example/r.git" in body["exception"]
    assert SECRET not in line


def test_text_format_is_one_readable_line_with_key_values() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", stream=out)

    logging.getLogger("kulta.adapters.pulumi").debug(
        "update done", extra={"rollout": "web", "reason": "weight 20 -> 40", "step": 3}
    )

    (line,) = lines(out)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z DEBUG   kulta\.adapters\.pulumi: update done "
        r'rollout=web reason="weight 20 -> 40" step=3',
        line,
    )


def test_level_filters_records() -> None:
    out = io.StringIO()
    configure_logging("WARNING", stream=out)
    logging.getLogger("t").info("hidden")
    logging.getLogger("t").warning("shown")
    assert [line.split(": ", 1)[1] for line in lines(out)] == ["shown"]


def test_reconfiguring_replaces_our_handler_only() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(json=True, stream=second)
    logging.getLogger("t").info("once")
    assert first.getvalue() == ""
    assert json.loads(lines(second)[0])["message"] == "once"


def test_unknown_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--log-level: 'LOUD'"):
        configure_logging("LOUD")


@pytest.mark.parametrize("json_mode", [False, True])
@pytest.mark.parametrize(
    "message",
    [
        f"fetch https://x-access-token:{SECRET}@github.com/org/r.git failed",
        f"sending Authorization: Bearer {SECRET}",
        f"config token={SECRET}",
        f"-c http.extraHeader=Authorization: Basic {SECRET}",
    ],
)
def test_secrets_in_messages_are_redacted(message: str, json_mode: bool) -> None:
    out = io.StringIO()
    configure_logging(json=json_mode, stream=out)
    logging.getLogger("t").error(message)
    assert SECRET not in out.getvalue()
    assert "***" in out.getvalue()


@pytest.mark.parametrize("json_mode", [False, True])
def test_secrets_in_args_and_extras_are_redacted(json_mode: bool) -> None:
    out = io.StringIO()
    configure_logging(json=json_mode, stream=out)
    logging.getLogger("t").info(
        "remote %s", f"https://u:{SECRET}@h/r.git", extra={"repo": f"https://u:{SECRET}@h/r.git"}
    )
    text = out.getvalue()
    assert SECRET not in text
    assert text.count("https://***@h/r.git") == 2


# --------------------------------------------------------------------------- issue 11


def _query_prometheus(query: str) -> None:
    """One real httpx request (answered in-process), as the Prometheus provider makes it."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "success"}))
    with httpx.Client(transport=transport) as client:
        client.get("http://prometheus.test:9090/api/v1/query", params={"query": query})


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
@pytest.mark.parametrize("json_mode", [False, True])
def test_http_request_lines_with_queries_are_never_logged(level: str, json_mode: bool) -> None:
    out = io.StringIO()
    configure_logging(level, json=json_mode, stream=out)
    _query_prometheus(f'sum(rate(x{{api_key="{SECRET}"}}[5m]))')
    logging.getLogger("kulta.adapters.prometheus").info("metric done")
    text = out.getvalue()
    assert SECRET not in text
    assert "prometheus.test" not in text
    assert "metric done" in text  # the handler does write INFO lines


def test_http_library_records_below_warning_are_dropped_even_if_their_level_is_lowered_again() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", stream=out)
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    logging.getLogger("httpcore.connection").setLevel(logging.DEBUG)
    _query_prometheus(f"up{{token='{SECRET}'}}")
    logging.getLogger("httpx").warning("connection pool is full")
    assert [line.split(": ", 1)[1] for line in lines(out)] == ["connection pool is full"]


@pytest.mark.parametrize("json_mode", [False, True])
def test_dict_and_list_extras_are_redacted_inside(json_mode: bool) -> None:
    out = io.StringIO()
    configure_logging(json=json_mode, stream=out)
    logging.getLogger("t").warning(
        "request failed",
        extra={
            "request": {"url": f"https://u:{SECRET}@h/x", "headers": {"Authorization": f"Bearer {SECRET}"}},
            "argv": [f"token={SECRET}", 3],
        },
    )
    text = out.getvalue()
    assert SECRET not in text
    if json_mode:
        body = json.loads(text)
        assert body["request"] == {"url": "https://***@h/x", "headers": {"Authorization": "***"}}
        assert body["argv"] == ["token=***", 3]


def test_an_extra_named_like_a_secret_is_masked_whole() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    logging.getLogger("t").warning("auth", extra={"token": SECRET, "password": 123456, "rollout": "web"})
    body = json.loads(out.getvalue())
    assert (body["token"], body["password"], body["rollout"]) == ("***", "***", "web")


def test_a_long_message_is_capped_at_2000_characters() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    logging.getLogger("t").warning("body: %s", "z" * 10_000)
    message = json.loads(out.getvalue())["message"]
    # "body: " + 1970 z's + "… (8030 more characters)" = 2000 characters
    assert message == "body: " + "z" * 1970 + "… (8030 more characters)"


def test_a_message_whose_arguments_do_not_fit_is_still_rendered_redacted() -> None:
    # Called directly: under pytest its own capture handler would see (and choke on) the record first.
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "remote %d", (f"https://u:{SECRET}@h/r",), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == (
        "remote %d (log arguments ('https://***@h/r',) do not fit the message: "
        "%d format: a real number is required, not str)"
    )


@pytest.mark.parametrize("level", ["bogus", "LOUD", ""])
def test_cli_bogus_log_level_is_a_clean_error_naming_the_valid_levels(
    level: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--log-level", level, "validate", "nothing.yaml"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: --log-level: {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL\n"
    assert captured.out == ""


def test_log_level_is_case_insensitive() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    logging.getLogger("t").info("shown")
    assert lines(out)[0].endswith("t: shown")
