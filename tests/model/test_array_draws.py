"""Array draws are the scalar draws, bit for bit.

``Value.sample_array`` and ``Expression.evaluate_array`` (what the workload compiler uses) are
compared with one scalar call per element: the same float64 values compared as bits (so -0.0
is not 0.0), or, when some element fails, a :class:`DrawError` naming the first failing one
with the scalar path's exception (or the very exception the scalar path lets through). The
vectorised path must also really be taken, and fast, or nothing is gained.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
import timeit
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from octosim.errors import UserError
from octosim.model import dists, expr
from octosim.model.dists import Const, Value, compile_value
from octosim.model.expr import DrawError, ExprError, Expression, compile_expression, scalar_env
from octosim.model.rng import GOLDEN, MASK64, first_uniform, first_uniform_array

# --- the scalar reference ---------------------------------------------------------------------

Outcome = tuple[Any, ...]  # ("values", bits) | ("error", index, type, message) | ("raw", ...)


def bits(xs: Any) -> list[int]:
    """float64 bit patterns: equal bits are equal values, signs of zero included."""
    return np.asarray(xs, dtype=np.float64).view(np.uint64).tolist()


def scalar_outcome(call: Callable[[int], Any], n: int) -> Outcome:
    """What one scalar call per element gives: the values, or the first failure."""
    out = []
    for i in range(n):
        try:
            out.append(float(call(i)))
        except (ExprError, UserError) as exc:
            return ("error", i, type(exc), str(exc))
        except Exception as exc:  # let through by the scalar path (StatisticsError...)
            return ("raw", type(exc), str(exc))
    return ("values", bits(out))


def array_outcome(call: Callable[[], np.ndarray], n: int) -> Outcome:
    try:
        got = call()
    except DrawError as exc:
        return ("error", exc.index, type(exc.error), str(exc.error))
    except Exception as exc:
        return ("raw", type(exc), str(exc))
    assert got.dtype == np.float64 and got.shape == (n,)
    return ("values", bits(got))


def assert_same_draws(value: Value, states: np.ndarray, env: Mapping[str, np.ndarray]
                      ) -> Outcome:
    ss = states.tolist()
    want = scalar_outcome(lambda i: value.sample(ss[i], scalar_env(env, i, value.names)),
                          len(ss))
    assert array_outcome(lambda: value.sample_array(states, env), len(ss)) == want
    return want


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make the scalar references fail: the vectorised path must do it all."""

    def forbid() -> None:
        def fail(*args: Any) -> Any:
            raise AssertionError("the scalar reference was used")

        monkeypatch.setattr(dists, "_sample_each", fail)
        monkeypatch.setattr(Expression, "_evaluate_each", fail)

    return forbid


def assert_vectorised(value: Value, states: np.ndarray, env: Mapping[str, np.ndarray],
                      forbid: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """The scalar values, computed without the scalar reference."""
    want = assert_same_draws(value, states, env)
    assert want[0] == "values"
    with monkeypatch.context():
        forbid()
        assert bits(value.sample_array(states, env)) == want[1]


def assert_same_values(e: Expression, env: Mapping[str, np.ndarray], n: int) -> None:
    want = scalar_outcome(lambda i: e(scalar_env(env, i, e.names)), n)
    assert array_outcome(lambda: e.evaluate_array(env, n), n) == want


# --- stream states with chosen first uniforms ---------------------------------------------


def _unxorshift(y: int, shift: int) -> int:
    x = y
    for _ in range(64 // shift + 1):
        x = y ^ (x >> shift)
    return x


def state_for(u: float) -> int:
    """A stream state whose first uniform is the one next to ``u`` (mix64 inverted)."""
    z = min(int(u * 2.0**53), 2**53 - 1) << 11
    z = _unxorshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 2**64)) & MASK64
    z = _unxorshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 2**64)) & MASK64
    return (_unxorshift(z, 30) - GOLDEN) & MASK64


U_ONE_STATE = state_for(1.0)  # first_uniform rounds (2**53 - 0.5) * 2**-53 up to 1.0
# The smallest and largest uniforms, the ends of AS241's central and far regions, and
# where a Poisson(3) or Poisson(0.1) search stops.
SPECIAL_UNIFORMS = [0.0, 2**-52, 1e-300, 1e-11, math.exp(-25), 0.0749, 0.075, 0.0751, 0.5,
                    0.75, 0.925, 0.9249, 0.9251, 1 - 1e-11, 1 - 2**-52, 1.0,
                    math.exp(-3), math.exp(-3) * 4, 0.9999999999999998, 0.9048374180359595]
SPECIAL_STATES = [state_for(u) for u in SPECIAL_UNIFORMS]
BELOW_ONE_STATES = [s for s in SPECIAL_STATES if s != U_ONE_STATE]


def test_state_for_gives_the_uniform_asked_for() -> None:
    assert first_uniform(U_ONE_STATE) == 1.0
    assert first_uniform(state_for(0.0)) == 2.0**-54
    for u in SPECIAL_UNIFORMS[1:-1]:
        assert abs(first_uniform(state_for(u)) - u) <= 2.0**-52


states_st = st.lists(st.one_of(st.integers(0, MASK64), st.sampled_from(SPECIAL_STATES)),
                     max_size=30)

# Variable values: mostly ordinary, often integral, sometimes edges, unset (NaN) or infinite.
EDGES = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, 3.0, 29.999999999999996, 30.0, 64.0, 65.0,
         1e9, 1e9 + 1, 2.0**53, 2.0**53 + 2, 1e20, 1e300, -1e300, 1.5e300, 1e-300, 5e-324,
         math.inf, -math.inf, math.nan]
values_st = st.one_of(
    st.floats(-50, 50),
    st.integers(-20, 20).map(float),
    st.floats(0.001, 40),
    st.sampled_from(EDGES),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def cases(draw: st.DrawFn, names: str = "ab", clean: bool = False
          ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stream states and variable arrays of the same length (``clean``: no NaN, no inf)."""
    states = draw(states_st)
    vals = st.floats(-50, 50) | st.integers(-20, 20).map(float) if clean else values_st
    env = {k: np.array(draw(st.lists(vals, min_size=len(states), max_size=len(states))),
                       dtype=np.float64) for k in names}
    return np.array(states, dtype=np.uint64), env


# --- distributions ----------------------------------------------------------------------------

numbers_st = st.one_of(st.floats(-100, 100), st.integers(-20, 40), st.sampled_from(EDGES[:-3]))
positive_st = st.one_of(st.floats(0.001, 100), st.integers(1, 40), st.sampled_from(
    [0.1, 1e-300, 29.999999999999996, 30, 1e9, 12345678901234567891]))


@st.composite
def static_specs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(dists.DIST_KINDS))
    if kind == "const":
        return {"dist": kind, "value": draw(numbers_st)}
    if kind == "uniform":
        low, high = sorted([draw(numbers_st), draw(numbers_st)])
        return {"dist": kind, "low": low, "high": high}
    if kind in ("exponential", "poisson"):
        return {"dist": kind, "mean": draw(st.just(0) | positive_st.filter(lambda m: m <= 1e9))}
    if kind in ("normal", "lognormal"):
        return {"dist": kind, "mean": draw(positive_st), "sd": draw(st.just(0) | positive_st)}
    if kind == "geometric":
        return {"dist": kind, "p": draw(st.floats(1e-6, 1) | st.sampled_from([1, 0.5, 1e-300]))}
    values = draw(st.lists(numbers_st, min_size=1, max_size=6))
    if kind == "empirical":
        return {"dist": kind, "samples": values}
    weights = draw(st.lists(st.floats(0, 10) | st.integers(0, 5), min_size=len(values),
                            max_size=len(values)).filter(lambda w: sum(w) > 0))
    return {"dist": kind, "values": values, "weights": weights}


@settings(max_examples=200, deadline=None)
@given(static_specs(), cases(names=""), st.sampled_from([None, 50.0, 1e9]))
def test_static_distributions(spec: dict[str, Any], case: Any, limit: float | None) -> None:
    try:
        value = compile_value(spec)
    except (UserError, OverflowError):  # refused when loaded (lognormal: sd / mean > 1e154
        assume(False)                      # overflows in the scalar code already)
        raise
    value.limit = limit
    assert_same_draws(value, *case)


# Parameters that are expressions of a and b: ints (floor), mixes with numbers, invalid ones.
DYNAMIC_SPECS: list[dict[str, Any]] = [
    {"dist": "const", "value": "a"},
    {"dist": "const", "value": "floor(a) * 2"},
    {"dist": "uniform", "low": "a", "high": "a + abs(b)"},
    {"dist": "uniform", "low": "a", "high": "b"},
    {"dist": "uniform", "low": 0, "high": "floor(abs(a))"},
    {"dist": "exponential", "mean": "abs(a)"},
    {"dist": "exponential", "mean": "a"},
    {"dist": "exponential", "mean": "floor(abs(a))"},  # an int mean: -0 is 0 in Python
    {"dist": "exponential", "mean": "abs(a) * b"},
    {"dist": "normal", "mean": "a", "sd": "abs(b)"},
    {"dist": "normal", "mean": 7, "sd": "b"},
    {"dist": "lognormal", "mean": "abs(a) + 0.1", "sd": "abs(b)"},
    {"dist": "lognormal", "mean": "a", "sd": "b / 2"},
    {"dist": "lognormal", "mean": 100, "sd": "floor(abs(b))"},
    {"dist": "poisson", "mean": "abs(a)"},
    {"dist": "poisson", "mean": "a"},
    {"dist": "poisson", "mean": "floor(abs(a))"},
    {"dist": "poisson", "mean": "abs(a) * 10"},
    {"dist": "geometric", "p": "a"},
    {"dist": "geometric", "p": "1 / (1 + abs(b))"},
    {"dist": "geometric", "p": "abs(a) / (abs(a) + abs(b))"},
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DYNAMIC_SPECS), cases(), st.booleans(), st.sampled_from([None, 50.0]))
def test_distributions_with_expression_parameters(
    spec: dict[str, Any], case: Any, clean: bool, limit: float | None
) -> None:
    states, env = case
    if clean:  # mostly valid draws: the vectorised path, not the fallback, is compared
        env = {k: np.where(np.isfinite(v) & (np.abs(v) < 1e6), v, 1.5) for k, v in env.items()}
    value = compile_value(spec)
    value.limit = limit
    assert_same_draws(value, states, env)


def test_the_first_failing_element_is_named() -> None:
    states = np.arange(6, dtype=np.uint64)
    value = compile_value({"dist": "exponential", "mean": "a"})
    with pytest.raises(DrawError) as info:
        value.sample_array(states, {"a": np.array([1.0, 2.0, -1.0, np.nan, -3.0, 1.0])})
    assert info.value.index == 2
    assert str(info.value.error) == "error: exponential: mean must be >= 0"
    with pytest.raises(DrawError) as info:  # every element evaluates: the rules must refuse
        value.sample_array(states, {"a": np.array([1.0, 2.0, 4.0, 0.0, -3.0, 1.0])})
    assert info.value.index == 4
    assert str(info.value.error) == "error: exponential: mean must be >= 0"
    with pytest.raises(DrawError) as info:
        compile_value({"dist": "geometric", "p": "a"}).sample_array(states, {"a": np.full(6, 2.0)})
    assert info.value.index == 0
    assert str(info.value.error) == "error: geometric: p must be in (0, 1]"
    with pytest.raises(DrawError) as info:
        value.sample_array(states, {"a": np.array([1.0, 2.0, 4.0, np.nan, -3.0, 1.0])})
    assert info.value.index == 3 and isinstance(info.value.error, ExprError)
    assert str(info.value.error) == "variable 'a' is not set here"
    capped = compile_value({"dist": "uniform", "low": 0, "high": "a"})
    capped.limit = 10
    with pytest.raises(DrawError) as info:
        capped.sample_array(states, {"a": np.full(6, 1e6)})
    assert info.value.index == 0 and "larger than the maximum 10" in str(info.value.error)


# Each kind at the extreme uniforms; choice where u * total falls on a cumulative weight.
EVERY_KIND = [{"dist": "const", "value": -3}, {"dist": "uniform", "low": -1, "high": 2.5},
              {"dist": "exponential", "mean": 2}, {"dist": "exponential", "mean": 0},
              {"dist": "normal", "mean": 1, "sd": 3}, {"dist": "normal", "mean": 0, "sd": 0},
              {"dist": "lognormal", "mean": 3, "sd": 1}, {"dist": "lognormal", "mean": 3, "sd": 0},
              {"dist": "poisson", "mean": 0.1}, {"dist": "poisson", "mean": 0},
              {"dist": "geometric", "p": 0.3}, {"dist": "geometric", "p": 1},
              {"dist": "choice", "values": [1, 2, 3, 4]},
              {"dist": "choice", "values": [1, 2, 3, 4], "weights": [0, 1.5, 0, 0.5]},
              {"dist": "empirical", "samples": [4, 3, 2, 1]}]


@pytest.mark.parametrize("spec", EVERY_KIND, ids=lambda s: str(list(s.values())))
def test_every_kind_at_the_extreme_uniforms(
    spec: dict[str, Any], no_fallback: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # u == 1.0 has log(u) == 0 (-0.0 draws) and a poisson search past a saturated cdf;
    # inv_cdf refuses it (test_inv_cdf_of_1_falls_back_to_the_scalar_error).
    states = SPECIAL_STATES if spec["dist"] not in ("normal", "lognormal") else BELOW_ONE_STATES
    value = compile_value(spec)
    assert_vectorised(value, np.array([*states, *range(50)], dtype=np.uint64), {},
                      no_fallback, monkeypatch)


POISSON_MEANS = [0.1, 0.6, 1.3, 3, 3.0, 7.5, 20, 29.5, 29.999999999999996, 30, 45.5]


def scalar_poisson_cdf(mean: float) -> list[float]:
    """The cdf values _poisson's search compares its uniform with (until p underflows)."""
    p = math.exp(-mean)
    cdf = [p]
    k = 0
    while p != 0:
        k += 1
        p *= mean / k
        cdf.append(cdf[-1] + p)
    return cdf


def states_on_the_cdf(means: list[float], capped: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """For each mean, states whose first uniforms are exactly cdf values or next to them
    (where an error in the last bit of the cdf changes the draw), with their means. Above
    the last cdf value the search runs to its cap: only for the first ``capped`` means."""
    states, of = [], []
    for j, m in enumerate(means):
        cdf = sorted({c for c in scalar_poisson_cdf(m) if 0.5 <= c < 1})
        for c in cdf:  # the uniforms in [0.5, 1) are the multiples of 2**-53: c is one
            for u in (c - 2**-53, c, c + 2**-53)[: 3 if c < cdf[-1] or j < capped else 2]:
                states.append(state_for(u))
                of.append(m)
    return np.array(states, dtype=np.uint64), np.array(of)


@pytest.mark.parametrize("mean", POISSON_MEANS)
def test_poisson_static(mean: float) -> None:
    # u == 1.0 lies above a saturated cdf (< 1.0): the search runs to its cap. (PTRS, for
    # means >= 30, divides by zero at u == 1.0: the array draw raises the same error.)
    states = np.array([*SPECIAL_STATES, *range(300)], dtype=np.uint64)
    value = compile_value({"dist": "poisson", "mean": mean})
    assert assert_same_draws(value, states, {})[0] == ("values" if mean < 30 else "raw")
    below_one = np.array([*BELOW_ONE_STATES, *range(300)], dtype=np.uint64)
    assert assert_same_draws(value, below_one, {})[0] == "values"
    if mean < 30:  # the inversion search
        on_cdf, _ = states_on_the_cdf([mean])
        assert assert_same_draws(value, on_cdf, {})[0] == "values"


def test_poisson_with_a_mean_per_element(no_fallback: Callable[[], None],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    means = POISSON_MEANS + rng.uniform(0, 30, 260).tolist()
    on_cdf, of = states_on_the_cdf(means)
    n = len(on_cdf) + 1000
    states = np.concatenate([on_cdf, rng.integers(0, MASK64, 1000, dtype=np.uint64)])
    mean = np.concatenate([of, rng.uniform(0, 40, 1000)])
    mean[-len(POISSON_MEANS):], states[-len(POISSON_MEANS):] = POISSON_MEANS[:-2] + [1, 2], \
        U_ONE_STATE  # past a saturated cdf
    mean[-100::7] = 0.0
    value = compile_value({"dist": "poisson", "mean": "m"})
    # More distinct means than _POISSON_TABLE_MEANS: each element walks its own cdf.
    assert len(np.unique(mean)) > dists._POISSON_TABLE_MEANS
    assert_same_draws(value, states, {"m": mean})
    small = mean < 30  # PTRS (mean >= 30) is the scalar sampler, one element at a time
    assert_vectorised(value, states[small], {"m": mean[small]}, no_fallback, monkeypatch)
    # Few distinct means: one cdf table per mean.
    assert_vectorised(value, states, {"m": np.resize(np.array(POISSON_MEANS[:-2]), n)},
                      no_fallback, monkeypatch)


def test_lognormal_with_many_shapes(no_fallback: Callable[[], None],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # sigma2 = log1p((sd / mean) ** 2): a square is not always pow(x, 2.0), nor here.
    rng = np.random.default_rng(8)
    n = 5000
    env = {"a": np.exp(rng.uniform(-5, 5, n)), "b": np.exp(rng.uniform(-5, 5, n))}
    env["b"][::10] = 0.0
    value = compile_value({"dist": "lognormal", "mean": "a", "sd": "b"})
    states = rng.integers(0, MASK64, n, dtype=np.uint64)
    assert_vectorised(value, states, env, no_fallback, monkeypatch)


def test_huge_integers_are_not_float64_arithmetic() -> None:
    states = np.arange(20, dtype=np.uint64)
    big = 12345678901234567891  # not a float64: Python's int arithmetic with it is exact
    for spec in ({"dist": "uniform", "low": big, "high": big * 3},
                 {"dist": "lognormal", "mean": big, "sd": big + 1},
                 {"dist": "uniform", "low": "floor(a)", "high": big},
                 {"dist": "choice", "values": [1, big], "weights": [big, 1]},
                 {"dist": "empirical", "samples": [big, 2]}):
        assert_same_draws(compile_value(spec), states, {"a": np.full(20, 1e19)})
    assert Const(10**20).sample_array(states, {}).tolist() == [1e20] * 20
    # float(2**60 + 1) is 2**60: below the weight, u * total (at u = 0.5) is the weight's
    # float, which bisect_right of the exact int puts first, searchsorted of floats second.
    half = np.array([state_for(0.5)] * 3, dtype=np.uint64)
    tie = compile_value({"dist": "choice", "values": [1, 2], "weights": [2**60 + 1] * 2})
    assert assert_same_draws(tie, half, {}) == ("values", bits([1.0] * 3))
    over = compile_value({"dist": "empirical", "samples": [2**60 + 1]})
    over.limit = 2.0**60  # the int exceeds it, its float does not
    assert assert_same_draws(over, half, {})[0] == "error"


def test_int_parameters_keep_pythons_signs_of_zero(no_fallback: Callable[[], None],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # An int mean 0 gives -0 == 0, and 0 * log(u) == -0.0; a float mean 0.0 gives +0.0
    # (u < 1: log(1.0) is +0.0, which flips both).
    states = np.array([*BELOW_ONE_STATES, *range(40)], dtype=np.uint64)
    env = {"a": np.resize([0.25, 0.0, -0.0, 0.5, 3.5], len(states))}
    for spec, zeros in (({"dist": "exponential", "mean": "floor(a)"}, -0.0),
                        ({"dist": "exponential", "mean": "abs(a) - abs(a)"}, 0.0)):
        value = compile_value(spec)
        assert_vectorised(value, states, env, no_fallback, monkeypatch)
        draws = value.sample_array(states, env)
        assert bits(draws[env["a"] < 1]) == bits(np.full((env["a"] < 1).sum(), zeros))


# --- the normal quantile function -----------------------------------------------------------


def _pure_python_inv_cdf() -> Callable[[float, float, float], float]:
    """statistics._normal_dist_inv_cdf without the C accelerator."""
    saved = sys.modules.get("_statistics")
    sys.modules["_statistics"] = None  # type: ignore[assignment]  # blocks the import
    try:
        spec = importlib.util.spec_from_file_location("_py_statistics", statistics.__file__)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["_statistics"]
        else:
            sys.modules["_statistics"] = saved
    fn: Callable[[float, float, float], float] = module._normal_dist_inv_cdf
    assert not isinstance(fn, type(math.log))  # really the Python one
    return fn


def test_inv_cdf_is_every_implementation_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    u = first_uniform_array(rng.integers(0, MASK64, 100_000, dtype=np.uint64, endpoint=True))
    extreme = np.array([first_uniform(s) for s in SPECIAL_STATES if s != U_ONE_STATE])
    tails = np.concatenate([rng.uniform(0, 1e-6, 2000), 1 - rng.uniform(0, 1e-6, 2000),
                            np.exp(-rng.uniform(20, 30, 2000))])  # around r = 5
    near_edges = np.concatenate([np.nextafter(0.075, 0) + np.arange(-50, 50) * 2**-56,
                                 0.925 + np.arange(-50, 50) * 2**-53])
    p = np.concatenate([u, extreme, tails, near_edges])
    with expr.array_errstate():
        got = bits(dists._normal_inv_cdf_array(p))
    ps = p.tolist()
    assert got == bits([dists._STD_NORMAL.inv_cdf(x) for x in ps])  # what NormalDist runs
    python = _pure_python_inv_cdf()
    assert got == bits([python(x, 0.0, 1.0) for x in ps])
    assert got == bits([statistics._normal_dist_inv_cdf(x, 0.0, 1.0) for x in ps])


def test_inv_cdf_of_1_falls_back_to_the_scalar_error() -> None:
    states = np.array([1, 2, U_ONE_STATE, 3], dtype=np.uint64)
    for spec in ({"dist": "normal", "mean": 0, "sd": 1},
                 {"dist": "lognormal", "mean": 5, "sd": 1}):
        assert_same_draws(compile_value(spec), states, {})
        with pytest.raises(statistics.StatisticsError):
            compile_value(spec).sample_array(states, {})


# --- expressions ------------------------------------------------------------------------------

NUMBERS = ["0", "1", "2", "3", "7", "0.5", "2.5", "0.1", "1e300", "1e-300", "64", "65",
           "9007199254740993", "10**17", "True", "false", "1e999"]
VARS = ["x", "y", "n"]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binop = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), inner)
    cmp = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
    return st.one_of(
        binop.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["-", "+", "not "]), inner).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(inner, cmp, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, cmp, inner, cmp, inner).map(lambda t: "({} {} {} {} {})".format(*t)),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} and {t[1]} or {t[2]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(st.sampled_from(["abs", "ceil", "floor", "round", "sqrt", "log", "log2",
                                   "exp", "min", "max"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["min", "max", "log"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(["min", "max"]), inner, inner, inner).map(
            lambda t: "{}({}, {}, {})".format(*t)),
    )


expressions_st = st.recursive(st.sampled_from(VARS + NUMBERS), _extend, max_leaves=9)
# x: anything, y: an ordinary number, n: a small int (so powers, floors and rounds are exact)
expr_env_values = {"x": values_st, "y": st.floats(-30, 30) | st.sampled_from([0.0, -0.0, 2.5]),
                   "n": st.integers(-3, 12).map(float)}


@st.composite
def expression_cases(draw: st.DrawFn) -> tuple[Expression, dict[str, np.ndarray], int]:
    source = draw(expressions_st)
    try:
        e = compile_expression(source)
    except UserError:
        assume(False)
        raise
    n = draw(st.integers(0, 25))
    env = {k: np.array(draw(st.lists(v, min_size=n, max_size=n)), dtype=np.float64)
           for k, v in expr_env_values.items() if k in e.names and draw(st.integers(0, 9))}
    return e, env, n


@settings(max_examples=400, deadline=None)
@given(expression_cases())
def test_random_expressions(case: tuple[Expression, dict[str, np.ndarray], int]) -> None:
    e, env, n = case
    assert_same_values(e, env, n)
    if e.names:
        assert_same_draws(compile_value(e.source), np.arange(n, dtype=np.uint64), env)


@pytest.mark.parametrize("source", [
    "x // y", "x % y", "-x // y", "x ** y", "(-x) ** n", "x ** 2", "x ** 0.5", "x ** -1",
    "round(x)", "round(x) * -1.0", "-round(x)", "floor(x) * -2", "ceil(x) - ceil(x)",
    "0 if x > 0 else -0.0 * x", "min(x, -x)", "max(-0.0, 0, x - x)", "abs(-x) // 1",
    "floor(x * 1e18) + 1", "floor(x) * 10**17", "log(x, y)", "log(1 + abs(x), 2)",
    "x > 0 and log(x) > 1", "x <= 0 or log(x) > 1", "0 < x < 10 // y", "y and x / y",
    "x / y if y else -x", "not (x < y) + (x > y)", "exp(x)", "2 ** n - n ** 2",
    # ints: exact in Python, beyond 2**53 not in float64; a single operation rounds alike
    "ceil(x * 1e17) + 1 - ceil(x * 1e17)", "floor(x) * 3 + 1 - floor(x) * 3",
    "x < 9007199254740993", "floor(x) <= 9007199254740993", "x * 9007199254740993",
    # infinite variables: math.ceil(inf) raises, np.ceil does not
    "ceil(x) > 0", "round(x) == x", "x ** 65 > 0", "0.5 ** (n * 10)", "y ** 64.5",
    "(not x) + (not y) * 2 + (not (x < y))", "-(x < y)", "+(x > y) - (x == 0)",
])
def test_tricky_expressions(source: str) -> None:
    rng = np.random.default_rng(zlib.crc32(source.encode()))
    n = 400
    pairs = [(1.0, 0.1), (0.3, 0.1), (0.7, 0.1), (2.0, 0.2), (-1.0, 0.1), (5.0, 0.7),
             (1.0, -0.1), (-0.3, -0.1), (4.0, 0.4), (1e10, 0.1)]  # 1 // 0.1 == 9.0
    x = np.concatenate([rng.uniform(-40, 40, n - 60 - len(pairs)), np.arange(-15, 15) / 2,
                        [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1e-300, 700, 2**52 + 0.5] * 3,
                        [p[0] for p in pairs]])
    y = np.where(rng.random(n) < 0.05, 0.0, np.round(rng.uniform(-8, 8, n), 1))
    y[-len(pairs):] = [p[1] for p in pairs]
    nn = rng.integers(-3, 10, n).astype(np.float64)
    e = compile_expression(source)
    big, infinite = x.copy(), x.copy()
    big[::50] = [2.0**53, 2.0**53 - 1, 2.0**53 + 2, 1e300, -1e300, 9e15, -2.0**53, 1.5]
    infinite[::100] = [math.inf, -math.inf, 2.0**53, 1.5]
    nonzero = np.where(y == 0, 0.5, y)  # nothing divides by zero: no element falls back
    for env in ({"x": x, "y": y, "n": nn}, {"x": x, "y": nonzero, "n": nn},
                {"x": np.abs(x) + 1, "y": np.abs(y) + 2, "n": nn},
                {"x": big, "y": nonzero, "n": nn}, {"x": infinite, "y": y, "n": nn}):
        assert_same_values(e, env, n)


def test_unselected_and_short_circuited_parts_may_fail() -> None:
    n = 1000
    y = np.where(np.arange(n) % 3 == 0, 0.0, 2.0)
    x = np.where(np.arange(n) % 5 == 0, np.nan, 4.0)  # unset where it is not read
    for source, want in (("10 / y if y else -1", np.where(y != 0, 5.0, -1.0)),
                         ("y != 0 and 10 / y > 1", np.where(y != 0, 1.0, 0.0)),
                         ("y == 0 or 10 / y > 1", np.ones(n))):
        e = compile_expression(source)
        assert e.try_evaluate_array({"y": y}, n) is not None  # no fallback needed
        assert e.evaluate_array({"y": y}, n).tolist() == want.tolist()
    # x is unset (NaN) in some elements: reading it there is an error, not reading it is not.
    assert_same_values(compile_expression("x if x == x else 0"), {"x": x}, n)
    e = compile_expression("1 if y == 0 else x")
    env = {"x": x, "y": np.where(np.isnan(x), 0.0, 2.0)}
    assert e.try_evaluate_array(env, n) is not None
    assert_same_values(e, env, n)


def test_the_whitelist_is_the_scalar_one() -> None:
    assert set(expr._ARRAY_BINOPS) == set(expr._BINOPS)
    assert set(expr._ARRAY_CMPOPS) == set(expr._CMPOPS)
    assert set(expr._ARRAY_FUNCS) | {"min", "max", "abs", "log"} == set(expr._FUNCS)
    assert set(dists._ARRAY_SAMPLERS) == set(dists._SAMPLERS)
    for source in ("x.real", "[x]", "x @ x", "x << 1", "f(x)", "min(x, key=y)", "x in y"):
        with pytest.raises(UserError):  # nothing the scalar compiler refuses gets an array form
            compile_expression(source)


# --- the numpy functions used are the platform's libm, as Python's math --------------------


def test_array_functions_are_the_scalar_functions() -> None:
    rng = np.random.default_rng(11)
    unit = first_uniform_array(rng.integers(0, MASK64, 200_000, dtype=np.uint64))
    wide = np.exp(rng.uniform(-700, 700, 200_000))
    real = rng.uniform(-700, 700, 200_000)
    for fn, math_fn, arg in ((expr.array_log, math.log, unit), (expr.array_log, math.log, wide),
                             (expr.array_log1p, math.log1p, -unit),
                             (expr.array_log2, math.log2, wide), (expr.array_exp, math.exp, real),
                             (expr.array_sqrt, math.sqrt, wide)):
        assert bits(fn(arg)) == bits([math_fn(v) for v in arg.tolist()]), math_fn
    base, exponent = np.exp(rng.uniform(-30, 30, 50_000)), rng.uniform(-9, 9, 50_000)
    for e in (exponent, np.full(50_000, 2.0), np.full(50_000, 0.5), np.full(50_000, -1.0)):
        assert bits(expr.array_pow(base, e)) == bits(
            [a ** b for a, b in zip(base.tolist(), e.tolist(), strict=True)])
    assert bits(expr.array_pow(base, 2.0)) == bits([a ** 2.0 for a in base.tolist()])


def test_a_numpy_function_that_differs_is_replaced_by_the_scalar_one() -> None:
    probe = np.linspace(0.1, 10, 1001)
    assert expr._exact(np.log, math.log, probe) is np.log
    off_by_one_ulp = expr._exact(lambda a: np.nextafter(np.log(a), np.inf), math.log, probe)
    assert off_by_one_ulp is not np.log
    assert bits(off_by_one_ulp(probe)) == bits([math.log(v) for v in probe.tolist()])
    with pytest.raises(ValueError):
        off_by_one_ulp(np.array([1.0, -1.0]))  # math's error: the caller falls back


# --- the vectorised path is taken, and fast -------------------------------------------------

COMMON = [{"dist": "exponential", "mean": 3.0}, {"dist": "uniform", "low": 1, "high": 7},
          {"dist": "normal", "mean": 10, "sd": 2}, {"dist": "lognormal", "mean": 100, "sd": 30},
          {"dist": "poisson", "mean": 3}, {"dist": "poisson", "mean": "objects / 10"},
          {"dist": "geometric", "p": 0.2}, {"dist": "empirical", "samples": [1.5, 2, 8]},
          {"dist": "choice", "values": [1, 2, 3.5], "weights": [1, 2, 3]},
          {"dist": "const", "value": 4}, {"dist": "exponential", "mean": "2 * objects + 1"},
          {"dist": "lognormal", "mean": "objects + 1", "sd": "objects / 4"},
          "2000 + 400 * objects", "objects if objects > 50 else 50 - objects // 2", 7]


@pytest.mark.parametrize("spec", COMMON, ids=str)
def test_common_draws_never_fall_back(spec: Any, no_fallback: Callable[[], None],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    states = rng.integers(0, MASK64, n, dtype=np.uint64)
    env = {"objects": rng.integers(0, 100, n).astype(np.float64)}
    assert_vectorised(compile_value(spec), states, env, no_fallback, monkeypatch)


def test_array_draws_are_at_least_20_times_faster() -> None:
    n = 100_000
    states = np.random.default_rng(4).integers(0, MASK64, n, dtype=np.uint64, endpoint=True)
    env = {"objects": np.arange(n, dtype=np.float64) % 97}
    for spec in ({"dist": "exponential", "mean": 3.0}, "2000 + 400 * objects"):
        v = compile_value(spec)
        array_s = min(timeit.repeat(lambda v=v: v.sample_array(states, env), number=1,
                                    repeat=5))
        scalar_s = min(timeit.repeat(lambda v=v: dists._sample_each(v, states, env), number=1,
                                     repeat=2))
        assert scalar_s >= 20 * array_s, (spec, scalar_s, array_s)


@pytest.mark.parametrize("source", ["2000 + 400 * objects", "objects // 3 if objects > 50 else "
                                    "min(objects, 7) ** 2", "objects > 10 and log(objects) < 4"])
def test_evaluate_array_never_falls_back(source: str, no_fallback: Callable[[], None]) -> None:
    n = 5000
    env = {"objects": np.arange(n, dtype=np.float64) % 101}
    e = compile_expression(source)
    want = bits(e._evaluate_each(env, n))
    no_fallback()
    assert bits(e.evaluate_array(env, n)) == want
