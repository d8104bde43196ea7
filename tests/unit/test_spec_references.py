"""A Rollout's references: when the lookup fails, the error names the real blocker."""

from __future__ import annotations

from typing import Any

from tests.unit.spec_helpers import FILE, error_lines, load, template_doc, with_steps

JOB_REFUSED = (
    "spec.metrics[0].provider.job: the job metric provider is not supported by KULTA; "
    "KULTA runs provider.prometheus and provider.web"
)


def job_template(name: str = "random-fail", kind: str = "AnalysisTemplate") -> dict[str, Any]:
    """Like Argo's examples/analysis-templates.yaml: a metric measured by a Kubernetes Job."""
    doc = template_doc(
        name=name,
        metrics=[
            {
                "name": name,
                "count": 2,
                "interval": "5s",
                "failureLimit": 1,
                "provider": {"job": {"spec": {"backoffLimit": 0}}},
            }
        ],
    )
    doc["kind"] = kind
    if kind == "ClusterAnalysisTemplate":
        del doc["metadata"]["namespace"]
    return doc


def analysis_step(name: str, *, cluster_scope: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"templateName": name}
    if cluster_scope:
        ref["clusterScope"] = True
    return {"analysis": {"templates": [ref]}}


def test_a_refused_template_is_named_as_the_blocker_and_keeps_its_own_error() -> None:
    result = load(job_template(), with_steps({"setWeight": 25}, analysis_step("random-fail")))
    assert error_lines(result) == [
        f"{FILE}#1 {JOB_REFUSED}",
        f'{FILE}#2 spec.strategy.canary.steps[1].analysis: AnalysisTemplate "random-fail" ({FILE}#1) cannot be '
        f"used: {JOB_REFUSED}",
    ]
    assert result.rollouts == ()
    assert result.templates == ()


def test_a_refused_cluster_template_is_named_as_the_blocker() -> None:
    result = load(
        job_template("always-pass", kind="ClusterAnalysisTemplate"),
        with_steps(analysis_step("always-pass", cluster_scope=True)),
    )
    assert error_lines(result)[1:] == [
        f'{FILE}#2 spec.strategy.canary.steps[0].analysis: ClusterAnalysisTemplate "always-pass" ({FILE}#1) cannot '
        f"be used: {JOB_REFUSED}",
    ]


def test_the_blocker_counts_the_other_errors_of_the_template() -> None:
    refused = job_template()
    refused["spec"]["metrics"][0]["failureLimit"] = 3  # above count 2: a second error
    result = load(refused, with_steps(analysis_step("random-fail")))
    assert error_lines(result)[-1] == (
        f'{FILE}#2 spec.strategy.canary.steps[0].analysis: AnalysisTemplate "random-fail" ({FILE}#1) cannot be '
        f"used: {JOB_REFUSED} (and 1 more error there)"
    )


def test_a_refused_namespaced_template_is_not_taken_for_a_cluster_template() -> None:
    result = load(job_template("random-fail"), with_steps(analysis_step("random-fail", cluster_scope=True)))
    assert error_lines(result)[1:] == [
        f'{FILE}#2 spec.strategy.canary.steps[0].analysis: ClusterAnalysisTemplate "random-fail" is not in the '
        "files KULTA read: add it or fix the name",
    ]


def test_a_valid_template_wins_over_a_refused_duplicate() -> None:
    result = load(template_doc("random-fail"), job_template(), with_steps(analysis_step("random-fail")))
    assert error_lines(result) == [f"{FILE}#2 {JOB_REFUSED}"]
    assert [rollout.name for rollout in result.rollouts] == ["web"]
