"""successCondition / failureCondition are parsed when the files are read, not mid-canary."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.spec_helpers import FILE, base_rollout, canary, error_lines, load, template_doc, with_steps

PROM = {"prometheus": {"address": "http://prom:9090", "query": "vector(1)"}}


def metric(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "m", "provider": PROM}
    body.update(fields)
    return body


# Conditions from Argo Rollouts' own documentation (docs/features/analysis.md,
# docs/analysis/prometheus.md): KULTA's evaluator must accept them.
ARGO_DOC_CONDITIONS = [
    ("successCondition", "result[0] >= 0.95"),
    ("successCondition", "result[0] <= 0.95"),
    ("successCondition", "len(result) == 0 || result[0] >= 0.95"),
    ("successCondition", "len(result) > 0 && result[0] >= 0.95"),
    ("successCondition", "isNaN(result) || result >= 0.95"),
    ("successCondition", "all(result, # < 1000)"),
    ("successCondition", "max(result) < 0.05"),
    ("failureCondition", "result[0] >= 10"),
    ("failureCondition", "isInf(result)"),
]


@pytest.mark.parametrize(("key", "condition"), ARGO_DOC_CONDITIONS)
def test_conditions_from_argo_docs_load(key: str, condition: str) -> None:
    result = load(template_doc(metrics=[metric(**{key: condition})]))
    assert error_lines(result) == []
    (template,) = result.templates
    assert getattr(template.metrics[0], "success_condition" if key == "successCondition" else "failure_condition") == (
        condition
    )


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("result[0] >=", "unexpected end of expression (at character 12)"),
        ("(result[0] < 0.05", "expected ')', found 'end of expression' (at character 17)"),
        ("result[0] === 1", "unexpected character '=' (at character 12)"),
        ("foo(result) > 1", "unknown function 'foo' (at character 0)"),
        ("len(result, 2) > 0", "len() takes 1 arguments, got 2 (at character 0)"),
        ("results[0] >= 90", "unknown name 'results' (only 'result' and built-in functions exist) (at character 0)"),
        (
            "result.major == '1'",
            "member access ('.') is not allowed (at character 6): KULTA's conditions have no maps: "
            "select the field with the web metric's jsonPath (e.g. {$.major}) and compare result",
        ),
    ],
)
def test_a_bad_condition_is_an_error_with_its_path(condition: str, reason: str) -> None:
    result = load(template_doc(metrics=[metric(successCondition=condition)]))
    quoted = '"' + condition.replace('"', '\\"') + '"'
    assert error_lines(result) == [
        f"{FILE}#1 spec.metrics[0].successCondition: {quoted} is not a valid condition: {reason}"
    ]
    assert result.templates == ()


def test_every_bad_condition_of_a_template_is_reported() -> None:
    doc = template_doc(
        metrics=[
            metric(name="a", successCondition="result[0] <", failureCondition="result[0] > > 1"),
            metric(name="b", successCondition="result[0] < 0.05"),
            metric(name="c", failureCondition="isNaN()"),
        ]
    )
    assert error_lines(load(doc)) == [
        f'{FILE}#1 spec.metrics[0].successCondition: "result[0] <" is not a valid condition: '
        "unexpected end of expression (at character 11)",
        f'{FILE}#1 spec.metrics[0].failureCondition: "result[0] > > 1" is not a valid condition: '
        "unexpected '>' (at character 12)",
        f'{FILE}#1 spec.metrics[2].failureCondition: "isNaN()" is not a valid condition: '
        "isNaN() takes 1 arguments, got 0 (at character 0)",
    ]


def _threshold_template() -> dict[str, Any]:
    return template_doc(
        args=[{"name": "max", "value": "0.05"}],
        metrics=[metric(name="errors", successCondition="result[0] < {{args.max}}")],
    )


def _rollout_passing(*args: dict[str, Any]) -> dict[str, Any]:
    return with_steps({"analysis": {"templates": [{"templateName": "success-rate"}], "args": list(args)}})


def test_a_condition_with_placeholders_is_parsed_with_the_rollouts_literal_arguments() -> None:
    result = load(_rollout_passing({"name": "max", "value": "0.05)"}), _threshold_template())
    assert error_lines(result) == [
        f"{FILE}#1 spec.strategy.canary.steps[0].analysis.args: with these arguments, successCondition of "
        f'metric "errors" in template "success-rate" ({FILE}#2 spec.metrics[0]) is "result[0] < 0.05)", '
        "not a valid condition: unexpected ')' after the end of the expression (at character 16)",
    ]
    assert result.rollouts == ()
    assert [t.name for t in result.templates] == ["success-rate"]


def test_the_templates_default_is_used_when_the_rollout_passes_nothing() -> None:
    bad_default = template_doc(
        args=[{"name": "max", "value": "abc"}],
        metrics=[metric(name="errors", successCondition="result[0] < {{args.max}}")],
    )
    rollout = base_rollout()
    canary(rollout)["analysis"] = {"templates": [{"templateName": "success-rate"}]}
    assert error_lines(load(rollout, bad_default)) == [
        f"{FILE}#1 spec.strategy.canary.analysis.args: with these arguments, successCondition of "
        f'metric "errors" in template "success-rate" ({FILE}#2 spec.metrics[0]) is "result[0] < abc", '
        "not a valid condition: unknown name 'abc' (only 'result' and built-in functions exist) (at character 12)",
    ]


def test_good_literal_arguments_and_unknown_values_pass() -> None:
    assert error_lines(load(_rollout_passing({"name": "max", "value": "0.1"}), _threshold_template())) == []
    from_field = {"name": "max", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['max']"}}}
    # a valueFrom argument is only known when the run starts: checked then, not refused here
    assert error_lines(load(_rollout_passing(from_field), _threshold_template())) == []


def test_a_condition_over_the_evaluation_budget_is_refused_when_the_file_is_read() -> None:
    nested = "count(result, {count(result, {count(result, {# > 0}) > 0}) > 0}) > 0"
    result = load(template_doc(metrics=[metric(successCondition=nested)]))
    (line,) = error_lines(result)
    assert "spec.metrics[0].successCondition" in line
    assert "too costly" in line and "the budget is 1000000" in line
