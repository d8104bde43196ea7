"""Safe evaluation of Argo Rollouts' ``successCondition`` / ``failureCondition``.

Argo evaluates these strings with the expr-lang library. KULTA must accept the
same templates, but it must never hand a user's string to Python's ``eval``: a
condition lives in a Git repository that many people can write to, and the
reconciler holds cluster and Pulumi credentials. So this module is a small
language of its own: a tokenizer, a Pratt (precedence-climbing) parser that
builds an immutable AST, and an evaluator that only knows numbers, booleans,
strings, lists and a fixed table of built-in functions. Anything outside that
(attribute access, unknown names, unknown functions, maps) is a ``ConditionError``
naming the expression and the character position, raised at parse time where
possible so a bad template is caught before the first measurement.

Grammar (highest precedence last)::

    expr     := or ( "?" expr ":" expr )?
    or       := and ( ("||" | "or") and )*
    and      := cmp ( ("&&" | "and") cmp )*
    cmp      := add ( ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") add )*
    add      := mul ( ("+" | "-") mul )*
    mul      := unary ( ("*" | "/" | "%") unary )*
    unary    := ("!" | "not") unary(50) | ("-" | "+") unary(90) | power
    power    := postfix ( ("**" | "^") power )?          right-associative, binds tighter than unary
    postfix  := primary ( "[" expr "]" | "[" expr? ":" expr? "]" )*
    primary  := number | string | true | false | nil | result | "#"
              | name "(" args ")" | "[" items "]" | "(" expr ")"

``#`` is the current element inside a predicate: ``all(result, {# < 0.1})``
(the braces are optional, as in expr-lang).

Semantics follow expr-lang / Go: ``/`` is float division (``x / 0`` is ±Inf or
NaN, never an exception), comparisons with NaN are false, ``&&``/``||``
short-circuit and need booleans, ``==`` across different types is ``false``,
list indexes may be negative, and indexing outside a list is an error (which
the analysis turns into an Error measurement, not a crash). Integers are Go's
64-bit ``int``: a literal out of that range is refused when parsing (expr-lang
reads literals with ``strconv.ParseInt``/``ParseFloat``), arithmetic wraps
around, and ``%`` takes integers only (expr-lang's ``Modulo``), so
``result % 2`` on a measured float is an error: write ``int(result) % 2``.
``all``/``any``/``none`` stop at the first element that decides them.

Hostile input is bounded. Parsing: at most ``MAX_EXPRESSION_LENGTH``
characters and ``MAX_NESTING`` levels. Evaluation: at most
``MAX_EVALUATION_STEPS`` steps and ``MAX_EVALUATION_MEMORY`` list elements
and string characters created (expr-lang's memory budget), checked as it runs;
over budget is a ConditionError, never a hang. ``estimate_cost`` gives a static
upper bound of both for a result of N series, and ``check_cost`` refuses, before
any rollout, a condition whose bound for ``VALIDATE_SERIES`` series is over the
budget (predicates nested in predicates over ``result``, ``map`` in ``map``).
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields

from kulta.errors import KultaError

__all__ = [
    "BUILTIN_FUNCTIONS",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_EVALUATION_MEMORY",
    "MAX_EVALUATION_STEPS",
    "MEMBER_ACCESS",
    "MAX_EXPRESSION_LENGTH",
    "VALIDATE_SERIES",
    "Condition",
    "ConditionError",
    "Cost",
    "CostKind",
    "check_cost",
    "estimate_cost",
    "evaluate_condition",
    "parse_condition",
]

log = logging.getLogger(__name__)

#: longer conditions are refused outright (they are certainly not a threshold check).
MAX_EXPRESSION_LENGTH = 4096
#: nesting deeper than this is refused (protects the recursive parser and evaluator).
MAX_NESTING = 64
#: steps one evaluation may take (a node visited, an element compared or summed, a character read).
MAX_EVALUATION_STEPS = 1_000_000
#: list elements and string characters one evaluation may create: expr-lang's ``conf.DefaultMemoryBudget``.
MAX_EVALUATION_MEMORY = 1_000_000
#: ``check_cost`` assumes a result of this many series (a vector query per pod or per route).
VALIDATE_SERIES = 100
#: integers are Go's 64-bit ``int``, as in expr-lang: literals beyond are refused, arithmetic wraps.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: a whole number of more digits cannot be a 64-bit integer (and is not read at all).
MAX_INT_DIGITS = 20
#: what Go's strconv.Atoi reads: an optional sign and ASCII digits.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")

RESULT_NAME = "result"
ELEMENT = "#"


class ConditionError(KultaError):
    """A condition could not be parsed or evaluated; names the expression and position."""

    def __init__(self, expression: str, position: int, message: str) -> None:
        self.expression = expression
        self.position = position
        self.message = message
        shown = expression if len(expression) <= 200 else expression[:200] + "..."
        super().__init__(f"condition {shown!r} at position {position}: {message}")


# --------------------------------------------------------------------------- tokens


def _shown(text: str, limit: int = 40) -> str:
    """A token as quoted in an error message (long names are cut)."""
    return text if len(text) <= limit else text[:limit] + "..."


class TokenKind(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    OPERATOR = "operator"
    END = "end of expression"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    position: int
    value: object = None


# Longest first so that "**" wins over "*", "<=" over "<", and so on.
_OPERATORS = (
    "**", "==", "!=", "<=", ">=", "&&", "||", "??", "..",
    "<", ">", "+", "-", "*", "/", "%", "^", "!", "?", ":",
    "(", ")", "[", "]", "{", "}", ",", ".", "#",
)  # fmt: skip
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _tokenize(expression: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(expression)
    while i < n:
        ch = expression[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and expression[i + 1].isdigit()):
            i = _read_number(expression, i, tokens)
            continue
        if ch in "'\"":
            i = _read_string(expression, i, tokens)
            continue
        if ch.isalpha() or ch == "_":
            start = i
            while i < n and (expression[i].isalnum() or expression[i] == "_"):
                i += 1
            tokens.append(Token(TokenKind.NAME, expression[start:i], start))
            continue
        for op in _OPERATORS:
            if expression.startswith(op, i):
                tokens.append(Token(TokenKind.OPERATOR, op, i))
                i += len(op)
                break
        else:
            raise ConditionError(expression, i, f"unexpected character {ch!r}")
    tokens.append(Token(TokenKind.END, "", n))
    return tokens


def _read_number(expression: str, start: int, tokens: list[Token]) -> int:
    i = start
    n = len(expression)
    is_float = False
    while i < n and (expression[i].isdigit() or expression[i] == "_"):
        i += 1
    # "1..5" is a range, not "1." followed by ".5"
    if i < n and expression[i] == "." and not expression.startswith("..", i):
        is_float = True
        i += 1
        while i < n and (expression[i].isdigit() or expression[i] == "_"):
            i += 1
    if i < n and expression[i] in "eE":
        j = i + 1
        if j < n and expression[j] in "+-":
            j += 1
        if j < n and expression[j].isdigit():
            is_float = True
            i = j
            while i < n and expression[i].isdigit():
                i += 1
    text = expression[start:i]
    if i < n and (expression[i].isalpha() or expression[i] == "_"):
        raise ConditionError(expression, start, f"malformed number {_shown(expression[start : i + 1])!r}")
    digits = text.replace("_", "")
    if not is_float and len(digits.lstrip("0")) > MAX_INT_DIGITS:
        raise ConditionError(expression, start, f"integer literal {_shown(text)!r} is out of the 64-bit range")
    try:
        value: float | int = float(digits) if is_float else int(digits)
    except ValueError:
        raise ConditionError(expression, start, f"malformed number {_shown(text)!r}") from None
    # expr-lang reads literals with strconv.ParseInt(.., 64) / ParseFloat(.., 64) and refuses what they refuse
    if isinstance(value, int) and value > INT64_MAX:
        raise ConditionError(expression, start, f"integer literal {_shown(text)!r} is out of the 64-bit range")
    if isinstance(value, float) and math.isinf(value):
        raise ConditionError(expression, start, f"float literal {_shown(text)!r} is out of the float64 range")
    tokens.append(Token(TokenKind.NUMBER, text, start, value))
    return i


def _read_string(expression: str, start: int, tokens: list[Token]) -> int:
    quote = expression[start]
    i = start + 1
    n = len(expression)
    out: list[str] = []
    while i < n:
        ch = expression[i]
        if ch == quote:
            tokens.append(Token(TokenKind.STRING, expression[start : i + 1], start, "".join(out)))
            return i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            esc = expression[i + 1]
            if esc == "u" and i + 5 < n and all(c in "0123456789abcdefABCDEF" for c in expression[i + 2 : i + 6]):
                out.append(chr(int(expression[i + 2 : i + 6], 16)))
                i += 6
                continue
            if esc not in _ESCAPES:
                raise ConditionError(expression, i, f"unknown escape sequence '\\{esc}'")
            out.append(_ESCAPES[esc])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ConditionError(expression, start, "string literal is not terminated")


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Node:
    position: int


@dataclass(frozen=True)
class Literal(Node):
    value: object


@dataclass(frozen=True)
class ResultRef(Node):
    """The measured value: a float (scalar) or a list of floats (vector)."""


@dataclass(frozen=True)
class ElementRef(Node):
    """``#``: the current element inside a predicate."""


@dataclass(frozen=True)
class ArrayLiteral(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Index(Node):
    target: Node
    index: Node


@dataclass(frozen=True)
class Slice(Node):
    target: Node
    low: Node | None
    high: Node | None


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Predicate(Node):
    """A closure body evaluated once per element (``{# > 0}``)."""

    body: Node


@dataclass(frozen=True)
class Conditional(Node):
    test: Node
    then: Node
    otherwise: Node


# Operator tables: (precedence, right associative)
_BINARY: dict[str, tuple[int, bool]] = {
    "||": (10, False), "or": (10, False),
    "&&": (15, False), "and": (15, False),
    "==": (20, False), "!=": (20, False), "<": (20, False), ">": (20, False),
    "<=": (20, False), ">=": (20, False), "in": (20, False), "not in": (20, False),
    "+": (30, False), "-": (30, False),
    "*": (60, False), "/": (60, False), "%": (60, False),
    "**": (100, True), "^": (100, True),
}  # fmt: skip
_UNARY: dict[str, int] = {"!": 50, "not": 50, "-": 90, "+": 90}
_CANONICAL = {"or": "||", "and": "&&", "not": "!", "^": "**"}
_KEYWORDS = {"true": True, "false": False, "nil": None}
_WORD_OPERATORS = {"and", "or", "not", "in"}
#: the refusal of ``result.field``: KULTA's conditions have no map type.
MEMBER_ACCESS = "member access ('.') is not allowed"
_UNSUPPORTED_OPERATORS = {
    "??": "the nil-coalescing operator '??' is not supported",
    "..": "ranges ('..') are not supported",
    ".": MEMBER_ACCESS,
    "{": "maps and closures outside a predicate function are not supported",
}


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.pos = 0
        self.closure_depth = 0
        self.depth = 0

    # ---- token helpers
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind is not TokenKind.END:
            self.pos += 1
        return tok

    def error(self, position: int, message: str) -> ConditionError:
        return ConditionError(self.expression, position, message)

    def expect(self, text: str) -> Token:
        tok = self.peek()
        if tok.kind is TokenKind.OPERATOR and tok.text == text:
            return self.advance()
        found = _shown(tok.text) or tok.kind.value
        raise self.error(tok.position, f"expected {text!r}, found {found!r}")

    def at_operator(self, *texts: str) -> bool:
        tok = self.peek()
        return tok.kind is TokenKind.OPERATOR and tok.text in texts

    # ---- grammar
    def parse(self) -> Node:
        if not self.expression.strip():
            raise self.error(0, "condition is empty")
        node = self.expression_()
        tok = self.peek()
        if tok.kind is not TokenKind.END:
            raise self.error(tok.position, f"unexpected {_shown(tok.text)!r} after the end of the expression")
        self.check_depth(node)
        return node

    def check_depth(self, root: Node) -> None:
        """Long left-associative chains (``1+1+1...``) are deep trees built without recursion."""
        stack = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_NESTING:
                raise self.error(node.position, f"expression is nested deeper than {MAX_NESTING} levels")
            for f in fields(node):
                child = getattr(node, f.name)
                children = child if isinstance(child, tuple) else (child,)
                stack.extend((c, depth + 1) for c in children if isinstance(c, Node))

    def enter(self, position: int) -> None:
        """Count one level of recursion; refuse absurd nesting before Python's stack does."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(position, f"expression is nested deeper than {MAX_NESTING} levels")

    def expression_(self) -> Node:
        self.enter(self.peek().position)
        try:
            node = self.binary(0)
            if self.at_operator("?"):
                tok = self.advance()
                then = self.expression_()
                self.expect(":")
                otherwise = self.expression_()
                node = Conditional(tok.position, node, then, otherwise)
            return node
        finally:
            self.depth -= 1

    def binary_operator(self) -> tuple[str, int] | None:
        """The infix operator at the cursor (text, token count), if any."""
        tok = self.peek()
        if tok.kind is TokenKind.OPERATOR and tok.text in _BINARY:
            return tok.text, 1
        if tok.kind is TokenKind.NAME and tok.text in ("and", "or", "in"):
            return tok.text, 1
        if tok.kind is TokenKind.NAME and tok.text == "not":
            nxt = self.peek(1)
            if nxt.kind is TokenKind.NAME and nxt.text == "in":
                return "not in", 2
        return None

    def binary(self, min_precedence: int) -> Node:
        left = self.unary()
        while True:
            found = self.binary_operator()
            if found is None:
                tok = self.peek()
                if tok.kind is TokenKind.OPERATOR and tok.text in _UNSUPPORTED_OPERATORS:
                    raise self.error(tok.position, _UNSUPPORTED_OPERATORS[tok.text])
                return left
            op, width = found
            precedence, right_assoc = _BINARY[op]
            if precedence < min_precedence:
                return left
            position = self.peek().position
            for _ in range(width):
                self.advance()
            self.enter(position)
            try:
                right = self.binary(precedence if right_assoc else precedence + 1)
            finally:
                self.depth -= 1
            left = Binary(position, _CANONICAL.get(op, op), left, right)

    def unary(self) -> Node:
        tok = self.peek()
        is_op = tok.kind is TokenKind.OPERATOR and tok.text in ("!", "-", "+")
        is_word = tok.kind is TokenKind.NAME and tok.text == "not"
        if is_op or is_word:
            self.advance()
            self.enter(tok.position)
            try:
                operand = self.binary(_UNARY[tok.text])
            finally:
                self.depth -= 1
            return Unary(tok.position, _CANONICAL.get(tok.text, tok.text), operand)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok.kind is TokenKind.OPERATOR and tok.text == "[":
                self.advance()
                if self.at_operator("]"):
                    raise self.error(tok.position, "empty index")
                low: Node | None = None
                if not self.at_operator(":"):
                    low = self.expression_()
                if self.at_operator(":"):
                    self.advance()
                    high = None if self.at_operator("]") else self.expression_()
                    self.expect("]")
                    node = Slice(tok.position, node, low, high)
                    continue
                self.expect("]")
                assert low is not None  # "[]" and "[:...]" were handled above
                node = Index(tok.position, node, low)
                continue
            if tok.kind is TokenKind.OPERATOR and tok.text == ".":
                raise self.error(tok.position, _UNSUPPORTED_OPERATORS["."])
            if tok.kind is TokenKind.OPERATOR and tok.text == "(":
                raise self.error(tok.position, "only the built-in functions can be called")
            return node

    def primary(self) -> Node:
        tok = self.advance()
        if tok.kind is TokenKind.NUMBER or tok.kind is TokenKind.STRING:
            return Literal(tok.position, tok.value)
        if tok.kind is TokenKind.NAME:
            return self.name(tok)
        if tok.kind is TokenKind.OPERATOR:
            if tok.text == "(":
                node = self.expression_()
                self.expect(")")
                return node
            if tok.text == "[":
                items: list[Node] = []
                while not self.at_operator("]"):
                    items.append(self.expression_())
                    if not self.at_operator(","):
                        break
                    self.advance()
                self.expect("]")
                return ArrayLiteral(tok.position, tuple(items))
            if tok.text == ELEMENT:
                if self.closure_depth == 0:
                    raise self.error(
                        tok.position, "'#' is only meaningful inside a predicate such as all(result, {# > 0})"
                    )
                return ElementRef(tok.position)
            if tok.text in _UNSUPPORTED_OPERATORS:
                raise self.error(tok.position, _UNSUPPORTED_OPERATORS[tok.text])
            raise self.error(tok.position, f"unexpected {tok.text!r}")
        raise self.error(tok.position, "unexpected end of expression")

    def name(self, tok: Token) -> Node:
        if tok.text in _KEYWORDS:
            return Literal(tok.position, _KEYWORDS[tok.text])
        if tok.text == RESULT_NAME:
            return ResultRef(tok.position)
        if tok.text in _WORD_OPERATORS:
            raise self.error(tok.position, f"unexpected operator {tok.text!r}")
        if self.at_operator("("):
            return self.call(tok)
        raise self.error(
            tok.position, f"unknown name {_shown(tok.text)!r} (only 'result' and built-in functions exist)"
        )

    def call(self, tok: Token) -> Node:
        spec = BUILTIN_FUNCTIONS.get(tok.text)
        if spec is None:
            raise self.error(tok.position, f"unknown function {_shown(tok.text)!r}")
        self.expect("(")
        args: list[Node] = []
        while not self.at_operator(")"):
            if spec.predicate and len(args) == 1:
                args.append(self.predicate())
            else:
                args.append(self.expression_())
            if not self.at_operator(","):
                break
            self.advance()
        self.expect(")")
        if not spec.min_args <= len(args) <= spec.max_args:
            want = str(spec.min_args) if spec.min_args == spec.max_args else f"{spec.min_args} to {spec.max_args}"
            raise self.error(tok.position, f"{tok.text}() takes {want} arguments, got {len(args)}")
        return Call(tok.position, tok.text, tuple(args))

    def predicate(self) -> Node:
        tok = self.peek()
        braced = self.at_operator("{")
        if braced:
            self.advance()
        self.closure_depth += 1
        try:
            body = self.expression_()
        finally:
            self.closure_depth -= 1
        if braced:
            self.expect("}")
        return Predicate(tok.position, body)


# --------------------------------------------------------------------------- values


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _wrap(value: int) -> int:
    """An integer result as Go's 64-bit ``int`` holds it: overflow wraps around, as in expr-lang."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    return (value - INT64_MIN) % 2**64 + INT64_MIN


def _in_int64(value: float) -> bool:
    return -(2.0**63) <= value < 2.0**63


@dataclass(frozen=True)
class _Env:
    result: object
    element: object = None


class _Evaluator:
    """Walks the AST once; every node visited and every element compared costs a step.

    ``max_steps`` and ``max_memory`` are the evaluation budget: a condition that
    needs more is a ConditionError (an Error measurement), never a hang or an
    exhausted host. Memory counts the list elements and string characters the
    evaluation creates (the measured ``result`` itself is free), as expr-lang's
    ``memGrow`` counts array elements against ``conf.DefaultMemoryBudget``.
    """

    def __init__(self, expression: str, max_steps: int, max_memory: int) -> None:
        self.expression = expression
        self.max_steps = max_steps
        self.max_memory = max_memory
        self.steps = 0
        self.memory = 0

    def error(self, node: Node, message: str) -> ConditionError:
        return ConditionError(self.expression, node.position, message)

    def charge(self, node: Node, steps: int) -> None:
        self.steps += steps
        if self.steps > self.max_steps:
            raise self.error(
                node,
                f"evaluation budget exceeded: more than {self.max_steps} steps "
                "(nested predicates over a long result multiply)",
            )

    def allocate(self, node: Node, size: int) -> None:
        self.memory += size
        if self.memory > self.max_memory:
            raise self.error(
                node, f"memory budget exceeded: more than {self.max_memory} list elements and string characters"
            )

    def number(self, node: Node, env: _Env, what: str) -> float | int:
        value = self.evaluate(node, env)
        if not _is_number(value):
            raise self.error(node, f"{what} needs a number, got {_type_name(value)}")
        return value  # type: ignore[return-value]

    def boolean(self, node: Node, env: _Env, what: str) -> bool:
        value = self.evaluate(node, env)
        if not isinstance(value, bool):
            raise self.error(node, f"{what} needs true or false, got {_type_name(value)}")
        return value

    def sequence(self, node: Node, env: _Env, what: str) -> list[object]:
        value = self.evaluate(node, env)
        if not isinstance(value, list):
            raise self.error(node, f"{what} needs a list, got {_type_name(value)}")
        return value

    def evaluate(self, node: Node, env: _Env) -> object:
        self.charge(node, 1)
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, ResultRef):
            return env.result
        if isinstance(node, ElementRef):
            return env.element
        if isinstance(node, ArrayLiteral):
            self.allocate(node, len(node.items))
            return [self.evaluate(item, env) for item in node.items]
        if isinstance(node, Unary):
            return self.unary(node, env)
        if isinstance(node, Binary):
            return self.binary(node, env)
        if isinstance(node, Index):
            return self.index(node, env)
        if isinstance(node, Slice):
            return self.slice(node, env)
        if isinstance(node, Call):
            return BUILTIN_FUNCTIONS[node.function].run(self, node, env)
        if isinstance(node, Conditional):
            branch = node.then if self.boolean(node.test, env, "'?:'") else node.otherwise
            return self.evaluate(branch, env)
        if isinstance(node, Predicate):
            raise self.error(node, "a predicate can only be used as the second argument of all/any/...")
        raise self.error(node, f"unsupported expression node {type(node).__name__}")

    def equal(self, node: Node, left: object, right: object) -> bool:
        """expr-lang's ``Equal``: numbers by value, lists element by element, other types never equal."""
        self.charge(node, 1)
        if type(left) is int and type(right) is int:
            return left == right  # exactly: two 64-bit integers, as expr-lang compares them
        if _is_number(left) and _is_number(right):
            return float(left) == float(right)  # type: ignore[arg-type]
        if isinstance(left, list) and isinstance(right, list):
            return len(left) == len(right) and all(self.equal(node, a, b) for a, b in zip(left, right, strict=True))
        if type(left) is not type(right):
            return False
        return left == right

    def unary(self, node: Unary, env: _Env) -> object:
        if node.op == "!":
            return not self.boolean(node.operand, env, "'!'")
        value = self.number(node.operand, env, f"unary {node.op!r}")
        if node.op == "+":
            return value
        return _wrap(-value) if isinstance(value, int) else -value

    def binary(self, node: Binary, env: _Env) -> object:
        op = node.op
        if op == "&&":
            return self.boolean(node.left, env, "'&&'") and self.boolean(node.right, env, "'&&'")
        if op == "||":
            return self.boolean(node.left, env, "'||'") or self.boolean(node.right, env, "'||'")
        left = self.evaluate(node.left, env)
        right = self.evaluate(node.right, env)
        if op == "==":
            return self.equal(node, left, right)
        if op == "!=":
            return not self.equal(node, left, right)
        if op in ("in", "not in"):
            if not isinstance(right, list):
                raise self.error(node, f"'{op}' needs a list on the right, got {_type_name(right)}")
            found = any(self.equal(node, left, item) for item in right)
            return found if op == "in" else not found
        if op in ("<", "<=", ">", ">="):
            return self.compare(node, op, left, right)
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            self.allocate(node, len(left) + len(right))
            return left + right
        if not (_is_number(left) and _is_number(right)):
            raise self.error(node, f"'{op}' needs two numbers, got {_type_name(left)} and {_type_name(right)}")
        return self.arithmetic(node, op, left, right)  # type: ignore[arg-type]

    def compare(self, node: Binary, op: str, left: object, right: object) -> bool:
        if _is_number(left) and _is_number(right):
            return _ordered(op, float(left), float(right))  # type: ignore[arg-type]
        if isinstance(left, str) and isinstance(right, str):
            self.charge(node, min(len(left), len(right)))
            return _ordered(op, left, right)
        raise self.error(node, f"'{op}' cannot compare {_type_name(left)} with {_type_name(right)}")

    def arithmetic(self, node: Binary, op: str, left: float | int, right: float | int) -> float | int:
        both_int = isinstance(left, int) and isinstance(right, int)
        if op in ("+", "-", "*"):
            if both_int:
                exact = left + right if op == "+" else left - right if op == "-" else left * right
                return _wrap(int(exact))
            a, b = float(left), float(right)
            return a + b if op == "+" else a - b if op == "-" else a * b
        if op == "/":
            return _ieee_divide(float(left), float(right))
        if op == "%":
            if not both_int:
                # expr-lang's Modulo is defined for integers only ("invalid operation: float64 % int")
                kinds = " and ".join("an integer" if isinstance(v, int) else "a float" for v in (left, right))
                raise self.error(node, f"'%' needs two integers (as in expr-lang), got {kinds}; use int(x) % n")
            if right == 0:
                raise self.error(node, "modulo by zero")
            rest = abs(int(left)) % abs(int(right))  # Go: the sign follows the dividend
            return -rest if left < 0 else rest
        # "**": always float, as in expr-lang; overflow is +Inf like Go's math.Pow
        base, exponent = float(left), float(right)
        if base < 0 and not exponent.is_integer():
            return math.nan  # Go's math.Pow; Python would return a complex number
        try:
            return float(base**exponent)
        except OverflowError:
            return math.copysign(math.inf, base) if exponent % 2 == 1 else math.inf
        except ZeroDivisionError:
            return math.inf

    def index(self, node: Index, env: _Env) -> object:
        target = self.evaluate(node.target, env)
        position = self.number(node.index, env, "an index")
        if isinstance(position, float):
            if not position.is_integer():
                raise self.error(node, f"index {position} is not a whole number")
            position = int(position)
        if isinstance(target, list | str):
            size = len(target)
            if not -size <= position < size:
                raise self.error(
                    node, f"index {position} is out of range (the {_type_name(target)} has {size} elements)"
                )
            return target[position]
        raise self.error(node, f"cannot index a {_type_name(target)}")

    def slice(self, node: Slice, env: _Env) -> object:
        target = self.evaluate(node.target, env)
        if not isinstance(target, list | str):
            raise self.error(node, f"cannot slice a {_type_name(target)}")
        bounds: list[int | None] = []
        for bound in (node.low, node.high):
            if bound is None:
                bounds.append(None)
                continue
            value = self.number(bound, env, "a slice bound")
            if isinstance(value, float) and not value.is_integer():
                raise self.error(bound, f"slice bound {value} is not a whole number")
            bounds.append(int(value))
        part = target[bounds[0] : bounds[1]]
        self.allocate(node, len(part))
        return part


def _ordered(op: str, a: float | str, b: float | str) -> bool:
    if op == "<":
        return bool(a < b)  # type: ignore[operator]
    if op == "<=":
        return bool(a <= b)  # type: ignore[operator]
    if op == ">":
        return bool(a > b)  # type: ignore[operator]
    return bool(a >= b)  # type: ignore[operator]


def _ieee_divide(left: float, right: float) -> float:
    if right != 0:
        try:
            return left / right
        except OverflowError:  # a finite quotient too large for a float: Go gives ±Inf
            return math.copysign(math.inf, left) * math.copysign(1.0, right)
    if math.isnan(left) or left == 0:
        return math.nan
    return math.copysign(math.inf, left) * math.copysign(1.0, right)


# --------------------------------------------------------------------------- built-ins


class CostKind(enum.Enum):
    """How a built-in's cost grows, for the static estimate (``estimate_cost``)."""

    CONSTANT = "constant"  # len, abs, isNaN, isInf
    ITEMS = "items"  # min, max, sum, mean: one step per element
    TEXT = "text"  # conversions: one step per character of a string argument
    PREDICATE = "predicate"  # all, any, none, one, count: the body once per element
    FILTER = "filter"  # filter: as PREDICATE, and a new list of at most the input's length
    MAP = "map"  # map: as PREDICATE, and a new list of the body's values


@dataclass(frozen=True)
class BuiltinFunction:
    """One function a condition may call; ``predicate`` ones take ``(list, {closure})``."""

    min_args: int
    max_args: int
    run: Callable[[_Evaluator, Call, _Env], object]
    cost: CostKind = CostKind.CONSTANT
    doc: str = ""

    @property
    def predicate(self) -> bool:
        return self.cost in (CostKind.PREDICATE, CostKind.FILTER, CostKind.MAP)


def _numbers_of(ev: _Evaluator, node: Call, env: _Env) -> list[float | int]:
    """Arguments of min/max/mean: either one list or several numbers."""
    if len(node.args) == 1:
        values = ev.evaluate(node.args[0], env)
        items = values if isinstance(values, list) else [values]
    else:
        items = [ev.evaluate(arg, env) for arg in node.args]
    ev.charge(node, len(items))
    for item in items:
        if not _is_number(item):
            raise ev.error(node, f"{node.function}() needs numbers, got {_type_name(item)}")
    if not items:
        raise ev.error(node, f"{node.function}() of an empty list")
    return items  # type: ignore[return-value]


def _len(ev: _Evaluator, node: Call, env: _Env) -> object:
    value = ev.evaluate(node.args[0], env)
    if not isinstance(value, list | str):
        raise ev.error(node, f"len() needs a list or a string, got {_type_name(value)}")
    return len(value)


def _abs(ev: _Evaluator, node: Call, env: _Env) -> object:
    value = ev.number(node.args[0], env, "abs()")
    return _wrap(abs(value)) if isinstance(value, int) else abs(value)


def _is_nan(ev: _Evaluator, node: Call, env: _Env) -> object:
    return math.isnan(ev.number(node.args[0], env, "isNaN()"))


def _is_inf(ev: _Evaluator, node: Call, env: _Env) -> object:
    value = ev.number(node.args[0], env, "isInf()")
    sign = ev.number(node.args[1], env, "isInf()") if len(node.args) == 2 else 0
    if not math.isinf(value):
        return False
    return sign == 0 or (sign > 0) == (value > 0)


def _min(ev: _Evaluator, node: Call, env: _Env) -> object:
    return min(_numbers_of(ev, node, env))


def _max(ev: _Evaluator, node: Call, env: _Env) -> object:
    return max(_numbers_of(ev, node, env))


def _add_all(values: Sequence[float | int]) -> float | int:
    """Left-to-right sum, as expr-lang's ``sum``/``mean`` loop: ints wrap, floats overflow to ±Inf."""
    if all(isinstance(v, int) for v in values):
        return _wrap(sum(int(v) for v in values))
    total = 0.0
    for v in values:
        total += float(v)
    return total


def _sum(ev: _Evaluator, node: Call, env: _Env) -> object:
    values = ev.sequence(node.args[0], env, "sum()")
    ev.charge(node, len(values))
    if not all(_is_number(v) for v in values):
        raise ev.error(node, "sum() needs a list of numbers")
    return _add_all(values)  # type: ignore[arg-type]


def _mean(ev: _Evaluator, node: Call, env: _Env) -> object:
    values = _numbers_of(ev, node, env)
    return float(_add_all([float(v) for v in values])) / len(values)


def _text_argument(ev: _Evaluator, node: Call, env: _Env) -> object:
    value = ev.evaluate(node.args[0], env)
    if isinstance(value, str):
        ev.charge(node, len(value))
    return value


def _to_float(ev: _Evaluator, node: Call, env: _Env) -> object:
    value = _text_argument(ev, node, env)
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        text = value.strip()
        try:
            if "_" in text:  # Python's float() reads "1_0"; Go's strconv.ParseFloat does not
                raise ValueError(text)
            number = float(text)
        except ValueError:
            raise ev.error(node, f"{node.function}() cannot read {_shown(value)!r} as a number") from None
        if math.isinf(number) and "inf" not in text.lower():
            # Go's strconv.ParseFloat: a finite number too large for a float64 is an error
            raise ev.error(node, f"{node.function}() cannot read {_shown(value)!r}: out of the float64 range")
        return number
    raise ev.error(node, f"{node.function}() needs a number or a string, got {_type_name(value)}")


def _to_int(ev: _Evaluator, node: Call, env: _Env) -> object:
    value = _text_argument(ev, node, env)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_INT_DIGITS + 1 or not _WHOLE_NUMBER.fullmatch(text):
            raise ev.error(node, f"{node.function}() cannot read {_shown(value)!r} as a whole number")
        number = int(text, 10)
        if not INT64_MIN <= number <= INT64_MAX:
            raise ev.error(node, f"{node.function}() cannot read {_shown(value)!r}: out of the 64-bit integer range")
        return number
    if _is_number(value):
        if math.isnan(value) or math.isinf(value):  # type: ignore[arg-type]
            raise ev.error(node, f"{node.function}() cannot convert {value} to a whole number")
        if isinstance(value, float) and not _in_int64(value):
            raise ev.error(node, f"{node.function}() cannot convert {value} to a 64-bit integer")
        return int(value)  # type: ignore[call-overload]
    raise ev.error(node, f"{node.function}() needs a number or a string, got {_type_name(value)}")


def _predicate_outputs(ev: _Evaluator, node: Call, env: _Env) -> Iterator[tuple[object, object]]:
    """(element, body value) pairs, one body evaluation at a time (so all/any can stop early)."""
    items = ev.sequence(node.args[0], env, f"{node.function}()")
    body = node.args[1]
    assert isinstance(body, Predicate)  # the parser only builds Predicate here
    for item in items:
        yield item, ev.evaluate(body.body, _Env(env.result, item))


def _predicate_bools(ev: _Evaluator, node: Call, env: _Env) -> Iterator[tuple[object, bool]]:
    for item, out in _predicate_outputs(ev, node, env):
        if not isinstance(out, bool):
            raise ev.error(
                node.args[1], f"the predicate of {node.function}() must give true or false, got {_type_name(out)}"
            )
        yield item, out


# all/any/none stop at the first element that decides them, as expr-lang's compiled loops do.
def _all(ev: _Evaluator, node: Call, env: _Env) -> object:
    return all(ok for _, ok in _predicate_bools(ev, node, env))


def _any(ev: _Evaluator, node: Call, env: _Env) -> object:
    return any(ok for _, ok in _predicate_bools(ev, node, env))


def _none(ev: _Evaluator, node: Call, env: _Env) -> object:
    return not any(ok for _, ok in _predicate_bools(ev, node, env))


def _one(ev: _Evaluator, node: Call, env: _Env) -> object:
    return sum(ok for _, ok in _predicate_bools(ev, node, env)) == 1


def _count(ev: _Evaluator, node: Call, env: _Env) -> object:
    return sum(ok for _, ok in _predicate_bools(ev, node, env))


def _filter(ev: _Evaluator, node: Call, env: _Env) -> object:
    kept = [item for item, ok in _predicate_bools(ev, node, env) if ok]
    ev.allocate(node, len(kept))
    return kept


def _map(ev: _Evaluator, node: Call, env: _Env) -> object:
    mapped = [out for _, out in _predicate_outputs(ev, node, env)]
    ev.allocate(node, len(mapped))
    return mapped


_C = CostKind
BUILTIN_FUNCTIONS: dict[str, BuiltinFunction] = {
    "len": BuiltinFunction(1, 1, _len, doc="number of elements of a list (or characters of a string)"),
    "abs": BuiltinFunction(1, 1, _abs, doc="absolute value"),
    "isNaN": BuiltinFunction(1, 1, _is_nan, doc="true when the number is NaN"),
    "isInf": BuiltinFunction(1, 2, _is_inf, doc="true when ±Inf; isInf(x, 1) only +Inf, isInf(x, -1) only -Inf"),
    "min": BuiltinFunction(1, 64, _min, _C.ITEMS, doc="smallest of a list or of the arguments"),
    "max": BuiltinFunction(1, 64, _max, _C.ITEMS, doc="largest of a list or of the arguments"),
    "sum": BuiltinFunction(1, 1, _sum, _C.ITEMS, doc="sum of a list"),
    "mean": BuiltinFunction(1, 64, _mean, _C.ITEMS, doc="arithmetic mean of a list or of the arguments"),
    "float": BuiltinFunction(1, 1, _to_float, _C.TEXT, doc="number or numeric string to float"),
    "int": BuiltinFunction(1, 1, _to_int, _C.TEXT, doc="number (truncated) or numeric string to integer"),
    "asFloat": BuiltinFunction(1, 1, _to_float, _C.TEXT, doc="Argo's helper: string to float"),
    "asInt": BuiltinFunction(1, 1, _to_int, _C.TEXT, doc="Argo's helper: string to integer"),
    "all": BuiltinFunction(2, 2, _all, _C.PREDICATE, doc="every element satisfies the predicate (true for [])"),
    "any": BuiltinFunction(2, 2, _any, _C.PREDICATE, doc="at least one element satisfies it (false for [])"),
    "none": BuiltinFunction(2, 2, _none, _C.PREDICATE, doc="no element satisfies it"),
    "one": BuiltinFunction(2, 2, _one, _C.PREDICATE, doc="exactly one element satisfies it"),
    "count": BuiltinFunction(2, 2, _count, _C.PREDICATE, doc="how many elements satisfy it"),
    "filter": BuiltinFunction(2, 2, _filter, _C.FILTER, doc="the elements that satisfy it"),
    "map": BuiltinFunction(2, 2, _map, _C.MAP, doc="the predicate's value for each element"),
}


# --------------------------------------------------------------------------- static cost


@dataclass(frozen=True)
class _Shape:
    """An upper bound on a value's size: ``length`` of the list or string, ``nodes`` list
    elements at every depth, ``element`` the bound of any one element (None: no list)."""

    length: int = 0
    nodes: int = 0
    element: _Shape | None = None


_SCALAR = _Shape()
_CHARACTER = _Shape(length=1)


def _join(a: _Shape | None, b: _Shape | None) -> _Shape:
    if a is None or b is None:
        return a or b or _SCALAR
    return _Shape(max(a.length, b.length), max(a.nodes, b.nodes), _join(a.element, b.element))


@dataclass(frozen=True)
class Cost:
    """Evaluation steps and memory (list elements and string characters created)."""

    steps: int
    memory: int


@dataclass(frozen=True)
class _Estimate:
    steps: int
    memory: int
    shape: _Shape


def _estimate(node: Node, result: _Shape, element: _Shape) -> _Estimate:
    """An upper bound of what ``_Evaluator.evaluate(node)`` charges, node by node.

    Every rule charges at least what the evaluator does on any input that fits
    ``result`` (a list of at most ``result.length`` numbers, or a number): short
    circuits and early errors only make the real cost smaller.
    """
    if isinstance(node, Literal):
        if isinstance(node.value, str):
            return _Estimate(1, 0, _Shape(len(node.value), 0, _CHARACTER))
        return _Estimate(1, 0, _SCALAR)
    if isinstance(node, ResultRef):
        return _Estimate(1, 0, result)
    if isinstance(node, ElementRef):
        return _Estimate(1, 0, element)
    if isinstance(node, ArrayLiteral):
        parts = [_estimate(item, result, element) for item in node.items]
        joined: _Shape | None = None
        for part in parts:
            joined = _join(joined, part.shape)
        shape = _Shape(len(parts), len(parts) + sum(p.shape.nodes for p in parts), joined)
        return _Estimate(1 + sum(p.steps for p in parts), len(parts) + sum(p.memory for p in parts), shape)
    if isinstance(node, Unary):
        inner = _estimate(node.operand, result, element)
        return _Estimate(1 + inner.steps, inner.memory, _SCALAR)
    if isinstance(node, Binary):
        return _estimate_binary(node, result, element)
    if isinstance(node, Index | Slice):
        target = _estimate(node.target, result, element)
        bounds = [node.index] if isinstance(node, Index) else [b for b in (node.low, node.high) if b is not None]
        parts = [_estimate(b, result, element) for b in bounds]
        steps = 1 + target.steps + sum(p.steps for p in parts)
        memory = target.memory + sum(p.memory for p in parts)
        if isinstance(node, Index):
            return _Estimate(steps, memory, target.shape.element or _SCALAR)
        return _Estimate(steps, memory + target.shape.length, target.shape)
    if isinstance(node, Conditional):
        test = _estimate(node.test, result, element)
        then = _estimate(node.then, result, element)
        otherwise = _estimate(node.otherwise, result, element)
        return _Estimate(
            1 + test.steps + max(then.steps, otherwise.steps),
            test.memory + max(then.memory, otherwise.memory),
            _join(then.shape, otherwise.shape),
        )
    if isinstance(node, Call):
        return _estimate_call(node, result, element)
    # a Predicate outside a call is refused by the parser; charge its body once
    if isinstance(node, Predicate):
        return _estimate(node.body, result, element)
    return _Estimate(1, 0, _SCALAR)


def _estimate_binary(node: Binary, result: _Shape, element: _Shape) -> _Estimate:
    left = _estimate(node.left, result, element)
    right = _estimate(node.right, result, element)
    steps = 1 + left.steps + right.steps
    memory = left.memory + right.memory
    ls, rs = left.shape, right.shape
    if node.op in ("==", "!="):
        return _Estimate(steps + 1 + ls.nodes + rs.nodes, memory, _SCALAR)
    if node.op in ("in", "not in"):
        return _Estimate(steps + rs.length * (1 + ls.nodes) + rs.nodes, memory, _SCALAR)
    if node.op in ("<", "<=", ">", ">="):
        return _Estimate(steps + min(ls.length, rs.length), memory, _SCALAR)
    if node.op == "+" and (ls.length or rs.length):
        joined = ls.length + rs.length
        return _Estimate(steps, memory + joined, _Shape(joined, 0, _CHARACTER))
    return _Estimate(steps, memory, _SCALAR)


def _estimate_call(node: Call, result: _Shape, element: _Shape) -> _Estimate:
    spec = BUILTIN_FUNCTIONS[node.function]
    if spec.predicate:
        items = _estimate(node.args[0], result, element)
        body_node = node.args[1]
        inner = body_node.body if isinstance(body_node, Predicate) else body_node
        body = _estimate(inner, result, items.shape.element or _SCALAR)
        n = items.shape.length
        steps = 1 + items.steps + n * body.steps
        memory = items.memory + n * body.memory
        if spec.cost is CostKind.MAP:
            return _Estimate(steps, memory + n, _Shape(n, n * (1 + body.shape.nodes), body.shape))
        if spec.cost is CostKind.FILTER:
            return _Estimate(steps, memory + n, items.shape)
        return _Estimate(steps, memory, _SCALAR)
    parts = [_estimate(arg, result, element) for arg in node.args]
    steps = 1 + sum(p.steps for p in parts)
    memory = sum(p.memory for p in parts)
    if spec.cost is CostKind.ITEMS:
        # one list argument (or one number, taken as a list of one), or several numbers
        steps += max(1, parts[0].shape.length) if len(parts) == 1 else len(parts)
    elif spec.cost is CostKind.TEXT:
        steps += parts[0].shape.length
    return _Estimate(steps, memory, _SCALAR)


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class Condition:
    """A parsed condition: immutable, reusable, safe to evaluate many times."""

    expression: str
    root: Node

    def evaluate(
        self,
        result: float | bool | str | Sequence[float],
        *,
        max_steps: int = MAX_EVALUATION_STEPS,
        max_memory: int = MAX_EVALUATION_MEMORY,
    ) -> bool:
        """True/False for this measured ``result``; ConditionError if it cannot be decided.

        Never raises anything else: a condition over its evaluation budget, an
        arithmetic the evaluator did not foresee, are ConditionErrors too.
        """
        value: object
        if isinstance(result, bool | str):
            value = result  # a web metric's JSON boolean or string (or plain-text answer)
        elif isinstance(result, Sequence):
            value = [float(v) for v in result]
        else:
            value = float(result)
        evaluator = _Evaluator(self.expression, max_steps, max_memory)
        try:
            out = evaluator.evaluate(self.root, _Env(value))
        except (ArithmeticError, ValueError, RecursionError) as err:
            log.warning("condition evaluation failed unexpectedly: %s", type(err).__name__)
            raise ConditionError(
                self.expression, 0, f"cannot be evaluated: {type(err).__name__}: {_shown(str(err), 120)}"
            ) from None
        if not isinstance(out, bool):
            raise ConditionError(self.expression, 0, f"a condition must give true or false, got {_type_name(out)}")
        return out


@functools.lru_cache(maxsize=512)
def parse_condition(expr: str) -> Condition:
    """Compile ``expr``; raises ConditionError naming the position of the first problem."""
    if not isinstance(expr, str):
        raise ConditionError(repr(expr), 0, "a condition must be a string")
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(expr, 0, f"condition is longer than {MAX_EXPRESSION_LENGTH} characters")
    return Condition(expression=expr, root=_Parser(expr).parse())


def evaluate_condition(expr_or_condition: str | Condition, result: float | bool | str | Sequence[float]) -> bool:
    """Evaluate a condition (source text or parsed) against a scalar, vector, boolean or string result."""
    condition = expr_or_condition if isinstance(expr_or_condition, Condition) else parse_condition(expr_or_condition)
    return condition.evaluate(result)


def estimate_cost(condition: Condition, series: int) -> Cost:
    """An upper bound of the steps and memory ``condition.evaluate`` takes on any result
    of at most ``series`` values (a vector of that many series, or a scalar)."""
    if series < 0:
        raise ValueError("series must be >= 0")
    root = _estimate(condition.root, _Shape(series, series, _SCALAR), _SCALAR)
    return Cost(steps=root.steps, memory=root.memory)


def check_cost(condition: Condition, series: int = VALIDATE_SERIES) -> None:
    """Refuse (ConditionError) a condition whose worst case for ``series`` values is over
    the evaluation budget: nested predicates that multiply, lists or strings that double.

    Meant for ``kulta validate`` and the start of a run; evaluation is bounded at
    run time anyway (an Error measurement), this catches it before the rollout.
    """
    cost = estimate_cost(condition, series)
    if cost.steps > MAX_EVALUATION_STEPS:
        raise ConditionError(
            condition.expression,
            0,
            f"too costly: up to {_magnitude(cost.steps)} evaluation steps for a result of {series} series "
            f"(the budget is {MAX_EVALUATION_STEPS}); avoid predicates nested inside predicates over result",
        )
    if cost.memory > MAX_EVALUATION_MEMORY:
        raise ConditionError(
            condition.expression,
            0,
            f"too costly: up to {_magnitude(cost.memory)} list elements and string characters for a result of "
            f"{series} series (the budget is {MAX_EVALUATION_MEMORY}); avoid map() inside map()",
        )


def _magnitude(value: int) -> str:
    """A possibly astronomical count, short: ``1234``, ``1.2e+15``."""
    return str(value) if value < 10**9 else f"{float(value):.1e}" if value < 10**300 else "more than 1e300"
