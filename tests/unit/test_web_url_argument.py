"""A web metric's URL given as one argument (Argo's ``url: "{{args.secret-url}}"``, the URL kept in a Secret).

Worked example: argoproj/argo-rollouts test/e2e/functional/rollout-secret.yaml (copied in
tests/corpus_upstream/), whose template reads the whole URL from ``secretKeyRef
example-secret/secretUrl`` and measures twice, 5s apart, failureLimit 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kulta.adapters.analysis_runner import run_metrics
from kulta.core.analysis_run import AnalysisSetupError, ResolvedArgs, render_url, secret_env_name
from kulta.model.analysis import WebMetricProvider
from kulta.spec import load_paths
from tests.unit.spec_helpers import base_rollout, load, template_doc

ARGO_FILE = Path(__file__).resolve().parents[1] / "corpus_upstream" / "argo-rollout-secret.yaml"
#: the Secret's secretUrl, base64-decoded (the file's data.secretUrl)
SECRET_URL = (
    "https://gist.githubusercontent.com/khhirani/2ab11232402518d5277af030dd8916d7/raw/"
    "d272f551f2d1806a03974dbaef11dfd55102feea/example.json"
)
VARIABLE = "KULTA_SECRET_EXAMPLE_SECRET_SECRETURL"


def test_the_argo_secret_example_runs_with_the_whole_url_from_the_secret() -> None:
    assert secret_env_name("example-secret", "secretUrl") == VARIABLE
    result = load_paths([ARGO_FILE], base=ARGO_FILE.parent)
    assert [str(e) for e in result.errors] == []
    (rollout,) = result.rollouts
    step = rollout.spec.strategy.steps[1].analysis
    assert step is not None
    metrics, args = run_metrics(
        result.templates,
        step,
        stable_hash="a",
        canary_hash="b",
        rollout=rollout.name,
        namespace=rollout.namespace,
        environ={VARIABLE: SECRET_URL},
    )
    (metric,) = metrics
    assert isinstance(metric.provider, WebMetricProvider)
    # not percent-encoded: the argument is the whole URL
    assert metric.provider.url == SECRET_URL
    assert (metric.count, metric.interval_seconds, metric.failure_limit) == (2, 5, 1)
    assert args.secret_values == (SECRET_URL,)


@pytest.mark.parametrize("value", ["gist.github.com/x", "ftp://host/x", "https://", "https:// host/x", "javascript:1"])
def test_a_whole_url_argument_that_is_not_an_http_url_is_refused_without_showing_it(value: str) -> None:
    args = ResolvedArgs(values={"secret-url": value}, secret_names=frozenset({"secret-url"}))
    with pytest.raises(AnalysisSetupError) as caught:
        render_url("{{args.secret-url}}", args, {})
    assert str(caught.value) == (
        "provider.web.url '{{args.secret-url}}': the argument's value is not an http:// or https:// URL "
        "with a host (a URL given as one argument must be the whole URL)"
    )


def test_a_placeholder_inside_a_url_is_still_percent_encoded() -> None:
    args = ResolvedArgs(values={"q": "a&b/c"})
    assert render_url("http://h/x?q={{args.q}}", args, {}) == "http://h/x?q=a%26b%2Fc"


def web_template(url: str) -> dict[str, object]:
    return template_doc(
        args=[{"name": "u"}],
        metrics=[{"name": "w", "successCondition": "result == 1", "provider": {"web": {"url": url}}}],
    )


def test_a_whole_url_argument_must_be_declared() -> None:
    result = load(
        template_doc(
            metrics=[{"name": "w", "successCondition": "result == 1", "provider": {"web": {"url": "{{args.nope}}"}}}]
        )
    )
    assert [str(e) for e in result.errors] == [
        "rollouts/web.yaml#1 spec.metrics[0].provider.web.url: uses {{args.nope}} but the template declares no "
        'argument "nope": add it to spec.args'
    ]


@pytest.mark.parametrize("url", ["{{args.u}}", " {{ args.u }} "])
def test_a_url_that_is_one_argument_is_accepted(url: str) -> None:
    assert [str(e) for e in load(web_template(url)).errors] == []


def test_a_placeholder_in_the_host_is_still_refused() -> None:
    result = load(web_template("https://{{args.u}}/x"))
    assert [str(e) for e in result.errors] == [
        "rollouts/web.yaml#1 spec.metrics[0].provider.web.url: a placeholder in the URL's host or port is not "
        "supported by KULTA; write the host literally (placeholder values in a URL are percent-encoded)"
    ]


def rollout_passing(url: str) -> dict[str, object]:
    step = {"analysis": {"templates": [{"templateName": "success-rate"}], "args": [{"name": "u", "value": url}]}}
    return base_rollout(strategy={"canary": {"steps": [step]}})


def test_validate_checks_a_whole_url_argument_with_a_literal_value() -> None:
    result = load(web_template("{{args.u}}"), rollout_passing("kubernetes.default.svc/version"))
    assert [str(e) for e in result.errors] == [
        "rollouts/web.yaml#2 spec.strategy.canary.steps[0].analysis.args: with these arguments, provider.web.url "
        'of metric "w" in template "success-rate" (rollouts/web.yaml#1 spec.metrics[0]) is '
        '"kubernetes.default.svc/version", not an http:// or https:// URL with a host'
    ]
    good = load(web_template("{{args.u}}"), rollout_passing("https://kubernetes.default.svc/version"))
    assert [str(e) for e in good.errors] == []
