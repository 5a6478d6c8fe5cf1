"""Peak memory and wall time of a long run (default: 1,000,000 workflow instances).

Runs the street-camera-like workflow of ``bench/long_run_workflow.yaml`` (general tasks, so the
run measures the engine, not the model zoo) under Poisson arrivals at about 70% load, in a
child process so its peak RSS is its own. Prints one JSON object.

    python bench/long_run.py                  # 1,000,000 instances (about 2 minutes)
    python bench/long_run.py --instances 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time
from octosim.experiments.config import resolve_config
from octosim.experiments.run import simulate
from octosim.engine.metrics import summarize
n = int(sys.argv[1]); wf = sys.argv[2]
cfg = resolve_config(wf, "octopus-chip", "static", 1,
                     [f"workflow.arrivals.count={n}", "workflow.phases=[]"])
t0 = time.perf_counter()
sim = simulate(cfg)
wall = time.perf_counter() - t0
s = summarize(sim)
print(json.dumps({
    "instances": s["instances"], "task_runs": s["task_runs"], "events": s["events"],
    "wall_seconds": round(wall, 2), "sim_wall_seconds": s["wall_seconds"],
    "events_per_second": s["events_per_second"],
    "task_runs_per_second": round(s["task_runs"] / s["wall_seconds"]),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "latency_percentiles_exact": s["latency_percentiles_exact"],
    "latency_cycles": s["latency_cycles"],
}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=1_000_000)
    ap.add_argument("--limit-mib", type=float, default=1024.0)
    args = ap.parse_args()
    wf = str(HERE / "long_run_workflow.yaml")
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.instances), wf],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    result["peak_rss_limit_mib"] = args.limit_mib
    result["within_limit"] = result["peak_rss_mib"] < args.limit_mib
    print(json.dumps(result, indent=2))
    return 0 if result["within_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
