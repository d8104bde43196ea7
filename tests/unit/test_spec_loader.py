"""Loading files: safe YAML, many documents, many files, cross-document references."""

from __future__ import annotations

from pathlib import Path

import pytest

from kulta.model.rollout import AnalysisTemplateRef
from kulta.spec import find_template, load_paths, load_text
from kulta.spec.yamlio import MAX_FILE_BYTES, read_documents
from tests.unit.spec_helpers import FILE, base_rollout, dump, error_lines, load, template_doc, with_steps


def bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_yaml_bomb_is_refused_and_the_next_document_still_read() -> None:
    text = bomb(9) + "---\n" + dump(base_rollout())
    result = load_text(text, FILE)
    assert error_lines(result) == [
        f"{FILE}#1: the document expands to more than 100000 YAML nodes (anchors and aliases included, near line 5); "
        "refusing it as a possible YAML bomb: write the values out or split the document"
    ]
    assert [r.source.document for r in result.rollouts] == [2]


def test_small_aliases_are_fine() -> None:
    documents, errors = read_documents(bomb(3), FILE)
    assert errors == []
    assert len(documents[0].data["a2"]) == 10


def test_recursive_alias_is_refused() -> None:
    _, errors = read_documents("a: &a [1, *a]\n", FILE)
    assert [str(e) for e in errors] == [
        f"{FILE}#1: an alias at line 1 refers to its own anchor (a recursive structure); Kubernetes objects cannot "
        "be recursive: remove the alias"
    ]


def test_duplicate_keys_are_refused_but_merge_keys_work() -> None:
    _, errors = read_documents("spec:\n  replicas: 1\n  replicas: 3\n", FILE)
    assert [str(e) for e in errors] == [
        f'{FILE}#1: key "replicas" appears twice (lines 2 and 3); YAML would silently keep only the last one: '
        "remove one of them"
    ]
    documents, errors = read_documents("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n", FILE)
    assert errors == []
    assert documents[0].data["m"] == {"x": 3, "y": 2}


def test_syntax_error_names_the_document_and_line() -> None:
    text = dump(base_rollout()) + "---\nkind: [unclosed\n"
    result = load_text(text, FILE)
    assert len(result.rollouts) == 1
    (line,) = error_lines(result)
    assert line.startswith(f"{FILE}#2: YAML syntax error at line ")
    assert line.endswith("; fix the YAML")


def test_python_tags_are_not_constructed() -> None:
    result = load_text("!!python/object/apply:os.system ['true']\n", FILE)
    (line,) = error_lines(result)
    assert "could not determine a constructor" in line


def test_oversized_text_and_file_are_refused(tmp_path: Path) -> None:
    big = "# " + "x" * MAX_FILE_BYTES + "\n"
    assert error_lines(load_text(big, FILE)) == [
        f"{FILE}#1: the file is {MAX_FILE_BYTES + 3} bytes; KULTA reads files up to {MAX_FILE_BYTES} bytes: split it"
    ]
    (tmp_path / "big.yaml").write_text(big)
    (tmp_path / "ok.yaml").write_text(dump(base_rollout()))
    result = load_paths([tmp_path], base=tmp_path)
    assert error_lines(result) == [
        f"big.yaml#1: the file is {MAX_FILE_BYTES + 3} bytes; KULTA reads files up to {MAX_FILE_BYTES} bytes: split it"
    ]
    assert [r.source.file for r in result.rollouts] == ["ok.yaml"]


def test_many_documents_and_kinds_in_one_file() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-stable", "namespace": "shop"}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"}}
    second = base_rollout()
    second["metadata"]["name"] = "api"
    text = dump(service, base_rollout(), template_doc(), route, second) + "---\n"
    result = load_text(text, FILE)
    assert error_lines(result) == []
    assert [(r.name, r.source.document) for r in result.rollouts] == [("web", 2), ("api", 5)]
    assert [t.name for t in result.templates] == ["success-rate"]
    assert [(o.kind, o.name, o.namespace, o.source.document) for o in result.others] == [
        ("Service", "web-stable", "shop", 1),
        ("HTTPRoute", "web", "default", 4),
    ]
    assert result.others[0].body == service


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", f"{FILE}#1: must be a Kubernetes object (a mapping with apiVersion and kind), got a list"),
        (
            "apiVersion: v1\n",
            f"{FILE}#1 kind: is required (Rollout, AnalysisTemplate, ClusterAnalysisTemplate or any Kubernetes kind)",
        ),
        ("kind: Rollout\n", f"{FILE}#1 apiVersion: is required (e.g. argoproj.io/v1alpha1)"),
        (
            "apiVersion: argoproj.io/v1alpha1\nkind: Experiment\n",
            f"{FILE}#1 kind: experiments are not supported by KULTA: remove this document",
        ),
        (
            "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\n",
            f"{FILE}#1 kind: KULTA creates analysis runs itself: remove this document",
        ),
        (
            "apiVersion: kulta.io/v1alpha1\nkind: Canary\n",
            f'{FILE}#1 kind: "Canary" is not supported; KULTA reads Rollout, AnalysisTemplate, ClusterAnalysisTemplate',
        ),
    ],
)
def test_document_shape_errors(text: str, expected: str) -> None:
    assert error_lines(load_text(text, FILE)) == [expected]


def test_one_bad_file_never_stops_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(dump(with_steps({"setWeight": 120})))
    (tmp_path / "b.yml").write_bytes(b"\xff\xfe garbage")
    good = base_rollout()
    good["metadata"]["name"] = "good"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text(dump(good))
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "d.yaml").write_text("not: [valid\n")
    (tmp_path / "notes.txt").write_text("ignored")
    result = load_paths([tmp_path], base=tmp_path)
    assert result.files == ("a.yaml", "b.yml", "sub/c.yaml")
    assert error_lines(result) == [
        "a.yaml#1 spec.strategy.canary.steps[0].setWeight: 120 is outside 0..100",
        "b.yml#1: is not UTF-8 text (byte 0): save the file as UTF-8",
    ]
    assert [r.name for r in result.rollouts] == ["good"]


def test_globs_missing_paths_and_deduplication(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(dump(base_rollout()))
    result = load_paths(
        [str(tmp_path / "*.yaml"), tmp_path / "a.yaml", str(tmp_path / "none-*.yaml"), tmp_path / "gone.yaml"],
        base=tmp_path,
    )
    assert result.files == ("a.yaml",)
    assert error_lines(result) == [
        f"{tmp_path / 'none-*.yaml'}#1: the pattern matched no files: check the path",
        "gone.yaml#1: no such file or directory: check the path",
    ]
    assert len(result.rollouts) == 1


def test_file_names_without_base_are_as_given(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(dump(with_steps({"setWeight": 101})))
    (line,) = error_lines(load_paths([path]))
    assert line.startswith(f"{path.as_posix()}#1 ")


def test_templates_may_live_in_another_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(dump(with_steps({"analysis": {"templateName": "success-rate"}})))
    (tmp_path / "b.yaml").write_text(dump(template_doc()))
    result = load_paths([tmp_path / "a.yaml", tmp_path / "b.yaml"], base=tmp_path)
    assert error_lines(result) == []
    assert len(result.rollouts) == 1


def test_duplicate_names_are_reported_on_the_second_definition() -> None:
    result = load(base_rollout(), base_rollout(), template_doc(), template_doc())
    assert error_lines(result) == [
        f'{FILE}#2 metadata.name: Rollout "shop/web" is already defined in {FILE}#1: rename or remove one',
        f'{FILE}#4 metadata.name: "success-rate" is already defined in {FILE}#3: rename or remove one',
    ]
    assert len(result.rollouts) == 1
    other_namespace = base_rollout()
    other_namespace["metadata"]["namespace"] = "other"
    assert error_lines(load(base_rollout(), other_namespace)) == []


def deployment(name: str = "web", namespace: str = "shop", labels: dict[str, str] | None = None) -> dict[str, object]:
    labels = labels or {"app": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:v2"}]},
            },
        },
    }


def workload_rollout(with_selector: bool = True) -> dict[str, object]:
    doc = base_rollout(workloadRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    del doc["spec"]["template"]
    if not with_selector:
        del doc["spec"]["selector"]
    return doc


def test_workload_ref_takes_the_selector_from_the_deployment() -> None:
    result = load(deployment(), workload_rollout(with_selector=False))
    assert error_lines(result) == []
    (rollout,) = result.rollouts
    assert rollout.spec.template is None
    assert rollout.spec.selector == {"matchLabels": {"app": "web"}}


@pytest.mark.parametrize(
    ("docs", "expected"),
    [
        (
            [workload_rollout()],
            f'{FILE}#1 spec.workloadRef.name: Deployment "web" in namespace "shop" is not in the files KULTA read: add '
            "it, or put the pod template in spec.template",
        ),
        (
            [deployment(namespace="other"), workload_rollout()],
            f'{FILE}#2 spec.workloadRef.name: Deployment "web" in namespace "shop" is not in the files KULTA read, '
            f'but one is in namespace "other" ({FILE}#1): put them in the same namespace',
        ),
    ],
)
def test_workload_ref_errors(docs: list[object], expected: str) -> None:
    result = load(*docs)
    assert error_lines(result) == [expected]
    assert result.rollouts == ()


def test_an_unusable_deployment_is_named_as_the_rollouts_blocker() -> None:
    result = load(deployment(labels={"app": "other"}), workload_rollout())
    assert error_lines(result) == [
        f"{FILE}#1 spec.template.metadata.labels: do not satisfy the selector of Rollout web ({FILE}#2): make them "
        "match",
        f'{FILE}#2 spec.workloadRef.name: Deployment "web" ({FILE}#1) cannot be used: spec.template.metadata.labels: '
        f"do not satisfy the selector of Rollout web ({FILE}#2): make them match",
    ]
    assert result.rollouts == ()


def test_workload_ref_kind_must_be_a_deployment() -> None:
    doc = workload_rollout()
    doc["spec"]["workloadRef"]["kind"] = "StatefulSet"  # type: ignore[index]
    assert error_lines(load(doc)) == [
        f'{FILE}#1 spec.workloadRef.kind: "StatefulSet" is not supported; KULTA takes templates from a Deployment'
    ]


def test_find_template_respects_namespace_and_scope() -> None:
    cluster = template_doc()
    cluster["kind"] = "ClusterAnalysisTemplate"
    del cluster["metadata"]["namespace"]
    result = load(template_doc(namespace="a"), cluster)
    namespaced, clustered = result.templates
    ref = AnalysisTemplateRef("success-rate", cluster_scope=False)
    assert find_template(result.templates, ref, "a") is namespaced
    assert find_template(result.templates, ref, "b") is None
    cluster_ref = AnalysisTemplateRef("success-rate", cluster_scope=True)
    assert find_template(result.templates, cluster_ref, "b") is clustered


def test_sibling_files_are_read_for_references_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "rollout.yaml").write_text(
        dump(with_steps({"analysis": {"templates": [{"templateName": "success-rate"}]}}))
    )
    (tmp_path / "templates.yaml").write_text(dump(template_doc()))
    (tmp_path / ".hidden.yaml").write_text("broken: [\n")
    alone = load_paths([tmp_path / "rollout.yaml"], base=tmp_path)
    assert alone.reference_files == ()
    assert [error.path for error in alone.errors] == ["spec.strategy.canary.steps[0].analysis"]
    with_siblings = load_paths([tmp_path / "rollout.yaml"], base=tmp_path, siblings=True)
    assert error_lines(with_siblings) == []
    assert with_siblings.files == ("rollout.yaml",)
    assert with_siblings.reference_files == ("templates.yaml",)
    assert [t.source.file for t in with_siblings.templates] == ["templates.yaml"]
    assert with_siblings.templates_of_named_files() == ()
