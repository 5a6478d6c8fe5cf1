"""bench/wafer.py table: every policy tuned by one procedure on the wafer, the balancer a
shared knob of this study only, and the reported numbers the ratios of its reported runs."""

from __future__ import annotations

import json

import pytest
from bench import wafer

from octosim.experiments.tuning import GRIDS


def test_the_balancer_is_a_shared_knob_of_this_study_only() -> None:
    grids = wafer.wafer_grids()
    assert set(grids) == set(wafer.POLICIES)
    for p, grid in grids.items():
        # First, so the descent sweeps it for every policy at any budget of 2 or more.
        assert list(grid)[0] == "balancer" and grid["balancer"] == ["none", "diffusion"]
        assert {k: v for k, v in grid.items() if k != "balancer"} == GRIDS[p]
        assert "balancer" not in GRIDS[p]  # the chip-scale reproduce does not sweep it


def test_table_on_one_tiny_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    assert wafer.main(["table", "--count", "8", "--budget", "2", "--workers", "1",
                       "--workflow", "street-camera", "--seeds", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert not out["failures"] and out["seeds"] == [1] and out["tuning_seeds"] == [101]
    (row,) = out["rows"]
    ms = row["makespan_cycles"]
    for b in wafer.BASELINES:
        assert row["speedup"][b] == round(ms[b] / ms["octopus"], 4)
        assert out["geomean_speedup"][b] == row["speedup"][b]
    assert row["speedup_over_best_baseline"] == row["speedup"][row["best_baseline"]]
    for p, t in out["tuned"].items():
        assert t["evaluated"] == 2, p  # the same budget for every policy
        assert [s["knob"] for s in t["path"]] == [None, "balancer"], p
        assert t["best"]["balancer"] in ("none", "diffusion")
    with pytest.raises(SystemExit, match="must not be tuning seeds"):
        wafer.main(["table", "--seeds", "101", "--tuning-seeds", "101"])
