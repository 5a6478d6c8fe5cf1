"""Values in workflow files: a number, a distribution or an expression.

Each is compiled once at load time into a :class:`Value` whose :meth:`Value.draw` is cheap.
Random values take their uniforms from a stream keyed by the meaning of the draw
(see :mod:`octosim.model.rng`), so draws are common random numbers across policies.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from statistics import NormalDist
from typing import Any

import numpy as np

from octosim.errors import UserError
from octosim.model.expr import (
    ARRAY_ERRORS,
    MAX_MAGNITUDE,
    SMALL_ARRAY,
    DrawError,
    Env,
    ExprError,
    Expression,
    IntMask,
    ScalarFallback,
    array_errstate,
    array_exp,
    array_log,
    array_log1p,
    array_pow,
    array_sqrt,
    compile_expression,
    int_zeros,
    scalar_env,
)
from octosim.model.rng import (
    GOLDEN,
    MASK64,
    TWO_M53,
    KeyedRandom,
    Stream,
    first_uniform,
    first_uniform_array,
    mix64,
    salt,
)

_STD_NORMAL = NormalDist()
# Up to SMALL_ARRAY elements (expr.py) the scalar draws are faster than numpy's cost per
# call (measured: an exponential of 16 costs the same both ways, a lognormal's array path
# ~150 us a call, its scalar draws ~1.5 us each).


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

    def _checked_array(self, x: np.ndarray | None) -> np.ndarray | None:
        """``x`` if :meth:`checked` accepts every element, else None (the scalar reference
        then raises the error of the first)."""
        if x is None or not ((x >= -MAX_MAGNITUDE) & (x <= self.upper())).all():
            return None  # NaN fails too
        return x


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

    def sample_array(self, states: np.ndarray, env: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.full(len(states), float(self.value))  # sample() does no check either

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

    def sample_array(self, states: np.ndarray, env: Mapping[str, np.ndarray]) -> np.ndarray:
        if len(states) <= SMALL_ARRAY:
            return _sample_each(self, states, env)
        fast = self.expr.try_evaluate_array(env, len(states))
        x = self._checked_array(None if fast is None else fast[0])
        return _sample_each(self, states, env) if x is None else x


class Dist(Value):
    """A distribution; parameters may themselves be numbers or expressions."""

    __slots__ = ("kind", "params", "_static", "_sampler", "_mean", "_fast", "_lists")

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
        self._lists: dict[str, Any] | None = None  # list parameters as arrays (on first use)
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

    def sample_array(self, states: np.ndarray, env: Mapping[str, np.ndarray]) -> np.ndarray:
        if len(states) <= SMALL_ARRAY:
            return _sample_each(self, states, env)
        x = None
        with array_errstate():
            try:
                p = self._array_params(env, len(states))
                if p is not None:
                    states = np.asarray(states, dtype=np.uint64)
                    x = _ARRAY_SAMPLERS[self.kind](states, first_uniform_array(states), p)
            except ARRAY_ERRORS:
                x = None
        x = self._checked_array(x)
        return _sample_each(self, states, env) if x is None else x

    def _array_params(self, env: Mapping[str, np.ndarray], n: int) -> dict[str, Any] | None:
        """The parameters for an array sampler: numbers as they are, expressions as arrays
        (their int masks under ``"_int"``), lists as arrays; None where the vectorised
        path would not be exact (an expression or a check fails for some element...)."""
        p = dict(self.params)
        if self.kind in ("choice", "empirical"):
            p.update(self._list_arrays())
        ints: dict[str, IntMask] = {}
        p["_int"] = ints
        if self._static:
            return p  # checked when compiled
        for name, v in self.params.items():
            if isinstance(v, Expression):
                fast = v.try_evaluate_array(env, n)
                if fast is None:
                    return None
                p[name], ints[name] = fast
            elif isinstance(v, int) and float(v) != v:
                return None  # Python's int arithmetic with it is exact, float64's is not
        return p if _params_valid(self.kind, p) else None

    def _list_arrays(self) -> dict[str, Any]:
        """``values``, ``samples`` and ``_cum`` as float64 arrays, if float64 holds them
        exactly (ints may be larger), else ScalarFallback."""
        if self._lists is None:
            lists = {k: v for k, v in self.params.items() if k in ("values", "samples", "_cum")}
            exact = all(float(x) == x for v in lists.values() for x in v)
            self._lists = {f"{k}_array": np.array(v, dtype=np.float64) for k, v in lists.items()}
            self._lists["_exact"] = exact
        if not self._lists["_exact"]:
            raise ScalarFallback("a list holds an int that float64 cannot")
        return self._lists

    def mean_hint(self) -> float | None:
        return self._mean

    def fast_sampler(self) -> Callable[[int], float] | None:
        return self._fast


# --- samplers -----------------------------------------------------------------------------

_POISSON_MAX_K = 10_000  # where the inversion search for a small Poisson mean stops


def _poisson(state: int, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean < 30:
        # Inversion by sequential search: one uniform, exact.
        u = first_uniform(state)
        k = 0
        p = math.exp(-mean)
        cdf = p
        while u > cdf and k < _POISSON_MAX_K:
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


def _lognormal_shape(mean: Any, sd: Any, log1p: Callable[[Any], Any] = math.log1p,
                     log: Callable[[Any], Any] = math.log, sqrt: Callable[[Any], Any] = math.sqrt,
                     power: Callable[[Any, Any], Any] = operator.pow) -> tuple[Any, Any]:
    """mu and sigma of the normal whose exp has this mean and sd (numbers, or arrays with the
    array functions: the same operations either way)."""
    sigma2 = log1p(power(sd / mean, 2))
    return log(mean) - sigma2 / 2, sqrt(sigma2)


def _lognormal(s: int, p: Mapping[str, Any]) -> float:
    mean, sd = p["mean"], p["sd"]
    if sd == 0:
        return mean
    mu, sigma = _lognormal_shape(mean, sd)
    return math.exp(mu + sigma * _STD_NORMAL.inv_cdf(first_uniform(s)))


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
        mu, sigma = _lognormal_shape(p["mean"], p["sd"])
        exp, inv = math.exp, _STD_NORMAL.inv_cdf
        return lambda s: exp(mu + sigma * inv(u1(s)))
    if kind == "poisson" and 0 < p["mean"] < 30:
        mean = p["mean"]
        p0 = math.exp(-mean)

        def poisson(s: int) -> int:
            u = u1(s)
            k, prob, cdf = 0, p0, p0
            while u > cdf and k < _POISSON_MAX_K:
                k += 1
                prob *= mean / k
                cdf += prob
            return k

        return poisson
    sampler = _SAMPLERS[kind]
    return lambda s: sampler(s, p)


# --- array samplers -----------------------------------------------------------------------
#
# One per kind: (states, first uniforms, parameters) -> the values before the range check,
# bit for bit those of _SAMPLERS. A parameter is a number (static, or a number next to an
# expression: Python's arithmetic on it, as in the scalar sampler) or a float64 array.

ArraySampler = Callable[[np.ndarray, np.ndarray, Mapping[str, Any]], np.ndarray]


def _column(x: Any, n: int) -> np.ndarray:
    """A parameter as a float64 array of ``n`` elements (an array one already is)."""
    return x if isinstance(x, np.ndarray) else np.full(n, float(x))


def _negate(x: Any, ints: IntMask) -> Any:
    """``-x``: for an array, an int element's 0 stays 0.0 (``-0`` is ``0`` in Python)."""
    return int_zeros(-x, ints) if isinstance(x, np.ndarray) else -x


# Wichura's AS241 coefficients, highest power first, as in CPython's statistics module.
_AS241_CENTRAL_NUM = (2.50908_09287_30122_6727e+3, 3.34305_75583_58812_8105e+4,
                      6.72657_70927_00870_0853e+4, 4.59219_53931_54987_1457e+4,
                      1.37316_93765_50946_1125e+4, 1.97159_09503_06551_4427e+3,
                      1.33141_66789_17843_7745e+2, 3.38713_28727_96366_6080e+0)
_AS241_CENTRAL_DEN = (5.22649_52788_52854_5610e+3, 2.87290_85735_72194_2674e+4,
                      3.93078_95800_09271_0610e+4, 2.12137_94301_58659_5867e+4,
                      5.39419_60214_24751_1077e+3, 6.87187_00749_20579_0830e+2,
                      4.23133_30701_60091_1252e+1, 1.0)
_AS241_NEAR_NUM = (7.74545_01427_83414_07640e-4, 2.27238_44989_26918_45833e-2,
                   2.41780_72517_74506_11770e-1, 1.27045_82524_52368_38258e+0,
                   3.64784_83247_63204_60504e+0, 5.76949_72214_60691_40550e+0,
                   4.63033_78461_56545_29590e+0, 1.42343_71107_49683_57734e+0)
_AS241_NEAR_DEN = (1.05075_00716_44416_84324e-9, 5.47593_80849_95344_94600e-4,
                   1.51986_66563_61645_71966e-2, 1.48103_97642_74800_74590e-1,
                   6.89767_33498_51000_04550e-1, 1.67638_48301_83803_84940e+0,
                   2.05319_16266_37758_82187e+0, 1.0)
_AS241_FAR_NUM = (2.01033_43992_92288_13265e-7, 2.71155_55687_43487_57815e-5,
                  1.24266_09473_88078_43860e-3, 2.65321_89526_57612_30930e-2,
                  2.96560_57182_85048_91230e-1, 1.78482_65399_17291_33580e+0,
                  5.46378_49111_64114_36990e+0, 6.65790_46435_01103_77720e+0)
_AS241_FAR_DEN = (2.04426_31033_89939_78564e-15, 1.42151_17583_16445_88870e-7,
                  1.84631_83175_10054_68180e-5, 7.86869_13114_56132_59100e-4,
                  1.48753_61290_85061_48525e-2, 1.36929_88092_27358_05310e-1,
                  5.99832_20655_58879_37690e-1, 1.0)


def _horner(r: np.ndarray, coeffs: tuple[float, ...]) -> np.ndarray:
    """``((c0 * r + c1) * r + c2) ...``: the order of operations of the scalar code."""
    acc = coeffs[0] * r
    acc += coeffs[1]
    for c in coeffs[2:]:  # in place: the same operations, fewer temporaries
        acc *= r
        acc += c
    return acc


def _normal_inv_cdf_array(p: np.ndarray) -> np.ndarray:
    """``NormalDist().inv_cdf`` of each element, bit for bit: the operations of CPython's
    ``_normal_dist_inv_cdf`` (the C accelerator in ``_statistics`` and the Python fallback
    do the same ones; no fused multiply-adds in either, nor in numpy)."""
    if not ((p > 0.0) & (p < 1.0)).all():
        raise ScalarFallback("inv_cdf raises StatisticsError")  # first_uniform can give 1.0
    q = p - 0.5
    x = np.empty_like(p)
    central = np.abs(q) <= 0.425
    qc = q[central]
    r = 0.180625 - qc * qc
    x[central] = _horner(r, _AS241_CENTRAL_NUM) * qc / _horner(r, _AS241_CENTRAL_DEN)
    tail = ~central
    qt = q[tail]
    r = array_sqrt(-array_log(np.where(qt <= 0.0, p[tail], 1.0 - p[tail])))
    near = r <= 5.0
    xt = np.empty_like(r)
    rn = r[near] - 1.6
    xt[near] = _horner(rn, _AS241_NEAR_NUM) / _horner(rn, _AS241_NEAR_DEN)
    rf = r[~near] - 5.0
    xt[~near] = _horner(rf, _AS241_FAR_NUM) / _horner(rf, _AS241_FAR_DEN)
    x[tail] = np.where(qt < 0.0, -xt, xt)
    return _STD_NORMAL.mean + (x * _STD_NORMAL.stdev)  # mu + (x * sigma), as inv_cdf does


def _lognormal_array(states: np.ndarray, u: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    mean, sd = p["mean"], p["sd"]
    n = len(u)
    out = np.array(_column(mean, n))  # sd == 0: the mean itself
    if isinstance(mean, np.ndarray) or isinstance(sd, np.ndarray):
        sd = _column(sd, n)
        i = np.flatnonzero(sd != 0)
        mu, sigma = _lognormal_shape(out[i], sd[i], array_log1p, array_log, array_sqrt,
                                     array_pow)
    elif sd != 0:
        i = np.arange(n)
        mu, sigma = _lognormal_shape(mean, sd)  # once, in Python, as the scalar sampler does
    else:
        return out
    out[i] = array_exp(mu + sigma * _normal_inv_cdf_array(u[i]))
    return out


def _poisson_array(states: np.ndarray, u: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    mean = _column(p["mean"], len(u))
    out = np.zeros(len(u))
    small = np.flatnonzero((mean > 0) & (mean < 30))
    if small.size:
        given = p["mean"]  # a static mean as it is (Python's arithmetic on an int mean)
        out[small] = _poisson_search_array(
            u[small], given[small] if isinstance(given, np.ndarray) else given)
    big = np.flatnonzero(mean >= 30)  # PTRS takes a stream of uniforms: one draw at a time
    if big.size:
        means = mean[big].tolist() if isinstance(p["mean"], np.ndarray) else [p["mean"]] * len(big)
        out[big] = [_poisson(s, m) for s, m in zip(states[big].tolist(), means, strict=True)]
    return out


_POISSON_TABLE_MEANS = 256  # up to this many distinct means, one cdf table per mean


def _poisson_search_array(u: np.ndarray, mean: Any) -> np.ndarray:
    """_poisson's sequential search for means in (0, 30), for many uniforms at once.

    With few distinct means, each mean's cdf is formed once (:func:`_poisson_cdf`) and each
    uniform placed in it; otherwise every element walks its own cdf, vectorised."""
    if not isinstance(mean, np.ndarray):
        return _poisson_place(u, _poisson_cdf(mean, float(u.max(initial=0.0))))
    means, group = np.unique(mean, return_inverse=True)
    if len(means) > _POISSON_TABLE_MEANS:
        return _poisson_walk(u, mean)
    k = np.empty(len(u))
    order = np.argsort(group, kind="stable")
    bounds = np.cumsum(np.bincount(group, minlength=len(means)))
    for m, i in zip(means.tolist(), np.split(order, bounds[:-1]), strict=True):
        k[i] = _poisson_place(u[i], _poisson_cdf(m, float(u[i].max())))
    return k


def _poisson_cdf(mean: float, top: float) -> list[float]:
    """The cdf values _poisson's search compares its uniform with, for k = 0, 1, ...: formed
    by the same operations in the same order, until one reaches ``top`` (the largest
    uniform to place), the cdf stops growing (p == 0) or k reaches the cap."""
    p = math.exp(-mean)
    cdf = p
    out = [cdf]
    k = 0
    while top > cdf and k < _POISSON_MAX_K and p != 0:
        k += 1
        p *= mean / k
        cdf += p
        out.append(cdf)
    return out


def _poisson_place(u: np.ndarray, cdf: list[float]) -> np.ndarray:
    """The k where _poisson's search stops for each uniform: the first cdf value >= u; the
    cap if there is none (the cdf stopped growing below u, or it is the cap's)."""
    k = np.searchsorted(np.array(cdf), u, side="left").astype(np.float64)
    k[k == len(cdf)] = _POISSON_MAX_K
    return k


def _poisson_walk(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """_poisson's search for each element with its own mean, all at once: each sees the same
    p and cdf, formed in the same order, and stops at the same k."""
    k_of = np.zeros(len(u))
    p = array_exp(-mean)
    live = np.flatnonzero(u > p)  # the elements still searching, and their state:
    u, mean, p = u[live], mean[live], p[live]
    cdf = p
    k = 0
    while live.size and k < _POISSON_MAX_K:
        k += 1
        p = p * (mean / k)
        cdf = cdf + p
        found = u <= cdf
        k_of[live[found]] = k
        stuck = ~found & (p == 0)  # cdf cannot grow any more: the search runs to the cap
        k_of[live[stuck]] = _POISSON_MAX_K
        keep = ~(found | stuck)
        live, u, mean, p, cdf = live[keep], u[keep], mean[keep], p[keep], cdf[keep]
    k_of[live] = k  # stopped by the cap
    return k_of


def _geometric_array(states: np.ndarray, u: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    prob = _column(p["p"], len(u))
    out = np.zeros(len(u))  # p >= 1: 0
    i = np.flatnonzero(prob < 1)
    out[i] = np.floor(array_log(u[i]) / array_log1p(-prob[i])) + 0.0  # an int: never -0.0
    return out


def _choice_array(states: np.ndarray, u: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    cum = p["_cum_array"]
    i = np.searchsorted(cum, u * p["_cum"][-1], side="right")  # bisect_right
    return p["values_array"][np.minimum(i, len(cum) - 1)]


def _empirical_array(states: np.ndarray, u: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    samples = p["samples_array"]
    i = (u * len(samples)).astype(np.int64)  # int() of a positive number
    return samples[np.minimum(i, len(samples) - 1)]


_ARRAY_SAMPLERS: dict[str, ArraySampler] = {
    "const": lambda s, u, p: _column(p["value"], len(u)),
    "uniform": lambda s, u, p: p["low"] + (p["high"] - p["low"]) * u,
    "exponential": lambda s, u, p: _negate(p["mean"], p["_int"].get("mean", False))
    * array_log(u),
    "normal": lambda s, u, p: p["mean"] + p["sd"] * _normal_inv_cdf_array(u),
    "lognormal": _lognormal_array,
    "poisson": _poisson_array,
    "geometric": _geometric_array,
    "choice": _choice_array,
    "empirical": _empirical_array,
}


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


Rule = tuple[Callable[[Mapping[str, Any]], Any], str]

# kind: (condition, message) in the order they are checked. A condition takes numbers or
# arrays (then it holds elementwise), so one table serves sample() and sample_array().
_RULES: dict[str, tuple[Rule, ...]] = {
    "uniform": ((lambda p: p["low"] <= p["high"], "low must not exceed high"),),
    "exponential": ((lambda p: p["mean"] >= 0, "mean must be >= 0"),),
    "poisson": ((lambda p: p["mean"] >= 0, "mean must be >= 0"),
                (lambda p: p["mean"] <= 1e9, "mean must be <= 1e9")),
    "normal": ((lambda p: p["sd"] >= 0, "sd must be >= 0"),),
    "lognormal": ((lambda p: p["mean"] > 0, "mean must be > 0"),
                  (lambda p: p["sd"] >= 0, "sd must be >= 0"),
                  # Beyond this ratio the shape's (sd / mean)**2 overflows a float.
                  (lambda p: p["sd"] <= 1e150 * np.minimum(p["mean"], 1e150),
                   "sd must be at most 1e150 times the mean")),
    "geometric": ((lambda p: (p["p"] > 0) & (p["p"] <= 1), "p must be in (0, 1]"),),
}


def _numbers(p: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The parameters that must be finite numbers (not lists, not derived ones)."""
    return [(k, v) for k, v in p.items()
            if not k.startswith("_") and k not in ("values", "samples", "weights")]


def _check_params(kind: str, p: Mapping[str, Any]) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise UserError(f"{kind}: {msg}")

    for name, v in _numbers(p):
        need(_finite(v), f"{name} must be a finite number (at most {MAX_MAGNITUDE:g} in size)")
    for rule, msg in _RULES.get(kind, ()):
        need(rule(p), msg)


def _params_valid(kind: str, p: Mapping[str, Any]) -> bool:
    """Whether :func:`_check_params` accepts every element (parameters may be arrays)."""
    for _, v in _numbers(p):
        if isinstance(v, np.ndarray):
            if not (np.abs(v) <= MAX_MAGNITUDE).all():  # NaN and inf fail
                return False
        elif not _finite(v):
            return False
    return all(np.all(rule(p)) for rule, _ in _RULES.get(kind, ()))


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
