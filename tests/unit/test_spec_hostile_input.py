"""Input that used to end in a traceback: each is now one located error (issue 11, spec side).

Every expected line is written out by hand: ``file#doc field.path: message``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kulta.app.spec_commands import plan_command, validate_command
from kulta.core.revision import SAFE_ALPHABET, canonical_json, pod_template_hash
from kulta.spec import load_text
from kulta.spec.yamlio import read_documents
from tests.unit.spec_helpers import FILE, base_rollout, dump, error_lines, load, template_doc, with_steps

STEP0 = "spec.strategy.canary.steps[0]"
NOT_ALLOWED = (
    "which YAML does not allow (control characters and NUL): remove it, or write it as an escape in a "
    "double-quoted string"
)
NOT_A_DURATION = "is not a duration; use whole seconds (90) or a duration like 30s, 5m, 1h, 1h30m"
TOO_LARGE = "is too large: numbers in Kubernetes objects are 64-bit (at most 9223372036854775807)"
#: a decimal literal of 5001 digits: Python's int() refuses more than 4300.
HUGE = "1" + "0" * 5000
HUGE_SHOWN = "10000000000000000000... (5001 digits)"
MARK = "999999999"


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


def run(command: object, *args: object) -> tuple[int, str]:
    out = io.StringIO()
    code = command(*args, out)  # type: ignore[operator]
    return code, out.getvalue()


def with_literal(doc: object, literal: str) -> str:
    """``doc`` as YAML with the number ``MARK`` written as ``literal`` (PyYAML cannot dump huge ints)."""
    text = dump(doc)
    assert text.count(MARK) == 1
    return text.replace(MARK, literal)


# --- characters YAML does not allow (NUL, ESC): the document and field that hold them

TWO_CONFIG_MAPS = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\n"


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure-python"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            TWO_CONFIG_MAPS + "metadata:\n  name: b\x00c\n",
            f"{FILE}#2 metadata.name: the file holds the character U+0000 at line 8, column 10, {NOT_ALLOWED}",
        ),
        (
            TWO_CONFIG_MAPS + "metadata:\n  name: b\x1b[31mc\n",
            f"{FILE}#2 metadata.name: the file holds the character U+001B at line 8, column 10, {NOT_ALLOWED}",
        ),
        (
            # in a key: the mapping holding it
            TWO_CONFIG_MAPS + "metadata:\n  na\x00me: b\n",
            f"{FILE}#2 metadata: the file holds the character U+0000 at line 8, column 5, {NOT_ALLOWED}",
        ),
        (
            # in a comment: the document only
            "# \x00\n" + TWO_CONFIG_MAPS + "metadata: {name: b}\n",
            f"{FILE}#1: the file holds the character U+0000 at line 1, column 3, {NOT_ALLOWED}",
        ),
        (
            TWO_CONFIG_MAPS + "metadata:\n  name: b\x00c\n  labels: {x: \x00, y: \x07}\n",
            f"{FILE}#2 metadata.name: the file holds the character U+0000 at line 8, column 10 (2 more such "
            f"characters follow), {NOT_ALLOWED}",
        ),
        (
            # after a syntax error: the document where reading stopped
            "a: [\n---\nb: \x00\n",
            f"{FILE}#1: the file holds the character U+0000 at line 3, column 4, {NOT_ALLOWED}",
        ),
        (
            # a byte order mark after the start (two files joined): libyaml and PyYAML read it differently
            "\ufeff" + TWO_CONFIG_MAPS + "metadata:\n  name: b\n\ufeffdata: {}\n",
            f"{FILE}#2: the file holds the character U+FEFF at line 9, column 1, a byte order mark, which is "
            "allowed only at the start of a file: remove it",
        ),
    ],
    ids=[
        "nul-in-value",
        "ansi-escape",
        "nul-in-key",
        "nul-in-comment",
        "three-characters",
        "after-syntax-error",
        "inner-byte-order-mark",
    ],
)
def test_a_refused_character_is_located(text: str, expected: str, fast: bool) -> None:
    documents, errors = read_documents(text, FILE, fast=fast)
    assert [str(error) for error in errors] == [expected]
    assert documents == []


def test_a_nul_in_a_rollout_names_its_field() -> None:
    text = dump(base_rollout()).replace("canaryService: web-canary", "canaryService: web-\x00canary")
    assert error_lines(load_text(text, FILE)) == [
        f"{FILE}#1 spec.strategy.canary.canaryService: the file holds the character U+0000 at line 21, column 26, "
        f"{NOT_ALLOWED}"
    ]


def test_a_directory_with_nul_files_still_reports_every_other_files_errors(workdir: Path) -> None:
    (workdir / "apps" / "a" / "b").mkdir(parents=True)
    (workdir / "apps" / "web.yaml").write_text(dump(with_steps({"setWeight": 120})))
    (workdir / "apps" / "a" / "nul.yaml").write_bytes(b"kind: \x00\n")
    (workdir / "apps" / "a" / "b" / "bad.yaml").write_text(dump(with_steps({"setWeight": 101})))
    code, text = run(validate_command, ["apps"])
    assert code == 1
    assert text.splitlines() == [
        "apps/a/b/bad.yaml#1 spec.strategy.canary.steps[0].setWeight: 101 is outside 0..100",
        f"apps/a/nul.yaml#1 kind: the file holds the character U+0000 at line 1, column 7, {NOT_ALLOWED}",
        "apps/web.yaml#1 spec.strategy.canary.steps[0].setWeight: 120 is outside 0..100",
        "FAILED: 3 file(s): 0 rollout(s), 0 analysis template(s), 3 error(s)",
    ]


def test_plan_of_a_valid_file_does_not_fail_on_bad_files_below_or_beside_it(workdir: Path) -> None:
    (workdir / "apps" / "a" / "b").mkdir(parents=True)
    (workdir / "apps" / "web.yaml").write_text(dump(with_steps({"setWeight": 10})))
    (workdir / "apps" / "nul.yaml").write_bytes(b"kind: \x00\n")  # beside: read for references only
    (workdir / "apps" / "a" / "b" / "nul.yaml").write_bytes(b"\x00\x00\x00")  # two folders below: not read
    code, text = run(plan_command, "apps/web.yaml")
    assert code == 0
    assert text.splitlines()[:2] == [
        "Rollout shop/web (apps/web.yaml#1)",
        "  replicas: 4; revision (pod-template-hash): 75dbb9bb65",
    ]


# --- integers of more than 4300 digits, and non-ASCII digits


@pytest.mark.parametrize(
    ("doc", "literal", "expected"),
    [
        (with_steps({"setWeight": int(MARK)}), HUGE, f"{FILE}#1 {STEP0}.setWeight: {HUGE_SHOWN} {TOO_LARGE}"),
        (base_rollout(replicas=int(MARK)), HUGE, f"{FILE}#1 spec.replicas: {HUGE_SHOWN} {TOO_LARGE}"),
        (
            with_steps({"pause": {"duration": int(MARK)}}),
            HUGE,
            f"{FILE}#1 {STEP0}.pause.duration: {HUGE_SHOWN} {TOO_LARGE}",
        ),
        (
            with_steps({"pause": {"duration": int(MARK)}}),
            "-" + HUGE,
            f"{FILE}#1 {STEP0}.pause.duration: -1000000000000000000... (5001 digits) {TOO_LARGE}",
        ),
        (
            with_steps({"pause": {"duration": int(MARK)}}),
            "0x" + "f" * 5000,
            f"{FILE}#1 {STEP0}.pause.duration: 0xffffffffffffffffff... (5000 digits) {TOO_LARGE}",
        ),
        (
            with_steps({"pause": {"duration": int(MARK)}}),
            '"' + HUGE + 's"',
            f'{FILE}#1 {STEP0}.pause.duration: "{HUGE[:56]}..." is longer than 2147483647s (596523h14m7s), the '
            "longest pause Argo can hold (RolloutPause.DurationSeconds counts 32-bit seconds)",
        ),
    ],
    ids=["setWeight", "replicas", "duration", "negative", "hex", "duration-text"],
)
def test_huge_integers_are_located_errors(doc: object, literal: str, expected: str) -> None:
    assert error_lines(load_text(with_literal(doc, literal), FILE)) == [expected]


def test_a_duration_with_thousands_of_leading_zeros_is_read() -> None:
    # time.ParseDuration reads "0005m" as 5m; 5000 zeros are skipped, never converted
    text = with_literal(with_steps({"pause": {"duration": int(MARK)}}), '"' + "0" * 5000 + '5m"')
    result = load_text(text, FILE)
    assert error_lines(result) == []
    pause = result.rollouts[0].spec.strategy.steps[0].pause
    assert pause is not None
    assert pause.duration_seconds == 300


def test_huge_integers_in_an_analysis_template() -> None:
    doc = template_doc()
    metric = doc["spec"]["metrics"][0]
    metric["interval"] = MARK
    metric["count"] = int("7777")
    text = with_literal(doc, HUGE + "s").replace("count: 7777", f"count: {HUGE}")
    assert error_lines(load_text(text, FILE)) == [
        f"{FILE}#1 spec.metrics[0].count: {HUGE_SHOWN} {TOO_LARGE}",
    ]
    text = with_literal(doc, HUGE + "s")
    assert error_lines(load_text(text, FILE)) == [
        f"{FILE}#1 spec.metrics[0].interval: is longer than 9223372036s (2562047h47m16s), the largest duration Argo "
        "can hold",
    ]


@pytest.mark.parametrize(
    ("step", "field", "expected"),
    [
        ({"pause": {"duration": "\u00b2s"}}, "pause.duration", f'"\\u00b2s" {NOT_A_DURATION}'),
        ({"pause": {"duration": "\u0663"}}, "pause.duration", f'"\\u0663" {NOT_A_DURATION}'),
        ({"pause": {"duration": "1\u0663m"}}, "pause.duration", f'"1\\u0663m" {NOT_A_DURATION}'),
        ({"pause": {"duration": "\uff11s"}}, "pause.duration", f'"\\uff11s" {NOT_A_DURATION}'),
    ],
    ids=["superscript-two", "arabic-indic-three", "arabic-indic-in-minutes", "fullwidth-one"],
)
def test_non_ascii_digits_are_not_durations(step: object, field: str, expected: str) -> None:
    assert error_lines(load(with_steps(step))) == [f"{FILE}#1 {STEP0}.{field}: {expected}"]


def test_non_ascii_digits_elsewhere() -> None:
    doc = with_steps({"setWeight": 10}, maxSurge="\u0663%")
    assert error_lines(load(doc)) == [
        f'{FILE}#1 spec.strategy.canary.maxSurge: "\\u0663%" must be a count like 1 or a percentage like "25%"'
    ]
    template = template_doc()
    template["spec"]["metrics"][0]["interval"] = "\u0663s"
    template["spec"]["metrics"][0]["count"] = "\u00b2"
    assert error_lines(load(template)) == [
        f'{FILE}#1 spec.metrics[0].interval: "\\u0663s" {NOT_A_DURATION}',
        f'{FILE}#1 spec.metrics[0].count: must be a whole number, got "\\u00b2"',
    ]


# --- regular expressions that re.compile cannot take


def header_route(regex: str) -> dict[str, object]:
    route = {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Beta", "headerValue": {"regex": regex}}]}}
    routing = {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}, "managedRoutes": [{"name": "beta"}]}
    return with_steps(route, trafficRouting=routing)


REGEX_PATH = f"{STEP0}.setHeaderRoute.match[0].headerValue.regex"


@pytest.mark.parametrize(
    ("regex", "expected"),
    [
        # 512 nested groups: re.compile raises RecursionError
        ("(" * 512 + ")" * 512, f'"{"(" * 56}..." is not a valid regular expression: it nests or repeats too much'),
        # a repeat count above the C limit: OverflowError
        ("a{99999999999}", '"a{99999999999}" is not a valid regular expression: it nests or repeats too much'),
        ("(", '"(" is not a valid regular expression: missing ), unterminated subpattern at position 0'),
        ("a" * 1025, "is 1025 characters long; a regular expression here has at most 1024"),
    ],
    ids=["recursion", "overflow", "syntax", "too-long"],
)
def test_a_header_regex_re_compile_cannot_take_is_a_located_error(regex: str, expected: str) -> None:
    assert error_lines(load(header_route(regex))) == [f"{FILE}#1 {REGEX_PATH}: {expected}"]


def test_a_dry_run_regex_nested_too_deeply_is_a_located_error() -> None:
    doc = template_doc(dryRun=[{"metricName": "(" * 512 + ")" * 512}])
    assert error_lines(load(doc)) == [
        f'{FILE}#1 spec.dryRun[0].metricName: "{"(" * 56}..." is not a valid regular expression: it nests or '
        "repeats too much"
    ]


# --- pod templates with non-string keys


def test_a_pod_template_mixing_integer_and_string_keys_is_refused_where_the_key_is() -> None:
    text = dump(base_rollout()).replace("- name: web\n", "- name: web\n        env: {1: a, b: c}\n", 1)
    assert "env: {1: a, b: c}" in text
    assert error_lines(load_text(text, FILE)) == [
        f"{FILE}#1 spec.template.spec.containers[0].env: field names must be strings, got 1: quote it"
    ]


def test_a_workload_deployment_mixing_keys_is_named_as_the_blocker() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:v2"}], True: 1},
            },
        },
    }
    rollout = base_rollout(workloadRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    del rollout["spec"]["template"]
    assert error_lines(load(deployment, rollout)) == [
        f"{FILE}#1 spec.template.spec: field names must be strings, got true: quote it",
        f'{FILE}#2 spec.workloadRef.name: Deployment "web" ({FILE}#1) cannot be used: spec.template.spec: field '
        "names must be strings, got true: quote it",
    ]


def test_hashing_a_template_with_mixed_keys_never_raises() -> None:
    # json.dumps(sort_keys=True) cannot compare 1 with "a"; the keys are written as JSON writes them
    template = {"spec": {1: "one", "a": [{None: 0, True: 1, 2.5: 2}], "b": {"z": 1, "y": 2}}}
    assert canonical_json(template) == b'{"spec":{"1":"one","a":[{"2.5":2,"null":0,"true":1}],"b":{"y":2,"z":1}}}'
    digest = pod_template_hash(template)
    assert digest != ""
    assert set(digest) <= set(SAFE_ALPHABET)
