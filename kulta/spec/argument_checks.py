"""A Rollout's literal analysis arguments filled into the templates it uses, checked as the run will.

``kulta validate`` cannot know a revision hash or a secret, but a Rollout's literal
``value``s (and a template's literal defaults) are known from the files. With them, the
placeholders of a condition, of a templated ``count`` / limit / ``interval`` /
``initialDelay`` and of a web ``url`` given as one argument are rendered here and checked
with the run's own rules (``analysis_parser.condition_problem``,
``metric_fields.resolve_fields``, ``analysis_run.is_whole_url``). Problems are reported
on the Rollout's ``analysis.args``, since the values that break the template are there.
"""

from __future__ import annotations

from collections.abc import Sequence

from kulta.core.analysis_run import (
    ARGS_PREFIX,
    BUILTIN_NAME,
    BUILTIN_NAMESPACE,
    WHOLE_ARG_PLACEHOLDER,
    is_whole_url,
)
from kulta.core.metric_fields import check_durations, rendered_value, resolve_fields
from kulta.errors import SpecError, SpecLocation
from kulta.model.analysis import AnalysisTemplate, MetricField, WebMetricProvider
from kulta.model.rollout import AnalysisArg, Rollout, SourceRef
from kulta.spec.analysis_parser import ANY_PLACEHOLDER, condition_problem
from kulta.spec.fields import SpecWarning, show

__all__ = ["literal_values", "rendered_condition_errors", "rendered_field_problems"]

_CONDITION_KEYS = ("successCondition", "failureCondition")


def _error_at(source: SourceRef, path: str, message: str) -> SpecError:
    return SpecError(source.file, source.document, path, message)


def literal_values(rollout: Rollout, template: AnalysisTemplate, args: Sequence[AnalysisArg]) -> dict[str, str]:
    """The placeholder values known from the files alone: literal ``value``s and the Rollout's name.

    A Rollout's argument replaces the template's default (``analysis_run.resolve_args``);
    ``valueFrom`` and the revision hashes are only known when the run starts.
    """
    values = {BUILTIN_NAME: rollout.name, BUILTIN_NAMESPACE: rollout.namespace}
    for template_arg in template.args:
        if template_arg.value is not None:
            values[ARGS_PREFIX + template_arg.name] = template_arg.value
    for arg in args:
        values.pop(ARGS_PREFIX + arg.name, None)
        if arg.value is not None:
            values[ARGS_PREFIX + arg.name] = arg.value
    return values


def rendered_condition_errors(
    rollout: Rollout, template: AnalysisTemplate, args: Sequence[AnalysisArg], path: str
) -> list[SpecError]:
    """Conditions with placeholders, parsed with this Rollout's literal arguments filled in.

    A condition whose placeholders are not all known here is parsed when the run starts.
    """
    values = literal_values(rollout, template, args)
    errors: list[SpecError] = []
    for position, metric in enumerate(template.metrics):
        for key, condition in zip(_CONDITION_KEYS, (metric.success_condition, metric.failure_condition), strict=True):
            if condition is None or not ANY_PLACEHOLDER.search(condition):
                continue
            names = ANY_PLACEHOLDER.findall(condition)
            if not all(name in values for name in names):
                continue
            rendered = ANY_PLACEHOLDER.sub(lambda match: values[match.group(1)], condition)
            problem = condition_problem(rendered)
            if problem is not None:
                errors.append(
                    _error_at(
                        rollout.source,
                        f"{path}.args",
                        f'with these arguments, {key} of metric "{metric.name}" in template "{template.name}" '
                        f"({template.source} spec.metrics[{position}]) is {show(rendered)}, not a valid "
                        f"condition: {problem}",
                    )
                )
    return errors


def rendered_field_problems(
    rollout: Rollout, template: AnalysisTemplate, args: Sequence[AnalysisArg], path: str
) -> tuple[list[SpecError], list[SpecWarning]]:
    """Templated ``count``, limits, ``interval`` and ``initialDelay`` rendered with this Rollout's literal
    arguments and bounded as the run will (``metric_fields.resolve_fields``); a field whose
    arguments come from ``valueFrom`` is checked when the run starts, which a warning says.
    A web ``url`` that is one argument as a whole is checked when that argument is literal
    (``analysis_run.render_url``); from a Secret it is the usual case, checked at the start.
    """
    values = literal_values(rollout, template, args)
    errors: list[SpecError] = []
    warnings: list[SpecWarning] = []
    for position, metric in enumerate(template.metrics):
        where = f'metric "{metric.name}" in template "{template.name}" ({template.source} spec.metrics[{position}])'
        texts: dict[MetricField, str] = {}
        for field, text in metric.templated:
            unknown = [name for name in ANY_PLACEHOLDER.findall(text) if name not in values]
            if unknown:
                warnings.append(
                    SpecWarning(
                        SpecLocation(rollout.source.file, rollout.source.document, f"{path}.args"),
                        f"{field.value} of {where} is {show(text)}: not checked here because "
                        f"{', '.join('{{' + name + '}}' for name in unknown)} is only known when the run starts "
                        "(valueFrom); the run ends Error if the value is out of bounds",
                    )
                )
                continue
            texts[field] = ANY_PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
        url = metric.provider.url if isinstance(metric.provider, WebMetricProvider) else ""
        names = ANY_PLACEHOLDER.findall(url) if WHOLE_ARG_PLACEHOLDER.fullmatch(url) else []
        if names and names[0] in values and not is_whole_url(values[names[0]]):
            errors.append(
                _error_at(
                    rollout.source,
                    f"{path}.args",
                    f"with these arguments, provider.web.url of {where} is {show(values[names[0]])}, "
                    "not an http:// or https:// URL with a host",
                )
            )
        if len(texts) == len(metric.templated):
            resolved, problems = resolve_fields(metric, texts)
            problems += check_durations(resolved)
        else:  # each known field alone; the relations between them once all are known
            problems = [
                (field.value, problem)
                for field, text in metric.templated
                if field in texts and (problem := rendered_value(field, text, texts[field])[1]) is not None
            ]
        errors += [
            _error_at(rollout.source, f"{path}.args", f"with these arguments, {key} of {where} {problem}")
            for key, problem in problems
        ]
    return errors, warnings
