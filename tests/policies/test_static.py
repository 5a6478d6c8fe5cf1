"""The static baseline: partition, fixed PEAs, coupled control, back-pressure."""

from __future__ import annotations

import pytest

from octosim.engine.sim import Observer, Simulation
from octosim.errors import UserError
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.registry import make_policy, policies
from octosim.policies.static import allocate_tbus

ZERO = {"arch": 1, "name": "zero", "cluster": {"tbus": 4, "cbu_cycles": 0},
        "tbu": {"peas": 2, "split_efficiency": 1.0}, "noc": {"hop_cycles": 0},
        "reconfig": {"fixed_cycles": 0}, "memory": {"bytes_per_cycle": 1e12}}


def wf(tasks: dict, flow: list, count: int = 10, process: str = "batch",
       gap: float = 0.0) -> dict:
    """A workflow whose contexts are free to load, so timings are exact."""
    tasks = {name: {"context_bytes": 0, **spec} for name, spec in tasks.items()}
    return {"owg": 1, "name": "t", "tasks": tasks, "flow": flow,
            "arrivals": {"process": process, "count": count, "interarrival_cycles": gap}}


def run(w: dict, arch: dict = ZERO, seed: int = 1, observers: list | None = None,
        **params: object) -> Simulation:
    sim = Simulation(parse_workflow(w, "w.yaml"), parse_arch(arch, "a.yaml"),
                     make_policy("static", params), seed=seed, observers=observers)
    return sim.run()


def test_registered() -> None:
    assert "static" in policies()


def test_allocation_minimises_max_demand_per_tbu() -> None:
    assert allocate_tbus([1.0, 1.0], 4) == [2, 2]
    assert allocate_tbus([3.0, 1.0], 4) == [3, 1]
    assert allocate_tbus([10.0, 1.0, 1.0], 6) == [4, 1, 1]
    alloc = allocate_tbus([5.0, 2.0, 1.0], 16)
    assert sum(alloc) == 16 and min(alloc) >= 1
    assert max(d / a for d, a in zip([5.0, 2.0, 1.0], alloc, strict=True)) <= 5.0 / 9 + 1e-9


def test_profiled_partition_follows_demand() -> None:
    w = wf({"a": {"kind": "general", "cycles": 1000}, "b": {"kind": "general", "cycles": 3000}},
           ["a", "b"])
    sim = run(w)
    policy = sim.policy
    assert policy.partition == [[1, 3]]  # type: ignore[attr-defined]
    bound = [t.bound for t in sim.chip.tbus]
    assert bound.count(0) == 1 and bound.count(1) == 3


def test_explicit_partition_and_errors() -> None:
    w = wf({"a": {"kind": "general", "cycles": 1000}, "b": {"kind": "general", "cycles": 3000}},
           ["a", "b"])
    sim = run(w, partition={"a": 2, "b": 2})
    assert sim.policy.partition == [[2, 2]]  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="uses 5 TBUs"):
        run(w, partition={"a": 2, "b": 3})
    with pytest.raises(UserError, match="has no TBUs"):
        run(w, partition={"a": 2})
    with pytest.raises(UserError, match="unknown task"):
        run(w, partition={"a": 1, "b": 1, "zz": 1})


def test_fixed_pea_grant() -> None:
    w = wf({"a": {"kind": "general", "cycles": 1000, "peas": [1, 2]}}, ["a"], count=1)
    assert run(w, peas="min").makespan == 1000
    assert run(w).makespan == 500  # default peas: max -> 2 PEAs, split efficiency 1
    assert run(w, peas=7).makespan == 500  # clamped to the task's max


def test_host_round_trip_per_control_block() -> None:
    """A foreach costs one host round trip to spawn and one to join."""
    w = wf({"a": {"kind": "general", "cycles": 1000}, "b": {"kind": "general", "cycles": 1000}},
           ["a", {"foreach": 1, "do": ["b"]}, "a"], count=1)
    base = run(w, host_cycles=0).makespan
    assert base == 3000
    assert run(w, host_cycles=100).makespan == 3000 + 2 * 100


def test_back_pressure_blocks_producers_and_spreads_idleness() -> None:
    """A fast stage feeding a slow one: with bounded buffers the fast stage's PEAs are held
    (blocked) and the run takes no less time; unbounded buffers never block."""
    w = wf({"fast": {"kind": "general", "cycles": 100}, "slow": {"kind": "general",
            "cycles": 5000}, "sink": {"kind": "general", "cycles": 100}},
           ["fast", "slow", "sink"], count=200)
    part = {"fast": 2, "slow": 1, "sink": 1}
    bounded = run(w, buffer_slots=1, partition=part)
    unbounded = run(w, buffer_slots=0, partition=part)
    assert bounded.area_blocked > 0
    assert unbounded.area_blocked == 0
    assert bounded.instances_done == unbounded.instances_done == 200
    # Contagious idleness: the sink starves while the slow stage holds up the line.
    total = bounded.alive_peas * bounded.makespan
    starved = total - bounded.area_busy - bounded.area_blocked - bounded.area_reconfig
    assert starved > 0
    assert bounded.makespan >= unbounded.makespan


def test_loops_back_to_an_earlier_stage_do_not_deadlock() -> None:
    w = wf({"a": {"kind": "general", "cycles": 100, "sets": {"n": "n + 1"}},
            "b": {"kind": "general", "cycles": 300}},
           [{"loop": {"while": "n < 3", "do": ["a", "b"]}}], count=50)
    w["vars"] = {"n": 0}
    sim = run(w, buffer_slots=1)
    assert sim.instances_done == 50
    assert sim.task_count == [150, 150]


def test_multi_cluster_round_robin_and_instances_stay_home() -> None:
    arch = dict(ZERO, grid={"rows": 1, "cols": 2})

    class Homes(Observer):
        def __init__(self) -> None:
            self.bad = 0

        def task_started(self, run, now):  # type: ignore[no-untyped-def]
            self.bad += run.tbu.cluster != run.inst.id % 2

    homes = Homes()
    w = wf({"a": {"kind": "general", "cycles": 1000}}, ["a"], count=8)
    sim = run(w, arch=arch, observers=[homes])
    assert homes.bad == 0
    assert sim.makespan == 1000  # 8 runs on 16 PEAs over two clusters


def test_too_few_tbus_is_a_clear_error() -> None:
    tasks = {f"t{i}": {"kind": "general", "cycles": 10} for i in range(5)}
    with pytest.raises(UserError, match="one TBU per task type"):
        run(wf(tasks, list(tasks)))
