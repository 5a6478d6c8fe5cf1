"""Does the cost of a run grow with the work simulated, not with the size of the chip?

The same workload (``street-camera``, Poisson arrivals, no phases) is simulated on the three
built-in chips -- ``octopus-chip`` (1 cluster, 256 PEAs), ``octopus-4c`` (4 clusters) and
``octopus-wafer`` (64 clusters, 16,384 PEAs) -- under every built-in policy. The simulated
work (task runs) is identical on all three (common random numbers); what may differ is the
number of events (a policy that rebinds more on a larger chip schedules more). The figure of
merit is the wall time per event on each chip relative to ``octopus-chip`` in the same run:
close to 1 means the cost of an event does not depend on the number of units.

Usage::

    python bench/chip_scaling.py                  # 4,000 instances, about 15 s
    python bench/chip_scaling.py --instances 1000

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


def run_one(arch: str, policy: str, instances: int, seed: int) -> dict[str, Any]:
    cfg = resolve_config("street-camera", arch, policy, seed=seed,
                         sets=[f"workflow.arrivals.count={instances}", "workflow.phases=[]"])
    t0 = time.perf_counter()
    sim = simulate(cfg)
    wall = time.perf_counter() - t0
    return {"task_runs": sum(sim.task_count), "events": sim.events,
            "sim_wall_seconds": round(sim.wall_seconds, 4), "end_to_end_seconds": round(wall, 4),
            "us_per_event": round(1e6 * sim.wall_seconds / max(1, sim.events), 3),
            "peas": sim.alive_peas}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out: dict[str, Any] = {"workflow": "street-camera", "instances": args.instances,
                           "policies": {}}
    for policy in POLICIES:
        rows = {arch: run_one(arch, policy, args.instances, args.seed) for arch in ARCHS}
        base = rows["octopus-chip"]["us_per_event"]
        for r in rows.values():
            r["us_per_event_vs_chip"] = round(r["us_per_event"] / base, 3)
        out["policies"][policy] = rows
    worst = max(r["us_per_event_vs_chip"] for rows in out["policies"].values()
                for r in rows.values())
    out["worst_us_per_event_vs_chip"] = worst
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
