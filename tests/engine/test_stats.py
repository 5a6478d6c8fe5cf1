"""Bounded-memory latency percentiles: exact while small, within the documented error after."""

from __future__ import annotations

import numpy as np

from octosim.engine.stats import RELATIVE_ERROR, LatencyRecorder


def test_exact_below_limit_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    xs = rng.integers(1, 10**7, size=5000)
    rec = LatencyRecorder(exact_limit=10_000)
    for x in xs:
        rec.append(int(x))
    assert rec.is_exact
    assert rec.percentiles([50, 95, 99]) == [float(v) for v in np.percentile(xs, [50, 95, 99])]
    s = rec.summary()
    assert s["max"] == xs.max()
    assert abs(s["mean"] - xs.mean()) < 1e-3


def test_histogram_within_relative_error_and_memory_bounded() -> None:
    rng = np.random.default_rng(2)
    xs = rng.lognormal(mean=12, sigma=1.0, size=200_000).astype(np.int64) + 1
    rec = LatencyRecorder(exact_limit=1000)
    for x in xs:
        rec.append(int(x))
    assert not rec.is_exact
    assert len(rec.hist) < 2000  # a few kB whatever the run length
    for q, got in zip([50, 95, 99], rec.percentiles([50, 95, 99]), strict=True):
        exact = float(np.percentile(xs, q))
        assert abs(got - exact) / exact <= 2 * RELATIVE_ERROR + 1e-3
    assert rec.summary()["max"] == xs.max()
    assert rec.count == len(xs)
