"""The paper's evaluation, measured on our own model: ``octosim reproduce``.

Makespans of every built-in workflow on ``octopus-chip`` with all instances available at cycle
0, under the baselines (``static``, a tuned ``reactive``, ``indiscriminate``) and ``octopus``;
speed-ups over each baseline and the ratio to the lower bound, over several seeds; the
ablation static → +DDS → +ATS → +PCS; utilisation and the idle breakdown per policy; tail
latency under Poisson arrivals at 50% and 80% of saturation (saturation = the lower bound's
throughput); and the wafer scaling study (:mod:`octosim.experiments.scaling`: Octopus with
diffusion on 1 to 16 or 64 clusters, under the report's ``"scaling"`` key, with Octopus's
tuned knobs). Every policy, Octopus included, is first tuned by one procedure on seeds that are
not reported (:mod:`octosim.experiments.tuning`); its winner is used for all its reported runs,
and the ablation switches strategies off Octopus's winner. Every number in the report comes from
these runs.
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octosim.errors import UserError
from octosim.experiments.batch import JsonLines, RunResult, RunSpec, run_many
from octosim.experiments.regimes import make_regime_plan, regime_map
from octosim.experiments.run import write_atomic
from octosim.experiments.scaling import make_scaling_plan, scaling_study
from octosim.experiments.tuning import TuningPlan, tune
from octosim.model.loader import load_yaml_file
from octosim.workloads import builtin_names, resolve

ARCH = "octopus-chip"
BASELINES = ("static", "reactive", "indiscriminate")
OCTOPUS = "octopus"
ABLATION: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("static", "static", ()),
    ("+DDS", OCTOPUS, ("policy.ats=false", "policy.pcs=false")),
    ("+ATS", OCTOPUS, ("policy.pcs=false",)),
    ("+PCS", OCTOPUS, ()),
)
POLICIES = (*BASELINES, OCTOPUS)
LOADS = (0.5, 0.8)
PAPER = {"mean": 2.50, "max": 4.26}


@dataclass(frozen=True)
class Plan:
    quick: bool
    scale: float  # instance counts x scale, for the reported runs and the tuning alike
    seeds: tuple[int, ...]  # reported
    tuning: TuningPlan  # its seeds are disjoint from ``seeds``
    workflows: tuple[str, ...]


def make_plan(quick: bool, workflows: list[str] | None = None) -> Plan:
    names = tuple(workflows or builtin_names("workflow"))
    if quick:
        return Plan(True, 0.25, (1,), TuningPlan(budget=4, seeds=(101,)), names)
    return Plan(False, 1.0, (1, 2, 3), TuningPlan(budget=24, seeds=(101, 102)), names)


def scaled_sets(workflow: str, scale: float) -> tuple[str, ...]:
    """``--set`` items that shrink a workflow's instance count, phase by phase."""
    if scale == 1.0:
        return ()
    data = load_yaml_file(resolve("workflow", workflow))
    phases = data.get("phases") or []
    if phases:
        counts = [max(1, round(p["count"] * scale)) for p in phases]
        new = [dict(p, count=c) for p, c in zip(phases, counts, strict=True)]
        return (f"workflow.arrivals.count={sum(counts)}",
                "workflow.phases=" + json.dumps(new))
    return (f"workflow.arrivals.count={max(1, round(data['arrivals']['count'] * scale))}",)


BATCH = ("workflow.arrivals.process=batch",)


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else 0.0


def _stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"mean": 0.0, "geomean": 0.0, "max": 0.0, "min": 0.0}
    return {"mean": round(statistics.fmean(xs), 4), "geomean": round(_geomean(xs), 4),
            "max": round(max(xs), 4), "min": round(min(xs), 4)}


class Reproduction:
    def __init__(self, plan: Plan, out: Path | None, workers: int | None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.plan = plan
        self.out = out
        self.workers = workers
        self.progress = progress or (lambda msg: None)
        self.failures: list[dict[str, Any]] = []
        self.log: JsonLines | None = JsonLines(out / "runs.jsonl") if out else None

    def _run(self, specs: list[RunSpec], what: str) -> list[RunResult]:
        t0 = time.perf_counter()
        done = [0]

        def on_result(res: RunResult) -> None:
            done[0] += 1
            if self.log:
                self.log(res)
            if res.error:
                self.failures.append({"spec": res.spec.__dict__, "error": res.error})
            if done[0] % 10 == 0 or done[0] == len(specs):
                self.progress(f"{what}: {done[0]}/{len(specs)} runs "
                              f"({time.perf_counter() - t0:.0f} s)")

        return run_many(specs, self.workers, on_result)

    # --- experiments ------------------------------------------------------------------------

    def tune(self) -> dict[str, Any]:
        """The tuning table of every policy (the same procedure and budget for each)."""
        return tune(list(POLICIES), list(self.plan.workflows), self.plan.tuning,
                    lambda wf: (*scaled_sets(wf, self.plan.scale), *BATCH), ARCH, self._run)

    def makespans(self, tuned: dict[str, tuple[str, ...]]) -> list[RunResult]:
        specs = []
        policies = [(p, tuned.get(p, ())) for p in POLICIES]
        for label, policy, ablated in ABLATION[1:3]:
            policies.append((f"{policy}{label}", (*tuned.get(policy, ()), *ablated)))
        for wf in self.plan.workflows:
            base = (*scaled_sets(wf, self.plan.scale), *BATCH)
            for seed in self.plan.seeds:
                for name, extra in policies:
                    policy = name.split("+")[0]
                    specs.append(RunSpec(wf, ARCH, policy, seed, (*base, *extra),
                                         (("label", name),)))
        return self._run(specs, "makespans")

    def latencies(self, saturation_gaps: dict[str, float], tuned: dict[str, tuple[str, ...]]
                  ) -> list[RunResult]:
        """Every policy under Poisson arrivals at each load of :data:`LOADS`, as a fraction of
        saturation: the highest throughput any tuned policy sustains on the batch of the same
        workflow (``saturation_gaps``: its cycles per instance). The lower bound's throughput
        is not reached by any policy on several workflows, so a fraction of it overloads them
        all and their latencies measure only the overload."""
        specs = []
        for wf in self.plan.workflows:
            if wf not in saturation_gaps:
                continue
            sat_gap = saturation_gaps[wf]
            for load in LOADS:
                gap = max(1.0, sat_gap / load)
                for name in POLICIES:
                    extra = tuned.get(name, ())
                    sets = (*scaled_sets(wf, self.plan.scale),
                            "workflow.arrivals.process=poisson",
                            f"workflow.arrivals.interarrival_cycles={gap:.3f}", *extra)
                    specs.append(RunSpec(wf, ARCH, name, 1, sets, (("load", load),)))
        return self._run(specs, "tail latency")

    # --- the whole evaluation -------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        tuning = self.tune()
        tuned = {name: tuple(t["best_sets"]) for name, t in tuning.items()}
        t_tuned = time.perf_counter()
        ms = self.makespans(tuned)
        report = self._summarise(ms)
        report["tuning"] = tuning
        report["tuning_wall_seconds"] = round(t_tuned - t0, 1)
        gaps = {w["workflow"]: min(w["makespan_cycles"][p] for p in POLICIES) / w["instances"]
                for w in report["workflows"]}
        lat = self.latencies(gaps, tuned)
        report["latency"] = self._latency_table(lat)
        report["latency_vs_best_baseline"] = latency_vs_best(report["latency"])
        report["regimes"] = regime_map(make_regime_plan("quick" if self.plan.quick else "full"),
                                       tuned, lambda specs: self._run(specs, "regimes"))
        t_scaling = time.perf_counter()
        report["scaling"] = scaling_study(make_scaling_plan(self.plan.quick),
                                          self.plan.workflows,
                                          lambda specs: self._run(specs, "scaling"),
                                          tuned.get(OCTOPUS, ()))
        report["scaling"]["wall_seconds"] = round(time.perf_counter() - t_scaling, 1)
        report["failures"] = self.failures
        report["wall_seconds"] = round(time.perf_counter() - t0, 1)
        if self.log:
            self.log.close()
        return report

    def _summarise(self, results: list[RunResult]) -> dict[str, Any]:
        by: dict[tuple[str, int, str], dict[str, Any]] = {}
        for r in results:
            if r.summary:
                by[(r.spec.workflow, r.spec.seed, r.spec.tag("label"))] = r.summary
        labels = [*BASELINES, OCTOPUS, "octopus+DDS", "octopus+ATS"]
        workflows = []
        speed: dict[str, list[float]] = {b: [] for b in BASELINES}
        speed_by_seed: dict[str, dict[int, list[float]]] = {b: {} for b in BASELINES}
        bound: list[float] = []
        ablation: dict[str, list[float]] = {label: [] for label, _, _ in ABLATION}
        util: dict[str, dict[str, list[float]]] = {}
        for wf in self.plan.workflows:
            seeds = [s for s in self.plan.seeds if all((wf, s, lb) in by for lb in labels)]
            if not seeds:
                continue
            entry: dict[str, Any] = {"workflow": wf, "seeds": seeds}
            entry["makespan_cycles"] = {
                lb: round(statistics.fmean(by[(wf, s, lb)]["makespan_cycles"] for s in seeds))
                for lb in labels}
            entry["lower_bound_cycles"] = round(statistics.fmean(
                by[(wf, s, OCTOPUS)]["lower_bound_cycles"] for s in seeds))
            entry["instances"] = by[(wf, seeds[0], OCTOPUS)]["instances"]
            entry["task_runs"] = by[(wf, seeds[0], OCTOPUS)]["task_runs"]
            entry["speedup"] = {}
            for b in BASELINES:
                per_seed = [by[(wf, s, b)]["makespan_cycles"] / by[(wf, s, OCTOPUS)][
                    "makespan_cycles"] for s in seeds]
                speed[b].extend(per_seed)
                for s, v in zip(seeds, per_seed, strict=True):
                    speed_by_seed[b].setdefault(s, []).append(v)
                entry["speedup"][b] = round(statistics.fmean(per_seed), 4)
            best = min(BASELINES, key=lambda b: entry["makespan_cycles"][b])
            entry["vs_best_baseline"] = {
                "baseline": best,
                "makespan_ratio": round(entry["makespan_cycles"][OCTOPUS]
                                        / entry["makespan_cycles"][best], 4)}
            ratios = [by[(wf, s, OCTOPUS)]["makespan_cycles"] / by[(wf, s, OCTOPUS)][
                "lower_bound_cycles"] for s in seeds]
            bound.extend(ratios)
            entry["bound_ratio"] = round(max(ratios), 4)
            for label, _, _ in ABLATION:
                key = {"static": "static", "+DDS": "octopus+DDS", "+ATS": "octopus+ATS",
                       "+PCS": OCTOPUS}[label]
                ablation[label].extend(by[(wf, s, "static")]["makespan_cycles"]
                                       / by[(wf, s, key)]["makespan_cycles"] for s in seeds)
            for lb in labels:
                u = util.setdefault(lb, {})
                for s in seeds:
                    summ = by[(wf, s, lb)]
                    u.setdefault("pea_utilization", []).append(summ["pea_utilization"])
                    for k, v in summ["idle"].items():
                        u.setdefault(k, []).append(v)
            workflows.append(entry)
        return {
            "arch": ARCH,
            "quick": self.plan.quick,
            "seeds": list(self.plan.seeds),
            "instance_scale": self.plan.scale,
            "workflows": workflows,
            "speedup": {b: _stats(v) for b, v in speed.items()},
            "speedup_min_over_seeds": {
                b: {str(s): round(min(v), 4) for s, v in d.items()}
                for b, d in speed_by_seed.items()},
            "speedup_geomean_by_seed": {
                b: {str(s): round(_geomean(v), 4) for s, v in d.items()}
                for b, d in speed_by_seed.items()},
            "bound_ratio": {"mean": round(statistics.fmean(bound), 4) if bound else 0.0,
                            "max": round(max(bound), 4) if bound else 0.0},
            "ablation_speedup_vs_static": {k: _stats(v) for k, v in ablation.items()},
            "utilization": {lb: {k: round(statistics.fmean(v), 4) for k, v in d.items()}
                            for lb, d in util.items()},
            "paper": PAPER,
        }

    def _latency_table(self, results: list[RunResult]) -> list[dict[str, Any]]:
        rows = []
        for r in results:
            if not r.summary:
                continue
            lat = r.summary["latency_cycles"]
            rows.append({"workflow": r.spec.workflow, "load": r.spec.tag("load"),
                         "policy": r.spec.policy, "mean": lat["mean"], "p50": lat["p50"],
                         "p95": lat["p95"], "p99": lat["p99"],
                         "reconfigurations_per_run": round(
                             r.summary["reconfigurations"] / max(1, r.summary["task_runs"]), 4)})
        return rows


def latency_vs_best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Octopus's mean and p99 latency over the best baseline's (the lowest of the baselines,
    per figure) at each workflow and load, and how many points are within 5%."""
    points = []
    for wf, load in sorted({(r["workflow"], r["load"]) for r in rows}):
        at = {r["policy"]: r for r in rows if r["workflow"] == wf and r["load"] == load}
        if OCTOPUS not in at or not any(b in at for b in BASELINES):
            continue
        entry: dict[str, Any] = {"workflow": wf, "load": load}
        for key in ("mean", "p99"):
            best = min((b for b in BASELINES if b in at), key=lambda b: at[b][key])
            entry[key] = round(at[OCTOPUS][key] / at[best][key], 4) if at[best][key] else 0.0
            entry[f"{key}_best_baseline"] = best
        entry["octopus_reconfigurations_per_run"] = at[OCTOPUS]["reconfigurations_per_run"]
        points.append(entry)
    ok = [p for p in points if p["mean"] <= 1.05 and p["p99"] <= 1.05]
    return {"points": points, "within_5pct": len(ok), "of": len(points),
            "workflows_all_loads_within_5pct": sorted(
                {p["workflow"] for p in points} - {p["workflow"] for p in points
                                                   if p not in ok})}


def command(quick: bool, out: str | None, workflows: list[str] | None) -> str:
    """The command line that gives this reproduction (worker count aside: it changes no
    number), so results.md says how it was made, whatever --out was."""
    args = ["octosim", "reproduce", *(["--quick"] if quick else [])]
    for w in workflows or []:
        args += ["--workflow", w]
    if out is not None:
        args += ["--out", out]
    return shlex.join(args)


def reproduce(quick: bool = False, out: str | None = None, workers: int | None = None,
              workflows: list[str] | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    plan = make_plan(quick, workflows)
    out_dir = Path(out) if out else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "runs.jsonl").unlink(missing_ok=True)
        except OSError as exc:
            raise UserError(f"cannot write results: {exc.strerror or exc}", file=out) from None
    report = Reproduction(plan, out_dir, workers, progress).run()
    report["command"] = command(quick, out, workflows)
    if out_dir is not None:
        from octosim.experiments.report import write_reproduction

        write_atomic(out_dir / "results.json", json.dumps(report, indent=2) + "\n")
        write_reproduction(report, out_dir)
    return report
