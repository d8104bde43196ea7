"""ReconcilerMetrics served over a real HTTP endpoint on 127.0.0.1 and scraped with httpx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kulta.adapters.metrics import MetricsServer, PulumiResult, ReconcileResult, ReconcilerMetrics
from kulta.model.status import MeasurementPhase, Phase


@pytest.fixture
def metrics() -> ReconcilerMetrics:
    return ReconcilerMetrics()


@pytest.fixture
def server(metrics: ReconcilerMetrics) -> Iterator[MetricsServer]:
    handle = metrics.start_http_server("127.0.0.1", 0)
    yield handle
    handle.stop()


def scrape(server: MetricsServer) -> str:
    response = httpx.get(server.url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_port_zero_picks_a_free_port_and_stop_frees_it(metrics: ReconcilerMetrics) -> None:
    handle = metrics.start_http_server("127.0.0.1", 0)
    assert handle.port > 0
    assert handle.url == f"http://127.0.0.1:{handle.port}/metrics"
    assert "kulta_rollouts" in scrape(handle)
    handle.stop()
    handle.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.url, timeout=2)


def test_fresh_endpoint_exports_zeroes_for_known_labels(server: MetricsServer) -> None:
    found = samples(scrape(server))
    for phase in Phase:
        assert found[("kulta_rollouts", (("phase", phase.value),))] == 0
    for measurement in MeasurementPhase:
        assert found[("kulta_analysis_measurements_total", (("phase", measurement.value),))] == 0
    assert found[("kulta_git_fetch_failures_total", ())] == 0
    assert found[("kulta_events_pending", ())] == 0
    assert found[("kulta_reconcile_passes_total", (("result", "success"),))] == 0
    # Our own registry still carries the process collector.
    assert any(name == "process_cpu_seconds_total" for name, _ in found)


def test_recorded_values_appear_in_the_exposition(metrics: ReconcilerMetrics, server: MetricsServer) -> None:
    metrics.set_rollout_phases({"Progressing": 2, "Healthy": 5})
    metrics.set_rollout_phases({Phase.HEALTHY: 6, Phase.DEGRADED: 1})  # Progressing drained -> 0
    metrics.observe_step_duration(42.0)
    metrics.observe_step_duration(700.0)
    metrics.observe_pulumi_update(3.5, PulumiResult.SUCCEEDED)
    metrics.observe_pulumi_update(12.0, "failed")
    metrics.count_analysis_result(MeasurementPhase.SUCCESSFUL)
    metrics.count_analysis_result("Successful")
    metrics.count_analysis_result("Failed")
    metrics.count_git_fetch_failure()
    metrics.count_git_fetch_failure()
    metrics.set_git_last_sync(1_700_000_000.0)
    metrics.set_events_pending(7)
    metrics.count_reconcile(ReconcileResult.SUCCESS)
    metrics.count_reconcile("error")

    text = scrape(server)
    found = samples(text)

    assert found[("kulta_rollouts", (("phase", "Progressing"),))] == 0
    assert found[("kulta_rollouts", (("phase", "Healthy"),))] == 6
    assert found[("kulta_rollouts", (("phase", "Degraded"),))] == 1
    assert found[("kulta_step_duration_seconds_count", ())] == 2
    assert found[("kulta_step_duration_seconds_sum", ())] == 742.0
    assert found[("kulta_step_duration_seconds_bucket", (("le", "60.0"),))] == 1
    assert found[("kulta_step_duration_seconds_bucket", (("le", "1800.0"),))] == 2
    assert found[("kulta_pulumi_update_duration_seconds_count", (("result", "succeeded"),))] == 1
    assert found[("kulta_pulumi_update_duration_seconds_sum", (("result", "failed"),))] == 12.0
    assert found[("kulta_pulumi_update_duration_seconds_bucket", (("le", "5.0"), ("result", "succeeded")))] == 1
    assert found[("kulta_analysis_measurements_total", (("phase", "Successful"),))] == 2
    assert found[("kulta_analysis_measurements_total", (("phase", "Failed"),))] == 1
    assert found[("kulta_git_fetch_failures_total", ())] == 2
    assert found[("kulta_git_last_sync_timestamp_seconds", ())] == 1_700_000_000.0
    assert found[("kulta_events_pending", ())] == 7
    assert found[("kulta_reconcile_passes_total", (("result", "success"),))] == 1
    assert found[("kulta_reconcile_passes_total", (("result", "error"),))] == 1
    # The raw exposition text, as Prometheus reads it.
    assert 'kulta_rollouts{phase="Healthy"} 6.0' in text
    assert "# TYPE kulta_step_duration_seconds histogram" in text
    assert "# TYPE kulta_git_fetch_failures_total counter" in text


def test_later_values_replace_gauges_between_scrapes(metrics: ReconcilerMetrics, server: MetricsServer) -> None:
    metrics.set_events_pending(3)
    assert samples(scrape(server))[("kulta_events_pending", ())] == 3
    metrics.set_events_pending(0)
    assert samples(scrape(server))[("kulta_events_pending", ())] == 0


def test_invalid_values_are_rejected(metrics: ReconcilerMetrics) -> None:
    with pytest.raises(ValueError, match="negative"):
        metrics.set_events_pending(-1)
    with pytest.raises(ValueError, match="negative"):
        metrics.set_rollout_phases({"Healthy": -2})
    with pytest.raises(ValueError, match="empty"):
        metrics.count_reconcile("")


def test_two_instances_do_not_collide() -> None:
    first, second = ReconcilerMetrics(), ReconcilerMetrics()
    first.count_git_fetch_failure()
    assert first.registry.get_sample_value("kulta_git_fetch_failures_total") == 1
    assert second.registry.get_sample_value("kulta_git_fetch_failures_total") == 0
