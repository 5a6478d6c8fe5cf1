"""Does the cost of a run grow with the work simulated, not with the size of the chip?

The same workload (``street-camera``, Poisson arrivals, no phases) is simulated on the three
built-in chips -- ``octopus-chip`` (1 cluster, 256 PEAs), ``octopus-4c`` (4 clusters) and
``octopus-wafer`` (64 clusters, 16,384 PEAs) -- under every built-in policy. The simulated
work (task runs) is identical on all three (common random numbers); what may differ is the
number of events (a policy that rebinds more on a larger chip schedules more). The figures of
merit are the wall time per task run and per event on each chip relative to ``octopus-chip``
in the same run (best of ``--repeats``): close to 1 means the cost does not depend on the
number of units (target: within 1.2 per task run).

Usage::

    python bench/chip_scaling.py                         # 2,000 and 20,000 instances
    python bench/chip_scaling.py --instances 1000 --repeats 1

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from octosim.experiments.config import resolve_config
from octosim.experiments.run import simulate

ARCHS = ("octopus-chip", "octopus-4c", "octopus-wafer")
POLICIES = ("static", "reactive", "indiscriminate", "octopus")


TARGET = 1.2


def run_one(arch: str, policy: str, instances: int, seed: int,
            repeats: int) -> dict[str, Any]:
    cfg = resolve_config("street-camera", arch, policy, seed=seed,
                         sets=[f"workflow.arrivals.count={instances}", "workflow.phases=[]"])
    best: dict[str, Any] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim = simulate(cfg)
        wall = time.perf_counter() - t0
        if best and sim.wall_seconds >= best["sim_wall_seconds"]:
            continue
        runs = sum(sim.task_count)
        best = {"task_runs": runs, "events": sim.events,
                "sim_wall_seconds": round(sim.wall_seconds, 4),
                "end_to_end_seconds": round(wall, 4),
                "us_per_task_run": round(1e6 * sim.wall_seconds / max(1, runs), 3),
                "us_per_event": round(1e6 * sim.wall_seconds / max(1, sim.events), 3),
                "peas": sim.alive_peas}
    return best


def scaling(instances: int, seed: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"instances": instances, "policies": {}}
    for policy in POLICIES:
        rows = {arch: run_one(arch, policy, instances, seed, repeats) for arch in ARCHS}
        chip = rows["octopus-chip"]
        for r in rows.values():
            r["us_per_task_run_vs_chip"] = round(r["us_per_task_run"] / chip["us_per_task_run"],
                                                 3)
            r["us_per_event_vs_chip"] = round(r["us_per_event"] / chip["us_per_event"], 3)
        out["policies"][policy] = rows
    out["worst_us_per_task_run_vs_chip"] = max(
        r["us_per_task_run_vs_chip"] for rows in out["policies"].values() for r in rows.values())
    out["worst_us_per_event_vs_chip"] = max(
        r["us_per_event_vs_chip"] for rows in out["policies"].values() for r in rows.values())
    out["meets_target"] = out["worst_us_per_task_run_vs_chip"] <= TARGET
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--repeats", type=int, default=2, help="runs per point; the best is kept")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = {"workflow": "street-camera", "target_vs_chip": TARGET,
           "runs": [scaling(n, args.seed, args.repeats) for n in args.instances]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
