"""Documents without metadata.namespace: the default namespace of the files, and what errors say."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kulta import cli
from kulta.app.runner import RunOptions
from kulta.app.spec_commands import plan_command, validate_command
from kulta.errors import ConfigError
from kulta.spec import load_paths, load_text
from kulta.spec.namespaces import DefaultNamespaces, check_namespace, parse_path_namespace
from tests.unit.spec_helpers import FILE, dump, error_lines, template_doc, with_steps

ANALYSIS_STEP = {"analysis": {"templates": [{"templateName": "success-rate"}]}}
DEFAULT_ORIGIN = "the default namespace of these files; set metadata.namespace or --namespace"


def without_namespace(doc: dict[str, Any]) -> dict[str, Any]:
    del doc["metadata"]["namespace"]
    return doc


def rollout(namespace: str | None = "shop") -> dict[str, Any]:
    doc = with_steps({"setWeight": 20}, ANALYSIS_STEP)
    return without_namespace(doc) if namespace is None else doc


def test_a_namespace_less_template_next_to_a_rollout_in_shop_is_in_default_and_the_error_says_so() -> None:
    result = load_text(dump(rollout("shop"), without_namespace(template_doc())), FILE)
    assert error_lines(result) == [
        f'{FILE}#1 spec.strategy.canary.steps[1].analysis: AnalysisTemplate "success-rate" in namespace "shop" is '
        f'not in the files KULTA read, but one is in namespace "default" ({FILE}#2, {DEFAULT_ORIGIN}): put them in '
        "the same namespace",
    ]


def test_the_default_namespace_puts_them_together() -> None:
    result = load_text(
        dump(rollout("shop"), without_namespace(template_doc())), FILE, namespaces=DefaultNamespaces("shop")
    )
    assert error_lines(result) == []
    (template,) = result.templates
    assert template.namespace == "shop"


def test_argo_examples_without_any_namespace_load_in_default_or_in_the_given_namespace() -> None:
    text = dump(rollout(None), without_namespace(template_doc()))
    plain = load_text(text, FILE)
    assert error_lines(plain) == []
    assert [(r.namespace, t.namespace) for r in plain.rollouts for t in plain.templates] == [("default", "default")]
    shop = load_text(text, FILE, namespaces=DefaultNamespaces("shop"))
    assert [(r.namespace, t.namespace) for r in shop.rollouts for t in shop.templates] == [("shop", "shop")]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-stable"}, "spec": {}}
    with_service = load_text(text + "---\n" + dump(service), FILE, namespaces=DefaultNamespaces("shop"))
    assert [(other.kind, other.namespace) for other in with_service.others] == [("Service", "shop")]


def test_a_namespace_less_rollout_names_the_namespace_that_applied() -> None:
    result = load_text(dump(rollout(None), template_doc(namespace="shop")), FILE)
    assert error_lines(result) == [
        f'{FILE}#1 spec.strategy.canary.steps[1].analysis: AnalysisTemplate "success-rate" in namespace "default" '
        f'({DEFAULT_ORIGIN}) is not in the files KULTA read, but one is in namespace "shop" ({FILE}#2): put them in '
        "the same namespace",
    ]


def test_a_missing_template_names_the_namespace_and_where_it_came_from() -> None:
    result = load_text(dump(rollout(None)), FILE, namespaces=DefaultNamespaces("shop"))
    assert error_lines(result) == [
        f'{FILE}#1 spec.strategy.canary.steps[1].analysis: AnalysisTemplate "success-rate" in namespace "shop" '
        f"({DEFAULT_ORIGIN}) is not in the files KULTA read: add it or fix the name",
    ]


def test_a_namespace_less_deployment_is_found_in_the_default_namespace_only() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:v2"}]},
            },
        },
    }
    doc = with_steps({"setWeight": 20})
    del doc["spec"]["template"]
    doc["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    text = dump(deployment, doc)
    assert error_lines(load_text(text, FILE)) == [
        f'{FILE}#2 spec.workloadRef.name: Deployment "web" in namespace "shop" is not in the files KULTA read, but '
        f'one is in namespace "default" ({FILE}#1, {DEFAULT_ORIGIN}): put them in the same namespace',
    ]
    assert error_lines(load_text(text, FILE, namespaces=DefaultNamespaces("shop"))) == []


def test_the_longest_directory_gives_the_namespace_of_its_files() -> None:
    namespaces = DefaultNamespaces("base", (("apps", "apps-ns"), ("apps/shop", "shop"), ("", "root-ns")))
    assert namespaces.for_file("apps/shop/rollout.yaml") == "shop"
    assert namespaces.for_file("apps/shopping/rollout.yaml") == "apps-ns"
    assert namespaces.for_file("apps/web.yaml") == "apps-ns"
    assert namespaces.for_file("other/web.yaml") == "root-ns"
    assert DefaultNamespaces("base", (("apps", "apps-ns"),)).for_file("other/web.yaml") == "base"
    assert namespaces.origin("apps/shop/rollout.yaml") == (
        "the namespace of the files under apps/shop (--path-namespace); set metadata.namespace to change it"
    )


def test_directory_namespaces_apply_to_the_files_read_from_a_repository(tmp_path: Path) -> None:
    (tmp_path / "apps" / "shop").mkdir(parents=True)
    (tmp_path / "apps" / "shop" / "rollout.yaml").write_text(dump(rollout(None), without_namespace(template_doc())))
    (tmp_path / "apps" / "web.yaml").write_text(dump(without_namespace(template_doc("other"))))
    namespaces = DefaultNamespaces("edge", (("apps/shop", "shop"),))
    result = load_paths([tmp_path / "apps"], base=tmp_path, namespaces=namespaces)
    assert error_lines(result) == []
    assert [(r.name, r.namespace) for r in result.rollouts] == [("web", "shop")]
    assert sorted((t.name, t.namespace) for t in result.templates) == [("other", "edge"), ("success-rate", "shop")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apps/shop=shop", ("apps/shop", "shop")),
        ("apps/shop/=shop", ("apps/shop", "shop")),
        ("./apps=web", ("apps", "web")),
        (".=all", ("", "all")),
    ],
)
def test_path_namespace_syntax(text: str, expected: tuple[str, str]) -> None:
    assert parse_path_namespace(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apps/shop", "--path-namespace: 'apps/shop' must be DIR=NAMESPACE, e.g. apps/shop=shop"),
        ("=shop", "--path-namespace: '=shop' must be DIR=NAMESPACE, e.g. apps/shop=shop"),
        ("/apps=shop", "--path-namespace: '/apps' must be a directory relative to the repository root, without '..'"),
        ("../x=shop", "--path-namespace: '../x' must be a directory relative to the repository root, without '..'"),
        ("apps=Shop", "--path-namespace: 'Shop' is not a valid namespace"),
    ],
)
def test_bad_path_namespaces_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_path_namespace(text)
    assert str(caught.value).startswith(message)


def test_a_bad_namespace_is_refused() -> None:
    assert check_namespace("shop-1") == "shop-1"
    with pytest.raises(ConfigError, match=r"^--namespace: 'shop_1' is not a valid namespace"):
        check_namespace("shop_1")


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


def test_validate_and_plan_take_the_namespace(workdir: Path) -> None:
    (workdir / "rollout.yaml").write_text(dump(rollout("shop"), without_namespace(template_doc())))
    out = io.StringIO()
    assert validate_command(["rollout.yaml"], out) == 1
    assert validate_command(["rollout.yaml"], io.StringIO(), namespace="shop") == 0
    assert plan_command("rollout.yaml", io.StringIO(), namespace="shop") == 0
    assert cli.main(["validate", "--namespace", "shop", "rollout.yaml"]) == 0
    assert cli.main(["plan", "-n", "shop", "rollout.yaml"]) == 0
    assert cli.main(["validate", "rollout.yaml"]) == 1


def test_the_cli_refuses_a_bad_namespace(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "rollout.yaml").write_text(dump(rollout("shop")))
    assert cli.main(["validate", "-n", "Shop", "rollout.yaml"]) == 1
    assert capsys.readouterr().err.startswith("error: --namespace: 'Shop' is not a valid namespace")


def test_run_takes_a_default_namespace_and_per_directory_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RunOptions] = []

    def fake_run(options: RunOptions, out: object) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr("kulta.app.runner.run", fake_run)
    argv = ["run", "--repo", "/srv/repo", "--path", "apps", "--namespace", "edge"]
    assert cli.main([*argv, "--path-namespace", "apps/shop=shop", "--path-namespace", "apps/web=web"]) == 0
    assert cli.main(["run", "--repo", "/srv/repo"]) == 0
    first, plain = seen
    assert (first.namespace, first.path_namespaces) == ("edge", (("apps/shop", "shop"), ("apps/web", "web")))
    assert (plain.namespace, plain.path_namespaces) == ("default", ())
