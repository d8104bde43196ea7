"""Analysis runs against a real Prometheus scraping the real traffic simulator.

What is real here: the Prometheus 2.42 binary, its scraping and PromQL engine,
the ``kulta.adapters.trafficsim`` process, HTTP servers on 127.0.0.1 that answer
garbage or too slowly. The analysis engine runs exactly as the reconciler calls
it: ``advance_analysis`` once per pass with the wall clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kulta.adapters.analysis_runner import advance_analysis
from kulta.adapters.prometheus import PrometheusClient
from kulta.core.analysis_run import next_due_at
from kulta.model.analysis import AnalysisTemplate, Metric, PrometheusMetricProvider, TemplateArg
from kulta.model.rollout import (
    AnalysisArg,
    AnalysisRef,
    AnalysisTemplateRef,
    ArgValueFrom,
    PodTemplateHashValue,
    SourceRef,
)
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, MeasurementPhase
from tests.integration.promserver import (
    LOOPBACK,
    PromServer,
    TrafficSim,
    free_port,
    running_prometheus,
    running_trafficsim,
    wait_until,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(120)]

STABLE = {"hash": "aaa111", "weight": 80, "errorRate": 0.0}
GOOD_CANARY = {"hash": "bbb222", "weight": 20, "errorRate": 0.0}
BAD_CANARY = {"hash": "ccc333", "weight": 20, "errorRate": 0.2}
ERROR_RATIO = (
    'sum(rate(http_requests_total{revision="{{args.canary-hash}}",code=~"5.."}[5s]))'
    ' / sum(rate(http_requests_total{revision="{{args.canary-hash}}"}[5s]))'
)
TOTAL_RATE = "sum(rate(http_requests_total[5s]))"
#: five scrapes of the stable series in the 5s window: rates are no longer extrapolated from a partial window
WINDOW_FULL = 'count_over_time(http_requests_total{revision="aaa111",code="200"}[5s]) >= 5'
TOKEN = "tok-integration-9f3a"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrafficSim]:
    with running_trafficsim(tmp_path_factory.mktemp("sim"), {"stable": STABLE, "canary": GOOD_CANARY}) as s:
        yield s


@pytest.fixture(scope="module")
def prom(sim: TrafficSim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    with running_prometheus([sim.target], tmp_path_factory.mktemp("prom")) as server:
        wait_until(lambda: len(server.query(WINDOW_FULL)) == 1, 40, "a full 5s window of traffic in prometheus")
        yield server


def error_rate_template(address: str, **metric_kw: object) -> AnalysisTemplate:
    kw: dict[str, object] = {
        "interval_seconds": 1,
        "count": 3,
        "success_condition": "len(result) > 0 && result[0] < 0.05",
        **metric_kw,
    }
    provider = PrometheusMetricProvider(
        address=address, query=ERROR_RATIO, timeout_seconds=2, headers=(("Authorization", "Bearer {{args.token}}"),)
    )
    return AnalysisTemplate(
        name="error-rate",
        namespace="shop",
        cluster_scoped=False,
        args=(
            TemplateArg("canary-hash"),
            TemplateArg("token", value_from=ArgValueFrom(secret_key_ref=("prom-auth", "token"))),
        ),
        metrics=(Metric(name="error-rate", provider=provider, **kw),),  # type: ignore[arg-type]
        source=SourceRef(file="analysis/error-rate.yaml", document=1),
    )


REF = AnalysisRef(
    templates=(AnalysisTemplateRef("error-rate"),),
    args=(AnalysisArg("canary-hash", value_from=ArgValueFrom(pod_template_hash_value=PodTemplateHashValue.LATEST)),),
)


def drive(
    template: AnalysisTemplate,
    canary_hash: str,
    *,
    deadline: float = 30.0,
    after_pass: Callable[[AnalysisRunStatus], None] | None = None,
) -> AnalysisRunStatus:
    """Call the engine like the reconciler does until the run completes."""
    client = PrometheusClient()
    run: AnalysisRunStatus | None = None
    stop_at = time.monotonic() + deadline
    while time.monotonic() < stop_at:
        now = datetime.now(UTC)
        run = advance_analysis(
            run,
            name="web-analysis",
            templates=[template],
            ref=REF,
            step_index=1,
            stable_hash=STABLE["hash"],  # type: ignore[arg-type]
            canary_hash=canary_hash,
            rollout="web",
            namespace="shop",
            now=now,
            provider=client,
            environ={"KULTA_SECRET_PROM_AUTH_TOKEN": TOKEN},
        )
        if after_pass is not None:
            after_pass(run)
        if run.phase.completed:
            return run
        due = next_due_at(run, template.metrics, now)
        assert due is not None
        time.sleep(min(1.0, max(0.05, (due - datetime.now(UTC)).total_seconds())))
    raise AssertionError(f"analysis did not complete within {deadline}s: {run}")


def phases(run: AnalysisRunStatus) -> list[MeasurementPhase]:
    return [m.phase for m in run.measurements]


def probe(address: str, query: str, condition: str, timeout: int = 2) -> tuple[MeasurementPhase, str, str]:
    metric = Metric(
        name="probe",
        provider=PrometheusMetricProvider(address=address, query=query, timeout_seconds=timeout),
        success_condition=condition,
    )
    m = PrometheusClient().measure(metric, query, {"Authorization": f"Bearer {TOKEN}"}, datetime.now(UTC))
    return m.phase, m.value, m.message


# --------------------------------------------------------------------------- against real data


def test_queries_over_scraped_metrics_return_the_expected_values(prom: PromServer) -> None:
    # the weight the simulator exports, as a vector and as a scalar
    assert probe(prom.url, 'trafficsim_backend_weight{revision="aaa111"}', "result[0] == 80")[:2] == (
        MeasurementPhase.SUCCESSFUL,
        "[80]",
    )
    assert probe(prom.url, 'scalar(trafficsim_backend_weight{revision="bbb222"})', "result == 20")[:2] == (
        MeasurementPhase.SUCCESSFUL,
        "20",
    )
    # ~100 synthetic requests per second in total
    phase, value, _ = probe(prom.url, TOTAL_RATE, "result[0] > 85 && result[0] < 115")
    assert phase is MeasurementPhase.SUCCESSFUL, value
    # an empty vector is [] and indexing it is an Error measurement, not a crash
    phase, value, message = probe(prom.url, 'trafficsim_backend_weight{revision="nope"}', "result[0] > 0")
    assert (phase, value) == (MeasurementPhase.ERROR, "[]")
    assert "out of range" in message
    # the guarded form decides instead
    assert (
        probe(prom.url, 'trafficsim_backend_weight{revision="nope"}', "len(result) == 0")[0]
        is MeasurementPhase.SUCCESSFUL
    )
    # NaN from 0/0 reaches the condition as NaN
    phase, value, _ = probe(prom.url, "vector(0) / vector(0)", "isNaN(result[0])")
    assert (phase, value) == (MeasurementPhase.SUCCESSFUL, "[NaN]")
    # a PromQL syntax error is Prometheus' 400 answer, an Error measurement
    phase, _, message = probe(prom.url, "sum(rate(", "result[0] > 0")
    assert phase is MeasurementPhase.ERROR
    assert "HTTP 400" in message


def test_good_canary_run_is_successful(prom: PromServer, sim: TrafficSim) -> None:
    sim.set_weights({"stable": STABLE, "canary": GOOD_CANARY})
    started = time.monotonic()
    run = drive(error_rate_template(prom.url), GOOD_CANARY["hash"])  # type: ignore[arg-type]
    assert run.phase is AnalysisPhase.SUCCESSFUL, run.message
    assert phases(run) == [MeasurementPhase.SUCCESSFUL] * 3
    assert all(m.value == "[0]" for m in run.measurements)
    # interval 1s, count 3: about two seconds, not less
    assert 1.5 <= time.monotonic() - started < 10


def test_bad_canary_fails_within_failure_limit_plus_one(prom: PromServer, sim: TrafficSim) -> None:
    bad_ratio = ERROR_RATIO.replace("{{args.canary-hash}}", str(BAD_CANARY["hash"]))
    sim.set_weights({"stable": STABLE, "canary": BAD_CANARY})
    try:
        wait_until(lambda: (v := prom.query(bad_ratio)) and v[0] > 0.15, 30, "the bad canary's error ratio")
        run = drive(error_rate_template(prom.url, failure_limit=1, count=5), BAD_CANARY["hash"])  # type: ignore[arg-type]
    finally:
        sim.set_weights({"stable": STABLE, "canary": GOOD_CANARY})
    assert run.phase is AnalysisPhase.FAILED, run.message
    assert len(run.measurements) <= 2
    assert phases(run) == [MeasurementPhase.FAILED, MeasurementPhase.FAILED]
    assert 0.15 < json.loads(run.measurements[-1].value)[0] < 0.25
    assert 'metric "error-rate" assessed Failed: failed (2) > failureLimit (1)' in run.message


# --------------------------------------------------------------------------- failure modes


def test_prometheus_killed_mid_analysis_errors_the_run(sim: TrafficSim, tmp_path: Path) -> None:
    with running_prometheus([sim.target], tmp_path / "prom") as server:
        # the good canary's error ratio is 0 as soon as two scrapes exist: no need for a full window
        good_ratio = ERROR_RATIO.replace("{{args.canary-hash}}", str(GOOD_CANARY["hash"]))
        wait_until(lambda: server.query(good_ratio) == [0.0], 40, "the canary's error ratio in the second prometheus")

        def kill_after_first_success(run: AnalysisRunStatus) -> None:
            if server.process.poll() is None and MeasurementPhase.SUCCESSFUL in phases(run):
                server.kill()

        template = error_rate_template(server.url, count=20, consecutive_error_limit=2)
        run = drive(template, GOOD_CANARY["hash"], after_pass=kill_after_first_success)  # type: ignore[arg-type]
    assert run.phase is AnalysisPhase.ERROR, run.message
    assert phases(run) == [MeasurementPhase.SUCCESSFUL] + [MeasurementPhase.ERROR] * 3
    assert all("cannot query Prometheus" in m.message for m in run.measurements[1:])
    assert "consecutive errors (3) > consecutiveErrorLimit (2)" in run.message
    assert TOKEN not in json.dumps(run.to_outputs())


class _Misbehaving(BaseHTTPRequestHandler):
    """Answers /<mode>/api/v1/query in the way ``mode`` names."""

    def do_GET(self) -> None:
        mode = self.path.split("/")[1]
        if mode == "slow":
            time.sleep(3)
            self._send(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}')
        elif mode == "garbage":
            self._send(200, b"<html>this is not json")
        elif mode == "echo":
            self._send(200, f"not json; you sent {self.headers.get('Authorization')}".encode())
        elif mode == "matrix":
            self._send(200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}')
        elif mode == "unavailable":
            self._send(503, b'{"status":"error","errorType":"unavailable","error":"tsdb not ready"}')
        elif mode == "badvalue":
            self._send(
                200, b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}'
            )
        else:
            self._send(404, b"404 page not found")

    def _send(self, code: int, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (the timeout test): nothing left to answer

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[str]:
    server = ThreadingHTTPServer((LOOPBACK, free_port()), _Misbehaving)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("garbage", "body that is not JSON: <html>this is not json"),
        ("matrix", "result type 'matrix' is not supported"),
        ("unavailable", "HTTP 503: tsdb not ready"),
        ("badvalue", "sample value 'x' is not a number"),
        ("missing", "HTTP 404 with a body that is not JSON"),
        ("echo", "you sent ***"),
    ],
)
def test_misbehaving_endpoints_give_error_measurements(misbehaving: str, mode: str, fragment: str) -> None:
    phase, value, message = probe(f"{misbehaving}/{mode}", "up", "result[0] > 0")
    assert phase is MeasurementPhase.ERROR
    assert value == ""
    assert fragment in message
    assert TOKEN not in message


def test_slow_endpoint_times_out_as_an_error_measurement(misbehaving: str) -> None:
    started = time.monotonic()
    phase, _, message = probe(f"{misbehaving}/slow", "up", "len(result) == 0", timeout=1)
    elapsed = time.monotonic() - started
    assert phase is MeasurementPhase.ERROR
    assert "did not answer within 1s" in message
    assert elapsed < 2.5


def test_unreachable_address_is_an_error_measurement() -> None:
    phase, _, message = probe(f"http://{LOOPBACK}:{free_port()}", "up", "result[0] > 0")
    assert phase is MeasurementPhase.ERROR
    assert "cannot query Prometheus" in message


@pytest.mark.parametrize("mode", ["garbage", "slow"])
def test_a_run_against_a_broken_endpoint_ends_error_never_successful(misbehaving: str, mode: str) -> None:
    template = error_rate_template(f"{misbehaving}/{mode}", consecutive_error_limit=1, success_condition="true")
    template = _with_timeout(template, 1)
    run = drive(template, GOOD_CANARY["hash"])  # type: ignore[arg-type]
    assert run.phase is AnalysisPhase.ERROR
    assert phases(run) == [MeasurementPhase.ERROR, MeasurementPhase.ERROR]


def _with_timeout(template: AnalysisTemplate, seconds: int) -> AnalysisTemplate:
    metrics: Sequence[Metric] = [
        replace(m, provider=replace(m.provider, timeout_seconds=seconds)) for m in template.metrics
    ]
    return replace(template, metrics=tuple(metrics))
