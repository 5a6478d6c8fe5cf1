"""octosim against an independent SimPy model of the same workflow (``bench/reference_simpy.py``).

The workflow is a detector (lognormal time) whose Poisson-sized fan-out of recognitions is
joined before an optional review (p = 0.3), each stage on its own FIFO pool of PEAs, Poisson
arrivals, the bottleneck pool (recognize) at 2/3 load. There is no closed form for the end-to-end
latency of this fork-join network, so the two simulators -- written separately, with unrelated
random number generators -- must agree statistically.

Sample size: the per-run mean latency has a relative asymptotic variance of about 3 (measured:
40 seeds x 5,000 instances give a per-run relative s.d. of 2.2-2.4 % in both simulators), the
p99 about 12. With 8 seeds x 20,000 instances per simulator the relative standard error of the
*difference* of the two means is ~0.65 % (the 3 % tolerance is ~4.5 s.e.) and of the p99s ~1.3 %
(the 8 % tolerance is ~6 s.e.). Seeds are fixed, so the test is deterministic.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("simpy")

BENCH = Path(__file__).resolve().parents[2] / "bench"
N_INSTANCES = 20_000
SEEDS = list(range(1, 9))


def _load_reference():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("reference_simpy", BENCH / "reference_simpy.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reference_simpy", mod)
    spec.loader.exec_module(mod)
    return mod


ref = _load_reference()


def test_yaml_matches_simpy_parameters() -> None:
    """``reference_workflow.yaml`` on its own (without the overrides) is the SimPy model."""
    wf = yaml.safe_load((BENCH / "reference_workflow.yaml").read_text())
    p = ref.DEFAULT_PARAMS
    t = wf["tasks"]
    assert wf["arrivals"]["process"] == "poisson"
    assert wf["arrivals"]["interarrival_cycles"] == p["interarrival"]
    assert t["detect"]["cycles"] == {
        "dist": "lognormal",
        "mean": p["detect_mean"],
        "sd": p["detect_sd"],
    }
    assert t["detect"]["sets"] == {"objects": {"dist": "poisson", "mean": p["objects_mean"]}}
    assert t["recognize"]["cycles"] == {"dist": "exponential", "mean": p["recognize_mean"]}
    assert t["review"]["cycles"] == {"dist": "exponential", "mean": p["review_mean"]}
    assert wf["flow"][2]["branch"][0]["p"] == p["review_p"]
    assert all(task["peas"] == [1, 1] for task in t.values())


def test_octosim_agrees_with_simpy() -> None:
    osim = [ref.octosim_run(N_INSTANCES, seed) for seed in SEEDS]
    spy = [ref.run_simpy(N_INSTANCES, 1000 + seed) for seed in SEEDS]
    lat_o = np.concatenate([np.asarray(r["latencies"], dtype=np.float64) for r in osim])
    lat_s = np.concatenate([np.asarray(r["latencies"], dtype=np.float64) for r in spy])
    assert len(lat_o) == len(lat_s) == N_INSTANCES * len(SEEDS)

    # Same work: runs per instance of each stage (Poisson(3) recognitions, 30 % reviewed).
    for stage, expect in (("detect", 1.0), ("recognize", 3.0), ("review", 0.3)):
        per_o = sum(r["completions"][stage] for r in osim) / len(lat_o)
        per_s = sum(r["completions"][stage] for r in spy) / len(lat_s)
        assert per_o == pytest.approx(expect, rel=0.01), (stage, per_o)
        assert per_s == pytest.approx(expect, rel=0.01), (stage, per_s)

    def stats(a: np.ndarray) -> dict[str, float]:
        p50, p95, p99 = np.percentile(a, [50, 95, 99])
        return {"mean": float(a.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99)}

    so, ss = stats(lat_o), stats(lat_s)
    lines = [f"{k}: octosim {so[k]:.0f}  simpy {ss[k]:.0f}  ({so[k] / ss[k] - 1:+.2%})" for k in so]
    print("\n" + "\n".join(lines))
    for key, tol in (("mean", 0.03), ("p50", 0.03), ("p95", 0.05), ("p99", 0.08)):
        assert so[key] == pytest.approx(ss[key], rel=tol), lines


def test_minimal_loop_is_the_same_model_as_simpy() -> None:
    """``bench/minimal_loop.py`` (the plain-Python speed floor of ``bench/speed.py``) is the
    SimPy model as one heapq loop: with the same draws it gives the same latencies, completions
    and makespan, so the speed it shows is for the same work."""
    _load_reference()
    spec = importlib.util.spec_from_file_location("minimal_loop", BENCH / "minimal_loop.py")
    assert spec is not None and spec.loader is not None
    minimal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(minimal)
    ref = sys.modules["reference_simpy"]
    a = minimal.run_minimal(3000, 5)
    b = ref.run_simpy(3000, 5)
    assert a["completions"] == b["completions"]
    assert a["makespan_cycles"] == b["makespan_cycles"]
    assert sorted(a["latencies"]) == sorted(b["latencies"])
