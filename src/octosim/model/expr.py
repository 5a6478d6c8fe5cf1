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
SMALL_ARRAY = 16  # up to this many elements, array forms evaluate element by element

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

    __slots__ = ("source", "names", "_fn", "_afn")

    def __init__(
        self, source: str, names: frozenset[str], fn: Compiled, afn: ArrayFn | None = None
    ) -> None:
        self.source = source
        self.names = names
        self._fn = fn
        self._afn = afn  # the same expression on float64 arrays (None: scalar only)

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
        if n <= SMALL_ARRAY:
            return self._evaluate_each(env, n)
        fast = self.try_evaluate_array(env, n)
        return self._evaluate_each(env, n) if fast is None else fast[0]

    def try_evaluate_array(self, env: Mapping[str, np.ndarray], n: int) -> ArrayValue | None:
        """:meth:`evaluate_array` vectorised, with which elements are Python ints in the scalar
        semantics; None wherever numpy could differ from the scalar path (an element fails,
        a variable is unset or infinite, an int outgrows float64...): the caller then uses
        the scalar reference, which is exact and names the first failing element."""
        if self._afn is None:
            return None
        for name in self.names:
            arr = env.get(name)
            if arr is not None and np.shape(arr) != (n,):
                return None  # the scalar reference fails (or not) as it would
        with array_errstate():
            try:
                values, ints = self._afn(env, n)
                if not (np.abs(values) <= MAX_MAGNITUDE).all():
                    return None  # __call__'s "too large" error
            except ARRAY_ERRORS:
                return None
        if any(np.may_share_memory(values, env[k]) for k in self.names if k in env):
            values = values.copy()  # the expression is a bare variable: never hand out the input
        return values, ints

    def _evaluate_each(self, env: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """The reference semantics of :meth:`evaluate_array`: one scalar call per element."""
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
    return Expression(source, frozenset(names), fn, _compile_array(tree.body))


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


# --- the same expressions on float64 arrays -------------------------------------------------
#
# The array form walks the AST that _compile accepted and builds closures over numpy arrays
# of the n elements. It reproduces the scalar semantics bit for bit where it succeeds, and
# raises (ScalarFallback, or a FloatingPointError from np.errstate) wherever it could not:
# the caller then takes the scalar reference, which also names the first failing element.
# Python's ints are the subtle part: int arithmetic is exact and an int zero has no sign, so
# each value carries which elements are ints in the scalar semantics (IntMask).

ArrayEnv = Mapping[str, np.ndarray]
IntMask = bool | np.ndarray
"""Which elements are Python ints (or bools) in the scalar semantics: all (True), none
(False) or a boolean array. Their float64 values are exact and never -0.0."""
ArrayValue = tuple[np.ndarray, IntMask]
ArrayFn = Callable[[ArrayEnv, int], ArrayValue]

INT_EXACT = 2.0**53  # float64 holds every int below this exactly


class ScalarFallback(Exception):
    """The vectorised path cannot reproduce the scalar semantics here: use the scalar one."""


# What the vectorised path may raise; every one means "use the scalar reference".
ARRAY_ERRORS: tuple[type[Exception], ...] = (ArithmeticError, ValueError, TypeError,
                                             ScalarFallback)


def array_errstate() -> np.errstate:
    """Raise where Python raises (overflow, division by zero, invalid), not on underflow,
    which Python's floats and math functions let pass."""
    return np.errstate(all="raise", under="ignore")


def _python_ufunc(fn: Callable[..., Any]) -> Callable[..., np.ndarray]:
    """``fn`` element by element in Python: slow, but exactly the scalar values (and its
    errors, which make the caller fall back)."""

    def apply(*arrays: Any) -> np.ndarray:
        cols = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
        out = [fn(*xs) for xs in zip(*(c.ravel().tolist() for c in cols), strict=True)]
        return np.array(out, dtype=np.float64).reshape(cols[0].shape)

    return apply


def _power(a: Any, b: Any) -> np.ndarray:
    """``np.power`` with both operands materialised: given a broadcast exponent of 2, 0.5 or
    -1, numpy computes square, sqrt or reciprocal instead, not always pow's value."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.power(np.array(a), np.array(b))


def _exact(ufunc: Callable[..., np.ndarray], fn: Callable[..., Any],
           *probe: np.ndarray) -> Callable[..., np.ndarray]:
    """``ufunc`` if it gives exactly ``fn``'s values on the probe arguments, else ``fn`` per
    element. numpy calls the platform's libm as Python does, unless it has SIMD code of its
    own for the function (AVX-512 builds do for log and exp): that differs in the last bit."""
    with np.errstate(all="ignore"):
        got = ufunc(*probe).tolist()
    want = [float(fn(*xs)) for xs in zip(*(p.tolist() for p in probe), strict=True)]
    return ufunc if got == want else _python_ufunc(fn)


def _probe_arguments() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261201)
    n = 4099  # not a multiple of any SIMD width: the tail loops are probed too
    unit = (rng.integers(0, 2**53, n).astype(np.float64) + 0.5) * 2.0**-53
    wide = np.exp(rng.uniform(-700.0, 700.0, n))
    exponent = np.concatenate([rng.uniform(-10.0, 10.0, 2000), rng.integers(-9, 9, 500),
                               np.resize([2.0, 0.5, -1.0, 3.0, -2.0], n - 2500)])
    base = np.concatenate([np.exp(rng.uniform(-60.0, 60.0, 2000)),
                           -1.0 - rng.integers(0, 10**6, 500), unit[2500:]])
    return {"unit": unit, "positive": np.concatenate([unit[:2000], wide[2000:]]),
            "exponent_arg": rng.uniform(-700.0, 700.0, n),
            "real": rng.uniform(-700.0, 700.0, n) * np.resize([1.0, 1e-3, 1e6], n),
            "base": base, "exponent": exponent, "divisor": rng.uniform(-50.0, 50.0, n)}


_P = _probe_arguments()
array_log = _exact(np.log, math.log, _P["positive"])
array_log2 = _exact(np.log2, math.log2, _P["positive"])
array_log1p = _exact(np.log1p, math.log1p, -_P["unit"])
array_exp = _exact(np.exp, math.exp, _P["exponent_arg"])
array_sqrt = _exact(np.sqrt, math.sqrt, _P["positive"])
array_pow = _exact(_power, operator.pow, _P["base"], _P["exponent"])
_floor_divide = _exact(np.floor_divide, operator.floordiv, _P["real"], _P["divisor"])
_remainder = _exact(np.remainder, operator.mod, _P["real"], _P["divisor"])
_floor = _exact(np.floor, math.floor, _P["real"])
_ceil = _exact(np.ceil, math.ceil, _P["real"])
_round = _exact(np.rint, round, np.concatenate([_P["real"], np.arange(-50, 50) / 2]))
del _P

_ARRAY_BINOPS: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.FloorDiv: _floor_divide,
    ast.Mod: _remainder,
}
_ARRAY_CMPOPS: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
# name: (function, whether the scalar function returns an int)
_ARRAY_FUNCS: dict[str, tuple[Callable[..., np.ndarray], bool]] = {
    "ceil": (_ceil, True),
    "floor": (_floor, True),
    "round": (_round, True),
    "sqrt": (array_sqrt, False),
    "log2": (array_log2, False),
    "exp": (array_exp, False),
}
_CONSTANT_NAMES = frozenset({"true", "True", "false", "False"})


def int_zeros(x: np.ndarray, ints: IntMask) -> np.ndarray:
    """``x`` with -0.0 made 0.0 where the scalar value is an int: a Python int has no sign."""
    if ints is False:
        return x
    return x + 0.0 if ints is True else np.where(ints, x + 0.0, x)


def _exact_ints(x: np.ndarray, ints: IntMask) -> ArrayValue:
    """The result of an int operation: Python's is exact, float64's only below 2**53."""
    if ints is not False and not (np.abs(x if ints is True else x[ints]) < INT_EXACT).all():
        raise ScalarFallback("an int result outgrows float64")
    return int_zeros(x, ints), ints


def _both(a: IntMask, b: IntMask) -> IntMask:
    if a is False or b is False:
        return False
    if a is True:
        return b
    return a if b is True else a & b


def _where(cond: np.ndarray, a: IntMask, b: IntMask) -> IntMask:
    if a is b:
        return a
    return np.where(cond, a, b)


def _free_names(node: ast.AST) -> frozenset[str]:
    """The variables ``node`` reads (as _compile collects them; function names are not)."""
    if isinstance(node, ast.Name):
        return frozenset() if node.id in _CONSTANT_NAMES else frozenset({node.id})
    children = node.args if isinstance(node, ast.Call) else list(ast.iter_child_nodes(node))
    return frozenset().union(*(_free_names(c) for c in children))


def _subset(env: ArrayEnv, names: frozenset[str], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(env[k])[idx] for k in names if k in env}


def _on(fn: ArrayFn, names: frozenset[str], env: ArrayEnv, idx: np.ndarray | None,
        n: int) -> ArrayValue:
    """``fn`` on the elements ``idx`` only (None: all ``n``): what the scalar path does not
    evaluate (a short-circuited operand, the branch not taken) must not fail here either."""
    if idx is None:
        return fn(env, n)
    return fn(_subset(env, names, idx), len(idx))


def _always_fallback(env: ArrayEnv, n: int) -> ArrayValue:
    raise ScalarFallback("not reproducible with float64 arrays")


def _constant_array(node: ast.AST) -> ArrayFn:
    """A subtree without variables, folded with the scalar closure (so ints stay exact)."""
    try:
        value = _compile(node, set(), 0)({})
    except (ArithmeticError, ValueError, TypeError):
        return _always_fallback  # the scalar path raises: fall back when it is evaluated
    try:
        x = float(value)
    except OverflowError:
        return _always_fallback
    is_int = isinstance(value, int)  # bool too
    if not math.isfinite(x) or (is_int and x != value):
        return _always_fallback  # inf, or an int that float64 cannot hold
    return lambda env, n: (np.full(n, x), is_int)


def _compile_array(node: ast.AST) -> ArrayFn:
    """The array form of ``node``, a tree that :func:`_compile` accepted."""
    if not _free_names(node):
        return _constant_array(node)
    if isinstance(node, ast.Name):
        return _variable_array(node.id)
    if isinstance(node, ast.BinOp):
        return _binop_array(node)
    if isinstance(node, ast.UnaryOp):
        return _unary_array(node)
    if isinstance(node, ast.BoolOp):
        return _boolop_array(node)
    if isinstance(node, ast.Compare):
        return _compare_array(node)
    if isinstance(node, ast.IfExp):
        return _ifexp_array(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _call_array(node.func.id, node.args)
    return _always_fallback  # unreachable: _compile rejected it


def _variable_array(name: str) -> ArrayFn:
    def read(env: ArrayEnv, n: int) -> ArrayValue:
        arr = env.get(name)
        if arr is None:
            raise ScalarFallback(f"variable {name!r} is not set")
        a = np.asarray(arr, dtype=np.float64)
        # NaN: not set for some element (KeyError there); inf: Python's inf arithmetic
        # does not raise where numpy's does, nor math.floor(inf) where np.floor does not.
        if not np.isfinite(a).all():
            raise ScalarFallback(f"variable {name!r} is not a finite number everywhere")
        return a, False

    return read


def _binop_array(node: ast.BinOp) -> ArrayFn:
    left, right = _compile_array(node.left), _compile_array(node.right)
    if isinstance(node.op, ast.Pow):

        def power(env: ArrayEnv, n: int) -> ArrayValue:  # _pow
            (a, _), (b, _) = left(env, n), right(env, n)
            if (np.abs(b) > MAX_POW_EXPONENT).any():
                raise ScalarFallback("exponent too large")
            x = array_pow(a, b)
            if (np.abs(x) > MAX_MAGNITUDE).any():
                raise ScalarFallback("power too large")
            return x, False

        return power
    ufunc = _ARRAY_BINOPS[type(node.op)]
    true_division = isinstance(node.op, ast.Div)

    def binop(env: ArrayEnv, n: int) -> ArrayValue:
        (a, ia), (b, ib) = left(env, n), right(env, n)
        x = ufunc(a, b)
        return (x, False) if true_division else _exact_ints(x, _both(ia, ib))

    return binop


def _unary_array(node: ast.UnaryOp) -> ArrayFn:
    operand = _compile_array(node.operand)
    if isinstance(node.op, ast.UAdd):
        return operand
    if isinstance(node.op, ast.Not):
        return lambda env, n: ((operand(env, n)[0] == 0).astype(np.float64), True)

    def negative(env: ArrayEnv, n: int) -> ArrayValue:
        a, ints = operand(env, n)
        return int_zeros(-a, ints), ints

    return negative


def _boolop_array(node: ast.BoolOp) -> ArrayFn:
    """``all()`` / ``any()`` of the parts, each evaluated only where the scalar path does."""
    parts = [(_compile_array(v), _free_names(v)) for v in node.values]
    want = isinstance(node.op, ast.Or)  # the truth value that stops the scan

    def boolop(env: ArrayEnv, n: int) -> ArrayValue:
        idx: np.ndarray | None = None  # elements still scanning (None: all)
        for fn, names in parts:
            v, _ = _on(fn, names, env, idx, n)
            going = (v != 0) != want
            idx = np.flatnonzero(going) if idx is None else idx[going]
            if not idx.size:
                break
        out = np.full(n, 1.0 if want else 0.0)
        out[idx] = 0.0 if want else 1.0
        return out, True

    return boolop


def _compare_array(node: ast.Compare) -> ArrayFn:
    """A comparison chain, each comparand evaluated only where the chain still holds."""
    first = _compile_array(node.left)
    ops = [(_ARRAY_CMPOPS[type(o)], _compile_array(c), _free_names(c))
           for o, c in zip(node.ops, node.comparators, strict=True)]

    def compare(env: ArrayEnv, n: int) -> ArrayValue:
        left, _ = first(env, n)
        idx: np.ndarray | None = None  # elements where the chain holds so far (None: all)
        for cmp, fn, names in ops:
            right, _ = _on(fn, names, env, idx, n)
            holds = cmp(left, right)
            idx = np.flatnonzero(holds) if idx is None else idx[holds]
            left = right[holds]
            if not idx.size:
                break
        out = np.zeros(n)
        out[idx] = 1.0
        return out, True

    return compare


def _ifexp_array(node: ast.IfExp) -> ArrayFn:
    """Each branch evaluated only on the elements that take it."""
    test = _compile_array(node.test)
    body, body_names = _compile_array(node.body), _free_names(node.body)
    orelse, orelse_names = _compile_array(node.orelse), _free_names(node.orelse)

    def ifexp(env: ArrayEnv, n: int) -> ArrayValue:
        truth = test(env, n)[0] != 0
        if truth.all():
            return body(env, n)
        if not truth.any():
            return orelse(env, n)
        yes, no = np.flatnonzero(truth), np.flatnonzero(~truth)
        (b, ib), (o, io) = _on(body, body_names, env, yes, n), _on(orelse, orelse_names, env, no, n)
        out = np.empty(n)
        out[yes], out[no] = b, o
        if ib is io:
            return out, ib
        ints = np.empty(n, dtype=bool)
        ints[yes], ints[no] = ib, io
        return out, ints

    return ifexp


def _call_array(name: str, arg_nodes: list[ast.expr]) -> ArrayFn:
    args = [_compile_array(a) for a in arg_nodes]
    if name in ("min", "max"):
        better = np.less if name == "min" else np.greater

        def extreme(env: ArrayEnv, n: int) -> ArrayValue:
            # As Python's min/max: the first of equal values wins (0.0 or -0.0, int or float).
            best, ints = args[0](env, n)
            for fn in args[1:]:
                x, ix = fn(env, n)
                take = better(x, best)
                best, ints = np.where(take, x, best), _where(take, ix, ints)
            return best, ints

        return extreme
    if name == "abs":
        (arg,) = args

        def absolute(env: ArrayEnv, n: int) -> ArrayValue:
            a, ints = arg(env, n)
            return np.abs(a), ints

        return absolute
    if name == "log":
        if len(args) == 1:
            return lambda env, n: (array_log(args[0](env, n)[0]), False)
        # math.log(x, base) is log(x) / log(base), a float division (ZeroDivisionError at 1)
        return lambda env, n: (array_log(args[0](env, n)[0]) / array_log(args[1](env, n)[0]),
                               False)
    func, gives_int = _ARRAY_FUNCS[name]
    (arg,) = args
    if gives_int:  # ceil, floor, round: Python ints, never -0.0
        return lambda env, n: (func(arg(env, n)[0]) + 0.0, True)
    return lambda env, n: (func(arg(env, n)[0]), False)
