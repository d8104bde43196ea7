"""AnalysisTemplate / ClusterAnalysisTemplate parsing and errors."""

from __future__ import annotations

from typing import Any

import pytest

from kulta.model.analysis import Metric, PrometheusMetricProvider, TemplateArg
from kulta.model.rollout import ArgValueFrom, PodTemplateHashValue
from tests.unit.spec_helpers import FILE, error_lines, load, template_doc

PROM = {"prometheus": {"address": "http://prom:9090", "query": "vector(1)"}}


def metric(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "m", "provider": PROM}
    body.update(fields)
    return body


def test_full_template_parses_with_defaults_and_dry_run() -> None:
    doc = template_doc(
        args=[
            {"name": "service"},
            {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "prom", "key": "token"}}},
            {"name": "window", "value": "5m"},
        ],
        metrics=[
            {
                "name": "errors",
                "interval": "1m",
                "initialDelay": "30s",
                "count": "5",
                "failureLimit": 2,
                "inconclusiveLimit": 1,
                "consecutiveErrorLimit": 3,
                "successCondition": "result[0] < 0.05",
                "failureCondition": "result[0] > 0.2",
                "provider": {
                    "prometheus": {
                        "address": "https://prom.example:9090",
                        "query": 'sum(rate(x{svc="{{args.service}}",rev="{{args.hash}}"}[{{args.window}}]))',
                        "timeout": 10,
                        "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}],
                    }
                },
            },
            {"name": "once", "provider": PROM},
            {"name": "forever", "interval": "10s", "provider": PROM},
        ],
        dryRun=[{"metricName": "once"}],
    )
    result = load(doc)
    assert error_lines(result) == []
    (template,) = result.templates
    assert (template.name, template.namespace, template.cluster_scoped) == ("success-rate", "shop", False)
    assert template.args == (
        TemplateArg("service"),
        TemplateArg("hash", value_from=ArgValueFrom(pod_template_hash_value=PodTemplateHashValue.LATEST)),
        TemplateArg("token", value_from=ArgValueFrom(secret_key_ref=("prom", "token"))),
        TemplateArg("window", value="5m"),
    )
    errors, once, forever = template.metrics
    assert errors == Metric(
        name="errors",
        provider=PrometheusMetricProvider(
            address="https://prom.example:9090",
            query='sum(rate(x{svc="{{args.service}}",rev="{{args.hash}}"}[{{args.window}}]))',
            timeout_seconds=10,
            headers=(("Authorization", "Bearer {{args.token}}"),),
        ),
        interval_seconds=60,
        count=5,
        initial_delay_seconds=30,
        failure_limit=2,
        inconclusive_limit=1,
        consecutive_error_limit=3,
        success_condition="result[0] < 0.05",
        failure_condition="result[0] > 0.2",
        dry_run=False,
    )
    assert (once.count, once.interval_seconds, once.dry_run, once.failure_limit, once.consecutive_error_limit) == (
        1,
        None,
        True,
        0,
        4,
    )
    assert (forever.count, forever.interval_seconds, forever.dry_run) == (None, 10, False)
    assert once.provider.timeout_seconds == 30


def test_dry_run_wildcard_marks_every_metric() -> None:
    doc = template_doc(metrics=[metric(name="a"), metric(name="b")], dryRun=[{"metricName": "*"}])
    assert [m.dry_run for m in load(doc).templates[0].metrics] == [True, True]


def test_cluster_template_has_no_namespace() -> None:
    doc = template_doc()
    doc["kind"] = "ClusterAnalysisTemplate"
    del doc["metadata"]["namespace"]
    template = load(doc).templates[0]
    assert template.cluster_scoped and template.namespace == ""
    doc["metadata"]["namespace"] = "x"
    assert error_lines(load(doc)) == [
        f"{FILE}#1 metadata.namespace: a cluster-scoped object has no namespace; remove it"
    ]


M0 = f"{FILE}#1 spec.metrics[0]"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"metrics": []}, f"{FILE}#1 spec.metrics: must list at least one metric"),
        (
            {"metrics": [metric(provider={"web": {"url": "http://x", "method": "PATCH"}})]},
            f'{M0}.provider.web.method: "PATCH" must be GET, POST or PUT',
        ),
        (
            {"metrics": [metric(provider={"datadog": {"query": "x"}})]},
            f"{M0}.provider.datadog: the datadog metric provider is not supported by KULTA; KULTA runs "
            "provider.prometheus and provider.web",
        ),
        (
            {"metrics": [metric(provider={"job": {"spec": {}}})]},
            f"{M0}.provider.job: the job metric provider is not supported by KULTA; KULTA runs provider.prometheus "
            "and provider.web",
        ),
        ({"metrics": [metric(provider={})]}, f"{M0}.provider: needs provider.prometheus or provider.web"),
        (
            {"metrics": [{"name": "m"}]},
            f"{M0}.provider: is required: add provider.prometheus (address, query) or provider.web (url)",
        ),
        (
            {"metrics": [metric(provider={"prometheus": {"query": "x"}})]},
            f"{M0}.provider.prometheus.address: is required",
        ),
        (
            {"metrics": [metric(provider={"prometheus": {"address": "prom:9090", "query": "x"}})]},
            f'{M0}.provider.prometheus.address: "prom:9090" must start with http:// or https://',
        ),
        (
            {"metrics": [metric(provider={"prometheus": {"address": "http://p", "query": "x", "insecure": True}})]},
            f"{M0}.provider.prometheus.insecure: prometheus.insecure is not supported by KULTA; use an http:// address "
            "or a trusted certificate",
        ),
        (
            {"metrics": [metric(provider={"prometheus": {"address": "http://p", "query": "{{args.svc}}"}})]},
            f'{M0}.provider.prometheus.query: uses {{{{args.svc}}}} but the template declares no argument "svc": add it '  # noqa: E501
            "to spec.args",
        ),
        (
            {"metrics": [metric(interval="often")]},
            f'{M0}.interval: "often" is not a duration; use whole seconds (90) or a duration like 30s, 5m, 1h, 1h30m',
        ),
        ({"metrics": [metric(interval="0s")]}, f"{M0}.interval: must be longer than 0s"),
        ({"metrics": [metric(count=3)]}, f"{M0}.interval: is required when count is 3: add e.g. interval: 30s"),
        (
            {"metrics": [metric(count=2, interval="5s", failureLimit=3)]},
            f"{M0}.failureLimit: 3 is above count (2), so the metric could never fail: lower it",
        ),
        ({"metrics": [metric(failureLimit=-1)]}, f"{M0}.failureLimit: -1 is below the minimum 0"),
        (
            {"metrics": [metric(count="{{args.n}}", interval="5s")]},
            f'{M0}.count: uses {{{{args.n}}}} but the template declares no argument "n": add it to spec.args',
        ),
        (
            {"metrics": [metric(consecutiveSuccessLimit=2)]},
            f"{M0}.consecutiveSuccessLimit: consecutiveSuccessLimit is not supported by KULTA; remove it (docs/spec.md "
            "lists what KULTA supports)",
        ),
        (
            {"metrics": [metric(sucessCondition="result > 1")]},
            f"{M0}.sucessCondition: unknown field; did you mean successCondition?",
        ),
        ({"metrics": [metric(), metric()]}, f'{FILE}#1 spec.metrics[1].name: metric "m" appears twice'),
        (
            {"metrics": [metric()], "dryRun": [{"metricName": "x"}]},
            f'{FILE}#1 spec.dryRun: "x" matches no metric of the template (metricName is a regular expression)',
        ),
        (
            {"metrics": [metric()], "measurementRetention": []},
            f"{FILE}#1 spec.measurementRetention: measurementRetention is not supported by KULTA; remove it "
            "(docs/spec.md lists what KULTA supports)",
        ),
        (
            {"metrics": [metric()], "args": [{"name": "a"}, {"name": "a"}]},
            f'{FILE}#1 spec.args[1].name: argument "a" is listed twice; keep one',
        ),
        (
            {"metrics": [metric()], "args": [{"name": "a b"}]},
            f"{FILE}#1 spec.args[0].name: \"a b\" may only hold letters, digits, '_', '-' and '.'",
        ),
        (
            {"metrics": [metric()], "args": [{"name": "f", "valueFrom": {"fieldRef": {"fieldPath": "status.x"}}}]},
            f'{FILE}#1 spec.args[0].valueFrom.fieldRef.fieldPath: "status.x" is not a Rollout field path; use e.g. '
            "metadata.name or metadata.labels['app']",
        ),
    ],
)
def test_template_errors(spec: dict[str, Any], expected: str) -> None:
    doc = template_doc()
    doc["spec"] = spec
    result = load(doc)
    assert error_lines(result) == [expected]
    assert result.templates == ()
