"""Safe arithmetic expressions over workflow variables.

A user's expression is parsed with :mod:`ast` and compiled into a tree of closures over a
small whitelist (numbers, variables, arithmetic, comparisons, boolean logic, conditional
expressions and a few math functions). Nothing the user writes is ever passed to ``eval``;
anything outside the whitelist is rejected at load time with the offending construct named.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from octosim.errors import UserError

Env = Mapping[str, float]
Compiled = Callable[[Env], float]

MAX_EXPR_CHARS = 2000
MAX_EXPR_DEPTH = 60
MAX_POW_EXPONENT = 64.0
MAX_MAGNITUDE = 1e300

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCS: dict[str, tuple[Callable[..., float], int, int]] = {
    # name: (function, min args, max args)
    "min": (lambda *a: min(a), 1, 16),  # min(a) alone would iterate over a number
    "max": (lambda *a: max(a), 1, 16),
    "abs": (abs, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "floor": (math.floor, 1, 1),
    "round": (round, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "log": (math.log, 1, 2),
    "log2": (math.log2, 1, 1),
    "exp": (math.exp, 1, 1),
}


class ExprError(Exception):
    """An expression failed while it was evaluated (division by zero, overflow...)."""


class Expression:
    """A compiled expression: call it with a mapping of variable values."""

    __slots__ = ("source", "names", "_fn")

    def __init__(self, source: str, names: frozenset[str], fn: Compiled) -> None:
        self.source = source
        self.names = names
        self._fn = fn

    def __call__(self, env: Env) -> float:
        try:
            value = self._fn(env)
        except KeyError as exc:
            raise ExprError(f"variable {exc.args[0]!r} is not set here") from None
        except ZeroDivisionError:
            raise ExprError("division by zero") from None
        except (OverflowError, ValueError, TypeError) as exc:
            raise ExprError(f"math error ({exc})") from None
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, float) and not math.isfinite(value):
            raise ExprError("result is not a finite number")
        if abs(value) > MAX_MAGNITUDE:  # a huge integer (products of integer constants)
            raise ExprError("result is too large")
        return value

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate_array(self, env: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """The expression for ``n`` elements at once: element ``i`` is ``self(env_i)`` with
        ``env_i = {name: env[name][i]}`` (NaN: not set there), as ``float64``. If an element
        fails, :class:`DrawError` names the first."""
        out = np.empty(n, dtype=np.float64)
        for i in range(n):
            try:
                out[i] = self(scalar_env(env, i, self.names))
            except ExprError as exc:
                raise DrawError(i, exc) from None
        return out


class DrawError(Exception):
    """Element ``index`` of an array draw failed with ``error`` (what the scalar draw of
    that element raises: an :class:`ExprError` or a :class:`UserError`)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


def scalar_env(env: Mapping[str, np.ndarray], i: int, names: frozenset[str]) -> dict[str, float]:
    """The variables element ``i`` sees, of those in ``names`` (NaN: not set there)."""
    out = {}
    for name in names:
        arr = env.get(name)
        if arr is not None:
            x = float(arr[i])
            if x == x:
                out[name] = x
    return out


def _pow(a: float, b: float) -> float:
    if abs(b) > MAX_POW_EXPONENT:
        raise OverflowError(f"exponent {b} is larger than {MAX_POW_EXPONENT:g}")
    result = float(a) ** float(b)
    if isinstance(result, complex) or abs(result) > MAX_MAGNITUDE:
        raise OverflowError("result too large or not real")
    return result


def compile_expression(source: str) -> Expression:
    """Parse and compile ``source``; raise :class:`UserError` for anything not allowed."""
    if not isinstance(source, str):
        raise UserError(f"expected an expression string, got {type(source).__name__}")
    if len(source) > MAX_EXPR_CHARS:
        raise UserError(f"expression longer than {MAX_EXPR_CHARS} characters")
    if source.count("(") > MAX_EXPR_DEPTH:
        raise UserError("expression is nested too deeply")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        msg = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        raise UserError(f"cannot parse expression {source!r}: {msg}") from None
    names: set[str] = set()
    fn = _compile(tree.body, names, 0)
    return Expression(source, frozenset(names), fn)


def _compile(node: ast.AST, names: set[str], depth: int) -> Compiled:
    if depth > MAX_EXPR_DEPTH:
        raise UserError("expression is nested too deeply")
    d = depth + 1
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):  # Python parses True/False as constants
            return lambda env: value
        if not isinstance(value, int | float):
            raise UserError(f"only numbers are allowed as constants, not {value!r}")
        if isinstance(value, int) and abs(value) > 10**18:
            digits = len(str(value)) if value.bit_length() < 10_000 else "thousands of"
            raise UserError(f"integer constant of {digits} digits is too large (at most 10**18)")
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in ("true", "True"):
            return lambda env: True
        if name in ("false", "False"):
            return lambda env: False
        names.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.BinOp):
        left = _compile(node.left, names, d)
        right = _compile(node.right, names, d)
        if isinstance(node.op, ast.Pow):
            return lambda env: _pow(left(env), right(env))
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise UserError(f"operator {type(node.op).__name__} is not allowed")
        binop: Callable[[Any, Any], Any] = op
        return lambda env: binop(left(env), right(env))
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, names, d)
        if isinstance(node.op, ast.USub):
            return lambda env: -operand(env)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        raise UserError(f"operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, names, d) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(p(env) for p in parts)
        return lambda env: any(p(env) for p in parts)
    if isinstance(node, ast.Compare):
        first = _compile(node.left, names, d)
        ops = []
        for op_node, comp in zip(node.ops, node.comparators, strict=True):
            op = _CMPOPS.get(type(op_node))
            if op is None:
                raise UserError(f"comparison {type(op_node).__name__} is not allowed")
            ops.append((op, _compile(comp, names, d)))

        def compare(env: Env) -> bool:
            left = first(env)
            for op, right_fn in ops:
                right = right_fn(env)
                if not op(left, right):
                    return False
                left = right
            return True

        return compare
    if isinstance(node, ast.IfExp):
        test = _compile(node.test, names, d)
        body = _compile(node.body, names, d)
        orelse = _compile(node.orelse, names, d)
        return lambda env: body(env) if test(env) else orelse(env)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _compile(node.func, set(), d)  # names what is wrong: Attribute, Lambda...
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS:
            allowed = ", ".join(sorted(_FUNCS))
            raise UserError(f"only these functions may be called: {allowed}")
        if node.keywords:
            raise UserError("keyword arguments are not allowed in expressions")
        func, lo, hi = _FUNCS[node.func.id]
        if not lo <= len(node.args) <= hi:
            raise UserError(f"{node.func.id}() takes {lo} to {hi} arguments")
        args = [_compile(a, names, d) for a in node.args]
        return lambda env: func(*(a(env) for a in args))
    raise UserError(f"{type(node).__name__} is not allowed in an expression")
