"""Bounded-memory statistics for long runs.

:class:`LatencyRecorder` keeps every sample (exact percentiles) up to ``exact_limit`` samples,
then folds them into a log-bucketed histogram: ``BUCKETS_PER_OCTAVE`` buckets per power of two,
so any percentile it reports is within a relative error of ``2**(1/BUCKETS_PER_OCTAVE) - 1``
(0.54% for 128) of a sample of the true distribution, in a few kilobytes whatever the run
length. Mean and max stay exact.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

BUCKETS_PER_OCTAVE = 128
RELATIVE_ERROR = 2 ** (1 / BUCKETS_PER_OCTAVE) - 1
DEFAULT_EXACT_LIMIT = 2_000_000


class LatencyRecorder:
    __slots__ = ("exact", "exact_limit", "hist", "count", "total", "maximum", "append")

    def __init__(self, exact_limit: int = DEFAULT_EXACT_LIMIT) -> None:
        self.exact: array[int] | None = array("q")
        self.exact_limit = exact_limit
        self.hist: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.maximum = 0
        self.append = self._append_exact

    def __len__(self) -> int:
        return self.count

    @staticmethod
    def _bucket(x: int) -> int:
        return -1 if x <= 0 else int(math.floor(math.log2(x) * BUCKETS_PER_OCTAVE))

    def _append_exact(self, x: int) -> None:
        self.count += 1
        self.total += x
        if x > self.maximum:
            self.maximum = x
        assert self.exact is not None
        self.exact.append(x)
        if len(self.exact) >= self.exact_limit:
            for v in self.exact:
                b = self._bucket(v)
                self.hist[b] = self.hist.get(b, 0) + 1
            self.exact = None
            self.append = self._append_hist

    def _append_hist(self, x: int) -> None:
        self.count += 1
        self.total += x
        if x > self.maximum:
            self.maximum = x
        b = self._bucket(x)
        self.hist[b] = self.hist.get(b, 0) + 1

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def percentiles(self, qs: list[float]) -> list[float]:
        if self.count == 0:
            return [0.0 for _ in qs]
        if self.exact is not None:
            arr = np.frombuffer(self.exact, dtype=np.int64)
            return [float(v) for v in np.percentile(arr, qs)]
        keys = sorted(self.hist)
        counts = np.array([self.hist[k] for k in keys], dtype=np.float64)
        cum = np.cumsum(counts)
        out = []
        for q in qs:
            rank = q / 100 * (self.count - 1)
            i = int(np.searchsorted(cum, rank + 1, side="left"))
            k = keys[min(i, len(keys) - 1)]
            # Geometric middle of the bucket, capped by the exact maximum.
            value = 0.0 if k < 0 else 2 ** ((k + 0.5) / BUCKETS_PER_OCTAVE)
            out.append(min(value, float(self.maximum)))
        return out

    def summary(self) -> dict[str, float]:
        if self.count == 0:
            return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
        p50, p95, p99 = self.percentiles([50, 95, 99])
        return {"mean": round(self.total / self.count, 3), "p50": round(p50, 3),
                "p95": round(p95, 3), "p99": round(p99, 3), "max": float(self.maximum)}
