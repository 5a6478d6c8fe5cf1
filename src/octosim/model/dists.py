"""Values in workflow files: a number, a distribution or an expression.

Each is compiled once at load time into a :class:`Value` whose :meth:`Value.draw` is cheap.
Random values take their uniforms from a stream keyed by the meaning of the draw
(see :mod:`octosim.model.rng`), so draws are common random numbers across policies.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from statistics import NormalDist
from typing import Any

import numpy as np

from octosim.errors import UserError
from octosim.model.expr import (
    MAX_MAGNITUDE,
    DrawError,
    Env,
    ExprError,
    Expression,
    compile_expression,
    scalar_env,
)
from octosim.model.rng import (
    GOLDEN,
    MASK64,
    TWO_M53,
    KeyedRandom,
    Stream,
    first_uniform,
    mix64,
    salt,
)

_STD_NORMAL = NormalDist()


def _finite(x: Any) -> bool:
    """A real number (not bool) that is finite and at most MAX_MAGNITUDE in size."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return False
    if isinstance(x, int):
        return abs(x) <= MAX_MAGNITUDE
    return math.isfinite(x) and abs(x) <= MAX_MAGNITUDE


def _show(x: Any) -> str:
    """repr(x) for messages, short even for a huge integer."""
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 10**30:
        return f"an integer of about {x.bit_length() * 0.30103:.0f} digits"
    return repr(x)


class Value:
    """A compiled number, distribution or expression."""

    __slots__ = ("names", "is_random", "text", "limit")

    names: frozenset[str]
    is_random: bool
    text: str
    limit: float | None  # largest magnitude a draw may have (set by the role, e.g. cycles)

    def checked(self, x: float) -> float:
        """``x`` if it is finite and within :attr:`limit`, else :class:`ExprError`."""
        t = type(x)
        if (t is float or t is int) and -MAX_MAGNITUDE <= x <= (
            MAX_MAGNITUDE if self.limit is None else min(self.limit, MAX_MAGNITUDE)
        ):
            return x  # the common case, without the slower checks below (NaN fails the test)
        if not _finite(x):
            raise ExprError(f"value {_show(x)} is not a finite number")
        if self.limit is not None and x > self.limit:
            raise ExprError(f"value {x:.6g} is larger than the maximum {self.limit:.6g}")
        return x

    def sample(self, state: int, env: Env) -> float:  # pragma: no cover
        """The value for the stream that starts at ``state`` (see :mod:`octosim.model.rng`)."""
        raise NotImplementedError

    def draw(self, rnd: KeyedRandom, key: str, env: Env) -> float:
        """The value for a textual key (tests, one-off draws)."""
        return self.sample(mix64(rnd.seed_key ^ salt(key)), env)

    def mean_hint(self) -> float | None:
        """The mean when it is known without variables (for profiling), else None."""
        return None

    def fast_sampler(self) -> Callable[[int], float] | None:
        """A function of the stream state alone giving :meth:`sample`'s value *before* the
        range check (:meth:`upper` bounds it), when the value needs no variables."""
        return None

    def upper(self) -> float:
        """The largest value :meth:`checked` accepts."""
        return MAX_MAGNITUDE if self.limit is None else min(self.limit, MAX_MAGNITUDE)

    def sample_array(self, states: np.ndarray, env: Mapping[str, np.ndarray]) -> np.ndarray:
        """:meth:`sample` for many draws at once: element ``i`` is the value for stream state
        ``states[i]`` (``uint64``) and the variables ``{name: env[name][i]}`` (NaN: not set
        there), as ``float64``. If an element fails, :class:`DrawError` names the first."""
        return _sample_each(self, states, env)


class Const(Value):
    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value
        self.names = frozenset()
        self.is_random = False
        self.text = repr(value)
        self.limit = None

    def sample(self, state: int, env: Env) -> float:
        return self.value

    def mean_hint(self) -> float | None:
        return float(self.value)


class Expr(Value):
    __slots__ = ("expr",)

    def __init__(self, expr: Expression) -> None:
        self.expr = expr
        self.names = expr.names
        self.is_random = False
        self.text = expr.source
        self.limit = None

    def sample(self, state: int, env: Env) -> float:
        return self.checked(self.expr(env))


class Dist(Value):
    """A distribution; parameters may themselves be numbers or expressions."""

    __slots__ = ("kind", "params", "_static", "_sampler", "_mean", "_fast")

    def __init__(self, kind: str, params: dict[str, Any], text: str) -> None:
        self.kind = kind
        self.params = params
        self.is_random = True
        self.text = text
        self.limit = None
        names: set[str] = set()
        for p in params.values():
            if isinstance(p, Expression):
                names |= p.names
        self.names = frozenset(names)
        self._static = not names
        self._sampler = _SAMPLERS[kind]
        self._mean: float | None = None
        # Static parameters: a closure of the state alone, the parameters bound (hot path).
        self._fast: Callable[[int], float] | None = None
        if self._static:
            _check_params(kind, params)
            self._mean = _MEANS[kind](params)
            self._fast = _fast_sampler(kind, params)

    def sample(self, state: int, env: Env) -> float:
        fast = self._fast
        if fast is not None:
            x = fast(state)
        else:
            params = {k: (v(env) if isinstance(v, Expression) else v)
                      for k, v in self.params.items()}
            _check_params(self.kind, params)
            x = self._sampler(state, params)
        return self.checked(x)

    def mean_hint(self) -> float | None:
        return self._mean

    def fast_sampler(self) -> Callable[[int], float] | None:
        return self._fast


# --- samplers -----------------------------------------------------------------------------


def _poisson(state: int, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean < 30:
        # Inversion by sequential search: one uniform, exact.
        u = first_uniform(state)
        k = 0
        p = math.exp(-mean)
        cdf = p
        while u > cdf and k < 10_000:
            k += 1
            p *= mean / k
            cdf += p
        return k
    # PTRS (Hormann 1993): transformed rejection with squeeze, exact for large means.
    slam = math.sqrt(mean)
    loglam = math.log(mean)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2)
    s = Stream(state)
    while True:
        u = s.uniform() - 0.5
        v = s.uniform()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= v_r:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b) <= (
            -mean + k * loglam - math.lgamma(k + 1)
        ):
            return k


def _lognormal(s: int, p: Mapping[str, Any]) -> float:
    mean, sd = p["mean"], p["sd"]
    if sd == 0:
        return mean
    sigma2 = math.log1p((sd / mean) ** 2)
    mu = math.log(mean) - sigma2 / 2
    return math.exp(mu + math.sqrt(sigma2) * _STD_NORMAL.inv_cdf(first_uniform(s)))


def _geometric(s: int, p: Mapping[str, Any]) -> int:
    prob = p["p"]
    if prob >= 1:
        return 0
    return int(math.floor(math.log(first_uniform(s)) / math.log1p(-prob)))


def _choice(s: int, p: Mapping[str, Any]) -> float:
    cum = p["_cum"]
    return p["values"][min(bisect_right(cum, first_uniform(s) * cum[-1]), len(cum) - 1)]


def _empirical(s: int, p: Mapping[str, Any]) -> float:
    samples = p["samples"]
    return samples[min(int(first_uniform(s) * len(samples)), len(samples) - 1)]


_SAMPLERS = {
    "const": lambda s, p: p["value"],
    "uniform": lambda s, p: p["low"] + (p["high"] - p["low"]) * first_uniform(s),
    "exponential": lambda s, p: -p["mean"] * math.log(first_uniform(s)),
    "normal": lambda s, p: p["mean"] + p["sd"] * _STD_NORMAL.inv_cdf(first_uniform(s)),
    "lognormal": _lognormal,
    "poisson": lambda s, p: _poisson(s, p["mean"]),
    "geometric": _geometric,
    "choice": _choice,
    "empirical": _empirical,
}


def _fast_sampler(kind: str, p: Mapping[str, Any]) -> Callable[[int], float]:
    """The sampler of ``kind`` with its (static) parameters bound: the same values as
    ``_SAMPLERS[kind](state, p)``, with fewer lookups per draw."""
    log, u1 = math.log, first_uniform
    if kind == "exponential":
        neg_mean = -p["mean"]

        def exponential(s: int) -> float:  # first_uniform inlined: the commonest draw
            z = (s + GOLDEN) & MASK64
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            return neg_mean * log((((z ^ (z >> 31)) >> 11) + 0.5) * TWO_M53)

        return exponential
    if kind == "uniform":
        low, width = p["low"], p["high"] - p["low"]
        return lambda s: low + width * u1(s)
    if kind == "lognormal" and p["sd"] != 0:
        sigma2 = math.log1p((p["sd"] / p["mean"]) ** 2)
        mu, sigma = math.log(p["mean"]) - sigma2 / 2, math.sqrt(sigma2)
        exp, inv = math.exp, _STD_NORMAL.inv_cdf
        return lambda s: exp(mu + sigma * inv(u1(s)))
    if kind == "poisson" and 0 < p["mean"] < 30:
        mean = p["mean"]
        p0 = math.exp(-mean)

        def poisson(s: int) -> int:
            u = u1(s)
            k, prob, cdf = 0, p0, p0
            while u > cdf and k < 10_000:
                k += 1
                prob *= mean / k
                cdf += prob
            return k

        return poisson
    sampler = _SAMPLERS[kind]
    return lambda s: sampler(s, p)


def _choice_mean(p: Mapping[str, Any]) -> float:
    cum = p["_cum"]
    weights = [b - a for a, b in zip([0.0, *cum[:-1]], cum, strict=True)]
    return sum(v * w for v, w in zip(p["values"], weights, strict=True)) / cum[-1]


_MEANS = {
    "const": lambda p: float(p["value"]),
    "uniform": lambda p: (p["low"] + p["high"]) / 2,
    "exponential": lambda p: float(p["mean"]),
    "normal": lambda p: float(p["mean"]),
    "lognormal": lambda p: float(p["mean"]),
    "poisson": lambda p: float(p["mean"]),
    "geometric": lambda p: (1 - p["p"]) / p["p"],
    "choice": _choice_mean,
    "empirical": lambda p: sum(p["samples"]) / len(p["samples"]),
}

_PARAMS: dict[str, tuple[set[str], set[str]]] = {
    # kind: (required, optional)
    "const": ({"value"}, set()),
    "uniform": ({"low", "high"}, set()),
    "exponential": ({"mean"}, set()),
    "normal": ({"mean", "sd"}, set()),
    "lognormal": ({"mean", "sd"}, set()),
    "poisson": ({"mean"}, set()),
    "geometric": ({"p"}, set()),
    "choice": ({"values"}, {"weights"}),
    "empirical": ({"samples"}, set()),
}

DIST_KINDS = tuple(_PARAMS)
MAX_LIST = 100_000


def _check_params(kind: str, p: Mapping[str, Any]) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise UserError(f"{kind}: {msg}")

    for name, v in p.items():
        if name.startswith("_") or name in ("values", "samples", "weights"):
            continue
        need(_finite(v), f"{name} must be a finite number (at most {MAX_MAGNITUDE:g} in size)")
    if kind == "uniform":
        need(p["low"] <= p["high"], "low must not exceed high")
    elif kind in ("exponential", "poisson"):
        need(p["mean"] >= 0, "mean must be >= 0")
        need(kind != "poisson" or p["mean"] <= 1e9, "mean must be <= 1e9")
    elif kind == "normal":
        need(p["sd"] >= 0, "sd must be >= 0")
    elif kind == "lognormal":
        need(p["mean"] > 0, "mean must be > 0")
        need(p["sd"] >= 0, "sd must be >= 0")
    elif kind == "geometric":
        need(0 < p["p"] <= 1, "p must be in (0, 1]")


def _number_list(v: Any, what: str) -> list[float]:
    if not isinstance(v, list) or not v:
        raise UserError(f"{what} must be a non-empty list of numbers")
    if len(v) > MAX_LIST:
        raise UserError(f"{what} has more than {MAX_LIST} entries")
    out = []
    for i, x in enumerate(v):
        if not _finite(x):
            raise UserError(f"{what}[{i}] must be a finite number, got {_show(x)}")
        out.append(x)
    return out


def compile_value(raw: Any) -> Value:
    """Compile a number, ``{dist: ...}`` mapping or expression string into a :class:`Value`."""
    if isinstance(raw, bool):
        raise UserError(f"expected a number, distribution or expression, got {raw!r}")
    if isinstance(raw, int | float):
        if not _finite(raw):
            raise UserError(f"expected a finite number, got {_show(raw)}")
        return Const(raw)
    if isinstance(raw, str):
        expr = compile_expression(raw)
        if not expr.names:
            try:
                return Const(expr({}))
            except Exception as exc:
                raise UserError(f"expression {raw!r} cannot be evaluated: {exc}") from None
        return Expr(expr)
    if isinstance(raw, Mapping):
        return _compile_dist(raw)
    raise UserError(
        f"expected a number, distribution or expression, got {type(raw).__name__}"
    )


def _compile_dist(raw: Mapping[str, Any]) -> Dist:
    kind = raw.get("dist")
    if not isinstance(kind, str):
        raise UserError("a distribution needs 'dist' naming one of: " + ", ".join(DIST_KINDS))
    if kind not in _PARAMS:
        raise UserError(f"unknown distribution {kind!r}; known: " + ", ".join(DIST_KINDS))
    required, optional = _PARAMS[kind]
    given = set(raw) - {"dist"}
    missing = required - given
    if missing:
        raise UserError(f"{kind} needs {', '.join(sorted(missing))}")
    extra = given - required - optional
    if extra:
        raise UserError(f"{kind} does not take {', '.join(sorted(extra))}")
    params: dict[str, Any] = {}
    for name in sorted(given):
        v = raw[name]
        if name in ("values", "samples", "weights"):
            params[name] = _number_list(v, name)
        elif isinstance(v, str):
            e = compile_expression(v)
            if e.names:
                params[name] = e
            else:
                try:
                    params[name] = e({})
                except ExprError as exc:
                    raise UserError(f"{kind}: {name} {v!r} cannot be evaluated: {exc}") from None
        elif isinstance(v, bool) or not isinstance(v, int | float):
            raise UserError(f"{kind}: {name} must be a number or expression, got {v!r}")
        else:
            params[name] = v
    if kind == "choice":
        weights = params.pop("weights", None) or [1.0] * len(params["values"])
        if len(weights) != len(params["values"]):
            raise UserError("choice: weights and values must have the same length")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise UserError("choice: weights must be >= 0 with a positive sum")
        params["_cum"] = list(accumulate(weights))
    text = "{" + ", ".join(f"{k}: {raw[k]}" for k in raw) + "}"
    return Dist(kind, params, text)


def _sample_each(value: Value, states: np.ndarray, env: Mapping[str, np.ndarray]) -> np.ndarray:
    """The reference semantics of :meth:`Value.sample_array`: one scalar draw per element."""
    out = np.empty(len(states), dtype=np.float64)
    names = value.names
    for i, state in enumerate(states.tolist()):
        try:
            out[i] = value.sample(state, scalar_env(env, i, names))
        except (ExprError, UserError) as exc:
            raise DrawError(i, exc) from None
    return out


def round_count_array(x: np.ndarray) -> np.ndarray:
    """:func:`round_count` of each element, as ``int64``."""
    return np.where(x <= 0, 0.0, np.floor(x + 0.5)).astype(np.int64)


def round_count(x: float) -> int:
    """Cycles and counts: the nearest non-negative integer."""
    if x <= 0:
        return 0
    return int(x + 0.5)


def sample_mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
