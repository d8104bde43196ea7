"""The condition language: every supported form, result shapes, and refused input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kulta.core.conditions import (
    MAX_EXPRESSION_LENGTH,
    Condition,
    ConditionError,
    evaluate_condition,
    parse_condition,
)
from kulta.errors import KultaError

NAN = math.nan
INF = math.inf


@pytest.mark.parametrize(
    ("expr", "result", "expected"),
    [
        # the forms Argo users write
        ("result[0] >= 0.95", [0.97], True),
        ("result[0] >= 0.95", [0.90], False),
        ("result < 0.05", 0.01, True),
        ("result < 0.05", 0.05, False),
        ("len(result) == 0", [], True),
        ("len(result) == 0", [1.0], False),
        ("isNaN(result[0])", [NAN], True),
        ("isNaN(result[0])", [0.0], False),
        ("isNaN(result)", NAN, True),
        ("isInf(result[0])", [INF], True),
        ("isInf(result[0])", [-INF], True),
        ("isInf(result[0], 1)", [-INF], False),
        ("isInf(result[0], -1)", [-INF], True),
        ("isInf(result[0])", [1e308], False),
        ("all(result, {# < 0.1})", [0.01, 0.09], True),
        ("all(result, {# < 0.1})", [0.01, 0.2], False),
        ("all(result, {# < 0.1})", [], True),
        ("any(result, {# > 0.5})", [0.1, 0.6], True),
        ("any(result, {# > 0.5})", [], False),
        ("any(result, # > 0.5)", [0.7], True),
        ("none(result, {# > 0.5})", [0.1, 0.2], True),
        ("one(result, {# > 0.5})", [0.6, 0.7], False),
        ("count(result, {# > 0.5}) == 2", [0.6, 0.7, 0.1], True),
        ("len(filter(result, {# > 0.5})) == 1", [0.6, 0.1], True),
        ("map(result, {# * 2}) == [2, 4]", [1.0, 2.0], True),
        # boolean operators, both spellings
        ("result > 0 && result < 1", 0.5, True),
        ("result > 0 and result < 1", 1.5, False),
        ("result < 0 || result > 1", 1.5, True),
        ("result < 0 or result > 1", 0.5, False),
        ("!(result > 1)", 0.5, True),
        ("not (result > 1)", 2.0, False),
        ("not false", 0, True),
        ("true && !false", 0, True),
        # precedence: && binds tighter than ||, arithmetic tighter than comparison
        ("false && false || true", 0, True),
        ("true || false && false", 0, True),
        ("1 + 2 * 3 == 7", 0, True),
        ("(1 + 2) * 3 == 9", 0, True),
        ("2 ** 3 ** 2 == 512", 0, True),
        ("2 ^ 3 == 8", 0, True),
        ("-2 ** 2 == -4", 0, True),
        ("10 - 4 - 3 == 3", 0, True),
        ("12 / 4 / 3 == 1", 0, True),
        # arithmetic semantics (Go / expr-lang)
        ("7 % 3 == 1", 0, True),
        ("-7 % 3 == -1", 0, True),
        ("7.5 % 2 == 1.5", 0, True),
        ("1 / 2 == 0.5", 0, True),
        ("1 / 0 > 1e308", 0, True),
        ("isInf(-1 / 0, -1)", 0, True),
        ("isNaN(0 / 0)", 0, True),
        ("result * 100 >= 95", 0.95, True),
        ("result[0] - result[1] < 0.01", [0.5, 0.495], True),
        ("abs(result[0] - result[1]) < 0.01", [0.495, 0.5], True),
        # comparisons
        ("result == 1", 1.0, True),
        ("result != 1", 1.0, False),
        ("result <= 1", 1.0, True),
        ("result >= 1.5", 1.0, False),
        ("result == 0.0001", 1e-4, True),
        ("1.5e3 == 1500", 0, True),
        ("1_000 == 1000", 0, True),
        ("'abc' == \"abc\"", 0, True),
        ("'a' < 'b'", 0, True),
        ("'a' + 'b' == 'ab'", 0, True),
        ("1 == '1'", 0, False),
        ("true == 1", 0, False),
        ("nil == nil", 0, True),
        ("result == nil", 1.0, False),
        # NaN compares false with everything, as in Go
        ("result[0] < 0.05", [NAN], False),
        ("result[0] >= 0.05", [NAN], False),
        ("result[0] == result[0]", [NAN], False),
        ("result[0] != result[0]", [NAN], True),
        # +Inf
        ("result[0] > 1000", [INF], True),
        ("result < 0", -INF, True),
        # lists
        ("result[-1] == 3", [1.0, 2.0, 3.0], True),
        ("result[1:] == [2, 3]", [1.0, 2.0, 3.0], True),
        ("result[:1] == [1]", [1.0, 2.0, 3.0], True),
        ("result[0.0] == 1", [1.0], True),
        ("result == []", [], True),
        ("result in [1, 2]", 2.0, True),
        ("result not in [1, 2]", 2.0, False),
        ("2 in result", [1.0, 2.0], True),
        ("min(result) > 0.1", [0.2, 0.3], True),
        ("max(result) > 0.25", [0.2, 0.3], True),
        ("max(1, 5, 3) == 5", 0, True),
        ("sum(result) == 0.5", [0.2, 0.3], True),
        ("mean(result) == 0.25", [0.2, 0.3], True),
        # conversions and Argo's helpers
        ("asInt('42') == 42", 0, True),
        ("asFloat('0.5') == 0.5", 0, True),
        ("float('NaN') != float('NaN')", 0, True),
        ("int(result) == 2", 2.9, True),
        # conditional
        ("len(result) > 0 ? result[0] < 0.05 : false", [], False),
        ("len(result) > 0 ? result[0] < 0.05 : false", [0.01], True),
        # the usual guard for "no data yet"
        ("len(result) == 0 || result[0] < 0.05", [], True),
        ("len(result) > 0 && result[0] < 0.05", [], False),
        # strings with escapes and whitespace
        ("'a\\'b' == \"a'b\"", 0, True),
        ("'\\u0041' == 'A'", 0, True),
        ("  result\n>=\t1  ", 1.0, True),
    ],
)
def test_condition_forms(expr: str, result: float | list[float], expected: bool) -> None:
    assert evaluate_condition(expr, result) is expected


@pytest.mark.parametrize(
    ("expr", "position", "fragment"),
    [
        # code injection: nothing but our own grammar exists
        ("__import__('os').system('id')", 0, "unknown function '__import__'"),
        ("result.__class__", 6, "member access"),
        ("result.__class__.__bases__[0].__subclasses__()", 6, "member access"),
        ("exec('1')", 0, "unknown function 'exec'"),
        ("eval('1')", 0, "unknown function 'eval'"),
        ("open('/etc/passwd')", 0, "unknown function 'open'"),
        ("os", 0, "unknown name 'os'"),
        ("globals()", 0, "unknown function 'globals'"),
        ("result()", 6, "only the built-in functions can be called"),
        ("len(result)()", 11, "only the built-in functions can be called"),
        ("lambda: 1", 0, "unknown name 'lambda'"),
        ("result; 1", 6, "unexpected character ';'"),
        ("result[0] >= 0.95 `rm -rf /`", 18, "unexpected character '`'"),
        ("{'a': 1}", 0, "maps"),
        ("1 ?? 2", 2, "'??'"),
        ("1..3", 1, "ranges"),
        # syntax
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("result >=", 9, "unexpected end"),
        ("(result > 1", 11, "expected ')'"),
        ("result > 1)", 10, "unexpected ')'"),
        ("result[0", 8, "expected ']'"),
        ("'abc", 0, "not terminated"),
        ("'\\q'", 1, "unknown escape"),
        ("1abc > 0", 0, "malformed number"),
        ("# > 0", 0, "'#' is only meaningful inside a predicate"),
        ("len(result, result)", 0, "len() takes 1 arguments, got 2"),
        ("all(result)", 0, "all() takes 2 arguments, got 1"),
        ("result > 1 and", 14, "unexpected end"),
        ("in [1]", 0, "unexpected operator 'in'"),
        ("result[]", 6, "empty index"),
    ],
)
def test_refused_at_parse_time(expr: str, position: int, fragment: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(expr)
    err = caught.value
    assert isinstance(err, KultaError)
    assert err.position == position
    assert fragment in err.message
    assert err.expression == expr
    assert repr(expr) in str(err)
    assert f"position {position}" in str(err)


@pytest.mark.parametrize(
    ("expr", "result", "fragment"),
    [
        # an empty vector indexed: a clear error, never an IndexError
        ("result[0] >= 0.95", [], "index 0 is out of range (the list has 0 elements)"),
        ("result[2] > 0", [1.0, 2.0], "index 2 is out of range"),
        ("result[-3] > 0", [1.0, 2.0], "index -3 is out of range"),
        # scalar where a vector is expected and vice versa
        ("result[0] > 0", 0.5, "cannot index a number"),
        ("result > 0.5", [0.7], "cannot compare list with number"),
        ("len(result) == 1", 0.5, "len() needs a list or a string, got number"),
        ("all(result, {# > 0})", 0.5, "all() needs a list, got number"),
        # type errors
        ("result + 'a' == 1", 1.0, "needs two numbers"),
        ("'a' < 1", 0, "cannot compare string with number"),
        ("result && true", 1.0, "'&&' needs true or false, got number"),
        ("false || result", 1.0, "'||' needs true or false"),
        ("!result", 1.0, "'!' needs true or false"),
        ("-'a' == 1", 0, "unary '-' needs a number"),
        ("result[0.5] > 0", [1.0], "not a whole number"),
        ("all(result, {# + 1})", [1.0], "must give true or false, got number"),
        ("1 % 0 == 0", 0, "modulo by zero"),
        ("min(result) > 0", [], "min() of an empty list"),
        ("asInt('x') == 1", 0, "cannot read 'x' as a whole number"),
        ("int(1/0) == 1", 0, "cannot convert inf"),
        ("1 in 1", 0, "needs a list on the right"),
        ("(result > 0 ? 1 : 2) > 0", [1.0], "cannot compare list with number"),
        # the whole condition must be a boolean
        ("result", 0.5, "must give true or false, got number"),
        ("result[0]", [1.0], "must give true or false, got number"),
        ("'yes'", 0, "must give true or false, got string"),
    ],
)
def test_evaluation_errors(expr: str, result: float | list[float], fragment: str) -> None:
    with pytest.raises(ConditionError) as caught:
        evaluate_condition(expr, result)
    assert fragment in caught.value.message
    assert caught.value.expression == expr


def test_short_circuit_skips_the_failing_side() -> None:
    # the right side would be an index error on [], but is never evaluated
    assert evaluate_condition("len(result) == 0 || result[0] > 1", []) is True
    assert evaluate_condition("len(result) > 0 && result[0] > 1", []) is False


def test_parsed_condition_is_reusable_and_cached() -> None:
    condition = parse_condition("result[0] < 0.05")
    assert isinstance(condition, Condition)
    assert condition.evaluate([0.01]) is True
    assert condition.evaluate([0.5]) is False
    assert evaluate_condition(condition, [0.01]) is True
    assert parse_condition("result[0] < 0.05") is condition


def test_nesting_and_length_are_bounded() -> None:
    deep = "(" * 200 + "1" + ")" * 200 + " == 1"
    with pytest.raises(ConditionError, match="nested deeper"):
        parse_condition(deep)
    chain = " + ".join(["1"] * 100) + " > 0"
    with pytest.raises(ConditionError, match="nested deeper"):
        parse_condition(chain)
    power = "2" + " ** 2" * 500 + " > 0"
    with pytest.raises(ConditionError, match="nested deeper"):
        parse_condition(power)
    with pytest.raises(ConditionError, match="longer than"):
        parse_condition("1 == 1 && " * (MAX_EXPRESSION_LENGTH // 8) + "true")
    # realistic conditions are far below the bounds
    assert evaluate_condition(" && ".join(["result > 0"] * 30), 1.0) is True


def test_long_expression_is_shortened_in_the_message() -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition("x" * 1000)
    assert len(str(caught.value)) < 400
    assert caught.value.expression == "x" * 1000


@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_all_and_any_agree_with_python(values: list[float], threshold: float) -> None:
    cond_all = parse_condition(f"all(result, {{# < {threshold!r}}})")
    cond_any = parse_condition(f"any(result, {{# >= {threshold!r}}})")
    assert cond_all.evaluate(values) is all(v < threshold for v in values)
    # any(>=) is the negation of all(<) except for NaN, which fails both comparisons
    assert cond_any.evaluate(values) is any(v >= threshold for v in values)


@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes(text: str) -> None:
    """Any input either parses or is a ConditionError; nothing else escapes."""
    try:
        condition = parse_condition(text)
    except ConditionError:
        return
    for result in (0.5, [0.5], [], math.nan):
        try:
            outcome = condition.evaluate(result)
        except ConditionError:
            continue
        assert isinstance(outcome, bool)
