"""Is the coordinate descent at least as good a tuner as the random search it replaced?

Both procedures tune every policy with their own budget on the same tuning seeds, workflows and
instance scale as ``octosim reproduce`` (full: scale 1.0, seeds 101 and 102; ``--quick``: the
quick plan's scale and seed). Runs are cached across the two procedures (the same setting of the
same policy on the same workflow and seed is run once), so the defaults, which both evaluate
first, run once. Prints one JSON object: per policy and procedure the winning score (geomean
over workflows x seeds of makespan / lower bound), the winner, the settings evaluated and runs.

Usage::

    python bench/tuning_compare.py --quick
    python bench/tuning_compare.py --random-budget 16 --descent-budget 24
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from octosim.experiments.batch import RunResult, RunSpec, run_many
from octosim.experiments.reproduce import ARCH, BATCH, POLICIES, make_plan, scaled_sets
from octosim.experiments.tuning import tune


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the quick plan's scale and seed")
    ap.add_argument("--random-budget", type=int, default=16, help="default: %(default)s")
    ap.add_argument("--descent-budget", type=int, default=None,
                    help="default: the plan's budget")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    plan = make_plan(args.quick)
    cache: dict[tuple[str, str, int, tuple[str, ...]], RunResult] = {}
    counts = {"run": 0, "cached": 0}

    def run(specs: list[RunSpec], what: str) -> list[RunResult]:
        todo = [s for s in specs if (s.workflow, s.policy, s.seed, s.sets) not in cache]
        t0 = time.perf_counter()
        for r in run_many(todo, args.workers):
            cache[(r.spec.workflow, r.spec.policy, r.spec.seed, r.spec.sets)] = r
        counts["run"] += len(todo)
        counts["cached"] += len(specs) - len(todo)
        print(f"{what}: {len(todo)} runs ({len(specs) - len(todo)} cached) "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return [dataclasses.replace(cache[(s.workflow, s.policy, s.seed, s.sets)], spec=s)
                for s in specs]

    def base(wf: str) -> tuple[str, ...]:
        return (*scaled_sets(wf, plan.scale), *BATCH)

    out: dict[str, dict[str, dict[str, object]]] = {p: {} for p in POLICIES}
    budgets = {"descent": args.descent_budget or plan.tuning.budget,
               "random": args.random_budget}
    t0 = time.perf_counter()
    for procedure, budget in budgets.items():
        tp = dataclasses.replace(plan.tuning, procedure=procedure, budget=budget)
        table = tune(list(POLICIES), list(plan.workflows), tp, base, ARCH, run)
        for p, t in table.items():
            out[p][procedure] = {k: t[k] for k in ("best_score", "best", "budget", "evaluated",
                                                   "runs")}
            out[p][procedure]["defaults_score"] = t["candidates"][0]["score"]
    print(json.dumps({"scale": plan.scale, "seeds": list(plan.tuning.seeds),
                      "workflows": len(plan.workflows), "policies": out, **counts,
                      "wall_seconds": round(time.perf_counter() - t0, 1)}, indent=1))


if __name__ == "__main__":
    main()
