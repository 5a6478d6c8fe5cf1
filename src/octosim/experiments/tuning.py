"""Equal terms: one tuning procedure for every policy, Octopus included (DESIGN.md §3).

Each policy's knobs and their candidate values are declared once, as plain data, in
:data:`GRIDS`. The shared knobs are in every grid where the policy has them: ``buffer_slots``,
the PEA grant (``peas``; Octopus's ATS ``horizon_grant``) and the host round trip
``host_cycles`` (the hardware's coupled-control cost: held at its value, listed so the table
shows it was held). Every policy gets the same procedure and budget: its defaults, then a seeded
random draw without replacement from the rest of its grid, up to ``budget`` settings (all of
them if the grid is smaller). Each setting runs on every workflow and on tuning seeds that are
never reported; its score is the geomean over (workflow, seed) of makespan / lower bound
(lower is better; ties go to the earlier candidate, so the defaults win a tie). A setting with a
failed run gets no score and its failure is reported: a bad grid value is a failure, not a
crash. One suite-wide winner per policy is then used for every reported run of that policy.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from octosim.experiments.batch import RunResult, RunSpec

Grid = dict[str, list[Any]]

PEA_GRANTS_STATIC: list[Any] = ["min", 4, "max"]  # max = 16 on octopus-chip (clamped per task)
BUFFER_SLOTS: list[Any] = [0, 2, 4, 8]  # 0 = unbounded
HOST_CYCLES: list[Any] = [2000]  # coupled-control round trip: the hardware's cost, held

GRIDS: dict[str, Grid] = {
    "static": {
        "buffer_slots": BUFFER_SLOTS,
        "peas": PEA_GRANTS_STATIC,
        "host_cycles": HOST_CYCLES,
        "granularity": ["tbu", "pea"],
    },
    "reactive": {
        "buffer_slots": BUFFER_SLOTS,
        "peas": PEA_GRANTS_STATIC,
        "host_cycles": HOST_CYCLES,
        "granularity": ["tbu", "pea"],
        "threshold": [0.3, 0.5, 0.7],
        "window_cycles": [0, 2_000_000, 20_000_000, 200_000_000],
        "max_moves": [1, 4],
    },
    "indiscriminate": {
        "buffer_slots": BUFFER_SLOTS,
        "peas": [0, 4, 16],  # 0 = each task's minimum; clamped to its range
        "host_cycles": HOST_CYCLES,
        "affinity": [False, True],
        "spread": [False, True],  # only matters on multi-cluster archs
    },
    "octopus": {
        # Octopus has no host round trip (Control Blocks run on the CBU), so no host_cycles.
        # ``ats`` is not swept: it is a strategy the ablation switches off, not a tuning knob.
        "buffer_slots": BUFFER_SLOTS,
        "horizon_grant": [True, False],
        "rebalance_cycles": [5_000, 20_000, 80_000],
        "hysteresis": [0.1, 0.25, 0.5],
        "max_moves": [1, 4, 16],
        "forecast_weight": [0.0, 0.5, 1.0],
        "horizon_cycles": [100_000, 1_000_000, 10_000_000],
        "horizon_arrivals": [8, 32, 128],
    },
}

# Knobs that follow another (not swept on their own): KNOB = max(at_least, FROM // divide).
TIED: dict[str, dict[str, dict[str, Any]]] = {
    "reactive": {"check_cycles": {"from": "window_cycles", "divide": 10, "at_least": 10_000}},
}

RNG_SEED = 20_240_527  # the random search's own seed (no global random state)


@dataclass(frozen=True)
class TuningPlan:
    budget: int  # settings per policy (the defaults included)
    seeds: tuple[int, ...]  # never the reported seeds
    rng_seed: int = RNG_SEED


def policy_defaults(policy: str, grid: Grid) -> dict[str, Any]:
    """The policy's default value of each knob of its grid (a knob it lacks keeps the grid's
    first value, so the run reports the unknown knob rather than this function)."""
    from octosim.policies.registry import get_policy

    fields = get_policy(policy).Params.model_fields
    return {k: fields[k].default if k in fields else values[0] for k, values in grid.items()}


def _with_tied(policy: str, setting: dict[str, Any],
               tied: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    out = dict(setting)
    for knob, rule in tied.get(policy, {}).items():
        if rule["from"] in out:
            out[knob] = max(rule["at_least"], int(out[rule["from"]]) // rule["divide"])
    return out


def candidates(policy: str, grid: Grid, budget: int, rng_seed: int = RNG_SEED,
               tied: dict[str, dict[str, dict[str, Any]]] | None = None
               ) -> list[dict[str, Any]]:
    """The settings tried for ``policy``: its defaults, then distinct settings of the grid
    drawn at random (seeded) until ``budget`` (or the whole grid if it is smaller)."""
    tied = TIED if tied is None else tied
    knobs = list(grid)
    sizes = [len(grid[k]) for k in knobs]
    total = math.prod(sizes)

    def decode(index: int) -> dict[str, Any]:
        setting = {}
        for k, n in zip(reversed(knobs), reversed(sizes), strict=True):
            index, i = divmod(index, n)
            setting[k] = grid[k][i]
        return {k: setting[k] for k in knobs}

    defaults = policy_defaults(policy, grid)
    chosen = [defaults]
    # The defaults are drawn like any setting when they lie off the grid; otherwise skipped.
    rest = [i for i in range(total) if decode(i) != defaults]
    rng = random.Random(rng_seed)
    chosen += [decode(i) for i in rng.sample(rest, min(len(rest), max(0, budget - 1)))]
    return [_with_tied(policy, s, tied) for s in chosen]


def setting_sets(setting: dict[str, Any]) -> tuple[str, ...]:
    """``--set`` items for a setting (values as JSON, which YAML reads back unchanged)."""
    return tuple(f"policy.{k}={json.dumps(v)}" for k, v in setting.items())


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def tune(policies: list[str], workflows: list[str], plan: TuningPlan,
         base_sets: Callable[[str], tuple[str, ...]], arch: str,
         run: Callable[[list[RunSpec], str], list[RunResult]],
         grids: dict[str, Grid] | None = None,
         tied: dict[str, dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Tune every policy of ``policies`` by the same procedure (see the module docstring);
    ``base_sets(workflow)`` gives the ``--set`` items every tuning run of that workflow has
    (instance scale, arrivals), ``run(specs, what)`` runs a batch. Returns the tuning table:
    ``{POLICY: {grid, tied, defaults, best, best_sets, budget, seeds, candidates}}``."""
    grids = GRIDS if grids is None else grids
    tied = TIED if tied is None else tied
    table: dict[str, Any] = {}
    for policy in policies:
        grid = grids[policy]
        cands = candidates(policy, grid, plan.budget, plan.rng_seed, tied)
        specs = [RunSpec(wf, arch, policy, seed, (*base_sets(wf), *setting_sets(c)),
                         (("tune", policy), ("candidate", i)))
                 for i, c in enumerate(cands) for wf in workflows for seed in plan.seeds]
        results = run(specs, f"tuning {policy}")
        ratios: dict[int, list[float]] = {i: [] for i in range(len(cands))}
        errors: dict[int, str] = {}
        for r in results:
            i = r.spec.tag("candidate")
            if r.summary and r.summary.get("lower_bound_cycles"):
                ratios[i].append(r.summary["makespan_cycles"] / r.summary["lower_bound_cycles"])
            else:
                errors.setdefault(i, r.error or "no lower bound")
        rows = []
        best: int | None = None
        best_score = math.inf
        for i, c in enumerate(cands):
            complete = i not in errors and len(ratios[i]) == len(workflows) * len(plan.seeds)
            score = round(_geomean(ratios[i]), 6) if complete else None
            row: dict[str, Any] = {**c, "score": score}
            if not complete:
                row["error"] = errors.get(i, "incomplete")
            rows.append(row)
            if score is not None and score < best_score:  # strict: ties to the earlier
                best, best_score = i, score
        winner = cands[best] if best is not None else cands[0]
        table[policy] = {
            "grid": {k: list(v) for k, v in grid.items()},
            "tied": {k: f"max({r['at_least']}, {r['from']} // {r['divide']})"
                     for k, r in tied.get(policy, {}).items()},
            "defaults": cands[0],
            "best": winner,
            "best_sets": list(setting_sets(winner)),
            "best_score": best_score if best is not None else None,
            "budget": plan.budget,
            "seeds": list(plan.seeds),
            "candidates": rows,
        }
    return table
