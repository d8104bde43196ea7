"""Web metrics (``provider.web``): one HTTP request per measurement, its answer judged.

Semantics are Argo Rollouts' (metricproviders/webmetric/webmetric.go): ``Run``
sends ``method`` (GET by default) to ``url`` with ``headers``; ``jsonBody`` is sent
as JSON with ``Content-Type: application/json`` set after the user's headers;
a status outside 2xx is an Error; ``parseResponse`` decodes the body as JSON and
takes the first value ``jsonPath`` finds (``{$}``: the whole document), or, when
the body is not JSON, judges the raw body text as a string; ``NewWebMetricHttpClient``
waits ``timeoutSeconds`` (10 when 0) and skips TLS verification when ``insecure``.

KULTA differences, all towards "never promote on something it could not read":

* the answer is capped at ``MAX_RESPONSE_BYTES``; a larger one is an Error;
* the value handed to the conditions must be a number, a boolean, a string or a
  list of numbers (what ``kulta.core.conditions`` evaluates); a JSON object, ``null``
  or a mixed list is an Error naming what was selected (select a field with jsonPath);
* redirects are not followed (the request may carry credentials).

Like ``PrometheusClient.measure``, ``WebMetricClient.measure`` never raises: every
failure is an Error measurement whose message is redacted (header values, secret
arguments, anything credential-shaped) and capped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import httpx

from kulta.adapters.http_metric import HttpMetricClient, read_limited
from kulta.adapters.prometheus import PrometheusResponseError, check_headers, format_value
from kulta.core.assess import measurement_phase
from kulta.core.jsonpath import JsonPathError, parse_json_path, select
from kulta.errors import KultaError
from kulta.model.analysis import Metric, WebMetricProvider
from kulta.model.status import Measurement, MeasurementPhase
from kulta.redact import safe_text

__all__ = [
    "CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "MAX_RESPONSE_BYTES",
    "MAX_VALUE_LENGTH",
    "WebMetricClient",
    "WebMetricError",
    "judged_value",
]


#: a web metric's answer larger than this is refused (a health or score endpoint answers in bytes).
MAX_RESPONSE_BYTES = 1024 * 1024
#: ``Measurement.value`` is cut to this many characters (a plain-text answer may be a whole page).
MAX_VALUE_LENGTH = 200
CONTENT_TYPE = "Content-Type"
JSON_CONTENT_TYPE = "application/json"

WebValue = float | bool | str | list[float]


class WebMetricError(KultaError):
    """The endpoint could not be asked, or its answer cannot be judged."""


def judged_value(selected: object) -> WebValue:
    """The value the conditions see, from what jsonPath selected (see the module docstring)."""
    if isinstance(selected, bool | str):
        return selected
    if isinstance(selected, int | float):
        try:
            return float(selected)
        except OverflowError:
            raise WebMetricError("the selected number is beyond the float64 range") from None
    if isinstance(selected, list):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in selected):
            try:
                return [float(v) for v in selected]
            except OverflowError:
                raise WebMetricError("a selected number is beyond the float64 range") from None
        raise WebMetricError(
            "jsonPath selected a list that is not all numbers; select one element, e.g. {$.items[0].ok}"
        )
    if selected is None:
        raise WebMetricError("jsonPath selected null")
    raise WebMetricError(
        "jsonPath selected a JSON object; KULTA's conditions read numbers, booleans, strings and lists "
        "of numbers: select the field, e.g. {$.data.ok}"
    )


def _go_float(text: str) -> float:
    """A JSON number as Go's ``json.Unmarshal`` into ``any`` reads it: a float64, or an error
    beyond its range (then Argo judges the body as text, and so does KULTA)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is beyond the float64 range")
    return value


def _no_constant(text: str) -> float:
    """``NaN`` / ``Infinity`` are not JSON to Go: the body is judged as text."""
    raise ValueError(f"{text} is not a JSON value")


def _shown_value(value: WebValue) -> str:
    """``Measurement.value``: ``true``/``false``, the string itself, or numbers as Prometheus shows them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return format_value(value)


class WebMetricClient(HttpMetricClient):
    """``provider.web`` measurements; ``transport`` is for tests, ``clock`` is monotonic."""

    def measure(
        self,
        metric: Metric,
        query: str,
        headers: Mapping[str, str],
        now: datetime,
        secrets: Sequence[str] = (),
    ) -> Measurement:
        """Request, select, judge; never raises. ``query`` is unused (the URL is the provider's);
        ``headers`` are the rendered header values, ``secrets`` the run's secret argument values."""
        started = self._clock()
        hidden = [v for v in (*headers.values(), *secrets) if v]
        provider = metric.provider
        if not isinstance(provider, WebMetricProvider):
            return self._finish(metric, now, started, MeasurementPhase.ERROR, "", "not a web metric", hidden)
        try:
            check_headers(headers)
            value = self._value(provider, headers)
        except (WebMetricError, PrometheusResponseError, JsonPathError) as err:
            return self._finish(metric, now, started, MeasurementPhase.ERROR, "", str(err), hidden)
        phase, message = measurement_phase(metric, value)
        shown = safe_text(_shown_value(value), hidden, MAX_VALUE_LENGTH)
        return self._finish(metric, now, started, phase, shown, message, hidden)

    def _value(self, provider: WebMetricProvider, headers: Mapping[str, str]) -> WebValue:
        body = self._request(provider, headers)
        try:
            document = json.loads(body, parse_float=_go_float, parse_int=_go_float, parse_constant=_no_constant)
        except RecursionError:
            raise WebMetricError("the answer is JSON nested too deeply to read") from None
        except ValueError:
            try:
                return body.decode("utf-8")  # Argo: a body that is not JSON is judged as text
            except UnicodeDecodeError:
                raise WebMetricError("the answer is neither JSON nor UTF-8 text") from None
        selected = select(parse_json_path(provider.json_path), document)
        return judged_value(selected)

    def _request(self, provider: WebMetricProvider, headers: Mapping[str, str]) -> bytes:
        request_headers = dict(headers)
        content: bytes | None = None
        if provider.json_body is not None:
            content = provider.json_body.encode("utf-8")
            request_headers = {k: v for k, v in request_headers.items() if k.lower() != CONTENT_TYPE.lower()}
            request_headers[CONTENT_TYPE] = JSON_CONTENT_TYPE
        elif provider.body is not None:
            content = provider.body.encode("utf-8")
        timeout = float(provider.timeout_seconds if provider.timeout_seconds > 0 else 10)
        where = safe_text(provider.url, limit=120)
        try:
            with (
                httpx.Client(
                    timeout=timeout, transport=self._transport, follow_redirects=False, verify=not provider.insecure
                ) as client,
                client.stream(
                    provider.method.value, provider.url, headers=request_headers, content=content
                ) as response,
            ):
                status = response.status_code
                if not 200 <= status < 300:
                    raise WebMetricError(f"{where} answered HTTP {status} (Argo: received non 2xx response code)")
                body = read_limited(
                    response,
                    MAX_RESPONSE_BYTES,
                    lambda: WebMetricError(f"the answer of {where} is larger than {MAX_RESPONSE_BYTES} bytes"),
                )
        except httpx.TimeoutException:
            raise WebMetricError(f"{where} did not answer within {timeout:g}s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise WebMetricError(f"cannot reach {where}: {type(err).__name__}: {err}") from None
        except ValueError as err:  # e.g. UnicodeError while encoding the URL
            raise WebMetricError(f"cannot build a request for {where}: {type(err).__name__}") from None
        return body
