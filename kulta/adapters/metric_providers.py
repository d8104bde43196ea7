"""The ``MetricProvider`` the reconciler uses: each metric goes to the client of its provider kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from kulta.adapters.prometheus import MetricProvider, PrometheusClient
from kulta.adapters.web import WebMetricClient
from kulta.model.analysis import Metric, WebMetricProvider
from kulta.model.status import Measurement

__all__ = ["ProviderDispatcher"]


class ProviderDispatcher:
    """``provider.prometheus`` metrics to ``prometheus``, ``provider.web`` ones to ``web``."""

    def __init__(self, *, prometheus: MetricProvider | None = None, web: MetricProvider | None = None) -> None:
        self._prometheus: MetricProvider = prometheus if prometheus is not None else PrometheusClient()
        self._web: MetricProvider = web if web is not None else WebMetricClient()

    def measure(
        self,
        metric: Metric,
        query: str,
        headers: Mapping[str, str],
        now: datetime,
        secrets: Sequence[str] = (),
    ) -> Measurement:
        """One measurement by the client of ``metric.provider``'s kind; never raises."""
        client = self._web if isinstance(metric.provider, WebMetricProvider) else self._prometheus
        return client.measure(metric, query, headers, now, secrets=secrets)
