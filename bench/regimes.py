"""The long regime map: Octopus over the best baseline as one factor at a time moves.

    python bench/regimes.py --out /tmp/regimes                    # long: 7 values, 5 seeds
    python bench/regimes.py --out /tmp/regimes --level quick      # the map reproduce --quick runs
    python bench/regimes.py --out /tmp/regimes --tuned OUT/results.json   # tuned settings

Writes ``OUT/regimes.json`` (the map, the points at or above the paper's 2.50x, and the
*combined* point that sets every factor to its most favourable value for Octopus) and one
figure per factor, ``OUT/regime_FACTOR.png``; prints a short JSON summary on stdout. The
methodology is in ``octosim.experiments.regimes`` (module docstring) and bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from octosim.experiments import regimes as rg
from octosim.experiments.batch import RunResult, RunSpec, run_many
from octosim.experiments.report import regime_figure


def combined_point(regimes: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each factor at the value where Octopus's lead over the best baseline was largest."""
    point = {}
    for factor, entries in regimes.items():
        ok = [e for e in entries if e.get("speedup_vs_best_baseline") is not None]
        if ok:
            point[factor] = max(ok, key=lambda e: e["speedup_vs_best_baseline"])["value"]
    return point


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for regimes.json and the figures")
    ap.add_argument("--level", choices=("quick", "full", "long"), default="long")
    ap.add_argument("--instances", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=None, help="seeds 1..N")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--tuned", default=None,
                    help="a reproduce results.json whose tuned settings every policy uses")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tuned: dict[str, tuple[str, ...]] = {}
    if args.tuned:
        tuned = rg.tuned_sets_from_report(json.loads(Path(args.tuned).read_text()))
    plan = rg.make_regime_plan(args.level, tuple(range(1, args.seeds + 1)) if args.seeds
                               else None, args.instances)
    failures: list[dict[str, Any]] = []

    def runner(specs: list[RunSpec]) -> list[RunResult]:
        t0 = time.perf_counter()
        res = run_many(specs, args.workers)
        failures.extend({"spec": r.spec.__dict__, "error": r.error} for r in res if r.error)
        print(f"{len(specs)} runs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return res

    t0 = time.perf_counter()
    workdir = out / "workflows"
    regimes = rg.regime_map(plan, tuned, runner, workdir)
    point = combined_point(regimes)
    (combined_res,) = rg.measure_points([point], plan.instances, plan.seeds, tuned, runner,
                                        workdir)
    combined = {"point": point,
                **rg.point_entry("combined", "combined", combined_res, plan.seeds)}
    report = {
        "plan": {"level": args.level, "instances": plan.instances, "seeds": list(plan.seeds),
                 "arch": rg.ARCH, "base": rg.base_point()},
        "tuned_sets": {k: list(v) for k, v in tuned.items()},
        "regimes": regimes,
        "at_least_paper_mean": rg.regimes_at_least(regimes),
        "combined": combined,
        "paper": rg.PAPER,
        "failures": failures,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "regimes.json").write_text(json.dumps(report, indent=2) + "\n")
    figures = [str(regime_figure(f, entries, out)) for f, entries in regimes.items()]
    summary = {
        "wall_seconds": report["wall_seconds"],
        "regimes": {f: [[e["value"], e["speedup_vs_best_baseline"], e.get("best_baseline")]
                        for e in entries] for f, entries in regimes.items()},
        "at_least_paper_mean": [[e["factor"], e["value"], e["speedup_vs_best_baseline"]]
                                for e in report["at_least_paper_mean"]],
        "combined": {k: combined.get(k) for k in ("point", "speedup_vs_best_baseline",
                                                 "best_baseline", "speedup")},
        "failures": len(failures),
        "figures": figures,
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
