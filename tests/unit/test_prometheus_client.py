"""``PrometheusClient.measure`` never raises: hostile answers, headers and conditions are Error measurements.

Each case once raised out of ``measure`` (OverflowError, UnicodeEncodeError, ValueError)
or produced an unbounded message; the transport is an in-memory httpx.MockTransport.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from kulta.adapters.prometheus import MAX_MESSAGE_LENGTH, PrometheusClient
from kulta.model.analysis import Metric, PrometheusMetricProvider
from kulta.model.status import Measurement, MeasurementPhase

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKEN = "Bearer s3cr3t-t0ken"
#: the longest message: MAX_MESSAGE_LENGTH characters and the note saying how many were cut
LONGEST = MAX_MESSAGE_LENGTH + len("... (1000000 more characters)")


def vector_body(*raw_values: str) -> bytes:
    """An /api/v1/query answer whose sample values are written into the JSON as given."""
    series = ",".join(f'{{"metric":{{}},"value":[1700000000.5,{v}]}}' for v in raw_values)
    return f'{{"status":"success","data":{{"resultType":"vector","result":[{series}]}}}}'.encode()


class Server:
    """Answers every request with ``body`` (and ``status``) and counts the requests."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body = body
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, content=self.body)


def measure(
    server: Server,
    *,
    success: str | None = "result[0] > 0",
    headers: dict[str, str] | None = None,
    timeout: int = 30,
) -> Measurement:
    metric = Metric(
        name="m",
        provider=PrometheusMetricProvider(address="http://prom:9090", query="up", timeout_seconds=timeout),
        success_condition=success,
    )
    client = PrometheusClient(transport=httpx.MockTransport(server))
    return client.measure(metric, "up", headers or {}, NOW)


def test_a_usual_answer_is_judged() -> None:
    server = Server(vector_body('"0.5"'))
    measured = measure(server)
    assert (measured.phase, measured.value, measured.message) == (
        MeasurementPhase.SUCCESSFUL,
        "[0.5]",
        "successCondition 'result[0] > 0' met",
    )
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        # a 400-digit JSON number: float() raised OverflowError out of measure
        ("9" * 400, "sample value <a whole number of 1329 bits> is out of the float64 range"),
        # Prometheus' client reads values with strconv.ParseFloat, which refuses 1e400
        ('"1e400"', "sample value '1e400' is out of the float64 range"),
        ('"' + "9" * 400 + '"', "sample value '99999999999999999999999999999999999999999999999999999999999..."),
        ('"' + "x" * 5000 + '"', "sample value 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."),
    ],
)
def test_out_of_range_samples_are_error_measurements(raw: str, fragment: str) -> None:
    measured = measure(Server(vector_body(raw)))
    assert measured.phase is MeasurementPhase.ERROR
    assert measured.message.startswith(fragment)
    assert len(measured.message) < 120


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        # non-ASCII: httpx raised UnicodeEncodeError out of measure
        ("Authorization", "Bearer s3cr\u00e9t", "header 'Authorization' has a value that is not printable ASCII"),
        ("X-Scope", "\u2603", "header 'X-Scope' has a value that is not printable ASCII"),
        # a line break would split the header (Go's httpguts.ValidHeaderFieldValue refuses it)
        ("Authorization", "Bearer a\r\nX-Injected: 1", "header 'Authorization' has a value that is not printable"),
        ("Auth orization", "x", "header name 'Auth orization' is not a valid HTTP field name"),
        ("\u00c4uth", "x", "header name '\u00c4uth' is not a valid HTTP field name"),
        ("", "x", "header name '' is not a valid HTTP field name"),
    ],
)
def test_headers_http_cannot_carry_are_error_measurements_without_a_request(
    name: str, value: str, fragment: str
) -> None:
    server = Server(vector_body('"0.5"'))
    measured = measure(server, headers={name: value})
    assert measured.phase is MeasurementPhase.ERROR
    assert measured.message.startswith(fragment)
    assert value not in measured.message
    assert server.requests == []


def test_a_tab_and_an_empty_value_are_valid_header_values() -> None:
    server = Server(vector_body('"0.5"'))
    measured = measure(server, headers={"X-A": "a\tb", "X-Empty": ""})
    assert measured.phase is MeasurementPhase.SUCCESSFUL
    assert server.requests[0].headers["X-A"] == "a\tb"


@pytest.mark.parametrize(
    ("sample", "success", "fragment"),
    [
        # +Inf % 2 raised ValueError (math domain error); '%' is integer-only in expr-lang
        ('"+Inf"', "result[0] % 2 == 0", "'%' needs two integers (as in expr-lang), got a float and an integer"),
        ('"NaN"', "result[0] % 2 == 0", "'%' needs two integers"),
        # a 400-digit literal raised OverflowError comparing with the sample
        ('"1"', "result[0] < 1" + "0" * 400, "is out of the 64-bit range"),
        ('"1"', "int(result[0] * 1e300) > 0", "to a 64-bit integer"),
    ],
)
def test_conditions_that_raised_are_error_measurements(sample: str, success: str, fragment: str) -> None:
    measured = measure(Server(vector_body(sample)), success=success)
    assert measured.phase is MeasurementPhase.ERROR
    assert fragment in measured.message
    assert len(measured.message) <= LONGEST


def test_float_overflow_is_inf_as_in_go_not_an_error() -> None:
    """math.fsum raised OverflowError for 1e308 + 1e308; Go's float64 sum is +Inf."""
    measured = measure(Server(vector_body('"1e308"', '"1e308"')), success="isInf(sum(result), 1)")
    assert measured.phase is MeasurementPhase.SUCCESSFUL


def test_a_condition_over_the_budget_is_an_error_measurement_in_bounded_time() -> None:
    values = ",".join(['"0.5"'] * 1000)
    body = vector_body(*values.split(","))
    started = time.monotonic()
    measured = measure(Server(body), success="count(result, {count(result, {# > 0}) > 0}) > 0")
    assert time.monotonic() - started < 15
    assert measured.phase is MeasurementPhase.ERROR
    assert "evaluation budget exceeded: more than 1000000 steps" in measured.message


def test_a_huge_error_body_gives_a_capped_redacted_message() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": TOKEN + " " + "e" * 1_000_000})
    measured = measure(Server(body.encode(), status=400), headers={"Authorization": TOKEN})
    assert measured.phase is MeasurementPhase.ERROR
    assert measured.message.startswith("Prometheus answered HTTP 400: *** eeee")
    assert measured.message.endswith(" more characters)")
    assert len(measured.message) <= LONGEST
    assert TOKEN not in measured.message


def test_a_huge_timeout_is_waited_at_most_as_long_as_go_can() -> None:
    """10**400 seconds: float() raised OverflowError; Argo's Duration holds at most 9223372036 s."""
    server = Server(vector_body('"0.5"'))
    measured = measure(server, timeout=10**400)
    assert measured.phase is MeasurementPhase.SUCCESSFUL
    assert server.requests[0].extensions["timeout"]["read"] == 9_223_372_036.0


def test_a_secret_argument_echoed_in_an_error_never_reaches_the_log_or_the_measurement(caplog):
    # a Prometheus 400 that echoes the query, which holds a secretKeyRef argument's value
    secret = "pa55-in-the-query"
    server = Server(
        json.dumps({"status": "error", "errorType": "bad_data", "error": f"parse error in {secret}"}).encode(), 400
    )
    metric = Metric(
        name="m", provider=PrometheusMetricProvider(address="http://prom:9090", query="up", timeout_seconds=5)
    )
    client = PrometheusClient(transport=httpx.MockTransport(server))
    with caplog.at_level("DEBUG"):
        measurement = client.measure(metric, f'up{{token="{secret}"}}', {}, NOW, secrets=[secret])
    assert measurement.phase is MeasurementPhase.ERROR
    assert "parse error" in measurement.message and secret not in measurement.message
    # KULTA's own records (httpx's request lines are muted by kulta.logging_setup, tested there)
    ours = [r for r in caplog.records if r.name.startswith("kulta")]
    assert ours and all(secret not in r.getMessage() for r in ours)
