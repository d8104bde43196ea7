"""Turn an ``AnalysisTemplate`` / ``ClusterAnalysisTemplate`` document into the model.

KULTA runs the Prometheus and web providers, so every other Argo provider is refused
here, by name, instead of failing later in the middle of a rollout. Limits and durations are checked
the way Argo checks them (count >= failureLimit, count > 1 needs an interval) and
``{{args.NAME}}`` placeholders must name a declared argument. ``count``, the limits,
``interval`` and ``initialDelay`` may be such templates (as in Argo): they are checked once
rendered (``kulta.core.metric_fields``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kulta.core.analysis_run import WHOLE_ARG_PLACEHOLDER, check_durations
from kulta.core.conditions import MEMBER_ACCESS, ConditionError, check_cost, parse_condition
from kulta.core.jsonpath import DEFAULT_JSON_PATH, JsonPathError, parse_json_path
from kulta.core.metric_fields import relation_problems
from kulta.model.analysis import (
    AnalysisTemplate,
    Metric,
    MetricField,
    MetricProviderSpec,
    PrometheusMetricProvider,
    TemplateArg,
    WebMethod,
    WebMetricProvider,
)
from kulta.model.rollout import DEFAULT_NAMESPACE, SourceRef
from kulta.spec.common import (
    check_header_name,
    check_header_value,
    compile_regex,
    parse_args,
    parse_metadata,
    unsupported,
)
from kulta.spec.fields import (
    INT64_MAX,
    MISSING,
    Issues,
    Shape,
    check_keys,
    child,
    index,
    parse_duration,
    read_bool,
    read_int,
    read_list,
    read_str,
    show,
)

__all__ = [
    "ARG_PLACEHOLDER",
    "ANY_PLACEHOLDER",
    "DRY_RUN_ALL",
    "INSECURE_WARNING",
    "MAX_JSON_BODY_BYTES",
    "MEMBER_ACCESS_HINT",
    "condition_problem",
    "parse_analysis_template",
]

#: ``{{args.NAME}}``: the only placeholder KULTA (like Argo) substitutes in a query.
ARG_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
#: the way out of ``result.field`` (Argo's web metrics over a JSON object, e.g. ``result.major == '1'``).
MEMBER_ACCESS_HINT = (
    "KULTA's conditions have no maps: select the field with the web metric's jsonPath (e.g. {$.major}) "
    "and compare result"
)
#: KULTA's extra ``dryRun`` rule for "every metric" (Argo writes ``.*``).
DRY_RUN_ALL = "*"
#: any ``{{...}}`` placeholder (arguments and the ``{{rollout.*}}`` built-ins).
ANY_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")

_OTHER_PROVIDERS = (
    "kayenta",
    "datadog",
    "wavefront",
    "newRelic",
    "job",
    "cloudWatch",
    "graphite",
    "influxdb",
    "skywalking",
    "plugin",
)

_TEMPLATE_SPEC = Shape(
    ("args", "metrics", "dryRun"),
    {
        "measurementRetention": unsupported("measurementRetention"),
        "templates": unsupported("spec.templates (a template made of other templates)", "list the metrics here"),
    },
)
_DRY_RUN_ENTRY = Shape(("metricName",))
_METRIC = Shape(
    (
        "name",
        "provider",
        "interval",
        "initialDelay",
        "count",
        "successCondition",
        "failureCondition",
        "failureLimit",
        "inconclusiveLimit",
        "consecutiveErrorLimit",
    ),
    {"consecutiveSuccessLimit": unsupported("consecutiveSuccessLimit")},
)
_PROVIDER = Shape(
    ("prometheus", "web"),
    {
        name: unsupported(f"the {name} metric provider", "KULTA runs provider.prometheus and provider.web")
        for name in _OTHER_PROVIDERS
    },
)
_WEB = Shape(
    ("url", "method", "headers", "body", "jsonBody", "timeoutSeconds", "jsonPath", "insecure"),
    {"authentication": unsupported("web.authentication (oauth2)", "send a token in headers instead")},
)
#: a ``jsonBody`` larger than this (as JSON) is refused: a metric request is not an upload.
MAX_JSON_BODY_BYTES = 64 * 1024
#: what ``kulta validate`` says about ``insecure: true``.
INSECURE_WARNING = (
    "insecure: true turns TLS certificate verification off for this metric's requests (as in Argo); "
    "anyone between KULTA and the endpoint can read the headers and forge the answer"
)
_SCHEMES = ("http://", "https://")
_PROMETHEUS = Shape(
    ("address", "query", "timeout", "headers"),
    {
        "insecure": unsupported("prometheus.insecure", "use an http:// address or a trusted certificate"),
        "authentication": unsupported("prometheus.authentication (sigv4/oauth2)", "use headers instead"),
        "rangeQuery": unsupported(
            "prometheus.rangeQuery",
            "KULTA makes instant queries: aggregate over a range in the query, e.g. max_over_time(...[5m])",
        ),
    },
)
_HEADER = Shape(("key", "value"))
#: a digit string an IntOrString limit may be: ASCII digits (``str.isdigit`` also takes ``²``), at most 10.
_DIGIT_STRING = re.compile(r"[0-9]{1,10}")


def _limit(issues: Issues, data: Mapping[str, Any], key: str, path: str, default: int) -> int | None:
    """Argo's intOrString limits: a whole number, or a digit string (``{{args}}`` templates: ``_templated``)."""
    raw = data.get(key, MISSING)
    where = child(path, key)
    if isinstance(raw, str) and _DIGIT_STRING.fullmatch(raw.strip()):
        # Argo's IntOrString: a digit string counts as its number (bounded like one)
        return read_int(issues, int(raw.strip()), where, minimum=0)
    value = read_int(issues, raw, where, minimum=0)
    if raw is MISSING or raw is None:
        return default
    return value


def _templated(issues: Issues, data: Mapping[str, Any], path: str, declared: set[str]) -> dict[MetricField, str]:
    """The fields written as ``{{args.*}}`` templates, as written (rendered when the run starts).

    Argo resolves the arguments in the whole metric before reading it (``ResolveMetricArgs``);
    the rendered value is bounded then as a literal is here (``metric_fields.resolve_fields``).
    """
    found: dict[MetricField, str] = {}
    for field in MetricField:
        raw = data.get(field.value)
        if isinstance(raw, str) and ARG_PLACEHOLDER.search(raw):
            _check_placeholders(issues, raw, child(path, field.value), declared)
            found[field] = raw
    return found


def _check_placeholders(issues: Issues, text: str, path: str, declared: set[str]) -> None:
    for name in ARG_PLACEHOLDER.findall(text):
        if name not in declared:
            issues.add(
                path, f'uses {{{{args.{name}}}}} but the template declares no argument "{name}": add it to spec.args'
            )


def condition_problem(condition: str) -> str | None:
    """Why ``condition`` cannot be evaluated (``kulta.core.conditions.parse_condition``), or ``None``.

    Argo compiles a condition only when a measurement is taken (``utils/evaluate``
    ``EvalCondition``), so a typo surfaces mid-canary; KULTA parses it when the file is read.
    """
    try:
        parsed = parse_condition(condition)
    except ConditionError as err:
        hint = f": {MEMBER_ACCESS_HINT}" if err.message == MEMBER_ACCESS else ""
        return f"{err.message} (at character {err.position}){hint}"
    try:
        check_cost(parsed)
    except ConditionError as err:
        return err.message
    return None


def _check_condition(issues: Issues, condition: str, path: str, declared: set[str]) -> None:
    """Placeholders must be declared; without placeholders, the condition must parse.

    A condition with placeholders is parsed once their values are known: by the loader
    for each Rollout that passes literal values, else when the analysis run starts.
    """
    _check_placeholders(issues, condition, path, declared)
    if ANY_PLACEHOLDER.search(condition):
        return
    problem = condition_problem(condition)
    if problem is not None:
        issues.add(path, f"{show(condition)} is not a valid condition: {problem}")


def _parse_headers(issues: Issues, value: Any, path: str, declared: set[str]) -> tuple[tuple[str, str], ...]:
    """``headers: [{key, value}]``: valid HTTP names and values, placeholders declared."""
    headers: list[tuple[str, str]] = []
    for position, item in enumerate(read_list(issues, value, path) or ()):
        where = index(path, position)
        entry = _HEADER.read(issues, item, where)
        if entry is None:
            continue
        key = read_str(issues, entry.get("key", MISSING), child(where, "key"), required=True)
        if key is not None and not check_header_name(issues, key, child(where, "key")):
            key = None
        header_value = read_str(issues, entry.get("value", MISSING), child(where, "value"), required=True)
        if header_value is not None and not check_header_value(issues, header_value, child(where, "value")):
            header_value = None
        if header_value is not None:
            _check_placeholders(issues, header_value, child(where, "value"), declared)
        if key is not None and header_value is not None:
            headers.append((key, header_value))
    return tuple(headers)


def _parse_prometheus(issues: Issues, value: Any, path: str, declared: set[str]) -> PrometheusMetricProvider | None:
    before = len(issues)
    data = _PROMETHEUS.read(issues, value, path)
    if data is None:
        return None
    address = read_str(issues, data.get("address", MISSING), child(path, "address"), required=True)
    if address is not None:
        if not address.startswith(("http://", "https://", "{{")):
            issues.add(child(path, "address"), f"{show(address)} must start with http:// or https://")
        _check_placeholders(issues, address, child(path, "address"), declared)
    query = read_str(issues, data.get("query", MISSING), child(path, "query"), required=True)
    if query is not None:
        _check_placeholders(issues, query, child(path, "query"), declared)
    # PrometheusMetric.Timeout is an *int64; Argo multiplies it by time.Second (metricproviders/prometheus
    # NewPrometheusProvider), so the metric's check_durations bounds it to Go's largest Duration
    timeout = read_int(
        issues,
        data.get("timeout", MISSING),
        child(path, "timeout"),
        minimum=1,
        largest=INT64_MAX,
        largest_why="Argo holds it in 64 bits",
    )
    headers = _parse_headers(issues, data.get("headers", MISSING), child(path, "headers"), declared)
    if len(issues) != before or address is None or query is None:
        return None
    return PrometheusMetricProvider(
        address=address, query=query, timeout_seconds=30 if timeout is None else timeout, headers=headers
    )


def _check_url(issues: Issues, url: str, path: str, declared: set[str]) -> None:
    """``http(s)://`` written out, and no placeholder before the path: values substituted into
    a URL are percent-encoded (``render_url``), which a host name or port cannot be.

    The one exception is Argo's own pattern, a URL that is one argument as a whole
    (``url: "{{args.secret-url}}"``, test/e2e/functional/rollout-secret.yaml): the value is
    the whole URL, checked for ``http(s)://`` once rendered (``analysis_run.render_url``).
    """
    if WHOLE_ARG_PLACEHOLDER.fullmatch(url):
        _check_placeholders(issues, url, path, declared)
        return
    if not url.startswith(_SCHEMES):
        issues.add(path, f"{show(url)} must start with http:// or https://")
        return
    rest = url.split("://", 1)[1]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if ANY_PLACEHOLDER.search(authority) or "{{" in authority:
        issues.add(
            path,
            unsupported(
                "a placeholder in the URL's host or port",
                "write the host literally (placeholder values in a URL are percent-encoded)",
            ),
        )
    _check_placeholders(issues, url, path, declared)


def _json_strings(value: object) -> list[str]:
    """Every string (keys too) of a decoded JSON document, to check its placeholders."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _json_strings(item)]
    if isinstance(value, dict):
        return [text for k, v in value.items() for text in (k, *_json_strings(v))]
    return []


def _parse_json_body(issues: Issues, value: Any, path: str, declared: set[str]) -> str | None:
    """``jsonBody`` as compact JSON text; YAML that JSON cannot hold (a date, a NaN) is refused."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        issues.add(path, "must be plain JSON data (a date or .nan has no JSON form: quote it)")
        return None
    if len(text.encode("utf-8")) > MAX_JSON_BODY_BYTES:
        issues.add(path, f"is larger than {MAX_JSON_BODY_BYTES} bytes as JSON")
        return None
    for text_value in _json_strings(value):
        _check_placeholders(issues, text_value, path, declared)
    return text


def _parse_web(issues: Issues, value: Any, path: str, declared: set[str]) -> WebMetricProvider | None:
    """Argo's ``WebMetric`` (pkg/apis/rollouts/v1alpha1/analysis_types.go), measured by
    ``kulta.adapters.web``; what Argo would refuse at every measurement is refused here."""
    before = len(issues)
    data = _WEB.read(issues, value, path)
    if data is None:
        return None
    url = read_str(issues, data.get("url", MISSING), child(path, "url"), required=True)
    if url is not None:
        _check_url(issues, url, child(path, "url"), declared)
    method = WebMethod.GET
    method_text = read_str(issues, data.get("method", MISSING), child(path, "method"))
    if method_text is not None:
        try:
            method = WebMethod(method_text)
        except ValueError:
            issues.add(child(path, "method"), f"{show(method_text)} must be GET, POST or PUT")
    headers = _parse_headers(issues, data.get("headers", MISSING), child(path, "headers"), declared)
    raw_body = data.get("body", MISSING)
    body = None if raw_body == "" else read_str(issues, raw_body, child(path, "body"))
    if body is not None:
        _check_placeholders(issues, body, child(path, "body"), declared)
    raw_json = data.get("jsonBody", MISSING)
    json_body = (
        None
        if raw_json is MISSING or raw_json is None
        else _parse_json_body(issues, raw_json, child(path, "jsonBody"), declared)
    )
    if body is not None and json_body is not None:
        issues.add(path, "sets both body and jsonBody: keep one (Argo refuses both)")
    elif (body is not None or json_body is not None) and method is WebMethod.GET:
        issues.add(child(path, "method"), "a body needs method POST or PUT (Argo refuses a GET with a body)")
    # WebMetric.TimeoutSeconds is an int64; NewWebMetricHttpClient waits 10s when it is 0
    timeout = read_int(
        issues,
        data.get("timeoutSeconds", MISSING),
        child(path, "timeoutSeconds"),
        minimum=0,
        largest=INT64_MAX,
        largest_why="Argo holds it in 64 bits",
    )
    json_path = read_str(issues, data.get("jsonPath", MISSING), child(path, "jsonPath")) or DEFAULT_JSON_PATH
    try:
        parse_json_path(json_path)
    except JsonPathError as err:
        issues.add(child(path, "jsonPath"), f"{show(json_path)} {err}")
    insecure = read_bool(issues, data.get("insecure", MISSING), child(path, "insecure"))
    if insecure:
        issues.warn(child(path, "insecure"), INSECURE_WARNING)
    if len(issues) != before or url is None:
        return None
    return WebMetricProvider(
        url=url,
        method=method,
        headers=headers,
        body=body,
        json_body=json_body,
        timeout_seconds=timeout if timeout else 10,
        json_path=json_path,
        insecure=bool(insecure),
    )


def _parse_provider(issues: Issues, value: Any, path: str, declared: set[str]) -> MetricProviderSpec | None:
    data = _PROVIDER.read(issues, value, path)
    if data is None:
        if value is MISSING:
            issues.add(path, "is required: add provider.prometheus (address, query) or provider.web (url)")
        return None
    kinds = [name for name in ("prometheus", "web") if name in data]
    if not kinds:
        if not any(name in data for name in _OTHER_PROVIDERS):
            issues.add(path, "needs provider.prometheus or provider.web")
        return None
    if len(kinds) > 1:
        issues.add(path, "sets both prometheus and web: a metric has one provider")
        return None
    if len(data) > 1:
        return None
    if kinds[0] == "web":
        return _parse_web(issues, data["web"], child(path, "web"), declared)
    return _parse_prometheus(issues, data["prometheus"], child(path, "prometheus"), declared)


def _parse_metric(
    issues: Issues, value: Any, path: str, declared: set[str], dry_run: Sequence[re.Pattern[str]]
) -> Metric | None:
    data = _METRIC.read(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    name = read_str(issues, data.get("name", MISSING), child(path, "name"), required=True)
    provider = _parse_provider(issues, data.get("provider", MISSING), child(path, "provider"), declared)
    templated = _templated(issues, data, path, declared)
    # bounded once the metric is built (check_durations, as the run does)
    interval = (
        None
        if MetricField.INTERVAL in templated
        else parse_duration(issues, data.get("interval", MISSING), child(path, "interval"))
    )
    if interval == 0:
        issues.add(child(path, "interval"), "must be longer than 0s")
    initial_delay = (
        None
        if MetricField.INITIAL_DELAY in templated
        else parse_duration(issues, data.get("initialDelay", MISSING), child(path, "initialDelay"))
    )
    limits: dict[MetricField, int | None] = {}
    for field, default in ((MetricField.COUNT, 0), (MetricField.FAILURE_LIMIT, 0), (MetricField.INCONCLUSIVE_LIMIT, 0)):
        limits[field] = default if field in templated else _limit(issues, data, field.value, path, default)
    error_limit = (
        4
        if MetricField.CONSECUTIVE_ERROR_LIMIT in templated
        else _limit(issues, data, MetricField.CONSECUTIVE_ERROR_LIMIT.value, path, 4)
    )
    count = limits[MetricField.COUNT]
    failure_limit = limits[MetricField.FAILURE_LIMIT]
    inconclusive_limit = limits[MetricField.INCONCLUSIVE_LIMIT]
    conditions: list[str | None] = []
    for key in ("successCondition", "failureCondition"):
        condition = read_str(issues, data.get(key, MISSING), child(path, key))
        if condition is not None:
            _check_condition(issues, condition, child(path, key), declared)
        conditions.append(condition)
    interval_given = data.get("interval") is not None  # when it is wrong, that is the error already
    interval_set = bool(interval) or MetricField.INTERVAL in templated
    effective_count: int | None = count if count else (None if interval_set else 1)
    # relations with a templated field are checked once it is rendered (resolve_fields)
    for key, problem in relation_problems(
        None if MetricField.COUNT in templated else effective_count,
        interval_set=interval_given,
        failure_limit=None if MetricField.FAILURE_LIMIT in templated else failure_limit,
        inconclusive_limit=None if MetricField.INCONCLUSIVE_LIMIT in templated else inconclusive_limit,
    ):
        issues.add(child(path, key), problem)
    if name is None or provider is None:
        return None
    metric = Metric(
        name=name,
        provider=provider,
        interval_seconds=interval,
        count=effective_count,
        initial_delay_seconds=initial_delay or 0,
        failure_limit=failure_limit or 0,
        inconclusive_limit=inconclusive_limit or 0,
        consecutive_error_limit=4 if error_limit is None else error_limit,
        success_condition=conditions[0],
        failure_condition=conditions[1],
        dry_run=any(rule.search(name) for rule in dry_run),
        templated=tuple(templated.items()),
    )
    # the bound the run applies (Argo's ValidateMetric), checked even when other fields are wrong
    for key, problem in check_durations(metric):
        issues.add(child(path, key), problem)
    if len(issues) != before or failure_limit is None or inconclusive_limit is None or error_limit is None:
        return None
    return metric


def _parse_dry_run(issues: Issues, value: Any, path: str) -> list[tuple[re.Pattern[str], str]]:
    """``dryRun[].metricName`` rules: regular expressions searched in metric names.

    Argo's ``GetDryRunMetrics`` (utils/analysis/helpers.go) marks every metric whose name
    ``regexp.MatchString`` finds the rule in (unanchored, so ``.*`` marks all). KULTA
    also takes ``"*"`` for all metrics.
    """
    rules: list[tuple[re.Pattern[str], str]] = []
    for position, item in enumerate(read_list(issues, value, path) or ()):
        where = index(path, position)
        entry = _DRY_RUN_ENTRY.read(issues, item, where)
        if entry is None:
            continue
        text = read_str(issues, entry.get("metricName", MISSING), child(where, "metricName"), required=True)
        if text is None:
            continue
        rule = compile_regex(issues, "" if text == DRY_RUN_ALL else text, child(where, "metricName"))
        if rule is not None:
            rules.append((rule, text))
    return rules


def parse_analysis_template(
    issues: Issues,
    data: Mapping[str, Any],
    *,
    cluster_scoped: bool,
    source: SourceRef,
    default_namespace: str = DEFAULT_NAMESPACE,
) -> AnalysisTemplate | None:
    """A template from a document whose apiVersion and kind were already checked.

    A namespaced template without ``metadata.namespace`` is in ``default_namespace``.
    """
    before = len(issues)
    check_keys(issues, data, "", ("apiVersion", "kind", "metadata", "spec"))
    metadata = parse_metadata(
        issues, data.get("metadata", MISSING), namespaced=not cluster_scoped, default_namespace=default_namespace
    )
    spec = _TEMPLATE_SPEC.read(issues, data.get("spec", MISSING), "spec")
    if spec is None:
        if "spec" not in data:
            issues.add("spec", "is required: add spec.metrics")
        return None
    specs = parse_args(issues, spec.get("args", MISSING), "spec.args", value_required=False)
    args = tuple(TemplateArg(name=s.name, value=s.value, value_from=s.value_from) for s in specs)
    declared = {arg.name for arg in args}
    if isinstance(spec.get("args"), list):
        declared |= {a["name"] for a in spec["args"] if isinstance(a, Mapping) and isinstance(a.get("name"), str)}
    dry_run = _parse_dry_run(issues, spec.get("dryRun", MISSING), "spec.dryRun")
    rules = [rule for rule, _ in dry_run]
    metrics: list[Metric] = []
    items = read_list(issues, spec.get("metrics", MISSING), "spec.metrics")
    if not items and len(issues) == before:
        issues.add("spec.metrics", "must list at least one metric")
    for position, item in enumerate(items or ()):
        metric = _parse_metric(issues, item, index("spec.metrics", position), declared, rules)
        if metric is None:
            continue
        if any(existing.name == metric.name for existing in metrics):
            issues.add(index("spec.metrics", position) + ".name", f'metric "{metric.name}" appears twice')
            continue
        metrics.append(metric)
    for rule, text in dry_run:
        if items and len(metrics) == len(items) and not any(rule.search(m.name) for m in metrics):
            issues.add(
                "spec.dryRun", f"{show(text)} matches no metric of the template (metricName is a regular expression)"
            )
    if len(issues) != before or metadata.name is None:
        return None
    return AnalysisTemplate(
        name=metadata.name,
        namespace=metadata.namespace if not cluster_scoped else "",
        cluster_scoped=cluster_scoped,
        args=args,
        metrics=tuple(metrics),
        source=source,
    )
