"""Rebind churn under Poisson load: reconfigurations per task run of ``octopus``, and its wall
time per task run over ``static``'s, on every built-in workflow (issue: no rebind churn).

Saturation is Octopus's own throughput with every instance present at once (its batch
makespan), so "50% load" is half of what the chip sustains under Octopus; the same arrival
sequence (common random numbers, seed 1) is run under both policies.

    python -m bench.churn [--loads 0.5 0.8] [--workers 1] [--set policy.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse

from octosim.experiments.batch import RunSpec, run_many
from octosim.workloads import builtin_names

ARCH = "octopus-chip"


def measure(loads: list[float], workers: int, extra: tuple[str, ...]) -> list[dict[str, object]]:
    """One row per workflow and load: reconfigurations per task run, wall-time ratio, and the
    mean and p99 latency of Octopus over static's."""
    names = builtin_names("workflow")
    batch = run_many([RunSpec(w, ARCH, "octopus", 1, ("workflow.arrivals.process=batch", *extra))
                      for w in names], workers)
    specs = []
    for res in batch:
        if res.summary is None:
            raise SystemExit(f"{res.spec.workflow}: {res.error}")
        per_instance = res.summary["makespan_cycles"] / res.summary["instances"]
        for load in loads:
            sets = ("workflow.arrivals.process=poisson",
                    f"workflow.arrivals.interarrival_cycles={per_instance / load:.3f}")
            for policy in ("octopus", "static"):
                specs.append(RunSpec(res.spec.workflow, ARCH, policy, 1,
                                     sets + (extra if policy == "octopus" else ()),
                                     (("load", load),)))
    by = {(r.spec.workflow, r.spec.tag("load"), r.spec.policy): r for r in run_many(specs, workers)}
    rows = []
    for w in names:
        for load in loads:
            o, s = by[(w, load, "octopus")].summary, by[(w, load, "static")].summary
            if o is None or s is None:
                rows.append({"workflow": w, "load": load, "error": by[(w, load, "octopus")].error
                             or by[(w, load, "static")].error})
                continue
            rows.append({
                "workflow": w, "load": load,
                "reconfigurations_per_run": o["reconfigurations"] / o["task_runs"],
                "wall_per_run_vs_static": (o["wall_seconds"] / o["task_runs"])
                / (s["wall_seconds"] / s["task_runs"]),
                "mean_latency_vs_static": o["latency_cycles"]["mean"] / s["latency_cycles"]["mean"],
                "p99_latency_vs_static": o["latency_cycles"]["p99"] / s["latency_cycles"]["p99"],
            })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=float, nargs="+", default=[0.5, 0.8])
    # One worker: the two policies of a pair run one after the other, not beside each other
    # (run side by side on 2 cores, a point moved by +-30% between runs).
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], dest="sets",
                    help="extra --set items for octopus")
    args = ap.parse_args()
    rows = measure(args.loads, args.workers, tuple(args.sets))
    print(f"{'workflow':22s} {'load':>5s} {'rebinds/run':>12s} {'wall/run vs static':>19s} "
          f"{'mean lat':>9s} {'p99 lat':>8s}")
    for r in rows:
        if "error" in r:
            print(f"{r['workflow']:22s} {r['load']:5.2f} error: {r['error']}")
            continue
        print(f"{r['workflow']:22s} {r['load']:5.2f} {r['reconfigurations_per_run']:12.4f} "
              f"{r['wall_per_run_vs_static']:19.2f} {r['mean_latency_vs_static']:9.3f} "
              f"{r['p99_latency_vs_static']:8.3f}")
    for load in args.loads:
        vals = [r["reconfigurations_per_run"] for r in rows
                if r["load"] == load and "error" not in r]
        print(f"load {load}: worst rebinds per run {max(vals):.4f}")


if __name__ == "__main__":
    main()
