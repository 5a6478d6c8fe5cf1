"""The "Measured size and load" table of docs/workloads.md, from real runs.

For every built-in workflow: one ``static`` run on ``octopus-chip`` with all instances at
cycle 0 (batch arrivals), and the same with unlimited memory bandwidth (the PEA bound); the
Poisson load is ``(lower bound / instances) / interarrival_cycles``.

    python -m bench.workloads_table [--workers 2]
"""

from __future__ import annotations

import argparse

import yaml

from octosim.experiments.batch import RunSpec, run_many
from octosim.workloads import builtin_names, resolve

BATCH = ("workflow.arrivals.process=batch",)
UNLIMITED = ("arch.memory.bytes_per_cycle=1000000000000",)


def rows(workers: int) -> list[str]:
    names = builtin_names("workflow")
    specs = [RunSpec(w, "octopus-chip", "static", 1, BATCH + extra, (("unlimited", bool(extra)),))
             for w in names for extra in ((), UNLIMITED)]
    by = {(r.spec.workflow, r.spec.tag("unlimited")): r for r in run_many(specs, workers)}
    out = ["| workflow | instances | task types | task runs | runs / instance | lower bound "
           "(cycles) | bound / instance | PEA bound / instance | bound by | interarrival | "
           "Poisson load | sim s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for w in names:
        s, u = by[(w, False)].summary, by[(w, True)].summary
        if s is None or u is None:
            out.append(f"| {w} | error: {by[(w, False)].error or by[(w, True)].error} |")
            continue
        data = yaml.safe_load(resolve("workflow", w).read_text())
        gap = float(data["arrivals"]["interarrival_cycles"])
        n = s["instances"]
        bound, pea = s["lower_bound_cycles"] / n, u["lower_bound_cycles"] / n
        out.append(f"| {w} | {n} | {len(s['tasks'])} | {s['task_runs']} | "
                   f"{s['task_runs'] / n:.1f} | {s['lower_bound_cycles']:,} | {bound:,.0f} | "
                   f"{pea:,.0f} | {'memory' if pea < 0.99 * bound else 'PEAs'} | {gap:,.0f} | "
                   f"{bound / gap:.2f} | {s['wall_seconds']:.2f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    print("\n".join(rows(ap.parse_args().workers)))


if __name__ == "__main__":
    main()
