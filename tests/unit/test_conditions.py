"""The condition language: every supported form, result shapes, and refused input."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kulta.core.conditions import (
    MAX_EVALUATION_MEMORY,
    MAX_EVALUATION_STEPS,
    MAX_EXPRESSION_LENGTH,
    VALIDATE_SERIES,
    Condition,
    ConditionError,
    Cost,
    check_cost,
    estimate_cost,
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
        ("int(7.5) % 2 == 1", 0, True),
        ("-7 % -3 == -1", 0, True),
        # 64-bit integers wrap around as Go's int does (expr-lang)
        ("9223372036854775807 + 1 == -9223372036854775807 - 1", 0, True),
        ("-(-9223372036854775807 - 1) < 0", 0, True),
        ("3037000500 * 3037000500 < 0", 0, True),
        ("9223372036854775807 == 9223372036854775806", 0, False),
        ("sum([9223372036854775807, 1]) < 0", 0, True),
        ("int('9223372036854775807') > 0", 0, True),
        # floats overflow to ±Inf, never to an exception
        ("isInf(sum([1e308, 1e308]), 1)", 0, True),
        ("isInf(mean([1e308, 1e308, 1e308]), 1)", 0, True),
        ("isInf(1e308 * 10, 1)", 0, True),
        ("isInf(-1e308 - 1e308, -1)", 0, True),
        ("isInf(1e300 / 1e-300, 1)", 0, True),
        ("isInf((-10) ** 309, -1)", 0, True),
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
        # '%' takes integers only, as expr-lang's Modulo; +Inf and NaN are floats
        ("7.5 % 2 == 1.5", 0, "'%' needs two integers (as in expr-lang), got a float and an integer"),
        ("result % 2 == 0", INF, "'%' needs two integers"),
        ("result % 2 == 0", NAN, "'%' needs two integers"),
        ("result[0] % 2 == 0", [4.0], "use int(x) % n"),
        ("2 % result == 0", -INF, "got an integer and a float"),
        # conversions out of the 64-bit range
        ("int(1e300) > 0", 0, "cannot convert 1e+300 to a 64-bit integer"),
        ("int(result) > 0", 9.3e18, "to a 64-bit integer"),
        ("asInt('9223372036854775808') > 0", 0, "out of the 64-bit integer range"),
        ("asInt('" + "9" * 400 + "') > 0", 0, "as a whole number"),
        ("asFloat('" + "9" * 400 + "') > 0", 0, "out of the float64 range"),
        ("float('1e400') > 0", 0, "out of the float64 range"),
        # what Go's strconv.Atoi / ParseFloat refuse (Python's int() and float() would read them)
        ("asInt('--5') == 5", 0, "cannot read '--5' as a whole number"),
        ("asInt('1_000') == 1000", 0, "cannot read '1_000' as a whole number"),
        ("asInt('\u00b2') == 2", 0, "as a whole number"),
        ("asFloat('1_0') == 10", 0, "cannot read '1_0' as a number"),
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


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        # expr-lang reads integer literals with strconv.ParseInt(s, 10, 64)
        ("result > 9223372036854775808", "integer literal '9223372036854775808' is out of the 64-bit range"),
        ("result > 1" + "0" * 400, "is out of the 64-bit range"),
        ("result < -1" + "0" * 30, "is out of the 64-bit range"),
        # and floats with strconv.ParseFloat(s, 64): 1e400 is out of range, not +Inf
        ("result > 1e400", "float literal '1e400' is out of the float64 range"),
        ("result > 1" + "0" * 400 + ".5", "is out of the float64 range"),
    ],
)
def test_literals_out_of_range_are_refused_when_parsing(expr: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(expr)
    assert fragment in caught.value.message
    assert len(str(caught.value)) < 400


def test_largest_literals_still_parse() -> None:
    assert evaluate_condition("result < 9223372036854775807", 1.0) is True
    assert evaluate_condition("result < 1.7976931348623157e308", 1.0) is True
    assert evaluate_condition("result > 0000000000000000000000001", 2.0) is True


def test_all_and_any_stop_at_the_deciding_element() -> None:
    """expr-lang compiles all/any/none to loops that jump out at the first deciding element."""
    # the second element would be an error ([1][0.5]); the first one decides
    assert evaluate_condition("all(result, {# > 0 && [1][#] == 1})", [-1.0, 0.5]) is False
    assert evaluate_condition("any(result, {# > 1 || [1][#] == 1})", [2.0, 0.5]) is True
    assert evaluate_condition("none(result, {# > 1 || [1][#] == 1})", [2.0, 0.5]) is False
    # count (like one, filter and map) visits every element
    with pytest.raises(ConditionError, match="not a whole number"):
        evaluate_condition("count(result, {# > 1 || [1][#] == 1}) > 0", [2.0, 0.5])
    with pytest.raises(ConditionError, match="not a whole number"):
        evaluate_condition("all(result, {# > 0 && [1][#] == 1})", [0.5, -1.0])


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


# --------------------------------------------------------------------------- evaluation budget

SERIES_1000 = [0.5] * 1000
# each of these is under 300 characters; unbounded they ran for minutes or took gigabytes
HOSTILE = [
    "count(result, {count(result, {count(result, {# > 0}) > 0}) > 0}) > 0",
    "len(map(result, {map(result, {map(result, {#})})})) > 0",
    "len(map(result, {map(result, {[#, #, #, #, #, #, #, #]})})) > 0",
    "all(result, {all(result, {all(result, {all(result, {# >= 0})})})})",
    "len(filter(result, {len(filter(result, {len(filter(result, {true})) > 0})) > 0})) > 0",
    "map(result, {result}) == map(result, {result})",
]


@pytest.mark.parametrize("expr", HOSTILE)
def test_hostile_conditions_stop_at_the_budget_with_a_clear_error(expr: str) -> None:
    assert len(expr) < 300
    started = time.monotonic()
    with pytest.raises(ConditionError) as caught:
        evaluate_condition(expr, SERIES_1000)
    assert time.monotonic() - started < 15  # bounded by MAX_EVALUATION_STEPS, not by the input
    assert "budget exceeded" in caught.value.message
    assert caught.value.expression == expr


# cubic or worse: over the budget already for VALIDATE_SERIES (100) series
@pytest.mark.parametrize("expr", [HOSTILE[0], HOSTILE[1], HOSTILE[3], HOSTILE[4]])
def test_hostile_conditions_are_refused_before_any_run(expr: str) -> None:
    with pytest.raises(ConditionError, match=r"too costly: up to .* for a result of 100 series"):
        check_cost(parse_condition(expr))


# quadratic: within the budget for 100 series, over it for 1000 (and then stopped at run time)
@pytest.mark.parametrize("expr", [HOSTILE[2], HOSTILE[5]])
def test_quadratic_conditions_are_checked_for_the_series_asked(expr: str) -> None:
    check_cost(parse_condition(expr))
    with pytest.raises(ConditionError, match=r"too costly: up to .* for a result of 1000 series"):
        check_cost(parse_condition(expr), series=1000)


def test_memory_budget_counts_created_elements_and_characters() -> None:
    condition = parse_condition("len(map(result, {[#, #, #]})) == 4")
    # 4 lists of 3, plus the mapped list of 4: 16 elements
    assert condition.evaluate([1.0] * 4, max_memory=16) is True
    with pytest.raises(ConditionError, match="memory budget exceeded: more than 15 "):
        condition.evaluate([1.0] * 4, max_memory=15)
    # ['ab'] is one element, 'ab' + 'ab' four characters, the mapped list one element
    doubling = parse_condition("len(map(['ab'], {# + #})) == 1")
    assert doubling.evaluate(0.0, max_memory=1 + 4 + 1) is True
    with pytest.raises(ConditionError, match="memory budget exceeded"):
        doubling.evaluate(0.0, max_memory=1 + 4)


def test_step_budget_counts_nodes_and_elements() -> None:
    condition = parse_condition("all(result, {# < 1})")
    # 3 nodes for the call and its list, then 3 nodes (<, #, 1) per element
    assert condition.evaluate([0.5] * 10, max_steps=2 + 3 * 10) is True
    with pytest.raises(ConditionError, match="more than 31 steps"):
        condition.evaluate([0.5] * 10, max_steps=31)


@pytest.mark.parametrize(
    ("expr", "series", "steps", "memory"),
    [
        # >=, the index, result, 0, 0.95
        ("result[0] >= 0.95", 100, 5, 0),
        # ||; == with len(result), 0 and one comparison; < with result[0] and 0.05
        ("len(result) == 0 || result[0] < 0.05", 100, 1 + 5 + 5, 0),
        # the call, result, then (<, #, literal) per series
        ("all(result, {# < 0.1})", 100, 2 + 3 * 100, 0),
        ("all(result, {# < 0.1})", 0, 2, 0),
        # quadratic: max(result) inside the predicate reads the whole result each time
        ("all(result, {# < max(result)})", 100, 2 + 100 * (4 + 100), 0),
        # >, len, map, result, 0 and the literal with three # per series; map allocates one
        # element per series, the literal three
        ("len(map(result, {[#, #, #]})) > 0", 10, 5 + 10 * 4, 10 + 3 * 10),
    ],
)
def test_static_cost_worked_examples(expr: str, series: int, steps: int, memory: int) -> None:
    assert estimate_cost(parse_condition(expr), series) == Cost(steps=steps, memory=memory)


def test_usual_conditions_pass_the_validate_check() -> None:
    for expr in (
        "result[0] >= 0.95",
        "len(result) > 0 && result[0] < 0.05",
        "all(result, {# < 0.1})",
        "all(result, {# < max(result)})",
        "isNaN(result) || result < 0.05",
        "count(result, {# > 0.5}) <= 1",
    ):
        check_cost(parse_condition(expr))
    assert VALIDATE_SERIES == 100
    assert MAX_EVALUATION_STEPS == 1_000_000
    assert MAX_EVALUATION_MEMORY == 1_000_000  # expr-lang's conf.DefaultMemoryBudget


# A small grammar of conditions whose cost depends on the data: the static estimate must bound
# what evaluation really charges, so a condition check_cost accepts never hits the budget.
_ATOMS = st.sampled_from(["result", "#", "1", "0.5", "'ab'", "[1, 2]", "[]", "result[0]", "result[1:]"])
_BINARY = st.sampled_from(["+", "==", "!=", "<", "in", "&&", "||", "%", "*"])
_CALLS = st.sampled_from(["len", "min", "sum", "abs", "float", "int"])
_PREDICATES = st.sampled_from(["all", "any", "count", "filter", "map", "one", "none"])


def _expressions(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, _BINARY, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(_CALLS, inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(_PREDICATES, inner, inner).map(lambda t: f"{t[0]}({t[1]}, {{{t[2]}}})"),
        st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(_ATOMS, _expressions, max_leaves=8),
    st.lists(st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5]), max_size=6),
    st.booleans(),
)
def test_static_cost_bounds_the_real_cost(text: str, values: list[float], scalar: bool) -> None:
    try:
        condition = parse_condition(f"len(map([1], {{{text}}})) > 0")
    except ConditionError:
        assume(False)
        raise
    cost = estimate_cost(condition, len(values) if not scalar else 0)
    result: float | list[float] = values[0] if scalar and values else values
    try:
        condition.evaluate(result, max_steps=cost.steps, max_memory=cost.memory)
    except ConditionError as err:
        assert "budget exceeded" not in err.message, (text, values, cost)
