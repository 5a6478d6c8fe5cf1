"""Equal terms (DESIGN.md §3): one tuning procedure, one budget, unreported seeds, argmin wins."""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import pytest

from octosim.experiments import tuning
from octosim.experiments.batch import RunResult, RunSpec
from octosim.experiments.reproduce import POLICIES, Plan, Reproduction, make_plan
from octosim.experiments.tuning import GRIDS, TuningPlan, candidates, policy_defaults, tune

WORKFLOWS = ["street-camera", "document-ocr"]


def fake_runner(makespan: Any, seen: list[RunSpec]) -> Any:
    """A runner that runs nothing: ``makespan(spec)`` over a lower bound of 100."""
    def run(specs: list[RunSpec], what: str) -> list[RunResult]:
        seen.extend(specs)
        return [RunResult(s, {"makespan_cycles": makespan(s), "lower_bound_cycles": 100})
                for s in specs]
    return run


def pass_size(policy: str) -> int:
    """Settings one pass of the descent evaluates from the defaults (they lie on the grid)."""
    return 1 + sum(len(v) - 1 for v in GRIDS[policy].values())


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("procedure", ["descent", "random"])
def test_every_policy_gets_the_same_procedure_and_budget(quick: bool, procedure: str) -> None:
    plan = make_plan(quick)
    tp = dataclasses.replace(plan.tuning, procedure=procedure)
    assert plan.tuning.procedure == "descent"  # what reproduce uses, for every policy
    seen: list[RunSpec] = []
    # A landscape where every knob matters, so the descent never stops before its budget.
    table = tune(list(POLICIES), WORKFLOWS, tp, lambda wf: (), "octopus-chip",
                 fake_runner(lambda s: 100 + hash(s.sets) % 997, seen))
    runs = {p: sum(1 for s in seen if s.policy == p) for p in POLICIES}
    for p in POLICIES:
        t = table[p]
        assert t["budget"] == plan.tuning.budget and t["procedure"] == procedure
        assert 1 <= t["evaluated"] == len(t["candidates"]) <= plan.tuning.budget, p
        assert runs[p] == t["runs"] == t["evaluated"] * len(WORKFLOWS) * len(tp.seeds), p
        keyed = [tuple(c[k] for k in GRIDS[p]) for c in t["candidates"]]
        assert len(set(keyed)) == len(keyed), p  # nothing evaluated (or counted) twice
        scores = [c["score"] for c in t["candidates"]]
        assert t["best_score"] == min(scores)  # the winner: the argmin of all evaluated
        assert t["candidates"][scores.index(min(scores))] == {**t["best"], "score": min(scores)}
    if not quick:  # the full budget covers one whole pass of every policy's grid
        assert all(table[p]["evaluated"] >= min(pass_size(p), table[p]["budget"])
                   for p in POLICIES)
        assert plan.tuning.budget >= max(pass_size(p) for p in POLICIES)


def bowl(best: dict[str, Any]) -> Any:
    """makespan = 100 x (1 + number of knobs off ``best``), over a lower bound of 100."""
    def makespan(s: RunSpec) -> float:
        setting = dict(item.removeprefix("policy.").split("=", 1) for item in s.sets)
        return 100 * (1 + sum(json.loads(setting[k]) != v for k, v in best.items()))
    return makespan


@pytest.mark.parametrize("policy", POLICIES)
def test_the_descent_walks_to_a_separable_optimum_and_stops(policy: str) -> None:
    """On a landscape where each knob's best value does not depend on the others, one pass
    finds the optimum, and a cycle of sweeps that improves nothing ends the search."""
    grid = GRIDS[policy]
    defaults = policy_defaults(policy, grid)
    best = {k: next((x for x in v if x != defaults[k]), v[0]) for k, v in grid.items()}
    seen: list[RunSpec] = []
    table = tune([policy], WORKFLOWS, TuningPlan(budget=1000, seeds=(101,)), lambda wf: (),
                 "octopus-chip", fake_runner(bowl(best), seen))[policy]
    assert {k: table["best"][k] for k in grid} == best and table["best_score"] == 1.0
    sweepable = [k for k in grid if len(grid[k]) > 1]
    steps = table["path"][1:]
    assert [step["knob"] for step in steps[:len(sweepable)]] == sweepable  # grid order
    assert all(step["improved"] for step in steps[:len(sweepable)])  # each knob: off its best
    assert not any(step["improved"] for step in steps[len(sweepable):])
    assert len(steps) == 2 * len(sweepable) - 1  # stops after a whole cycle without gain
    assert pass_size(policy) <= table["evaluated"] < 2 * pass_size(policy)
    assert len(seen) == table["runs"] == table["evaluated"] * len(WORKFLOWS)


def test_the_budget_cuts_a_sweep_short() -> None:
    grid = GRIDS["octopus"]
    best = {k: v[-1] for k, v in grid.items()}
    for budget in (1, 3, 5):
        seen: list[RunSpec] = []
        table = tune(["octopus"], WORKFLOWS, TuningPlan(budget=budget, seeds=(101,)),
                     lambda wf: (), "octopus-chip", fake_runner(bowl(best), seen))["octopus"]
        assert table["evaluated"] == budget and len(seen) == budget * len(WORKFLOWS)


@pytest.mark.parametrize("policy", POLICIES)
def test_candidates_are_the_defaults_then_distinct_grid_points(policy: str) -> None:
    grid = GRIDS[policy]
    cands = candidates(policy, grid, 16)
    assert cands[0] == {**policy_defaults(policy, grid), **cands[0]}  # defaults first
    keyed = [tuple(c[k] for k in grid) for c in cands]
    assert len(set(keyed)) == len(keyed)
    for c in cands:  # the defaults lie on the grid: the table shows what was tried
        assert all(c[k] in grid[k] for k in grid), c
    assert cands == candidates(policy, grid, 16)  # seeded: the same draw every time
    assert candidates(policy, grid, 4)[0] == cands[0]


@pytest.mark.parametrize("quick", [True, False])
def test_tuning_seeds_are_never_reported(quick: bool) -> None:
    plan = make_plan(quick)
    assert plan.tuning.seeds and not set(plan.tuning.seeds) & set(plan.seeds)
    seen: list[RunSpec] = []
    tune(list(POLICIES), WORKFLOWS, plan.tuning, lambda wf: (), "octopus-chip",
         fake_runner(lambda s: 150, seen))
    assert {s.seed for s in seen} == set(plan.tuning.seeds)


@pytest.mark.parametrize("scores", [[3.0, 1.0, 1.0, 2.0], [1.0, 1.0, 5.0, 1.0],
                                    [4.0, 3.0, 2.0, 1.5]])
@pytest.mark.parametrize("procedure", ["descent", "random"])
def test_the_winner_is_the_argmin_of_the_score_ties_to_the_earlier(scores: list[float],
                                                                   procedure: str) -> None:
    """Score = geomean over (workflow, seed) of makespan / lower bound."""
    plan = TuningPlan(budget=4, seeds=(101, 102), procedure=procedure)
    per_run = itertools.cycle([0.5, 2.0])  # each candidate's runs: x/2 and 2x, geomean x

    def makespan(s: RunSpec) -> float:
        return 100 * scores[s.tag("candidate")] * next(per_run)

    table = tune(["reactive"], WORKFLOWS, plan, lambda wf: (), "octopus-chip",
                 fake_runner(makespan, []))["reactive"]
    got = [c["score"] for c in table["candidates"]]
    assert got == pytest.approx(scores)
    best = min(range(len(scores)), key=lambda i: (scores[i], i))
    winner = {k: v for k, v in table["candidates"][best].items() if k != "score"}
    assert table["best"] == winner
    assert table["best_score"] == pytest.approx(scores[best])


def tiny_plan(budget: int = 2) -> Plan:
    """street-camera at 10 instances: a run takes milliseconds."""
    return Plan(True, 0.025, (1,), TuningPlan(budget=budget, seeds=(101,)), ("street-camera",))


def test_tuning_table_json_shape_from_real_runs() -> None:
    rep = Reproduction(tiny_plan(), None, 1)
    table = json.loads(json.dumps(rep.tune()))
    assert not rep.failures
    assert set(table) == set(POLICIES)
    for p, t in table.items():
        assert set(t["grid"]) == set(GRIDS[p]) and t["grid"] == GRIDS[p]
        assert all(isinstance(v, list) and v for v in t["grid"].values())
        assert set(t["best"]) >= set(t["grid"])
        assert all(t["best"][k] in t["grid"][k] for k in t["grid"])
        assert t["budget"] == 2 and t["seeds"] == [101] and len(t["candidates"]) == 2
        for c in t["candidates"]:
            assert set(c) == set(t["best"]) | {"score"} and c["score"] >= 1.0
        assert t["best_sets"] == [f"policy.{k}={json.dumps(v)}" for k, v in t["best"].items()]
    shared = {"buffer_slots"}
    assert all(shared <= set(t["grid"]) for t in table.values())
    assert all("host_cycles" in table[b]["grid"] and "peas" in table[b]["grid"]
               for b in ("static", "reactive", "indiscriminate"))
    assert "horizon_grant" in table["octopus"]["grid"]


def test_a_bad_grid_value_is_a_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "GRIDS", {**GRIDS, "static": {"buffer_slots": [4, -1]}})
    rep = Reproduction(tiny_plan(), None, 1)
    table = rep.tune()["static"]
    ok, bad = table["candidates"]
    assert ok["score"] is not None and bad["score"] is None
    assert "buffer_slots" in bad["error"] and bad["error"].startswith("error:")
    assert table["best"] == {"buffer_slots": 4}
    assert [f["spec"]["sets"][-1] for f in rep.failures] == ["policy.buffer_slots=-1"]
