"""The wafer-scale study (issue 11): balancers, scaling with the grid, and the cost of a run.

Four studies, each printing one JSON object on stdout (progress on stderr):

``balancers``
    On ``octopus-wafer`` (8x8 clusters, instances entering at the 28 edge clusters), each
    workflow of the suite in batch mode under Octopus with ``balancer`` none, diffusion and
    central. Figures: diffusion's speed-up over none (target >= 1.2) and its makespan over
    central's (target <= 1.15), per workflow and as geometric means.
``scaling``
    Octopus with diffusion on grids of 1, 4, 16 and 64 clusters (``--grids``), the instances
    growing with the grid (``--per-cluster`` each), memory scaled with the grid (a controller
    of 256 B/cycle on every cluster) and held fixed (the edge controllers of the one-cluster
    chip's total bandwidth, 256 B/cycle, shared). Throughput is instances / makespan; parallel
    efficiency is throughput(N) / (N x throughput(1)) (target >= 0.8 with memory scaled).
``speed``
    Wall time and peak memory of one run against grid size under every policy
    (``--instances-per-cluster``, 312 by default: 19,968 instances on 64 clusters; or
    ``--instances``, a total, the same on every grid: ``--grids 64 --instances 20000``). Each
    run is a fresh process, so its peak RSS is its own.
``table``
    Octopus's speed-up over every baseline on ``octopus-wafer`` (edge I/O), each policy tuned
    by :func:`octosim.experiments.tuning.tune` (the same procedure, budget and seeds for every
    policy) on the wafer, with ``balancer`` (none, diffusion) added as a shared knob to every
    grid here only, then reported on seeds disjoint from the tuning seeds.

Usage::

    python -m bench.wafer balancers --count 2000 --workers 2
    python -m bench.wafer scaling --per-cluster 50 --grids 1,4,16,64 --workers 1
    python -m bench.wafer speed --grids 1,4,16,64 --policies static,octopus
    python -m bench.wafer speed --grids 64 --instances 20000
    python -m bench.wafer table --count 1000 --budget 8 --workers 2
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from octosim.errors import UserError
from octosim.experiments.batch import RunResult, RunSpec, run_many
from octosim.experiments.scaling import ScalingPlan, scaling_study, square_grid
from octosim.experiments.tuning import GRIDS, Grid, TuningPlan, tune
from octosim.workloads import builtin_names

BALANCERS = ("none", "diffusion", "central")
BASELINES = ("static", "reactive", "indiscriminate")
POLICIES = (*BASELINES, "octopus")
TABLE_BALANCERS = ("none", "diffusion")  # the shared knob the table's tuning adds


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def parse_grids(text: str) -> list[int]:
    try:
        return [int(g) for g in text.split(",")]
    except ValueError:
        raise SystemExit(f"error: --grids: {text!r} is not a list of numbers") from None


def grid_of(clusters: int) -> tuple[int, int]:
    try:
        return square_grid(clusters)
    except UserError as exc:
        raise SystemExit(f"error: --grids: {exc.what}") from None


def _progress(res: Any) -> None:
    tags = dict(res.spec.tags)
    label = tags.get("label") or " ".join(f"{k}={v}" for k, v in tags.items())
    state = "failed: " + res.error.splitlines()[0] if res.error else (
        f"{res.summary['makespan_cycles']:,} cycles in {res.summary['wall_seconds']:.1f} s")
    print(f"{res.spec.workflow} {label}: {state}", file=sys.stderr)


def balancers(args: argparse.Namespace) -> dict[str, Any]:
    workflows = args.workflow or builtin_names("workflow")
    base = [f"workflow.arrivals.count={args.count}", "workflow.phases=[]",
            "workflow.arrivals.process=batch"]
    specs = [RunSpec(wf, "octopus-wafer", args.policy, args.seed,
                     (*base, f"policy.balancer={b}"), (("label", b),))
             for wf in workflows for b in BALANCERS]
    results = run_many(specs, args.workers, on_result=_progress)
    ms: dict[str, dict[str, int]] = {}
    moved: dict[str, dict[str, int]] = {}
    failures = []
    for res in results:
        b = dict(res.spec.tags)["label"]
        if res.summary is None:
            failures.append({"workflow": res.spec.workflow, "balancer": b, "error": res.error})
            continue
        ms.setdefault(res.spec.workflow, {})[b] = res.summary["makespan_cycles"]
        moved.setdefault(res.spec.workflow, {})[b] = res.summary["work_moved"]["runs"]
    rows = []
    for wf, m in ms.items():
        if len(m) < len(BALANCERS):
            continue
        rows.append({"workflow": wf, "makespan_cycles": m, "moved_runs": moved[wf],
                     "diffusion_speedup_over_none": round(m["none"] / m["diffusion"], 4),
                     "diffusion_over_central": round(m["diffusion"] / m["central"], 4)})
    return {
        "study": "balancers", "arch": "octopus-wafer", "policy": args.policy,
        "count": args.count, "seed": args.seed, "rows": rows, "failures": failures,
        "geomean_diffusion_speedup_over_none": round(
            geomean([r["diffusion_speedup_over_none"] for r in rows]), 4),
        "geomean_diffusion_over_central": round(
            geomean([r["diffusion_over_central"] for r in rows]), 4),
        "targets": {"diffusion_speedup_over_none": ">= 1.2", "diffusion_over_central": "<= 1.15"},
    }


def scaling(args: argparse.Namespace) -> dict[str, Any]:
    """The study of :mod:`octosim.experiments.scaling` (the one ``reproduce`` runs), at any
    grids and counts."""
    workflows = args.workflow or builtin_names("workflow")
    grids = tuple(parse_grids(args.grids))
    for n in grids:
        grid_of(n)  # a bad --grids is a one-line error before anything runs
    plan = ScalingPlan(grids, args.per_cluster, args.seed, args.policy, args.balancer)
    out = scaling_study(plan, workflows,
                        lambda specs: run_many(specs, args.workers, on_result=_progress),
                        tuple(args.set))
    return {"study": "scaling", **out}


def wafer_grids(policies: tuple[str, ...] = POLICIES) -> dict[str, Grid]:
    """Each policy's tuning grid (tuning.GRIDS) with ``balancer`` in TABLE_BALANCERS as a
    shared knob, first, so the descent sweeps it for every policy whatever the budget. Only
    for this study: on one cluster the balancer is a no-op, so GRIDS (what the chip-scale
    reproduce sweeps) leaves it out."""
    return {p: {"balancer": list(TABLE_BALANCERS), **GRIDS[p]} for p in policies}


def table(args: argparse.Namespace) -> dict[str, Any]:
    """Octopus's speed-up over every tuned baseline on octopus-wafer (edge I/O): each policy
    tuned by tuning.tune (the same procedure, budget and seeds for each) on the wafer, then
    the reported runs on seeds disjoint from the tuning seeds."""
    workflows = args.workflow or builtin_names("workflow")
    seeds = tuple(int(s) for s in args.seeds.split(","))
    tuning_seeds = tuple(int(s) for s in args.tuning_seeds.split(","))
    if set(seeds) & set(tuning_seeds):
        raise SystemExit("error: --seeds: the reported seeds must not be tuning seeds")
    base = (f"workflow.arrivals.count={args.count}", "workflow.phases=[]",
            "workflow.arrivals.process=batch")

    def run(specs: list[RunSpec], what: str) -> list[RunResult]:
        print(f"{what}: {len(specs)} runs", file=sys.stderr)
        return run_many(specs, args.workers, on_result=_progress)

    t0 = time.perf_counter()
    plan = TuningPlan(budget=args.budget, seeds=tuning_seeds)
    tuned = tune(list(POLICIES), workflows, plan, lambda wf: base, "octopus-wafer", run,
                 grids=wafer_grids())
    t_tuned = time.perf_counter()
    specs = [RunSpec(wf, "octopus-wafer", p, seed, (*base, *tuned[p]["best_sets"]),
                     (("label", p),))
             for wf in workflows for seed in seeds for p in POLICIES]
    results = run(specs, "reported runs")
    by: dict[tuple[str, int, str], int] = {}
    failures = []
    for res in results:
        if res.summary is None:
            failures.append({"workflow": res.spec.workflow, "policy": res.spec.policy,
                             "seed": res.spec.seed, "error": res.error})
        else:
            by[(res.spec.workflow, res.spec.seed, res.spec.policy)] = res.summary[
                "makespan_cycles"]
    rows = []
    speedups: dict[str, list[float]] = {b: [] for b in BASELINES}
    for wf in workflows:
        if not all((wf, s, p) in by for s in seeds for p in POLICIES):
            continue
        ms = {p: round(statistics.fmean(by[(wf, s, p)] for s in seeds)) for p in POLICIES}
        # Per seed (common random numbers), then the mean over seeds, as reproduce does.
        sp = {b: round(statistics.fmean(by[(wf, s, b)] / by[(wf, s, "octopus")]
                                        for s in seeds), 4) for b in BASELINES}
        for b in BASELINES:
            speedups[b].append(sp[b])
        best = min(BASELINES, key=lambda b: ms[b])
        rows.append({"workflow": wf, "makespan_cycles": ms, "speedup": sp,
                     "best_baseline": best, "speedup_over_best_baseline": sp[best]})
    return {
        "study": "table", "arch": "octopus-wafer", "io": "edge", "count": args.count,
        "seeds": list(seeds), "tuning_seeds": list(tuning_seeds), "budget": args.budget,
        "procedure": plan.procedure, "rows": rows, "failures": failures,
        "geomean_speedup": {b: round(geomean(v), 4) for b, v in speedups.items()},
        "geomean_speedup_over_best_baseline": round(
            geomean([r["speedup_over_best_baseline"] for r in rows]), 4),
        "tuned": {p: {"best": t["best"], "best_sets": t["best_sets"],
                      "best_score": t["best_score"], "evaluated": t["evaluated"],
                      "runs": t["runs"], "grid": t["grid"], "path": t["path"]}
                  for p, t in tuned.items()},
        "wall_seconds": {"tuning": round(t_tuned - t0, 1),
                         "reported": round(time.perf_counter() - t_tuned, 1)},
        "workers": args.workers,
    }


def _one_run(argv: list[str]) -> dict[str, Any]:
    """Run ``octosim run ... --json`` in a fresh process; its wall time and peak RSS."""
    cmd = [sys.executable, "-c", (
        "import json, resource, sys, time; from octosim.cli import main; "
        "t = time.perf_counter(); rc = main(sys.argv[1:]); "
        "print(json.dumps({'rc': rc, 'wall': time.perf_counter() - t, "
        "'rss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), file=sys.stderr)"),
        *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "{}"
    try:
        info = json.loads(last)
    except json.JSONDecodeError:
        return {"error": proc.stderr.strip()[-300:]}
    summary = json.loads(proc.stdout) if proc.returncode == 0 else {}
    return {"wall_seconds": round(info["wall"], 2),
            "peak_rss_mib": round(info["rss_kib"] / 1024, 1),
            "sim_seconds": summary.get("wall_seconds"), "events": summary.get("events"),
            "instances": summary.get("instances")}


def speed(args: argparse.Namespace) -> dict[str, Any]:
    grids = parse_grids(args.grids)
    policies = args.policies.split(",")
    rows = []
    for n in grids:
        r, c = grid_of(n)
        for pol in policies:
            count = args.instances or args.instances_per_cluster * n
            argv = ["run", args.workflow_name, "--arch", "octopus-wafer", "--policy", pol,
                    "--set", f"arch.grid.rows={r}", "--set", f"arch.grid.cols={c}",
                    "--set", f"workflow.arrivals.count={count}", "--set",
                    f"policy.balancer={args.balancer}", "--json"]
            got = _one_run(argv)
            print(f"{n} clusters {pol}: {got}", file=sys.stderr)
            rows.append({"clusters": n, "policy": pol, "instances": count, **got})
    return {"study": "speed", "workflow": args.workflow_name, "balancer": args.balancer,
            "rows": rows, "targets": {"64 clusters, 20,000 instances": "< 60 s",
                                      "256 clusters, 80,000 instances": "< 300 s"},
            "self_peak_rss_mib": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.wafer", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="study", required=True)
    b = sub.add_parser("balancers")
    b.add_argument("--count", type=int, default=2000)
    b.add_argument("--policy", default="octopus")
    s = sub.add_parser("scaling")
    s.add_argument("--per-cluster", type=int, default=100)
    s.add_argument("--grids", default="1,4,16,64")
    s.add_argument("--policy", default="octopus")
    s.add_argument("--balancer", default="diffusion")
    s.add_argument("--set", action="append", default=[],
                   help="a --set item on every run (e.g. a tuned policy knob)")
    t = sub.add_parser("table")
    t.add_argument("--count", type=int, default=1000, help="instances per run")
    t.add_argument("--budget", type=int, default=8, help="settings tuned per policy")
    t.add_argument("--tuning-seeds", default="101")
    t.add_argument("--seeds", default="1,2", help="reported seeds (not tuning seeds)")
    t.add_argument("--workflow", action="append", default=[])
    t.add_argument("--workers", type=int, default=None)
    for q in (b, s):
        q.add_argument("--workflow", action="append", default=[])
        q.add_argument("--seed", type=int, default=1)
        q.add_argument("--workers", type=int, default=None)
    sp = sub.add_parser("speed")
    sp.add_argument("--grids", default="1,4,16,64")
    sp.add_argument("--policies", default=",".join(POLICIES))
    count = sp.add_mutually_exclusive_group()
    count.add_argument("--instances-per-cluster", type=int, default=312,
                       help="instances per cluster (a grid of N runs N times as many)")
    count.add_argument("--instances", type=int, default=None,
                       help="instances per run, the same total on every grid "
                            "(e.g. --grids 64 --instances 20000)")
    sp.add_argument("--workflow-name", default="street-camera")
    sp.add_argument("--balancer", default="diffusion")
    args = p.parse_args(argv)
    out = {"balancers": balancers, "scaling": scaling, "speed": speed,
           "table": table}[args.study](args)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
