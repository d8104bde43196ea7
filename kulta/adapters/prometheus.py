"""Prometheus instant queries turned into Measurements, whatever the server does.

The analysis engine must be able to tell "the canary is bad" from "we could
not look": an unreachable, slow or confused Prometheus has to produce an Error
measurement (which counts towards ``consecutiveErrorLimit`` and can never
promote a rollout), not an exception that kills the reconcile pass and not a
value that looks like data. So ``PrometheusClient.measure`` never raises: every
failure — connection refused, timeout, HTTP error, non-JSON body, JSON of the
wrong shape, unsupported result type, a condition that cannot be evaluated —
comes back as a Measurement with phase Error and a message saying which.

Headers (often ``Authorization``) are treated as secrets: their values are
redacted from every message and never logged; queries are never logged either
because they may embed secret arguments.

Result shapes (``/api/v1/query``):

* ``vector``  -> ``result`` is a list of floats (one per series, ``[]`` when empty)
* ``scalar``  -> ``result`` is a float
* sample values ``"NaN"``, ``"+Inf"``, ``"-Inf"`` become float NaN / ±Inf
* ``matrix`` / ``string`` -> Error measurement (use an instant vector query)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

import httpx

from kulta.adapters.http_metric import MAX_MESSAGE_LENGTH, HttpMetricClient, read_limited
from kulta.core.assess import measurement_phase
from kulta.errors import KultaError
from kulta.model.analysis import Metric, PrometheusMetricProvider
from kulta.model.status import Measurement, MeasurementPhase
from kulta.redact import redact_text

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "MAX_RESPONSE_BYTES",
    "MAX_TIMEOUT_SECONDS",
    "QUERY_PATH",
    "MetricProvider",
    "PrometheusClient",
    "PrometheusResponseError",
    "check_headers",
    "format_value",
    "parse_query_response",
    "parse_sample_value",
]


QUERY_PATH = "/api/v1/query"
#: a query answer larger than this is refused (an instant query for a canary check is tiny).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
#: a longer ``timeout`` is waited this long: Go's largest time.Duration, as Argo computes it.
MAX_TIMEOUT_SECONDS = 9_223_372_036
RESULT_VECTOR = "vector"
RESULT_SCALAR = "scalar"
STATUS_SUCCESS = "success"


class MetricProvider(Protocol):
    """Anything that can take one measurement of a metric (Prometheus, or a test fake)."""

    def measure(
        self,
        metric: Metric,
        query: str,
        headers: Mapping[str, str],
        now: datetime,
        secrets: Sequence[str] = (),
    ) -> Measurement:
        """Run ``query`` for ``metric`` and judge it; never raises. ``secrets`` (secret
        argument values) never appear in the result or in a log line."""
        ...


class PrometheusResponseError(KultaError):
    """Prometheus answered, but not with a usable instant-query result."""


def parse_sample_value(raw: object) -> float:
    """A sample value as Prometheus encodes it (a string; ``"NaN"``, ``"+Inf"``, ``"-Inf"`` included).

    A number beyond the float64 range (``"1e400"``, a 400-digit JSON number) is
    refused, as Go's ``strconv.ParseFloat`` refuses it in Prometheus' client.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise PrometheusResponseError(f"sample value {_shown(raw)} is not a number")
    if isinstance(raw, str):
        text = raw.strip()
        if "_" in text:  # Python's float() accepts "1_0"; Prometheus never sends it
            raise PrometheusResponseError(f"sample value {_shown(raw)} is not a number")
        try:
            value = float(text)
        except ValueError:
            raise PrometheusResponseError(f"sample value {_shown(raw)} is not a number") from None
        if math.isinf(value) and "inf" not in text.lower():
            raise PrometheusResponseError(f"sample value {_shown(raw)} is out of the float64 range")
        return value
    try:
        return float(raw)
    except OverflowError:
        raise PrometheusResponseError(f"sample value {_shown(raw)} is out of the float64 range") from None


def _shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters (a sample may be 400 digits long)."""
    if isinstance(value, int) and value.bit_length() > 3 * limit:  # too long to show (or to repr at all)
        return f"<a whole number of {value.bit_length()} bits>"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_headers(headers: Mapping[str, str]) -> None:
    """Header names and values HTTP can carry: printable ASCII (and tab), never a line break.

    Go's net/http refuses such a header (``httpguts.ValidHeaderFieldValue``) with an
    error naming the field; so does KULTA, and the message never shows the value.
    """
    for name, value in headers.items():
        if not name or not all(33 <= ord(ch) <= 126 and ch != ":" for ch in name):
            raise PrometheusResponseError(f"header name {_shown(name, 40)} is not a valid HTTP field name")
        if not all(ch == "\t" or 32 <= ord(ch) <= 126 for ch in value):
            raise PrometheusResponseError(
                f"header {name!r} has a value that is not printable ASCII (a pasted quote, a line break?); "
                "the value is not shown"
            )


def _sample(pair: object) -> float:
    if not isinstance(pair, list) or len(pair) != 2:
        raise PrometheusResponseError(f"expected [timestamp, value], got {_preview(pair)}")
    return parse_sample_value(pair[1])


def parse_query_response(document: object) -> float | list[float]:
    """The ``result`` a condition sees, from a decoded ``/api/v1/query`` answer."""
    if not isinstance(document, dict):
        raise PrometheusResponseError(f"expected a JSON object, got {_preview(document)}")
    status = document.get("status")
    if status != STATUS_SUCCESS:
        kind = document.get("errorType", "unknown")
        raise PrometheusResponseError(f"query failed ({kind}): {document.get('error', _preview(document))}")
    data = document.get("data")
    if not isinstance(data, dict):
        raise PrometheusResponseError("answer has no 'data' object")
    result_type = data.get("resultType")
    result = data.get("result")
    if result_type == RESULT_VECTOR:
        if not isinstance(result, list):
            raise PrometheusResponseError("vector answer has no 'result' list")
        values: list[float] = []
        for series in result:
            if not isinstance(series, dict):
                raise PrometheusResponseError(f"vector element is not an object: {_preview(series)}")
            values.append(_sample(series.get("value")))
        return values
    if result_type == RESULT_SCALAR:
        return _sample(result)
    raise PrometheusResponseError(
        f"result type {result_type!r} is not supported; write an instant query that returns a vector or a scalar"
    )


def format_value(value: float | list[float]) -> str:
    """How a result is shown in ``Measurement.value``: ``0.99``, ``[0.99,0.5]``, ``NaN``, ``+Inf``."""
    if isinstance(value, list):
        return "[" + ",".join(_format_float(v) for v in value) + "]"
    return _format_float(value)


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _preview(value: object, limit: int = 120) -> str:
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _too_large() -> PrometheusResponseError:
    return PrometheusResponseError(f"Prometheus answer is larger than {MAX_RESPONSE_BYTES} bytes")


class PrometheusClient(HttpMetricClient):
    """``MetricProvider`` for ``provider.prometheus``: one GET /api/v1/query per measurement.

    ``transport`` is for tests that need a custom httpx transport; ``clock`` is
    a monotonic clock used only to compute ``finished_at`` from ``now``.
    """

    def measure(
        self,
        metric: Metric,
        query: str,
        headers: Mapping[str, str],
        now: datetime,
        secrets: Sequence[str] = (),
    ) -> Measurement:
        """Query, parse and judge; any failure is an Error measurement (see the module docstring).

        Header values and ``secrets`` (the run's secret argument values, which may be
        in ``query``) are redacted before anything is logged or returned.
        """
        started = self._clock()
        secrets = [v for v in (*headers.values(), *secrets) if v]
        try:
            check_headers(headers)
            result = self._query(metric, query, headers)
        except PrometheusResponseError as err:
            return self._finish(
                metric,
                now=now,
                started=started,
                phase=MeasurementPhase.ERROR,
                value="",
                message=str(err),
                secrets=secrets,
            )
        phase, message = measurement_phase(metric, result)
        return self._finish(
            metric, now=now, started=started, phase=phase, value=format_value(result), message=message, secrets=secrets
        )

    def _query(self, metric: Metric, query: str, headers: Mapping[str, str]) -> float | list[float]:
        provider = metric.provider
        if not isinstance(provider, PrometheusMetricProvider):
            raise PrometheusResponseError(f"metric {metric.name!r} is not a Prometheus metric")
        url = provider.address.rstrip("/") + QUERY_PATH
        timeout = float(min(provider.timeout_seconds, MAX_TIMEOUT_SECONDS))
        try:
            with (
                httpx.Client(timeout=timeout, transport=self._transport, follow_redirects=False) as client,
                client.stream("GET", url, params={"query": query}, headers=dict(headers)) as response,
            ):
                body = read_limited(response, MAX_RESPONSE_BYTES, _too_large)
                status = response.status_code
        except httpx.TimeoutException:
            raise PrometheusResponseError(
                f"Prometheus at {redact_text(provider.address)} did not answer within {provider.timeout_seconds}s"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise PrometheusResponseError(
                f"cannot query Prometheus at {redact_text(provider.address)}: {type(err).__name__}: {err}"
            ) from None
        except ValueError as err:  # e.g. UnicodeError while encoding the URL or the query
            raise PrometheusResponseError(
                f"cannot build a request for Prometheus at {redact_text(provider.address)}: {type(err).__name__}"
            ) from None
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            shown = _preview(body.decode("utf-8", "replace"))
            raise PrometheusResponseError(
                f"Prometheus answered HTTP {status} with a body that is not JSON: {shown}"
            ) from None
        if not 200 <= status < 300:
            detail = document.get("error", "") if isinstance(document, dict) else ""
            raise PrometheusResponseError(f"Prometheus answered HTTP {status}: {detail or _preview(document)}")
        return parse_query_response(document)
