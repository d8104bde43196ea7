"""``WebMetricClient.measure`` against a real HTTP server on 127.0.0.1: Argo's web metric semantics
(metricproviders/webmetric/webmetric.go ``Run`` / ``parseResponse``) and KULTA's bounds.

Worked examples are Argo's docs/analysis/web.md: ``{"data": {"ok": true, "successPercent": 0.95}}``
with ``jsonPath: "{$.data.ok}"`` and ``successCondition: result == true``; a plain-text ``I am OK``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kulta.adapters.metric_providers import ProviderDispatcher
from kulta.adapters.web import MAX_RESPONSE_BYTES, WebMetricClient
from kulta.core.analysis_run import ResolvedArgs, render_metric
from kulta.model.analysis import Metric, PrometheusMetricProvider, WebMethod, WebMetricProvider
from kulta.model.status import Measurement, MeasurementPhase
from tests.unit.web_server import Answer, WebServer, serving

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ARGO_DOC = json.dumps({"data": {"ok": True, "successPercent": 0.95}}).encode()


@pytest.fixture
def server() -> Iterator[WebServer]:
    with serving() as running:
        yield running


def web_metric(
    url: str,
    *,
    success: str | None = "result == true",
    failure: str | None = None,
    json_path: str = "{$.data.ok}",
    **fields: object,
) -> Metric:
    provider = WebMetricProvider(url=url, json_path=json_path, **fields)  # type: ignore[arg-type]
    return Metric(name="web", provider=provider, success_condition=success, failure_condition=failure)


def measure(metric: Metric, headers: dict[str, str] | None = None, secrets: tuple[str, ...] = ()) -> Measurement:
    return WebMetricClient().measure(metric, "", headers or {}, NOW, secrets=secrets)


def test_argo_doc_example_ok_true_is_successful(server: WebServer) -> None:
    server.answers["/api/v1/measurement"] = Answer(ARGO_DOC)
    measured = measure(web_metric(server.url("/api/v1/measurement?service=web")))
    assert (measured.phase, measured.value, measured.message) == (
        MeasurementPhase.SUCCESSFUL,
        "true",
        "successCondition 'result == true' met",
    )
    (request,) = server.received
    assert (request.method, request.path, request.body) == ("GET", "/api/v1/measurement?service=web", b"")


def test_ok_false_is_failed(server: WebServer) -> None:
    server.answers["/m"] = Answer(b'{"data": {"ok": false}}')
    measured = measure(web_metric(server.url("/m")))
    assert (measured.phase, measured.value) == (MeasurementPhase.FAILED, "false")


@pytest.mark.parametrize(
    ("json_path", "success", "value", "phase"),
    [
        ("{$.data.successPercent}", "result >= 0.90", "0.95", MeasurementPhase.SUCCESSFUL),
        ("{.data.successPercent}", "result >= 0.99", "0.95", MeasurementPhase.FAILED),
        ("{$.items[1].errors}", "result < 5", "7", MeasurementPhase.FAILED),
        ("{$.items[-1].errors}", "result < 5", "1", MeasurementPhase.SUCCESSFUL),
        ("{$['error rate']}", "result < 0.05", "0.01", MeasurementPhase.SUCCESSFUL),
        ('{$["status"]}', 'result == "green"', "green", MeasurementPhase.SUCCESSFUL),
        ("{$.latencies}", "all(result, {# < 300})", "[120,250,310]", MeasurementPhase.FAILED),
    ],
)
def test_json_path_selects_the_value_conditions_see(
    server: WebServer, json_path: str, success: str, value: str, phase: MeasurementPhase
) -> None:
    document = {
        "data": {"ok": True, "successPercent": 0.95},
        "items": [{"errors": 0}, {"errors": 7}, {"errors": 1}],
        "error rate": 0.01,
        "status": "green",
        "latencies": [120, 250, 310],
    }
    server.answers["/m"] = Answer(json.dumps(document).encode())
    measured = measure(web_metric(server.url("/m"), success=success, json_path=json_path))
    assert (measured.phase, measured.value) == (phase, value)


def test_without_json_path_the_whole_document_is_the_result(server: WebServer) -> None:
    server.answers["/m"] = Answer(b"0.97")
    measured = measure(web_metric(server.url("/m"), success="result > 0.9", json_path="{$}"))
    assert (measured.phase, measured.value) == (MeasurementPhase.SUCCESSFUL, "0.97")


def test_a_plain_text_answer_is_a_string_result_as_in_argo(server: WebServer) -> None:
    server.answers["/health"] = Answer(b"I am OK", content_type="text/plain")
    measured = measure(web_metric(server.url("/health"), success='result == "I am OK"'))
    assert (measured.phase, measured.value) == (MeasurementPhase.SUCCESSFUL, "I am OK")


@pytest.mark.parametrize(
    ("body", "json_path", "success", "fragment"),
    [
        (b'{"data": {}}', "{$.data.ok}", "result == true", "$.data has no field 'ok'"),
        (b'{"data": [1]}', "{$.data[3]}", "result == 1", "$.data has 1 elements, [3] is out of range"),
        (b'{"data": 5}', "{$.data.ok}", "result == true", "$.data is not an object"),
        (ARGO_DOC, "{$.data}", "result == true", "jsonPath selected a JSON object"),
        (b'{"ok": null}', "{$.ok}", "result == true", "jsonPath selected null"),
        (b'{"ok": [1, "x"]}', "{$.ok}", "result == true", "a list that is not all numbers"),
        (b"<html>bad gateway</html>", "{$.data.ok}", "result > 0.5", "cannot compare string with number"),
        (b"\xff\xfe\x00garbage", "{$}", "result > 0.5", "neither JSON nor UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "{$}", "result > 0.5", "nested too deeply"),
    ],
)
def test_answers_that_cannot_be_judged_are_error_measurements(
    server: WebServer, body: bytes, json_path: str, success: str, fragment: str
) -> None:
    server.answers["/m"] = Answer(body)
    measured = measure(web_metric(server.url("/m"), success=success, json_path=json_path))
    assert measured.phase is MeasurementPhase.ERROR
    assert fragment in measured.message


@pytest.mark.parametrize("body", [b"1e400", b"NaN", b"-Infinity", b"9" * 400])
def test_numbers_go_cannot_decode_make_the_body_text_as_in_argo(server: WebServer, body: bytes) -> None:
    # Go's json.Unmarshal refuses these; Argo's parseResponse then judges the raw body as a string
    server.answers["/m"] = Answer(body)
    as_text = measure(web_metric(server.url("/m"), success=f'result == "{body.decode()}"', json_path="{$}"))
    assert as_text.phase is MeasurementPhase.SUCCESSFUL
    assert as_text.value.startswith(body.decode()[:100])  # cut at 200 characters when longer


def test_a_non_2xx_answer_is_an_error_even_with_a_good_body(server: WebServer) -> None:
    server.answers["/m"] = Answer(ARGO_DOC, status=503)
    measured = measure(web_metric(server.url("/m")))
    assert measured.phase is MeasurementPhase.ERROR
    assert "answered HTTP 503" in measured.message


def test_a_redirect_is_not_followed(server: WebServer) -> None:
    server.answers["/m"] = Answer(ARGO_DOC, status=302)
    measured = measure(web_metric(server.url("/m")))
    assert measured.phase is MeasurementPhase.ERROR
    assert len(server.received) == 1


def test_post_sends_the_body_and_the_headers(server: WebServer) -> None:
    server.answers["/m"] = Answer(ARGO_DOC)
    metric = web_metric(server.url("/m"), method=WebMethod.POST, body="service=web&window=5m")
    measured = measure(metric, headers={"Authorization": "Bearer abc", "Content-Type": "text/plain"})
    assert measured.phase is MeasurementPhase.SUCCESSFUL
    (request,) = server.received
    assert (request.method, request.body) == ("POST", b"service=web&window=5m")
    assert (request.headers["Authorization"], request.headers["Content-Type"]) == ("Bearer abc", "text/plain")


def test_json_body_is_sent_as_json_and_sets_the_content_type(server: WebServer) -> None:
    server.answers["/m"] = Answer(ARGO_DOC)
    body = '{"key1":"value_1","key2":{"nestedObj":"nested value"}}'
    metric = web_metric(server.url("/m"), method=WebMethod.PUT, json_body=body)
    measured = measure(metric, headers={"content-type": "text/plain", "X-Team": "shop"})
    assert measured.phase is MeasurementPhase.SUCCESSFUL
    (request,) = server.received
    assert request.method == "PUT"
    assert json.loads(request.body) == {"key1": "value_1", "key2": {"nestedObj": "nested value"}}
    # Argo sets Content-Type after the user's headers (webmetric.go Run)
    assert (request.headers["Content-Type"], request.headers["X-Team"]) == ("application/json", "shop")


def test_a_slow_endpoint_is_an_error_after_timeout_seconds(server: WebServer) -> None:
    server.answers["/slow"] = Answer(ARGO_DOC, delay=3.0)
    started = time.monotonic()
    measured = measure(web_metric(server.url("/slow"), timeout_seconds=1))
    elapsed = time.monotonic() - started
    assert measured.phase is MeasurementPhase.ERROR
    assert "did not answer within 1s" in measured.message
    assert elapsed < 2.5


def test_an_oversized_answer_is_an_error(server: WebServer) -> None:
    server.answers["/big"] = Answer(b'"' + b"x" * MAX_RESPONSE_BYTES + b'"')
    measured = measure(web_metric(server.url("/big"), json_path="{$}", success='result != ""'))
    assert measured.phase is MeasurementPhase.ERROR
    assert f"larger than {MAX_RESPONSE_BYTES} bytes" in measured.message


def test_an_answer_of_exactly_the_cap_is_read(server: WebServer) -> None:
    text = "x" * (MAX_RESPONSE_BYTES - 2)
    server.answers["/big"] = Answer(json.dumps(text).encode())
    measured = measure(web_metric(server.url("/big"), json_path="{$}", success="len(result) > 10"))
    assert measured.phase is MeasurementPhase.SUCCESSFUL
    assert len(measured.value) <= 200


def test_a_closed_port_is_an_error_measurement() -> None:
    with serving() as gone:
        url = gone.url("/m")
    measured = measure(web_metric(url))
    assert measured.phase is MeasurementPhase.ERROR
    assert "cannot reach http://127.0.0.1:" in measured.message


def test_headers_http_cannot_carry_are_errors_without_a_request(server: WebServer) -> None:
    measured = measure(web_metric(server.url("/m")), headers={"X-Token": "a\r\nInjected: yes"})
    assert measured.phase is MeasurementPhase.ERROR
    assert server.received == []


def test_secrets_never_reach_the_message_the_value_or_the_log(
    server: WebServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "pa55-in-the-url"
    token = "Bearer t0ken-in-a-header"
    # an error page that echoes both; the secret argument is also in the URL the message names
    server.answers["/m"] = Answer(f"denied {secret} {token}".encode(), status=403)
    server.answers["/echo"] = Answer(f"{secret} {token}".encode(), content_type="text/plain")
    with caplog.at_level("DEBUG"):
        failed = measure(web_metric(server.url(f"/m?key={secret}")), {"Authorization": token}, (secret,))
        echoed = measure(web_metric(server.url("/echo"), success='result == ""'), {"Authorization": token}, (secret,))
    assert failed.phase is MeasurementPhase.ERROR and "answered HTTP 403" in failed.message
    assert echoed.phase is MeasurementPhase.FAILED
    for text in (failed.message, failed.value, echoed.message, echoed.value):
        assert secret not in text and "t0ken-in-a-header" not in text
    ours = [r for r in caplog.records if r.name.startswith("kulta")]
    assert ours and all(secret not in r.getMessage() and "t0ken" not in r.getMessage() for r in ours)


def test_a_huge_error_message_is_capped(server: WebServer) -> None:
    server.answers["/m"] = Answer(b'{"a": 1}')
    measured = measure(web_metric(server.url("/m"), json_path="{$.b}" + ""))
    assert measured.phase is MeasurementPhase.ERROR
    long_url = server.url("/m?" + "q=" + "x" * 5000)
    measured = measure(web_metric(long_url, json_path="{$.b}"))
    assert measured.phase is MeasurementPhase.ERROR
    assert len(measured.message) <= 600


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl), trusted by nobody."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_insecure_skips_tls_verification_and_its_absence_does_not(self_signed: tuple[Path, Path]) -> None:
    with serving(tls=self_signed) as tls_server:
        tls_server.answers["/m"] = Answer(ARGO_DOC)
        verified = measure(web_metric(tls_server.url("/m")))
        skipped = measure(web_metric(tls_server.url("/m"), insecure=True))
    assert verified.phase is MeasurementPhase.ERROR
    assert "CERTIFICATE_VERIFY_FAILED" in verified.message
    assert (skipped.phase, skipped.value) == (MeasurementPhase.SUCCESSFUL, "true")


def test_rendering_percent_encodes_url_values_and_keeps_json_body_strings_strings() -> None:
    hostile = 'a&admin=1/../x?#"}, "evil": {"'
    metric = Metric(
        name="web",
        provider=WebMetricProvider(
            url="http://scores.shop/api?service={{args.svc}}",
            method=WebMethod.POST,
            json_body='{"service":"{{args.svc}}","n":3}',
            headers=(("X-Service", "{{args.svc}}"),),
        ),
    )
    rendered = render_metric(metric, ResolvedArgs(values={"svc": hostile}), {})
    provider = rendered.provider
    assert isinstance(provider, WebMetricProvider)
    assert (
        provider.url == "http://scores.shop/api?service=a%26admin%3D1%2F..%2Fx%3F%23%22%7D%2C%20%22evil%22%3A%20%7B%22"
    )
    assert json.loads(provider.json_body or "") == {"service": hostile, "n": 3}
    assert provider.headers == (("X-Service", hostile),)


def test_rendering_a_plain_body() -> None:
    metric = Metric(
        name="web",
        provider=WebMetricProvider(url="http://s/x", method=WebMethod.PUT, body="svc={{args.svc}}"),
    )
    rendered = render_metric(metric, ResolvedArgs(values={"svc": "web"}), {})
    assert isinstance(rendered.provider, WebMetricProvider)
    assert rendered.provider.body == "svc=web"


class Recorder:
    def __init__(self, label: str) -> None:
        self.label = label
        self.calls: list[str] = []

    def measure(self, metric: Metric, query: str, headers: object, now: datetime, secrets: object = ()) -> Measurement:
        self.calls.append(metric.name)
        return Measurement(
            metric=metric.name, phase=MeasurementPhase.SUCCESSFUL, started_at="", finished_at="", value=self.label
        )


def test_the_dispatcher_sends_each_metric_to_its_provider_kind() -> None:
    prometheus, web = Recorder("prometheus"), Recorder("web")
    dispatcher = ProviderDispatcher(prometheus=prometheus, web=web)
    prom_metric = Metric(name="p", provider=PrometheusMetricProvider(address="http://prom", query="up"))
    web_metric_ = Metric(name="w", provider=WebMetricProvider(url="http://s/x"))
    values = [dispatcher.measure(m, "", {}, NOW).value for m in (prom_metric, web_metric_, prom_metric)]
    assert values == ["prometheus", "web", "prometheus"]
    assert (prometheus.calls, web.calls) == (["p", "p"], ["w"])
