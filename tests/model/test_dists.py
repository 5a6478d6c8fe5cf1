"""Distributions: sampled moments match the documented parameters; values round as documented.

Every check draws N values keyed ``k0 .. k{N-1}`` (as the engine keys draws by meaning) and
compares the sample mean / standard deviation with the truth, within five standard errors
(the tests are deterministic: a fixed seed always gives the same sample).
"""

from __future__ import annotations

import math
from collections import Counter
from statistics import fmean, pstdev
from typing import Any

import pytest

from octosim.errors import UserError
from octosim.model.dists import DIST_KINDS, Const, Dist, Expr, compile_value, round_count
from octosim.model.expr import ExprError
from octosim.model.rng import KeyedRandom

N = 40_000


def sample(spec: dict, n: int = N, seed: int = 1, env: dict | None = None) -> list[float]:
    v = compile_value(spec)
    rnd = KeyedRandom(seed)
    return [v.draw(rnd, f"k{i}", env or {}) for i in range(n)]


def assert_moments(xs: list[float], mean: float, sd: float, kurtosis: float = 3.0) -> None:
    """Sample mean within 5 SE of ``mean``; sample sd within 5 SE of ``sd``."""
    n = len(xs)
    m, s = fmean(xs), pstdev(xs)
    assert abs(m - mean) <= 5 * sd / math.sqrt(n) + 1e-12, (m, mean)
    # SE of the sample variance is sd**2 * sqrt((kurtosis - 1) / n); of sd, about half that.
    se_sd = sd * math.sqrt((kurtosis - 1) / n) / 2
    assert abs(s - sd) <= 5 * se_sd + 1e-12, (s, sd)


def assert_freq(xs: list[float], value: float, p: float) -> None:
    n = len(xs)
    f = sum(1 for x in xs if x == value) / n
    assert abs(f - p) <= 5 * math.sqrt(p * (1 - p) / n), (value, f, p)


def test_every_documented_kind_exists() -> None:
    assert set(DIST_KINDS) == {
        "const",
        "uniform",
        "exponential",
        "normal",
        "lognormal",
        "poisson",
        "geometric",
        "choice",
        "empirical",
    }


def test_const() -> None:
    xs = sample({"dist": "const", "value": 7.5}, n=100)
    assert set(xs) == {7.5}
    assert compile_value({"dist": "const", "value": 7.5}).mean_hint() == 7.5


def test_uniform() -> None:
    xs = sample({"dist": "uniform", "low": 2, "high": 6})
    assert min(xs) >= 2 and max(xs) <= 6
    assert_moments(xs, 4.0, 4 / math.sqrt(12), kurtosis=1.8)
    # Quartiles are where they should be.
    assert abs(sum(1 for x in xs if x < 3) / N - 0.25) < 0.01
    assert sample({"dist": "uniform", "low": 3, "high": 3}, n=10) == [3] * 10


def test_exponential() -> None:
    xs = sample({"dist": "exponential", "mean": 5000})
    assert min(xs) > 0
    assert_moments(xs, 5000, 5000, kurtosis=9)
    # Memoryless tail: P(X > mean) = e^-1.
    assert abs(sum(1 for x in xs if x > 5000) / N - math.exp(-1)) < 0.012


def test_normal() -> None:
    xs = sample({"dist": "normal", "mean": 50, "sd": 10})
    assert_moments(xs, 50, 10)
    within = sum(1 for x in xs if 40 <= x <= 60) / N
    assert abs(within - 0.6827) < 0.012


@pytest.mark.parametrize("mean,sd", [(100.0, 50.0), (60000.0, 15000.0), (2.0, 6.0)])
def test_lognormal_parameters_are_those_of_the_variable(mean: float, sd: float) -> None:
    xs = sample({"dist": "lognormal", "mean": mean, "sd": sd}, n=N if sd / mean < 1 else 100_000)
    assert min(xs) > 0
    s2 = math.log1p((sd / mean) ** 2)
    kurt = math.exp(4 * s2) + 2 * math.exp(3 * s2) + 3 * math.exp(2 * s2) - 3
    if sd / mean < 1:
        assert_moments(xs, mean, sd, kurtosis=kurt)
    else:  # heavy tail: check the mean and the median (exp(mu)) instead of the sd
        assert abs(fmean(xs) - mean) < 5 * sd / math.sqrt(len(xs))
        median = sorted(xs)[len(xs) // 2]
        assert median == pytest.approx(mean / math.sqrt(1 + (sd / mean) ** 2), rel=0.02)
    # Not the parameters of the logarithm: with those, the mean would be e^mean.
    assert fmean(xs) < 10 * mean


def test_lognormal_sd_zero_is_constant() -> None:
    assert sample({"dist": "lognormal", "mean": 42, "sd": 0}, n=5) == [42] * 5


@pytest.mark.parametrize("mean", [0.5, 3.0, 12.0, 29.9, 30.0, 100.0, 2500.0])
def test_poisson(mean: float) -> None:
    xs = sample({"dist": "poisson", "mean": mean})
    assert all(isinstance(x, int) and x >= 0 for x in xs)
    assert_moments(xs, mean, math.sqrt(mean), kurtosis=3 + 1 / mean)
    # The probability of the mode matches the pmf (checks shape, not just moments).
    k = math.floor(mean)
    pmf = math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))
    assert_freq(xs, k, pmf)


def test_poisson_mean_zero() -> None:
    assert set(sample({"dist": "poisson", "mean": 0}, n=50)) == {0}


@pytest.mark.parametrize("p", [0.25, 0.5, 0.9])
def test_geometric_counts_failures_before_first_success(p: float) -> None:
    xs = sample({"dist": "geometric", "p": p})
    assert min(xs) == 0 and all(isinstance(x, int) for x in xs)
    q = 1 - p
    kurt = 9 + p * p / q  # excess kurtosis 6 + p^2/(1-p), plus 3
    assert_moments(xs, q / p, math.sqrt(q) / p, kurtosis=kurt)
    assert_freq(xs, 0, p)
    assert_freq(xs, 1, q * p)


def test_geometric_p_one() -> None:
    assert set(sample({"dist": "geometric", "p": 1}, n=20)) == {0}


def test_choice_weights() -> None:
    xs = sample({"dist": "choice", "values": [1, 5, 10], "weights": [1, 2, 7]})
    assert set(xs) == {1, 5, 10}
    for v, p in ((1, 0.1), (5, 0.2), (10, 0.7)):
        assert_freq(xs, v, p)
    d = compile_value({"dist": "choice", "values": [1, 5, 10], "weights": [1, 2, 7]})
    assert d.mean_hint() == pytest.approx(0.1 + 1 + 7)


def test_choice_without_weights_is_uniform_and_zero_weight_never_drawn() -> None:
    xs = sample({"dist": "choice", "values": [2, 4, 8, 16]})
    for v in (2, 4, 8, 16):
        assert_freq(xs, v, 0.25)
    xs = sample({"dist": "choice", "values": [1, 2, 3], "weights": [1, 0, 1]}, n=5000)
    assert 2 not in xs


def test_empirical_resamples_uniformly() -> None:
    xs = sample({"dist": "empirical", "samples": [3, 3, 7, 100]})
    counts = Counter(xs)
    assert set(counts) == {3, 7, 100}
    assert_freq(xs, 3, 0.5)
    assert_freq(xs, 7, 0.25)
    assert compile_value({"dist": "empirical", "samples": [3, 3, 7, 100]}).mean_hint() == 28.25


@pytest.mark.parametrize(
    "spec,mean",
    [
        ({"dist": "uniform", "low": 2, "high": 6}, 4),
        ({"dist": "exponential", "mean": 9}, 9),
        ({"dist": "normal", "mean": 3, "sd": 1}, 3),
        ({"dist": "lognormal", "mean": 3, "sd": 1}, 3),
        ({"dist": "poisson", "mean": 4}, 4),
        ({"dist": "geometric", "p": 0.2}, 4),
    ],
)
def test_mean_hint(spec: dict, mean: float) -> None:
    assert compile_value(spec).mean_hint() == pytest.approx(mean)


def test_parameters_may_be_expressions() -> None:
    xs = sample({"dist": "normal", "mean": "x * 2", "sd": "x / 10"}, n=10_000, env={"x": 100})
    assert_moments(xs, 200, 10)
    d = compile_value({"dist": "poisson", "mean": "objects"})
    assert isinstance(d, Dist) and d.names == frozenset({"objects"})
    assert d.mean_hint() is None  # unknown without the variables
    # Constant expressions are folded at load time.
    assert compile_value({"dist": "exponential", "mean": "2 * 500"}).mean_hint() == 1000
    # Parameters computed at run time are checked at run time.
    with pytest.raises(UserError, match="lognormal: mean must be > 0"):
        compile_value({"dist": "lognormal", "mean": "x - 5", "sd": 1}).draw(
            KeyedRandom(1), "k", {"x": 1}
        )


def test_draws_are_keyed_not_sequential() -> None:
    """Common random numbers: a draw depends on (seed, key) only, not on what came before."""
    v = compile_value({"dist": "exponential", "mean": 100})
    rnd = KeyedRandom(7)
    keys = [f"{i}/3/c" for i in range(200)]
    forward = [v.draw(rnd, k, {}) for k in keys]
    backward = [v.draw(KeyedRandom(7), k, {}) for k in reversed(keys)][::-1]
    assert forward == backward
    other_seed = [v.draw(KeyedRandom(8), k, {}) for k in keys]
    assert sum(a == b for a, b in zip(forward, other_seed, strict=True)) == 0
    # Keys that differ slightly give unrelated values: lag-1 correlation near zero.
    us = [KeyedRandom(1).uniform(f"k{i}") for i in range(N)]
    m = fmean(us)
    corr = sum((a - m) * (b - m) for a, b in zip(us, us[1:], strict=False)) / (
        (N - 1) * pstdev(us) ** 2
    )
    assert abs(corr) < 5 / math.sqrt(N)
    assert min(us) > 0 and max(us) < 1


def test_plain_values() -> None:
    assert isinstance(compile_value(3), Const) and compile_value(3).sample(0, {}) == 3
    assert compile_value("2 * 3").sample(0, {}) == 6
    e = compile_value("x + 1")
    assert isinstance(e, Expr) and e.sample(0, {"x": 2}) == 3


@pytest.mark.parametrize(
    "raw,match",
    [
        (True, "expected a number"),
        (None, "expected a number"),
        ([1, 2], "got list"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (10**400, "integer of about 400 digits"),
        ("1 / 0", "cannot be evaluated: division by zero"),
        ({"mean": 3}, "needs 'dist'"),
        ({"dist": "zipf"}, "unknown distribution 'zipf'"),
        ({"dist": "normal", "mean": 1}, "normal needs sd"),
        ({"dist": "normal", "mean": 1, "sd": 1, "skew": 0}, "does not take skew"),
        ({"dist": "normal", "mean": 1, "sd": -1}, "sd must be >= 0"),
        ({"dist": "normal", "mean": "1/0", "sd": 1}, "division by zero"),
        ({"dist": "normal", "mean": True, "sd": 1}, "must be a number or expression"),
        ({"dist": "normal", "mean": 1e308, "sd": 1}, "finite number"),
        ({"dist": "lognormal", "mean": 0, "sd": 1}, "mean must be > 0"),
        ({"dist": "lognormal", "mean": 1, "sd": -1}, "sd must be >= 0"),
        ({"dist": "exponential", "mean": -1}, "mean must be >= 0"),
        ({"dist": "poisson", "mean": -1}, "mean must be >= 0"),
        ({"dist": "poisson", "mean": 1e10}, "mean must be <= 1e9"),
        ({"dist": "geometric", "p": 0}, r"p must be in \(0, 1\]"),
        ({"dist": "geometric", "p": 1.5}, r"p must be in \(0, 1\]"),
        ({"dist": "uniform", "low": 5, "high": 1}, "low must not exceed high"),
        ({"dist": "choice", "values": []}, "non-empty list"),
        ({"dist": "choice", "values": [1, "a"]}, r"values\[1\] must be a finite number"),
        ({"dist": "choice", "values": [1, 2], "weights": [1]}, "same length"),
        ({"dist": "choice", "values": [1, 2], "weights": [0, 0]}, "positive sum"),
        ({"dist": "choice", "values": [1, 2], "weights": [-1, 2]}, ">= 0"),
        ({"dist": "empirical", "samples": "abc"}, "non-empty list"),
        ({"dist": "empirical", "samples": [1, float("nan")]}, "finite number"),
    ],
)
def test_bad_values(raw: object, match: str) -> None:
    with pytest.raises(UserError, match=match):
        compile_value(raw)


def test_non_finite_draws_are_errors_not_crashes() -> None:
    d = compile_value({"dist": "normal", "mean": 0, "sd": 1e300})
    d.limit = 1e15
    with pytest.raises(ExprError, match="larger than the maximum"):
        for i in range(10):
            d.draw(KeyedRandom(1), f"k{i}", {})
    e = compile_value("x * 1e200")
    with pytest.raises(ExprError, match="not a finite number"):
        e.draw(KeyedRandom(1), "k", {"x": 1e200})


@pytest.mark.parametrize(
    "x,n",
    [
        (0, 0),
        (0.49, 0),
        (0.5, 1),
        (1.5, 2),
        (2.5, 3),
        (2.4999, 2),
        (7, 7),
        (-0.4, 0),
        (-3, 0),
        (-0.6, 0),
        (1e12 + 0.6, 10**12 + 1),
        (999.5, 1000),
    ],
)
def test_round_count_nearest_non_negative_integer(x: float, n: int) -> None:
    r = round_count(x)
    assert r == n and isinstance(r, int)


@pytest.mark.parametrize(
    "raw",
    [
        {"dist": "exponential", "mean": 250.0},
        {"dist": "uniform", "low": -3, "high": 8},
        {"dist": "lognormal", "mean": 12000, "sd": 8000},
        {"dist": "lognormal", "mean": 5, "sd": 0},
        {"dist": "normal", "mean": 1, "sd": 2},
        {"dist": "poisson", "mean": 3},
        {"dist": "poisson", "mean": 0},
        {"dist": "poisson", "mean": 75},
        {"dist": "geometric", "p": 0.2},
        {"dist": "choice", "values": [1, 2, 3], "weights": [1, 0, 2]},
        {"dist": "empirical", "samples": [4, 9, 1]},
    ],
)
def test_fast_samplers_give_the_general_samplers_values(raw: dict[str, Any]) -> None:
    """The bound-parameter closures of the hot path are an optimisation only: the same
    value as the general sampler for every stream state."""
    from octosim.model.dists import _SAMPLERS
    from octosim.model.rng import mix64

    d = compile_value(raw)
    assert isinstance(d, Dist)
    fast = d.fast_sampler()
    assert fast is not None
    for i in range(2000):
        state = mix64(i)
        assert fast(state) == _SAMPLERS[d.kind](state, d.params)


def test_stream_helpers_agree() -> None:
    from octosim.model.rng import KeyedRandom, Stream, first_uniform, mix64

    rnd = KeyedRandom(3)
    for i in range(1000):
        key = mix64(i * 7919)
        assert rnd.at(key) == mix64(key)
        assert first_uniform(key) == Stream(key).uniform()
    # Keys of different instances, copies and iterations differ.
    roots = {rnd.instance_key(i) for i in range(1000)}
    assert len(roots) == 1000
    kids = {KeyedRandom.child_key(k, 12345, j) for k in list(roots)[:50] for j in range(20)}
    assert len(kids) == 1000 and not kids & roots


def test_a_lognormal_whose_shape_overflows_is_a_clear_error() -> None:
    """(sd / mean)**2 beyond a float (found by the workflow fuzzer: a raw OverflowError)."""
    with pytest.raises(UserError, match="sd must be at most 1e150 times the mean"):
        compile_value({"dist": "lognormal", "mean": 4.76e-206, "sd": 15000})
    assert compile_value({"dist": "lognormal", "mean": 1e-140, "sd": 1e9}) is not None
