"""Decoding /api/v1/query answers into the ``result`` a condition sees."""

from __future__ import annotations

import math

import pytest

from kulta.adapters.prometheus import PrometheusResponseError, format_value, parse_query_response, parse_sample_value


def vector(*values: str) -> dict[str, object]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"i": str(i)}, "value": [1.5, v]} for i, v in enumerate(values)],
        },
    }


def scalar(value: str) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "scalar", "result": [1.5, value]}}


def test_vector_and_scalar_shapes() -> None:
    assert parse_query_response(vector("0.5", "1")) == [0.5, 1.0]
    assert parse_query_response(vector()) == []
    assert parse_query_response(scalar("0.25")) == 0.25


def test_special_float_strings() -> None:
    nan, pinf, ninf = parse_query_response(vector("NaN", "+Inf", "-Inf"))  # type: ignore[misc]
    assert math.isnan(nan)
    assert pinf == math.inf
    assert ninf == -math.inf


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ([1, 2], "expected a JSON object"),
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"},
            "query failed (bad_data): parse error",
        ),
        ({"status": "success"}, "no 'data' object"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "'matrix' is not supported"),
        ({"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}, "'string' is not supported"),
        ({"status": "success", "data": {"resultType": "vector", "result": {}}}, "no 'result' list"),
        ({"status": "success", "data": {"resultType": "vector", "result": [3]}}, "not an object"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1]}]}},
            "expected [timestamp, value]",
        ),
        (vector("abc"), "'abc' is not a number"),
        (vector("1_0"), "'1_0' is not a number"),
        (scalar(True), "True is not a number"),  # type: ignore[arg-type]
    ],
)
def test_unusable_answers(document: object, fragment: str) -> None:
    with pytest.raises(PrometheusResponseError) as caught:
        parse_query_response(document)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.99, "0.99"),
        (1.0, "1"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        ([0.5, 1.0], "[0.5,1]"),
        ([], "[]"),
    ],
)
def test_format_value(value: float | list[float], text: str) -> None:
    assert format_value(value) == text


def test_numeric_sample_values_are_accepted() -> None:
    assert parse_sample_value(3) == 3.0
    assert parse_sample_value(" 2.5 ") == 2.5
