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
    assert results[1].error == (
        "error: octopus-chip: tbu.peas: Input should be greater than or "
        "equal to 1 (got 0) (set by --set arch.tbu.peas)")
    assert results[0].summary and results[2].summary


def test_reproduce_quick_on_one_workflow(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Every number reproduce reports is computed from the runs it made, and those runs are
    what ``octosim run`` gives for the configuration they record."""
    out = tmp_path / "r"
    assert main(["reproduce", "--quick", "--workflow", "street-camera", "--out", str(out),
                 "--workers", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not report["failures"]
    for name in ("results.json", "results.md", "speedup.png", "ablation.png", "idle.png",
                 "latency.png", "runs.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text()) == report

    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    by_label = {dict(map(tuple, r["spec"]["tags"]))["label"]: r for r in runs
                if "label" in dict(map(tuple, r["spec"]["tags"]))}
    labels = {"static", "reactive", "indiscriminate", "octopus", "octopus+DDS", "octopus+ATS"}
    assert set(by_label) == labels
    (wf,) = report["workflows"]
    assert wf["workflow"] == "street-camera"
    ms = {lb: r["summary"]["makespan_cycles"] for lb, r in by_label.items()}
    assert wf["makespan_cycles"] == ms
    octopus = by_label["octopus"]["summary"]
    assert wf["lower_bound_cycles"] == octopus["lower_bound_cycles"]
    assert wf["instances"] == octopus["instances"] == 100  # --quick: a quarter of 400

    # Speed-ups, the bound ratio and the ablation are ratios of those makespans (one seed,
    # one workflow: every statistic is that one ratio).
    def stats(x: float) -> dict[str, float]:
        return dict.fromkeys(("mean", "geomean", "max", "min"), round(x, 4))

    for b in ("static", "reactive", "indiscriminate"):
        assert report["speedup"][b] == stats(ms[b] / ms["octopus"]), b
        assert wf["speedup"][b] == round(ms[b] / ms["octopus"], 4)
    ratio = ms["octopus"] / wf["lower_bound_cycles"]
    assert report["bound_ratio"] == {"mean": round(ratio, 4), "max": round(ratio, 4)}
    assert ratio >= 1.0
    assert report["ablation_speedup_vs_static"] == {
        "static": stats(1.0), "+DDS": stats(ms["static"] / ms["octopus+DDS"]),
        "+ATS": stats(ms["static"] / ms["octopus+ATS"]),
        "+PCS": stats(ms["static"] / ms["octopus"])}
    assert report["utilization"]["octopus"]["pea_utilization"] == round(
        octopus["pea_utilization"], 4)
    lat = [r for r in runs if dict(map(tuple, r["spec"]["tags"])).get("load") is not None]
    assert len(report["latency"]) == len(lat) == 8  # 2 loads x 4 policies
    assert {(r["load"], r["policy"]) for r in report["latency"]} == {
        (load, p) for load in (0.5, 0.8)
        for p in ("static", "reactive", "indiscriminate", "octopus")}

    # Every policy was tuned on unreported seeds; its winner is in every reported run of it,
    # and the ablation is Octopus's winner with strategies switched off.
    tuning = report["tuning"]
    assert set(tuning) == {"static", "reactive", "indiscriminate", "octopus"}
    tune_runs = [r for r in runs if "tune" in dict(map(tuple, r["spec"]["tags"]))]
    assert len(tune_runs) == sum(len(t["candidates"]) for t in tuning.values())
    assert not {r["spec"]["seed"] for r in tune_runs} & set(report["seeds"])
    for label, r in by_label.items():
        best, sets = tuning[label.split("+")[0]]["best_sets"], r["spec"]["sets"]
        i = sets.index(best[0])
        assert sets[i:i + len(best)] == best, label
        assert all(s.startswith("policy.") and s[7:10] in ("ats", "pcs")
                   for s in sets[i + len(best):]), label  # only the ablation's switches after
    for r in lat:
        assert set(tuning[r["spec"]["policy"]]["best_sets"]) <= set(r["spec"]["sets"])
    assert "## Tuning: every policy on equal terms" in (out / "results.md").read_text()

    # The quick scaling study (octosim.experiments.scaling): Octopus's tuned knobs plus
    # diffusion on 1, 4 and 16 clusters, two memory forms, its numbers from its own runs.
    sc = report["scaling"]
    assert sc["grids"] == [1, 4, 16] and sc["balancer"] == "diffusion" and not sc["failures"]
    assert sc["policy_sets"] == tuning["octopus"]["best_sets"]
    sc_runs = {(dict(map(tuple, r["spec"]["tags"]))["scaling"],
                dict(map(tuple, r["spec"]["tags"]))["memory"]): r for r in runs
               if "scaling" in dict(map(tuple, r["spec"]["tags"]))}
    assert len(sc_runs) == len(sc["table"]) == 6
    for row in sc["table"]:
        run = sc_runs[(row["clusters"], row["memory"])]
        assert row["makespan_cycles"] == run["summary"]["makespan_cycles"]
        assert set(sc["policy_sets"]) <= set(run["spec"]["sets"])
        assert "policy.balancer=diffusion" in run["spec"]["sets"]
    assert sc["geomean_parallel_efficiency"]["scaled"]["1"] == 1.0
    assert "## Wafer scaling" in (out / "results.md").read_text()
    assert (out / "scaling.png").stat().st_size > 0

    # The recorded configurations rerun to the same makespans through the command line.
    for label in ("static", "octopus+DDS"):
        spec = by_label[label]["spec"]
        sets = [arg for item in spec["sets"] for arg in ("--set", item)]
        assert main(["run", spec["workflow"], "--arch", spec["arch"], "--policy",
                     spec["policy"], "--seed", str(spec["seed"]), *sets, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["makespan_cycles"] == ms[label], label

    # The markdown shows the measured numbers.
    md = (out / "results.md").read_text()
    # The real command, whatever --out was (it used to say --out docs/results).
    assert f"`octosim reproduce --quick --workflow street-camera --out {out}`" in md
    sp = report["speedup"]["static"]
    assert f"| static | {sp['mean']:.2f} | {sp['geomean']:.2f} | {sp['min']:.2f} | " \
           f"{sp['max']:.2f} |" in md
    row = " | ".join(f"{ms[p]:,}" for p in ("static", "reactive", "indiscriminate",
                                            "octopus+DDS", "octopus+ATS", "octopus"))
    assert f"| street-camera | 100 | {wf['task_runs']} | {wf['lower_bound_cycles']:,} | " \
           f"{row} | {wf['speedup']['static']:.2f} |" in md


def test_setting_the_count_scales_the_phases_in_proportion() -> None:
    """DESIGN.md section 5: ``workflow.arrivals.count=N`` scales the phases unless
    ``workflow.phases`` is set too."""
    from octosim.errors import UserError
    from octosim.experiments.config import resolve_config

    cfg = resolve_config("document-ocr", "octopus-chip", "static",
                         sets=["workflow.arrivals.count=41"])
    counts = [p["count"] for p in cfg.workflow["phases"]]
    assert sum(counts) == 41 and counts == [21, 20]  # 100:100, largest remainder
    assert cfg.build()[0].count == 41
    tiny = resolve_config("document-ocr", "octopus-chip", "static",
                          sets=["workflow.arrivals.count=1"])
    assert [p["count"] for p in tiny.workflow["phases"]] == [1]  # a phase of none is left out
    with pytest.raises(UserError, match="phase counts add up"):
        resolve_config("document-ocr", "octopus-chip", "static",
                       sets=["workflow.arrivals.count=41",
                             "workflow.phases=[{name: a, count: 5}]"]).build()
