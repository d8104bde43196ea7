"""Values that were accepted though Argo Rollouts or Kubernetes cannot hold them (issue 11, spec side).

Every expected line is written out by hand: ``file#doc field.path: message``. The
bounds come from Argo's Go types (``pkg/apis/rollouts/v1alpha1``): ``*int32`` for
replicas, ``setWeight`` and the ``*Seconds`` fields, ``RolloutPause.DurationSeconds``
returning an int32, ``DurationString`` read by ``time.ParseDuration`` (at most
2562047h47m16s) for analysis intervals.
"""

from __future__ import annotations

from typing import Any

import pytest

from kulta.errors import ConfigError
from kulta.spec import load_text
from kulta.spec.namespaces import check_namespace, parse_path_namespace
from tests.unit.spec_helpers import FILE, base_rollout, dump, error_lines, load, template_doc, with_steps

CANARY = "spec.strategy.canary"
STEP0 = f"{CANARY}.steps[0]"
INT32 = "is above 2147483647: Kubernetes holds this field in 32 bits"
DNS_LABEL = (
    "is not a valid name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
)
LONGEST_PAUSE = (
    "is longer than 2147483647s (596523h14m7s), the longest pause Argo can hold (RolloutPause.DurationSeconds "
    "counts 32-bit seconds)"
)
LONGEST_DURATION = "is longer than 9223372036s (2562047h47m16s), the largest duration Argo can hold"
HEADER_CHARS = "header values may only hold printable ASCII characters and tabs"
GATEWAY = {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}, "managedRoutes": [{"name": "beta"}]}


def header_route(name: str = "X-Beta", **value: str) -> dict[str, Any]:
    match = {"headerName": name, "headerValue": value}
    return with_steps({"setHeaderRoute": {"name": "beta", "match": [match]}}, trafficRouting=GATEWAY)


def with_metric(**changes: Any) -> dict[str, Any]:
    doc = template_doc()
    doc["spec"]["metrics"][0].update(changes)
    return doc


def with_prometheus(**changes: Any) -> dict[str, Any]:
    doc = template_doc()
    doc["spec"]["metrics"][0]["provider"]["prometheus"].update(changes)
    return doc


def with_image(image: str, key: str = "containers") -> dict[str, Any]:
    doc = base_rollout()
    spec = doc["spec"]["template"]["spec"]
    if key == "containers":
        spec["containers"][0]["image"] = image
    else:
        spec[key] = [{"name": "init", "image": image}]
    return doc


def renamed(**metadata: str) -> dict[str, Any]:
    doc = base_rollout()
    doc["metadata"].update(metadata)
    return doc


# --- names ending in a newline: every pattern is matched whole (``$`` also matches before a final "\n")


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            renamed(name="web\n"),
            "metadata.name: \"web\\n\" is not a valid name: use at most 242 lowercase letters, digits, '-' and "
            "'.', starting and ending with a letter or digit",
        ),
        (renamed(namespace="shop\n"), f'metadata.namespace: "shop\\n" {DNS_LABEL}'),
        (with_steps(canaryService="web-canary\n"), f'{CANARY}.canaryService: "web-canary\\n" {DNS_LABEL}'),
        (
            header_route(name="X-Beta\n", exact="on"),
            f'{STEP0}.setHeaderRoute.match[0].headerName: "X-Beta\\n" is not a valid HTTP header name: use at most '
            "256 letters, digits and !#$%&'*+-.^_`|~",
        ),
        (
            template_doc(args=[{"name": "region\n"}]),
            "spec.args[0].name: \"region\\n\" may only hold letters, digits, '_', '-' and '.'",
        ),
    ],
    ids=["rollout-name", "namespace", "service", "header-name", "argument-name"],
)
def test_a_name_ending_in_a_newline_is_refused(doc: dict[str, Any], expected: str) -> None:
    assert error_lines(load(doc)) == [f"{FILE}#1 {expected}"]


def test_a_block_scalar_name_keeps_its_newline_and_is_refused() -> None:
    text = dump(base_rollout()).replace("  name: web\n", "  name: |\n    web\n", 1)
    assert error_lines(load_text(text, FILE)) == [
        f"{FILE}#1 metadata.name: \"web\\n\" is not a valid name: use at most 242 lowercase letters, digits, '-' "
        "and '.', starting and ending with a letter or digit"
    ]


def test_a_namespace_option_ending_in_a_newline_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        check_namespace("shop\n")
    assert str(caught.value) == (
        "--namespace: 'shop\\n' is not a valid namespace: use at most 63 lowercase letters, digits and '-', "
        "starting and ending with a letter or digit"
    )
    with pytest.raises(ConfigError) as caught:
        parse_path_namespace("apps=shop\n")
    assert str(caught.value).startswith("--path-namespace: 'shop\\n' is not a valid namespace")


# --- int32 fields and durations


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (base_rollout(replicas=2147483648), f"spec.replicas: 2147483648 {INT32}"),
        (base_rollout(revisionHistoryLimit=2147483648), f"spec.revisionHistoryLimit: 2147483648 {INT32}"),
        (base_rollout(minReadySeconds=2147483648), f"spec.minReadySeconds: 2147483648 {INT32}"),
        (base_rollout(progressDeadlineSeconds=2147483648), f"spec.progressDeadlineSeconds: 2147483648 {INT32}"),
        (
            with_steps({"setCanaryScale": {"replicas": 2147483648}}),
            f"{STEP0}.setCanaryScale.replicas: 2147483648 {INT32}",
        ),
        (
            with_steps(scaleDownDelaySeconds=9223372036854775807),
            f"{CANARY}.scaleDownDelaySeconds: 9223372036854775807 {INT32}",
        ),
        (
            with_steps(abortScaleDownDelaySeconds=2147483648),
            f"{CANARY}.abortScaleDownDelaySeconds: 2147483648 {INT32}",
        ),
        (with_steps(maxSurge=2147483648), f"{CANARY}.maxSurge: 2147483648 {INT32}"),
        (with_steps({"pause": {"duration": 2147483648}}), f"{STEP0}.pause.duration: 2147483648 {LONGEST_PAUSE}"),
        (
            with_steps({"pause": {"duration": "596523h14m8s"}}),
            f'{STEP0}.pause.duration: "596523h14m8s" {LONGEST_PAUSE}',
        ),
        (with_metric(interval="2562047h47m17s"), f"spec.metrics[0].interval: {LONGEST_DURATION}"),
        (with_metric(initialDelay="9223372037s"), f"spec.metrics[0].initialDelay: {LONGEST_DURATION}"),
        (with_prometheus(timeout=9223372037), f"spec.metrics[0].provider.prometheus.timeout: {LONGEST_DURATION}"),
    ],
    ids=[
        "replicas",
        "revisionHistoryLimit",
        "minReadySeconds",
        "progressDeadlineSeconds",
        "setCanaryScale.replicas",
        "scaleDownDelaySeconds",
        "abortScaleDownDelaySeconds",
        "maxSurge",
        "pause-seconds",
        "pause-text",
        "interval",
        "initialDelay",
        "prometheus-timeout",
    ],
)
def test_a_value_beyond_what_argo_holds_is_refused(doc: dict[str, Any], expected: str) -> None:
    assert error_lines(load(doc)) == [f"{FILE}#1 {expected}"]


def test_the_largest_values_argo_holds_are_accepted() -> None:
    rollout = with_steps(
        {"setCanaryScale": {"replicas": 2147483647}},
        {"pause": {"duration": "596523h14m7s"}},
        {"pause": {"duration": 2147483647}},
        scaleDownDelaySeconds=2147483647,
    )
    rollout["spec"].update(replicas=2147483647, revisionHistoryLimit=2147483647)
    result = load(rollout, with_metric(interval="2562047h47m16s", initialDelay="9223372036s"))
    assert error_lines(result) == []
    (loaded,) = result.rollouts
    assert loaded.spec.replicas == 2147483647
    assert [step.pause.duration_seconds for step in loaded.spec.strategy.steps[1:] if step.pause] == [
        2147483647,
        2147483647,
    ]
    (metric,) = result.templates[0].metrics
    assert (metric.interval_seconds, metric.initial_delay_seconds) == (9223372036, 9223372036)


def test_an_analysis_duration_is_refused_even_when_other_fields_are_wrong() -> None:
    doc = with_metric(interval="9999999999s", failureLimit=-1)
    assert error_lines(load(doc)) == [
        f"{FILE}#1 spec.metrics[0].failureLimit: -1 is below the minimum 0",
        f"{FILE}#1 spec.metrics[0].interval: {LONGEST_DURATION}",
    ]


def test_a_leading_zero_is_refused_with_the_number_to_write() -> None:
    text = dump(with_steps({"setWeight": 10})).replace("setWeight: 10", "setWeight: 010")
    assert error_lines(load_text(text, FILE)) == [
        f"{FILE}#1 {STEP0}.setWeight: 010 has a leading zero: YAML 1.1 reads it as an octal number (8), YAML 1.2 "
        "as the decimal 10; write 10 (without the leading zero)"
    ]
    # not an octal number: PyYAML reads a string, which setWeight refuses
    text = dump(with_steps({"setWeight": 10})).replace("setWeight: 10", "setWeight: 09")
    assert error_lines(load_text(text, FILE)) == [f'{FILE}#1 {STEP0}.setWeight: must be a whole number, got "09"']


# --- container images: the rule of the CDEvents artifact id (kulta.core.purl.parse_image)


@pytest.mark.parametrize(
    ("image", "key", "expected"),
    [
        (
            "Registry.local/WEB:v1",
            "containers",
            "\"Registry.local/WEB:v1\" is not a valid image reference: repository path segment 'WEB' must be "
            "lowercase letters, digits and . _ - separators",
        ),
        (
            "web@sha256:abc",
            "containers",
            "\"web@sha256:abc\" is not a valid image reference: digest 'sha256:abc' is not <algorithm>:<hex>",
        ),
        ("web:", "containers", "\"web:\" is not a valid image reference: tag '' is not a valid tag"),
        ("web:v1 x", "containers", '"web:v1 x" is not a valid image reference: it contains whitespace'),
        (
            "web:v1\n",
            "containers",
            '"web:v1\\n" has leading or trailing whitespace, which Kubernetes refuses in a Pod: remove it',
        ),
        (
            "BAD",
            "initContainers",
            "\"BAD\" is not a valid image reference: repository path segment 'BAD' must be lowercase letters, "
            "digits and . _ - separators",
        ),
    ],
    ids=["uppercase", "short-digest", "empty-tag", "inner-space", "trailing-newline", "init-container"],
)
def test_an_invalid_image_is_refused_at_load(image: str, key: str, expected: str) -> None:
    field = f"{key}[0].image"
    assert error_lines(load(with_image(image, key))) == [f"{FILE}#1 spec.template.spec.{field}: {expected}"]


def test_valid_images_are_accepted() -> None:
    for image in ("nginx", "registry.local:5000/team/web:v1.2", "web@sha256:" + "a" * 64, "[::1]:5000/web"):
        assert error_lines(load(with_image(image))) == [], image


# --- header values: no line break, NUL, control or non-ASCII character


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("on\r\nX-Forged: 1", '"on\\r\\nX-Forged: 1" holds a line break (U+000D at character 3)'),
        ("on\n", '"on\\n" holds a line break (U+000A at character 3)'),
        ("o\x00n", '"o\\u0000n" holds a NUL character (U+0000 at character 2)'),
        ("o\x1bn", '"o\\u001bn" holds a control character (U+001B at character 2)'),
        ("caf\u00e9", '"caf\\u00e9" holds a non-ASCII character (U+00E9 at character 4)'),
    ],
    ids=["crlf", "lf", "nul", "escape", "non-ascii"],
)
def test_a_header_value_with_a_forbidden_character_is_refused(value: str, expected: str) -> None:
    for kind in ("exact", "prefix"):
        path = f"{STEP0}.setHeaderRoute.match[0].headerValue.{kind}"
        assert error_lines(load(header_route(**{kind: value}))) == [f"{FILE}#1 {path}: {expected}: {HEADER_CHARS}"]
    headers = [{"key": "X-Scope", "value": value}]
    assert error_lines(load(with_prometheus(headers=headers))) == [
        f"{FILE}#1 spec.metrics[0].provider.prometheus.headers[0].value: {expected}: {HEADER_CHARS}"
    ]


def test_a_header_value_with_tabs_and_printable_ascii_is_accepted() -> None:
    assert error_lines(load(header_route(exact="a\tb ~!"))) == []
    assert error_lines(load(with_prometheus(headers=[{"key": "X-Scope", "value": "Bearer a.b-c"}]))) == []


def test_a_prometheus_header_name_with_a_newline_is_refused() -> None:
    doc = with_prometheus(headers=[{"key": "X-Scope\n", "value": "a"}])
    assert error_lines(load(doc)) == [
        f'{FILE}#1 spec.metrics[0].provider.prometheus.headers[0].key: "X-Scope\\n" is not a valid HTTP header name: '
        "use at most 256 letters, digits and !#$%&'*+-.^_`|~"
    ]


def test_a_header_value_over_4096_characters_is_refused() -> None:
    assert error_lines(load(header_route(exact="a" * 4097))) == [
        f"{FILE}#1 {STEP0}.setHeaderRoute.match[0].headerValue.exact: is 4097 characters long; a header value here "
        "has at most 4096"
    ]
