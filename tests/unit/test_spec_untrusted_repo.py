"""The repository is untrusted: what validate and plan print, which files they open, both YAML parsers.

Expected lines are written out by hand.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kulta.app.spec_commands import plan_command, validate_command
from kulta.spec.escape import one_line
from kulta.spec.yamlio import read_documents
from tests.unit.spec_helpers import FILE, dump, with_steps

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
CORPUS = sorted((TESTS / "corpus").glob("*.yaml")) + sorted((TESTS / "corpus_bad").glob("*.yaml"))
FIFO = "is not a regular file (a FIFO): KULTA reads regular files only"
CANARY_FIELDS = (
    "abortScaleDownDelaySeconds, analysis, canaryMetadata, canaryService, dynamicStableScale, maxSurge, "
    "maxUnavailable, scaleDownDelaySeconds, stableMetadata, stableService, steps, trafficRouting"
)


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


def kulta(cwd: Path, *args: str, encoding: str = "utf-8") -> subprocess.CompletedProcess[str]:
    """``python -m kulta.cli ARGS`` in ``cwd``; a FIFO that were opened would block it until the timeout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": encoding}
    command = [sys.executable, "-m", "kulta.cli", *args]
    return subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


# --- one_line: the escaping every printer uses


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("web.yaml#1 spec.replicas: ok", "web.yaml#1 spec.replicas: ok"),
        ("a\nb", "a\\nb"),
        ("a\r\n::error::forged", "a\\r\\n::error::forged"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("tab\there", "tab\\there"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f c1\x85", "del\\x7f c1\\x85"),
        ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("caf\u00e9 \u00b2 \u0663", "caf\u00e9 \u00b2 \u0663"),
        ("already \\n escaped", "already \\n escaped"),
    ],
    ids=[
        "plain",
        "newline",
        "crlf-annotation",
        "ansi",
        "tab",
        "nul",
        "del-and-c1",
        "unicode-separators",
        "bidi-override",
        "tag-character",
        "printable-non-ascii",
        "backslash-kept",
    ],
)
def test_one_line_escapes_what_is_not_printable(text: str, shown: str) -> None:
    assert one_line(text) == shown


# --- validate and plan print every line escaped


def test_a_key_with_a_newline_and_an_ansi_escape_stays_on_its_line(workdir: Path) -> None:
    doc = with_steps({"setWeight": 10})
    doc["spec"]["strategy"]["canary"]["x\n::error::forged\x1b[31m"] = 1
    (workdir / "web.yaml").write_text(dump(doc))
    code, text = run(validate_command, ["web.yaml"])
    assert code == 1
    assert text.split("\n") == [
        f"web.yaml#1 spec.strategy.canary.x\\n::error::forged\\x1b[31m: unknown field; the fields here are: "
        f"{CANARY_FIELDS}",
        "FAILED: 1 file(s): 0 rollout(s), 0 analysis template(s), 1 error(s)",
        "",
    ]


def test_a_file_name_with_a_newline_and_an_escape_is_printed_escaped(workdir: Path) -> None:
    (workdir / "evil\n::error::x\x1b[2J.yaml").write_text(dump(with_steps({"setWeight": 120})))
    code, text = run(validate_command, ["."])
    assert code == 1
    assert text.split("\n") == [
        "evil\\n::error::x\\x1b[2J.yaml#1 spec.strategy.canary.steps[0].setWeight: 120 is outside 0..100",
        "FAILED: 1 file(s): 0 rollout(s), 0 analysis template(s), 1 error(s)",
        "",
    ]


def test_plan_prints_the_file_name_escaped(workdir: Path) -> None:
    name = "web\x1b[31m.yaml"
    (workdir / name).write_text(dump(with_steps({"setWeight": 10})))
    code, text = run(plan_command, name)
    assert code == 0
    assert text.split("\n")[0] == "Rollout shop/web (web\\x1b[31m.yaml#1)"
    assert "\x1b" not in text
    (workdir / name).write_text(dump(with_steps({"setWeight": 101})))
    assert run(plan_command, name) == (
        1,
        "web\\x1b[31m.yaml#1 spec.strategy.canary.steps[0].setWeight: 101 is outside 0..100\n"
        "FAILED: 1 error(s) in web\\x1b[31m.yaml\n",
    )
    assert run(plan_command, "gone\n.yaml") == (1, "gone\\n.yaml: no such file: pass one YAML file\n")


def test_the_cli_prints_a_forged_annotation_on_the_errors_own_line(tmp_path: Path) -> None:
    doc = with_steps({"setWeight": 10})
    doc["metadata"]["\n::error file=x::forged\x1b[8m"] = "v"
    (tmp_path / "web.yaml").write_text(dump(doc))
    done = kulta(tmp_path, "validate", "web.yaml")
    assert done.returncode == 1
    assert done.stdout.split("\n") == [
        "web.yaml#1 metadata.\\n::error file=x::forged\\x1b[8m: unknown field; the fields here are: annotations, "
        "labels, name, namespace",
        "FAILED: 1 file(s): 0 rollout(s), 0 analysis template(s), 1 error(s)",
        "",
    ]


def test_a_file_name_that_is_not_utf8_is_printed_escaped(tmp_path: Path) -> None:
    # the byte 0xff is "\udcff" in Python's file names: printed as is, it is a raw 0xff byte in the
    # output, or an exception where stdout is strict UTF-8 (as under most UTF-8 locales)
    (tmp_path / "\udcff.yaml").write_text(dump(with_steps({"setWeight": 120})))
    done = kulta(tmp_path, "validate", ".", encoding="utf-8:strict")
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.split("\n") == [
        "\\udcff.yaml#1 spec.strategy.canary.steps[0].setWeight: 120 is outside 0..100",
        "FAILED: 1 file(s): 0 rollout(s), 0 analysis template(s), 1 error(s)",
        "",
    ]


# --- which files are opened: literal names first, regular files only


def test_a_literal_name_with_glob_characters_is_read_as_that_file(workdir: Path) -> None:
    (workdir / "weird[1].yaml").write_text(dump(with_steps({"setWeight": 120})))
    (workdir / "weird1.yaml").write_text(dump(with_steps({"setWeight": 130})))
    code, text = run(validate_command, ["weird[1].yaml"])
    assert code == 1
    assert text.split("\n")[0] == "weird[1].yaml#1 spec.strategy.canary.steps[0].setWeight: 120 is outside 0..100"
    code, text = run(plan_command, "weird[1].yaml")
    assert text.split("\n")[0] == "weird[1].yaml#1 spec.strategy.canary.steps[0].setWeight: 120 is outside 0..100"
    # once it is gone, the same text is a pattern, which matches weird1.yaml
    (workdir / "weird[1].yaml").unlink()
    code, text = run(validate_command, ["weird[1].yaml"])
    assert text.split("\n")[0] == "weird1.yaml#1 spec.strategy.canary.steps[0].setWeight: 130 is outside 0..100"


def test_a_fifo_is_named_and_never_opened(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    os.mkfifo(tmp_path / "apps" / "x.yaml")
    (tmp_path / "apps" / "web.yaml").write_text(dump(with_steps({"setWeight": 10})))
    done = kulta(tmp_path, "validate", "apps")
    assert (done.returncode, done.stdout.split("\n")) == (
        1,
        [
            f"apps/x.yaml#1: {FIFO}",
            "FAILED: 2 file(s): 1 rollout(s), 0 analysis template(s), 1 error(s)",
            "",
        ],
    )
    done = kulta(tmp_path, "plan", "apps/x.yaml")
    assert (done.returncode, done.stdout) == (1, f"apps/x.yaml#1: {FIFO}\nFAILED: 1 error(s) in apps/x.yaml\n")
    # beside a planned file, a FIFO is not among the files read for references
    done = kulta(tmp_path, "plan", "apps/web.yaml")
    assert (done.returncode, done.stdout.split("\n")[0]) == (0, "Rollout shop/web (apps/web.yaml#1)")
    assert "Traceback" not in done.stderr


def test_a_fifo_in_process_is_refused_before_it_is_opened(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(workdir / "x.yaml")
    (workdir / "web.yaml").write_text(dump(with_steps({"setWeight": 10})))
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        opened.append(os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    assert run(validate_command, ["."]) == (
        1,
        f"x.yaml#1: {FIFO}\nFAILED: 2 file(s): 1 rollout(s), 0 analysis template(s), 1 error(s)\n",
    )
    assert [Path(path).name for path in opened] == ["web.yaml"]


# --- libyaml and the pure-Python parser give the same results


@pytest.mark.parametrize("path", CORPUS, ids=[f"{p.parent.name}/{p.name}" for p in CORPUS])
def test_both_parsers_read_every_corpus_file_alike(path: Path) -> None:
    text = path.read_text()
    fast_documents, fast_errors = read_documents(text, path.name, fast=True)
    pure_documents, pure_errors = read_documents(text, path.name, fast=False)
    assert [(d.index, d.data) for d in fast_documents] == [(d.index, d.data) for d in pure_documents]
    assert [str(e) for e in fast_errors] == [str(e) for e in pure_errors]


def bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]" for level in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure-python"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "spec:\n  replicas: 1\n  replicas: 3\n",
            f'{FILE}#1: key "replicas" appears twice (lines 2 and 3); YAML would silently keep only the last one: '
            "remove one of them",
        ),
        (
            bomb(6),  # a4 (line 5) expands to 111111 nodes
            f"{FILE}#1: the document expands to more than 100000 YAML nodes (anchors and aliases included, near "
            "line 5); refusing it as a possible YAML bomb: write the values out or split the document",
        ),
        (
            "a: &a [1, *a]\n",
            f"{FILE}#1: an alias at line 1 refers to its own anchor (a recursive structure); Kubernetes objects "
            "cannot be recursive: remove the alias",
        ),
        (
            "a: " + "[" * 101 + "]" * 101 + "\n",
            f"{FILE}#1: the document is nested more than 100 levels deep (near line 1); Kubernetes objects are far "
            "shallower: flatten it",
        ),
        (
            "a: [\n",
            f"{FILE}#1: YAML syntax error at line 2, column 1: expected the node content, but found '<stream end>'; "
            "fix the YAML",
        ),
    ],
    ids=["duplicate-key", "alias-budget", "recursive-anchor", "too-deep", "syntax-error"],
)
def test_every_safety_check_holds_with_both_parsers(text: str, expected: str, fast: bool) -> None:
    documents, errors = read_documents(text, FILE, fast=fast)
    assert [str(e) for e in errors] == [expected]
    assert documents == []


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure-python"])
def test_merge_keys_work_with_both_parsers(fast: bool) -> None:
    documents, errors = read_documents("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n", FILE, fast=fast)
    assert errors == []
    assert documents[0].data["m"] == {"x": 3, "y": 2}


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure-python"])
def test_an_empty_scalar_tagged_with_the_non_specific_tag_is_null_with_both_parsers(fast: bool) -> None:
    # PyYAML's parser resolves "!" like a plain scalar; libyaml's events say otherwise for an empty one
    documents, errors = read_documents("a: !\nb: ! 12\n", FILE, fast=fast)
    assert errors == []
    assert documents[0].data == {"a": None, "b": 12}


def test_the_one_known_difference_a_tab_after_a_value() -> None:
    # YAML and libyaml allow a tab as separation after a value; PyYAML's pure-Python scanner refuses it
    text = "a: b\t\n"
    fast_documents, fast_errors = read_documents(text, FILE, fast=True)
    assert (fast_errors, fast_documents[0].data) == ([], {"a": "b"})
    _, pure_errors = read_documents(text, FILE, fast=False)
    assert [str(e) for e in pure_errors] == [
        f"{FILE}#1: YAML syntax error at line 1, column 5: found character '\\t' that cannot start any token; fix "
        "the YAML"
    ]
