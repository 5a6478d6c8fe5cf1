"""compare and reproduce: JSON contracts, figures, and failures kept to their own runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from octosim.cli import main
from octosim.experiments.batch import RunSpec, run_many

SMALL = ["--set", "workflow.arrivals.count=10", "--set", "workflow.phases=[]",
         "--set", "workflow.arrivals.process=batch"]


def test_compare_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "street-camera", "document-ocr", "--policies", "static,octopus",
                 "--workers", "1", *SMALL, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [(r["workflow"], r["policy"]) for r in rows] == [
        ("street-camera", "static"), ("street-camera", "octopus"),
        ("document-ocr", "static"), ("document-ocr", "octopus")]
    for r in rows:
        assert {"workflow", "policy", "makespan_cycles", "speedup_vs_first"} <= set(r)
    assert rows[0]["speedup_vs_first"] == 1.0
    assert rows[1]["speedup_vs_first"] == pytest.approx(
        rows[0]["makespan_cycles"] / rows[1]["makespan_cycles"], rel=1e-3)


def test_compare_rejects_unknown_policy_before_running(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert main(["compare", "street-camera", "--policies", "static,nope"]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err


def test_a_failing_point_does_not_lose_the_others() -> None:
    specs = [RunSpec("street-camera", "octopus-chip", "static", 1,
                     ("workflow.arrivals.count=5", "workflow.phases=[]")),
             RunSpec("street-camera", "octopus-chip", "static", 1, ("arch.tbu.peas=0",)),
             RunSpec("street-camera", "octopus-chip", "octopus", 1,
                     ("workflow.arrivals.count=5", "workflow.phases=[]"))]
    results = run_many(specs, workers=2)
    assert [r.error is None for r in results] == [True, False, True]
    assert "arch.tbu.peas" in (results[1].error or "") or "tbu" in (results[1].error or "")
    assert results[0].summary and results[2].summary


def test_reproduce_quick_on_one_workflow(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["reproduce", "--quick", "--workflow", "street-camera", "--out", str(out),
                 "--workers", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["speedup"]) == {"static", "reactive", "indiscriminate"}
    for st in report["speedup"].values():
        assert {"mean", "geomean", "max"} <= set(st)
    assert {"mean", "max"} <= set(report["bound_ratio"])
    (wf,) = report["workflows"]
    assert wf["workflow"] == "street-camera"
    assert {"static", "reactive", "indiscriminate", "octopus"} <= set(wf["makespan_cycles"])
    assert wf["makespan_cycles"]["octopus"] >= wf["lower_bound_cycles"]
    assert report["bound_ratio"]["max"] >= 1.0
    assert set(report["ablation_speedup_vs_static"]) == {"static", "+DDS", "+ATS", "+PCS"}
    assert {r["load"] for r in report["latency"]} == {0.5, 0.8}
    assert not report["failures"]
    for name in ("results.json", "results.md", "speedup.png", "ablation.png", "idle.png",
                 "latency.png", "runs.jsonl"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "results.md").read_text()
    assert "octosim reproduce --quick" in md and "2.50×" in md
    lines = (out / "runs.jsonl").read_text().splitlines()
    assert len(lines) >= 6 and all(json.loads(line)["summary"] for line in lines)
