"""Parsed AnalysisTemplate / ClusterAnalysisTemplate documents.

Argo Rollouts users keep their templates; KULTA supports the Prometheus and web
providers, so a template that parses here is one KULTA can run. Durations are whole seconds;
``count`` is the effective count (``None`` = measure until the analysis is stopped).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kulta.model.rollout import ArgValueFrom, SourceRef

__all__ = [
    "AnalysisTemplate",
    "Metric",
    "MetricField",
    "MetricProviderSpec",
    "PrometheusMetricProvider",
    "TemplateArg",
    "WebMethod",
    "WebMetricProvider",
]


@dataclass(frozen=True)
class TemplateArg:
    """An argument a template declares; ``value``/``value_from`` are its default."""

    name: str
    value: str | None = None
    value_from: ArgValueFrom | None = None

    @property
    def has_default(self) -> bool:
        return self.value is not None or self.value_from is not None


@dataclass(frozen=True)
class PrometheusMetricProvider:
    """An instant query against a Prometheus server.

    ``address``, ``query`` and header values may contain ``{{args.NAME}}`` placeholders.
    """

    address: str
    query: str
    timeout_seconds: int = 30
    headers: tuple[tuple[str, str], ...] = ()


class WebMethod(enum.Enum):
    """``provider.web.method``: Argo's ``WebMetricMethod`` values (GET is the default)."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"


@dataclass(frozen=True)
class WebMetricProvider:
    """An HTTP request whose JSON (or plain-text) answer is the measured value (Argo's ``WebMetric``).

    ``url``, header values, ``body`` and the strings inside ``json_body`` may contain
    ``{{args.NAME}}`` placeholders. ``json_body`` is the ``jsonBody`` document as JSON
    text (``None`` when not set); ``body`` and ``json_body`` are never both set.
    ``json_path`` is the path as written (``{$}`` when not set).
    """

    url: str
    method: WebMethod = WebMethod.GET
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    json_body: str | None = None
    timeout_seconds: int = 10
    json_path: str = "{$}"
    insecure: bool = False


MetricProviderSpec = PrometheusMetricProvider | WebMetricProvider


class MetricField(enum.Enum):
    """A metric field that may be an ``{{args.*}}`` template (its value is Argo's field name).

    Argo resolves the arguments in the whole metric (``ResolveMetricArgs``, utils/analysis/factory.go)
    before ``ValidateMetric`` and the scheduling read it; ``count`` and the limits are
    ``*intstrutil.IntOrString``, ``interval`` and ``initialDelay`` a ``DurationString``.
    """

    COUNT = "count"
    FAILURE_LIMIT = "failureLimit"
    INCONCLUSIVE_LIMIT = "inconclusiveLimit"
    CONSECUTIVE_ERROR_LIMIT = "consecutiveErrorLimit"
    INTERVAL = "interval"
    INITIAL_DELAY = "initialDelay"


@dataclass(frozen=True)
class Metric:
    """One metric of a template, with Argo Rollouts' defaults.

    ``templated`` holds the fields written as ``{{args.*}}`` templates, as written; their
    numbers here are placeholders until ``kulta.core.metric_fields.resolve_fields`` renders
    them (a run never measures or schedules a metric with ``templated`` left). ``count`` is
    the effective count computed with ``interval`` set when ``interval`` is templated.
    """

    name: str
    provider: MetricProviderSpec
    interval_seconds: int | None = None
    count: int | None = None
    initial_delay_seconds: int = 0
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    success_condition: str | None = None
    failure_condition: str | None = None
    dry_run: bool = False
    templated: tuple[tuple[MetricField, str], ...] = ()


@dataclass(frozen=True)
class AnalysisTemplate:
    """An AnalysisTemplate (namespaced) or ClusterAnalysisTemplate (``cluster_scoped``)."""

    name: str
    namespace: str
    cluster_scoped: bool
    args: tuple[TemplateArg, ...]
    metrics: tuple[Metric, ...]
    source: SourceRef
