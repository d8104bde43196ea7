"""``provider.web`` in an AnalysisTemplate: what is read, what is refused (with Argo's reasons), what is warned."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from kulta.model.analysis import WebMethod, WebMetricProvider
from kulta.spec.analysis_parser import INSECURE_WARNING
from tests.unit.spec_helpers import FILE, error_lines, load, template_doc

WHERE = "spec.metrics[0].provider.web"


def web_template(**web: Any) -> dict[str, Any]:
    metric = {
        "name": "webmetric",
        "successCondition": "result == true",
        "provider": {"web": {"url": "http://my-server.com/api/v1/measurement?service={{ args.service-name }}", **web}},
    }
    return template_doc(metrics=[metric], args=[{"name": "service-name"}, {"name": "api-token"}])


def test_argo_docs_post_example_is_read() -> None:
    # docs/analysis/web.md "Optional web methods", jsonBody variant
    doc = web_template(
        method="POST",
        timeoutSeconds=20,
        headers=[{"key": "Authorization", "value": "Bearer {{ args.api-token }}"}],
        jsonBody={"key1": "value_1", "key2": {"nestedObj": "nested value", "key3": "{{ args.service-name }}"}},
        jsonPath="{$.data.ok}",
    )
    result = load(doc)
    assert error_lines(result) == []
    assert result.warnings == ()
    (template,) = result.templates
    assert template.metrics[0].provider == WebMetricProvider(
        url="http://my-server.com/api/v1/measurement?service={{ args.service-name }}",
        method=WebMethod.POST,
        headers=(("Authorization", "Bearer {{ args.api-token }}"),),
        json_body='{"key1":"value_1","key2":{"nestedObj":"nested value","key3":"{{ args.service-name }}"}}',
        timeout_seconds=20,
        json_path="{$.data.ok}",
    )


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"body": "x"}, f"{WHERE}.method: a body needs method POST or PUT (Argo refuses a GET with a body)"),
        (
            {"method": "POST", "body": "x", "jsonBody": {"a": 1}},
            f"{WHERE}: sets both body and jsonBody: keep one (Argo refuses both)",
        ),
        ({"method": "PATCH"}, f'{WHERE}.method: "PATCH" must be GET, POST or PUT'),
        (
            {"jsonPath": "{$.items[*].ok}"},
            f"{WHERE}.jsonPath: \"{{$.items[*].ok}}\" '[*].ok' at character 8 is not supported: KULTA reads $, "
            ".field, ['field'] and [N] (no filters, wildcards, slices or unions)",
        ),
        ({"timeoutSeconds": -1}, f"{WHERE}.timeoutSeconds: -1 is below the minimum 0"),
        ({"insecure": "yes"}, f'{WHERE}.insecure: must be true or false, got "yes"'),
        (
            {"method": "POST", "jsonBody": {"when": datetime.date(2026, 1, 1)}},
            f"{WHERE}.jsonBody: must be plain JSON data (a date or .nan has no JSON form: quote it)",
        ),
        (
            {"method": "POST", "jsonBody": {"k": "{{args.nope}}"}},
            f"{WHERE}.jsonBody: uses {{{{args.nope}}}} but the template declares no argument "
            '"nope": add it to spec.args',
        ),
        (
            {"authentication": {"oauth2": {"tokenUrl": "https://idp/token"}}},
            f"{WHERE}.authentication: web.authentication (oauth2) is not supported by KULTA; "
            "send a token in headers instead",
        ),
    ],
)
def test_refused_with_the_reason(fields: dict[str, Any], line: str) -> None:
    assert error_lines(load(web_template(**fields))) == [f"{FILE}#1 {line}"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x/y", '"ftp://x/y" must start with http:// or https://'),
        (
            "http://{{args.service-name}}:8080/x",
            "a placeholder in the URL's host or port is not supported by KULTA; write the host literally "
            "(placeholder values in a URL are percent-encoded)",
        ),
        (
            "http://s/x?q={{args.missing}}",
            'uses {{args.missing}} but the template declares no argument "missing": add it to spec.args',
        ),
    ],
)
def test_url_rules(url: str, message: str) -> None:
    assert error_lines(load(web_template(url=url))) == [f"{FILE}#1 {WHERE}.url: {message}"]


def test_prometheus_and_web_together_is_refused() -> None:
    doc = web_template()
    doc["spec"]["metrics"][0]["provider"]["prometheus"] = {"address": "http://p:9090", "query": "up"}
    assert error_lines(load(doc)) == [
        f"{FILE}#1 spec.metrics[0].provider: sets both prometheus and web: a metric has one provider"
    ]


def test_insecure_is_honoured_and_warned_about() -> None:
    result = load(web_template(url="https://my-server.com/ok", insecure=True))
    assert error_lines(result) == []
    (template,) = result.templates
    provider = template.metrics[0].provider
    assert isinstance(provider, WebMetricProvider) and provider.insecure is True
    assert [str(w) for w in result.warnings] == [f"{FILE}#1 {WHERE}.insecure: {INSECURE_WARNING}"]
