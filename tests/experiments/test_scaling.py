"""The scaling study (octosim.experiments.scaling), the one reproduce and bench/wafer.py run:
on a tiny workflow and grid, checked through its JSON and the reports that draw it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from octosim.errors import UserError
from octosim.experiments.batch import run_many
from octosim.experiments.html import reproduce_sections
from octosim.experiments.report import scaling_markdown
from octosim.experiments.scaling import (
    CONTROLLER_BYTES_PER_CYCLE,
    MEMORY,
    ScalingPlan,
    make_scaling_plan,
    scaling_specs,
    scaling_study,
)
from octosim.hardware.chip import edge_clusters

ROOT = Path(__file__).resolve().parents[2]
PLAN = ScalingPlan(grids=(1, 4, 16), per_cluster=2)


@pytest.fixture(scope="module")
def study() -> dict[str, Any]:
    return scaling_study(PLAN, ["street-camera"], lambda specs: run_many(specs, workers=1))


def test_efficiency_is_one_on_one_cluster_and_the_keys_are_sane(study: dict[str, Any]
                                                                ) -> None:
    assert not study["failures"]
    assert study["grids"] == [1, 4, 16] and study["balancer"] == "diffusion"
    assert {(r["memory"], r["clusters"]) for r in study["table"]} == {
        (m, n) for m in MEMORY for n in (1, 4, 16)}
    for mem in MEMORY:
        assert set(study["geomean_parallel_efficiency"][mem]) == {"1", "4", "16"}
        assert study["geomean_parallel_efficiency"][mem]["1"] == 1.0
        rows = sorted((r for r in study["table"] if r["memory"] == mem),
                      key=lambda r: r["clusters"])
        # Instances grow with the grid, the same number per cluster.
        assert [r["instances"] for r in rows] == [2, 8, 32]
        for r in rows:
            assert r["throughput_per_gcycle"] == pytest.approx(
                r["instances"] / r["makespan_cycles"] * 1e9, rel=1e-6)
            assert r["parallel_efficiency"] == pytest.approx(
                r["throughput_per_gcycle"] / (r["clusters"] * rows[0]["throughput_per_gcycle"]),
                abs=1e-4)
    # One cluster is the same chip under both memory forms.
    one = {r["memory"]: r["makespan_cycles"] for r in study["table"] if r["clusters"] == 1}
    assert one["scaled"] == one["fixed"]
    # reproduce writes it in results.json and compares the file with what it returned.
    assert json.loads(json.dumps(study)) == study


def test_fixed_memory_keeps_the_one_cluster_bandwidth_and_scaled_grows_it() -> None:
    for spec in scaling_specs(PLAN, ["street-camera"], ("policy.buffer_slots=2",)):
        sets = dict(s.split("=", 1) for s in spec.sets)
        n = spec.tag("scaling")
        rows, cols = int(sets["arch.grid.rows"]), int(sets["arch.grid.cols"])
        assert rows * cols == n
        assert sets["policy.balancer"] == "diffusion" and sets["policy.buffer_slots"] == "2"
        per = float(sets["arch.memory.bytes_per_cycle"])
        controllers = (len(edge_clusters(rows, cols)) if spec.tag("memory") == "fixed"
                       else n)
        total = per * controllers
        expected = CONTROLLER_BYTES_PER_CYCLE * (n if spec.tag("memory") == "scaled" else 1)
        assert total == pytest.approx(expected, rel=1e-12), spec


def test_plans_and_bad_grids() -> None:
    assert make_scaling_plan(True).grids == (1, 4, 16)
    assert make_scaling_plan(False).grids == (1, 4, 16, 64)
    with pytest.raises(UserError, match="3 is not a square number"):
        scaling_specs(ScalingPlan((1, 3), 1), ["street-camera"])


def test_reports_draw_the_study(study: dict[str, Any]) -> None:
    md = scaling_markdown(study)
    assert "## Wafer scaling" in md and "![scaling](scaling.png)" in md
    assert "| scaled | 1 | 2 |" in md and "| street-camera |" in md
    report = json.loads((ROOT / "docs" / "results" / "results.json").read_text())
    report["regimes"] = {}
    without = dict(reproduce_sections(report, []))
    assert "Wafer scaling" not in without  # an old results.json still renders
    report["scaling"] = study
    body = dict(reproduce_sections(report, []))["Wafer scaling"]
    assert body.count("<img ") == 1 and "parallel efficiency per workflow" in body
