"""Arithmetic without `eval`: the expression is parsed into Python's AST and only numbers, the
arithmetic operators, a few constants and math functions are walked. Sizes are bounded so that no
expression can hang the app or fill its memory (`9**9**9`, `factorial(10**6)`)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from app.core.tools.base import ToolError

MAX_LENGTH = 2_000  # characters of expression
MAX_NODES = 500
MAX_EXPONENT = 10_000  # for integer powers of numbers other than -1, 0, 1
MAX_DIGITS = 4_000  # of an integer result (Python prints at most 4,300 digits by default)
MAX_FACTORIAL = 1_000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}


def _factorial(n: Any) -> int:
    if not isinstance(n, int) and not (isinstance(n, float) and n.is_integer()):
        raise ToolError("factorial takes a whole number")
    if not 0 <= n <= MAX_FACTORIAL:
        raise ToolError(f"factorial takes a whole number from 0 to {MAX_FACTORIAL:,}")
    return math.factorial(int(n))


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "cbrt": lambda x: math.copysign(abs(x) ** (1 / 3), x),
    "exp": math.exp,
    "ln": math.log,
    "log": math.log,  # log(x) natural, log(x, base)
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "hypot": math.hypot,
    "min": min,
    "max": max,
    "gcd": math.gcd,
    "factorial": _factorial,
}

DESCRIPTION = (
    "Evaluate an arithmetic expression exactly and return the number. Supports + - * / // % ** "
    "(or ^), parentheses, pi, e, and sqrt, cbrt, exp, ln, log(x[, base]), log10, log2, sin, cos, tan, "
    "asin, acos, atan, atan2, sinh, cosh, tanh, degrees, radians, abs, round, floor, ceil, hypot, "
    "min, max, gcd, factorial. Angles are in radians."
)
PARAMETERS = {
    "type": "object",
    "properties": {
        "expression": {"type": "string", "description": "For example (2 + 3) * 4 / 7, 2**64, sqrt(2) * sin(pi / 6)"}
    },
    "required": ["expression"],
}


def evaluate(expression: str) -> str:
    """The value of an arithmetic expression, as text; ToolError with a sentence otherwise."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/").replace("−", "-")
    if not text:
        raise ToolError("The expression is empty.")
    if len(text) > MAX_LENGTH:
        raise ToolError(f"The expression is longer than {MAX_LENGTH:,} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"This is not an arithmetic expression ({exc.msg} at character {exc.offset}).") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError("The expression is too long to evaluate.")
    try:
        value = _eval(tree.body)
    except ToolError:
        raise
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    except OverflowError:
        raise ToolError("The result is too large.") from None
    except (ValueError, TypeError) as exc:
        raise ToolError(f"The expression cannot be evaluated: {exc}.") from None
    return _format(value)


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ToolError(f"The operator {_symbol(node.op)} is not arithmetic.")
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
            _check_digits(left.bit_length() + right.bit_length())
        return op(left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ToolError(f"Unknown name {node.id!r}; known constants: {', '.join(_CONSTANTS)}.")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        function = _FUNCTIONS.get(node.func.id)
        if function is None:
            raise ToolError(f"Unknown function {node.func.id!r}.")
        return function(*(_eval(arg) for arg in node.args))
    raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression.")


def _power(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and base not in (-1, 0, 1):
        if exponent > MAX_EXPONENT:
            raise ToolError(f"The exponent is too large (at most {MAX_EXPONENT:,} for whole numbers).")
        _check_digits(base.bit_length() * max(exponent, 0))
    result = base**exponent
    if isinstance(result, complex):
        raise ToolError("The result is not a real number.")
    return result


def _check_digits(bits: int) -> None:
    if bits * 0.30103 > MAX_DIGITS:
        raise ToolError(f"The result would have more than {MAX_DIGITS:,} digits.")


def _symbol(op: ast.operator) -> str:
    return {ast.BitXor: "^ (xor)", ast.BitAnd: "&", ast.BitOr: "|", ast.LShift: "<<", ast.RShift: ">>"}.get(
        type(op), type(op).__name__
    )


def _format(value: Any) -> str:
    if isinstance(value, bool):
        raise ToolError("The result is not a number.")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise ToolError("The result is not a number.")
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return format(value, ".15g")
    raise ToolError("The result is not a number.")
