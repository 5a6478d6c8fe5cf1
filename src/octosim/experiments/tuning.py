"""Equal terms: one tuning procedure for every policy, Octopus included (DESIGN.md §3).

Each policy's knobs and their candidate values are declared once, as plain data, in
:data:`GRIDS`. The shared knobs are in every grid where the policy has them: ``buffer_slots``,
the PEA grant (``peas``; Octopus's ATS ``horizon_grant``) and the host round trip
``host_cycles`` (the hardware's coupled-control cost: held at its value, listed so the table
shows it was held). Every policy gets the same procedure and the same budget, counted in
settings evaluated. The procedure (``TuningPlan.procedure``) is a greedy coordinate descent from
the policy's defaults: sweep one knob over its values with the others held at the best so far,
keep the best, knobs in the grid's order, until a whole cycle of knobs improves nothing or the
budget is spent (a setting seen before is neither rerun nor counted). A seeded random search
over the grid (defaults first) is kept, selectable, for comparison: it spent most of its budget
on settings far from any good one. Each setting runs on every workflow and on tuning seeds that
are never reported; its score is the geomean over (workflow, seed) of makespan / lower bound
(lower is better; ties go to the setting evaluated first, so the defaults win a tie). A setting
with a failed run gets no score and its failure is reported: a bad grid value is a failure, not
a crash. One suite-wide winner per policy (the argmin over every setting evaluated) is then
used for every reported run of that policy.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Generator
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
    budget: int  # settings evaluated per policy at most (the defaults included)
    seeds: tuple[int, ...]  # never the reported seeds
    rng_seed: int = RNG_SEED  # for the random search only
    procedure: str = "descent"  # a key of PROCEDURES; one for every policy


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


Key = tuple[Any, ...]
# A procedure proposes settings (grid knobs only) and is sent back their scores (None = failed).
Search = Generator[list[dict[str, Any]], list[float | None], None]


def _key(grid: Grid, setting: dict[str, Any]) -> Key:
    return tuple(setting[k] for k in grid)


def random_search(policy: str, grid: Grid, budget: int, rng_seed: int = RNG_SEED,
                  path: list[dict[str, Any]] | None = None) -> Search:
    """The defaults and ``budget - 1`` other grid points drawn at random, in one batch."""
    settings = candidates(policy, grid, budget, rng_seed, tied={})
    yield settings


def coordinate_descent(policy: str, grid: Grid, budget: int, rng_seed: int = RNG_SEED,
                       path: list[dict[str, Any]] | None = None) -> Search:
    """Greedy coordinate descent from the defaults: sweep one knob over its values with the
    others held at the best so far, keep the sweep's best if it beats the best so far, knobs in
    the grid's order, round and round, until a whole cycle of knobs improves nothing or
    ``budget`` settings have been evaluated (a setting seen before is not run or counted
    again). Every setting evaluated is a candidate; the best so far is their argmin."""
    path = [] if path is None else path
    scores: dict[Key, float | None] = {}
    order: dict[Key, int] = {}

    def evaluate(settings: list[dict[str, Any]]
                 ) -> Generator[list[dict[str, Any]], list[float | None], list[dict[str, Any]]]:
        new = [s for s in settings if _key(grid, s) not in scores][:budget - len(scores)]
        if new:
            got = yield new
            for s, score in zip(new, got, strict=True):
                order[_key(grid, s)] = len(order)
                scores[_key(grid, s)] = score
        return new

    def rank(s: dict[str, Any]) -> tuple[float, int]:
        score = scores.get(_key(grid, s))
        return (math.inf if score is None else score, order.get(_key(grid, s), len(order)))

    current = policy_defaults(policy, grid)
    yield from evaluate([current])
    path.append({"knob": None, "tried": [], "best": None, "score": scores[_key(grid, current)],
                 "improved": False})
    sweepable = [k for k in grid if len(grid[k]) > 1]
    since_improvement = 0
    while sweepable and since_improvement < len(sweepable) and len(scores) < budget:
        before = len(scores)
        for knob in sweepable:
            sweep = [{**current, knob: v} for v in grid[knob]]
            new = yield from evaluate(sweep)
            done = [s for s in sweep if _key(grid, s) in scores]
            best = min(done, key=rank)
            improved = rank(best) < rank(current)
            if improved:
                current = best
            # The knob just swept is at its best given the others: it counts as checked.
            since_improvement = 1 if improved else since_improvement + 1
            path.append({"knob": knob, "tried": [s[knob] for s in new], "best": current[knob],
                         "score": scores[_key(grid, current)], "improved": improved})
            if since_improvement >= len(sweepable) or len(scores) >= budget:
                break
        if len(scores) == before:  # a whole cycle with nothing new: nothing can change
            break


PROCEDURES: dict[str, Callable[..., Search]] = {
    "descent": coordinate_descent,
    "random": random_search,
}


def tune(policies: list[str], workflows: list[str], plan: TuningPlan,
         base_sets: Callable[[str], tuple[str, ...]], arch: str,
         run: Callable[[list[RunSpec], str], list[RunResult]],
         grids: dict[str, Grid] | None = None,
         tied: dict[str, dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Tune every policy of ``policies`` by the same procedure (``plan.procedure``, see the
    module docstring); ``base_sets(workflow)`` gives the ``--set`` items every tuning run of
    that workflow has (instance scale, arrivals), ``run(specs, what)`` runs a batch. The
    policies' searches advance in lock step, one batch of runs per step, so the workers stay
    busy. Returns the tuning table: ``{POLICY: {grid, tied, defaults, best, best_sets,
    best_score, procedure, budget, evaluated, runs, seeds, candidates, path}}``."""
    grids = GRIDS if grids is None else grids
    tied = TIED if tied is None else tied
    procedure = PROCEDURES[plan.procedure]
    paths: dict[str, list[dict[str, Any]]] = {p: [] for p in policies}
    searches = {p: procedure(p, grids[p], plan.budget, plan.rng_seed, paths[p])
                for p in policies}
    rows: dict[str, list[dict[str, Any]]] = {p: [] for p in policies}
    pending = {p: next(s, None) for p, s in searches.items()}
    step = 0
    while any(pending.values()):
        asked = {p: [_with_tied(p, s, tied) for s in req] for p, req in pending.items() if req}
        specs = [RunSpec(wf, arch, p, seed, (*base_sets(wf), *setting_sets(c)),
                         (("tune", p), ("candidate", len(rows[p]) + i)))
                 for p, cands in asked.items() for i, c in enumerate(cands)
                 for wf in workflows for seed in plan.seeds]
        step += 1
        results = run(specs, f"tuning step {step}")
        ratios: dict[tuple[str, int], list[float]] = {}
        errors: dict[tuple[str, int], str] = {}
        for r in results:
            at = (r.spec.policy, r.spec.tag("candidate"))
            if r.summary and r.summary.get("lower_bound_cycles"):
                ratios.setdefault(at, []).append(
                    r.summary["makespan_cycles"] / r.summary["lower_bound_cycles"])
            else:
                errors.setdefault(at, r.error or "no lower bound")
        for p, cands in asked.items():
            got: list[float | None] = []
            for c in cands:
                at = (p, len(rows[p]))
                complete = (at not in errors
                            and len(ratios.get(at, [])) == len(workflows) * len(plan.seeds))
                score = round(_geomean(ratios[at]), 6) if complete else None
                row: dict[str, Any] = {**c, "score": score}
                if not complete:
                    row["error"] = errors.get(at, "incomplete")
                rows[p].append(row)
                got.append(score)
            try:
                pending[p] = searches[p].send(got)
            except StopIteration:
                pending[p] = None
    table: dict[str, Any] = {}
    for p in policies:
        grid, cands = grids[p], rows[p]
        scored = [i for i, c in enumerate(cands) if c["score"] is not None]
        # The argmin over every setting evaluated; ties go to the one evaluated first.
        best = min(scored, key=lambda i: (cands[i]["score"], i)) if scored else None
        setting = {k: v for k, v in cands[best if best is not None else 0].items()
                   if k not in ("score", "error")}
        table[p] = {
            "grid": {k: list(v) for k, v in grid.items()},
            "tied": {k: f"max({r['at_least']}, {r['from']} // {r['divide']})"
                     for k, r in tied.get(p, {}).items()},
            "defaults": {k: v for k, v in cands[0].items() if k not in ("score", "error")},
            "best": setting,
            "best_sets": list(setting_sets(setting)),
            "best_score": cands[best]["score"] if best is not None else None,
            "procedure": plan.procedure,
            "budget": plan.budget,
            "evaluated": len(cands),
            "runs": len(cands) * len(workflows) * len(plan.seeds),
            "seeds": list(plan.seeds),
            "candidates": cands,
            "path": paths[p],
        }
    return table
