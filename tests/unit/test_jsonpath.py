"""The Kubernetes JSONPath subset of ``provider.web.jsonPath`` (``kulta.core.jsonpath``)."""

from __future__ import annotations

import pytest

from kulta.core.jsonpath import MAX_SEGMENTS, JsonPathError, parse_json_path, select

DOC = {"data": {"ok": True, "items": [{"v": 1}, {"v": 2}]}, "a b": "spaced", "x-y": 3}


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("{$}", ()),
        ("", ()),
        ("{}", ()),
        ("{$.data.ok}", ("data", "ok")),
        ("{.data.ok}", ("data", "ok")),
        ("{ $.data.items[1].v }", ("data", "items", 1, "v")),
        ("{$['a b']}", ("a b",)),
        ('{$["a b"]}', ("a b",)),
        ("{$.data.items[-1]}", ("data", "items", -1)),
        ("{$.x-y}", ("x-y",)),
    ],
)
def test_supported_paths(path: str, steps: tuple[object, ...]) -> None:
    assert parse_json_path(path).steps == steps


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("$.data.ok", "must be one {...} expression"),
        ("{$.data}{$.x}", "is not supported"),
        ("{$..ok}", "recursive descent"),
        ("{$.data.items[*].v}", "is not supported"),
        ("{$.data.items[0:2]}", "is not supported"),
        ("{$.data.items[?(@.v > 1)]}", "is not supported"),
        ("{$.data['ok','x']}", "is not supported"),
        ("{range .items[*]}{.v}{end}", "is not supported"),
        ("{$.data[1234567890]}", "is not supported"),
        ("{" + ".a" * (MAX_SEGMENTS + 1) + "}", f"more than {MAX_SEGMENTS} steps"),
        ("{$." + "a" * 600 + "}", "longer than 512"),
    ],
)
def test_everything_else_is_refused(path: str, fragment: str) -> None:
    with pytest.raises(JsonPathError) as caught:
        parse_json_path(path)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("{$.data.ok}", True),
        ("{$.data.items[0].v}", 1),
        ("{$.data.items[-1].v}", 2),
        ("{$['a b']}", "spaced"),
        ("{$.x-y}", 3),
    ],
)
def test_select(path: str, expected: object) -> None:
    assert select(parse_json_path(path), DOC) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("{$.data.nope}", "$.data has no field 'nope'"),
        ("{$.data.items[2]}", "$.data.items has 2 elements, [2] is out of range"),
        ("{$.data.ok.deeper}", "$.data.ok is not an object, cannot take field 'deeper'"),
        ("{$.data[0]}", "$.data is not a list, cannot take [0]"),
    ],
)
def test_a_path_the_document_does_not_have(path: str, message: str) -> None:
    with pytest.raises(JsonPathError) as caught:
        select(parse_json_path(path), DOC)
    assert str(caught.value) == message
