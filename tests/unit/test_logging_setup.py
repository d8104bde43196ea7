"""configure_logging: JSON and text line formats, extras, and redaction of secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kulta.errors import ConfigError
from kulta.logging_setup import configure_logging

SECRET = "ghp_abcdefSECRET123456"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


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
