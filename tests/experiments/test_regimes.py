"""The regime map: its generated workflow, one factor at a time, and how points are scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from octosim.experiments import regimes as rg
from octosim.experiments.batch import RunResult, RunSpec, run_many
from octosim.experiments.config import resolve_config

# Where each workflow factor may change the generated data (prefixes of dotted paths); the
# arch factors must leave it alone.
TOUCHES = {
    "exec_cv": ("tasks.pre.cycles", "tasks.detect.scale", "tasks.detect.weight_passes",
                "tasks.recognize.scale", "tasks.recognize.weight_passes", "tasks.ocr.scale"),
    "count_spread": ("tasks.detect.sets", "phases.0.vars", "phases.1.vars"),
    "phase_contrast": ("phases.0.vars", "phases.1.vars"),
    "tbs_per_dnn": ("tasks.detect", "flow"),  # the detector's steps only: checked below
    "reconfig_fixed_cycles": (),
    "tbus_per_type": (),
}


def diff_paths(a: Any, b: Any, where: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in a.keys() | b.keys():
            sub = f"{where}.{k}" if where else str(k)
            out |= diff_paths(a.get(k), b.get(k), sub) if k in a and k in b else {sub}
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return set().union(*(diff_paths(x, y, f"{where}.{i}")
                             for i, (x, y) in enumerate(zip(a, b, strict=True))))
    return set() if a == b else {where}


def all_values() -> list[tuple[str, Any]]:
    return [(f.name, v) for f in rg.FACTORS.values()
            for v in dict.fromkeys((*f.quick, *f.full, *f.long))]


def test_there_are_at_least_five_factors_each_with_its_base_among_its_values() -> None:
    assert set(rg.FACTORS) == set(TOUCHES) and len(rg.FACTORS) >= 5
    for f in rg.FACTORS.values():
        assert f.base in f.quick and f.base in f.full and f.base in f.long, f.name
        assert set(f.quick) <= set(f.full) <= set(f.long), f.name


@pytest.mark.parametrize(("factor", "value"), all_values())
def test_the_generated_workflow_validates_at_every_value(factor: str, value: Any,
                                                         tmp_path: Path) -> None:
    data = rg.generate_workflow({factor: value}, 5)
    rg.validate_workflow(data)
    path = rg.write_workflow(data, tmp_path)
    cfg = resolve_config(path, rg.ARCH, "octopus", 1, list(rg.arch_sets({factor: value})))
    wf, arch, _ = cfg.build()  # the arch --set items are valid too
    assert sum(ph["count"] for ph in data["phases"]) == 5
    assert arch.cluster.tbus == round(rg.base_point()["tbus_per_type"] * rg.BASE_TYPES
                                      if factor != "tbus_per_type" else value * rg.BASE_TYPES)


@pytest.mark.parametrize(("factor", "value"), [(f, v) for f, v in all_values()
                                               if v != rg.FACTORS[f].base])
def test_moving_one_factor_changes_only_that_factor(factor: str, value: Any) -> None:
    base_wf, base_arch = rg.generate_workflow({}, 6), rg.arch_sets({})
    wf, arch = rg.generate_workflow({factor: value}, 6), rg.arch_sets({factor: value})
    changed = diff_paths(base_wf, wf)
    allowed = TOUCHES[factor]
    assert all(p.startswith(allowed) for p in changed) if allowed else not changed, changed
    if factor == "tbs_per_dnn":
        assert wf["flow"][0] == "pre" and wf["flow"][-2:] == base_wf["flow"][-2:]
        assert len(wf["flow"]) == 3 + value
    if allowed:
        assert changed, f"{factor}={value} changed nothing in the workflow"
        assert arch == base_arch
    else:
        assert len(set(arch) ^ set(base_arch)) == 2  # one item out, its new value in


def test_phase_contrast_keeps_the_mean_count_and_spread_keeps_the_family() -> None:
    for r in (1.0, 3.0, 8.0):
        phases = rg.generate_workflow({"phase_contrast": r}, 10)["phases"]
        for var in ("objects", "texts"):
            means = [ph["vars"][var]["mean"] for ph in phases]
            assert sum(means) / 2 == pytest.approx(rg.COUNT_MEAN, rel=1e-5)
            assert max(means) / min(means) == pytest.approx(r, rel=1e-5)
    assert rg.count_cv("const") == 0 < rg.count_cv("poisson") < rg.count_cv("geometric") \
        < rg.count_cv("bimodal")


def _fake_runner(makespans: dict[str, int], calls: list[list[RunSpec]]) -> rg.Runner:
    def run(specs: list[RunSpec]) -> list[RunResult]:
        calls.append(specs)
        return [RunResult(s, {"makespan_cycles": makespans[s.policy] * (1 + s.seed)})
                for s in specs]
    return run


def test_regime_map_shape_and_the_best_baseline_is_the_least_speedup(tmp_path: Path) -> None:
    plan = rg.RegimePlan((("exec_cv", (0.0, 0.5)), ("tbus_per_type", (4, 8))), 4, (1, 2))
    calls: list[list[RunSpec]] = []
    ms = {"octopus": 100, "static": 300, "reactive": 180, "indiscriminate": 250}
    out = rg.regime_map(plan, {"reactive": ("policy.threshold=0.3",)}, _fake_runner(ms, calls),
                        tmp_path)
    assert list(out) == ["exec_cv", "tbus_per_type"]
    assert [e["value"] for e in out["exec_cv"]] == [0.0, 0.5]
    for entries in out.values():
        for e in entries:
            assert e["speedup_vs_best_baseline"] == 1.8 and e["best_baseline"] == "reactive"
            assert e["speedup"] == {"static": 3.0, "reactive": 1.8, "indiscriminate": 2.5}
            assert e["makespan_cycles"]["octopus"] == 250  # mean of 200 and 300
    # one call; the base point (exec_cv 0.5 = tbus_per_type 4) runs once; every policy on
    # every seed; the tuned items reach their policy only
    assert len(calls) == 1
    specs = calls[0]
    assert len(specs) == len(set(specs)) == 3 * 4 * 2
    assert all(("policy.threshold=0.3" in s.sets) == (s.policy == "reactive") for s in specs)
    assert {s.seed for s in specs} == {1, 2}


def test_a_failing_point_is_an_entry_with_its_error_and_the_others_are_measured() -> None:
    plan = rg.RegimePlan((("reconfig_fixed_cycles", (0, -1)),), 3, (1,))
    out = rg.regime_map(plan, None, lambda specs: run_many(specs, 1))
    ok, bad = out["reconfig_fixed_cycles"]
    assert ok["speedup_vs_best_baseline"] > 0 and "error" not in ok
    assert ok["best_baseline"] in rg.BASELINES
    assert bad["speedup_vs_best_baseline"] is None
    assert "reconfig.fixed_cycles" in bad["error"]
    assert rg.regimes_at_least(out, 0.0) == [{"factor": "reconfig_fixed_cycles", **ok}]


def test_tuned_sets_come_from_a_reproduce_report() -> None:
    report = {"tuning": {"reactive": {"grid": {}, "best": {"threshold": 0.5, "peas": "min"}}},
              "baseline_settings": {"reactive": ["policy.x=1"], "static": ["policy.peas=4"]}}
    assert rg.tuned_sets_from_report(report) == {
        "reactive": ("policy.threshold=0.5", "policy.peas=min"),
        "static": ("policy.peas=4",)}
