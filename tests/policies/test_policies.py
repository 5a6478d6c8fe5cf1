"""Reactive, indiscriminate and Octopus: their mechanisms do what they claim."""

from __future__ import annotations

import pytest

from octosim.engine.sim import Observer, Simulation
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.registry import make_policy, policies

ARCH = {"arch": 1, "name": "a", "cluster": {"tbus": 4, "cbu_cycles": 10},
        "tbu": {"peas": 4, "split_efficiency": 1.0}, "reconfig": {"fixed_cycles": 100},
        "memory": {"bytes_per_cycle": 64}}

# Demand flips between two phases: 'a' dominates first, then 'b'.
SHIFT = {
    "owg": 1, "name": "shift", "arrivals": {"process": "batch", "count": 200},
    "phases": [{"count": 100, "vars": {"heavy": {"dist": "const", "value": 0}}},
               {"count": 100, "vars": {"heavy": {"dist": "const", "value": 1}}}],
    "vars": {"heavy": 0},
    "tasks": {"a": {"kind": "general", "cycles": "40000 - 36000 * heavy", "peas": [1, 4]},
              "b": {"kind": "general", "cycles": "4000 + 36000 * heavy", "peas": [1, 4]}},
    "flow": ["a", "b"],
}


def run(policy: str, wf: dict = SHIFT, arch: dict = ARCH, seed: int = 1,
        observers: list | None = None, **params: object) -> Simulation:
    sim = Simulation(parse_workflow(wf, "w.yaml"), parse_arch(arch, "a.yaml"),
                     make_policy(policy, params), seed=seed, observers=observers)
    return sim.run()


def test_all_registered() -> None:
    assert {"static", "reactive", "indiscriminate", "octopus"} <= set(policies())


def test_reactive_rebinds_when_imbalance_persists() -> None:
    never = run("reactive", threshold=1.0)
    eager = run("reactive", threshold=0.1, window_cycles=0, check_cycles=5000)
    assert never.reconfigurations == 4  # the initial binding only
    assert eager.reconfigurations > 4
    assert eager.instances_done == 200


def test_indiscriminate_pays_reconfiguration_per_context_switch() -> None:
    sim = run("indiscriminate")
    assert sim.run_reconfigurations > 0
    assert sim.area_setup_reconfig > 0
    assert sim.instances_done == 200


def test_octopus_beats_static_on_shifting_demand_and_each_strategy_switches() -> None:
    static = run("static")
    full = run("octopus")
    nothing = run("octopus", dds=False, ats=False, pcs=False)
    assert full.makespan < static.makespan
    assert full.makespan <= nothing.makespan
    assert full.reconfigurations > nothing.reconfigurations  # DDS rebinds TBUs
    assert nothing.reconfigurations == 4
    assert full.makespan >= full.lower_bound


def test_ats_grows_runs_when_the_queue_is_shallow() -> None:
    grown: list[int] = []

    class Grow(Observer):
        def task_grown(self, run, peas, now):  # type: ignore[no-untyped-def]
            grown.append(len(peas))

    one = {"owg": 1, "name": "one", "arrivals": {"process": "batch", "count": 1},
           "tasks": {"a": {"kind": "general", "cycles": 40000, "peas": [1, 4]}},
           "flow": ["a"]}
    sim = run("octopus", wf=one, observers=[Grow()])
    assert sim.makespan < 40000  # a lone run gets (or grows to) its widest grant
    off = run("octopus", wf=one, ats=False)
    assert off.makespan >= 40000


def test_grow_speeds_up_the_remaining_work_exactly() -> None:
    """A run on 1 PEA grown to 3 at half-way finishes the other half 3x faster."""
    wf = {"owg": 1, "name": "g", "arrivals": {"process": "batch", "count": 1},
          "tasks": {"a": {"kind": "general", "cycles": 12000, "peas": [1, 4],
                          "context_bytes": 0}}, "flow": ["a"]}
    arch = dict(ARCH, reconfig={"fixed_cycles": 0})
    sim = Simulation(parse_workflow(wf, "w"), parse_arch(arch, "a"),
                     make_policy("static", {"buffer_slots": 0, "peas": "min"}), seed=1)
    runs = []

    class Catch(Observer):
        def task_started(self, run, now):  # type: ignore[no-untyped-def]
            runs.append(run)
            sim.call_at(now + 6000, lambda: sim.grow(run, 2))

    sim.observers.append(Catch())
    sim.run()
    assert sim.makespan == 6000 + 2000


def test_pcs_learns_control_block_outcomes() -> None:
    wf = {"owg": 1, "name": "p", "arrivals": {"process": "batch", "count": 60},
          "tasks": {"a": {"kind": "general", "cycles": 1000, "sets": {"n": {"dist": "poisson",
                                                                          "mean": 3}}},
                    "b": {"kind": "general", "cycles": 2000}},
          "flow": ["a", {"foreach": "n", "do": ["b"]},
                   {"branch": [{"p": 0.5, "do": ["b"]}, {"else": []}]}]}
    sim = run("octopus", wf=wf)
    learned = sim.policy.learned  # type: ignore[attr-defined]
    foreach = next(st for st in learned.values() if st.n == 60 and st.total > 60)
    assert 2.0 < foreach.total / foreach.n < 4.5
    assert any(set(st.cases) <= {0, 1} and st.n == 60 and 0 < st.cases.get(0, 0) < 60
               for st in learned.values())


@pytest.mark.parametrize("policy", ["static", "reactive", "indiscriminate", "octopus"])
def test_same_workload_under_every_policy(policy: str) -> None:
    """Common random numbers: task counts and sampled work do not depend on the policy."""
    ref = run("static")
    sim = run(policy)
    assert sim.task_count == ref.task_count
    assert sim.total_work == ref.total_work
    assert sim.makespan >= sim.lower_bound


def test_pcs_prefetch_lands_when_the_tbu_drains_not_earlier() -> None:
    """A TBU moved while busy fetches its next context timed to complete as it drains: a
    fetch takes the memory channel ahead of weight streams, so fetching earlier would only
    delay the runs computing meanwhile."""
    import math

    calls: list[tuple[int, int, int]] = []  # (now, drain, lead) at each prefetch
    sim = Simulation(parse_workflow(SHIFT, "w.yaml"), parse_arch(ARCH, "a.yaml"),
                     make_policy("octopus", {}), seed=1)
    policy = sim.policy
    original = sim.prefetch

    def prefetch(tbu, task):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        drain = max((r.end_at for r in policy.running[tbu.id]), default=sim.now)  # type: ignore[attr-defined]
        calls.append((sim.now, drain, math.ceil(policy.reconfig_cycles[task])))  # type: ignore[attr-defined]
        return original(tbu, task)

    sim.prefetch = prefetch  # type: ignore[method-assign]
    sim.run()
    assert sim.instances_done == 200
    assert calls, "no TBU was moved while busy: the test shows nothing"
    assert all(now >= drain - lead for now, drain, lead in calls)
