"""The static baseline: partition, fixed PEAs, coupled control, back-pressure."""

from __future__ import annotations

from typing import Any

import pytest

from octosim.engine.metrics import summarize
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
        **params: object) -> dict[str, Any]:
    """The run's summary (the metrics of ``octosim run --json``)."""
    sim = Simulation(parse_workflow(w, "w.yaml"), parse_arch(arch, "a.yaml"),
                     make_policy("static", params), seed=seed, observers=observers)
    return summarize(sim.run())


class Binds(Observer):
    """The TBUs bound to each task type at cycle 0 (the compile-time partition), and every
    context load after that."""

    def __init__(self) -> None:
        self.initial: dict[int, int] = {}
        self.later = 0

    def reconfigured(self, tbu, task, start, end):  # type: ignore[no-untyped-def]
        if start == 0:
            self.initial[task] = self.initial.get(task, 0) + 1
        else:
            self.later += 1


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
    binds = Binds()
    summary = run(w, observers=[binds])
    assert binds.initial == {0: 1, 1: 3}
    assert binds.later == 0  # a static partition: never rebound
    assert summary["reconfigurations"] == 4


def test_explicit_partition_and_errors() -> None:
    w = wf({"a": {"kind": "general", "cycles": 1000}, "b": {"kind": "general", "cycles": 3000}},
           ["a", "b"])
    binds = Binds()
    run(w, observers=[binds], partition={"a": 2, "b": 2})
    assert binds.initial == {0: 2, 1: 2}
    with pytest.raises(UserError) as info:
        run(w, partition={"a": 2, "b": 3})
    assert str(info.value) == "error: policy.partition: partition uses 5 TBUs but a cluster has 4"
    with pytest.raises(UserError) as info:
        run(w, partition={"a": 4})
    assert str(info.value) == ("error: policy.partition: partition leaves 0 TBUs for 1 other "
                               "task types (each needs one)")
    with pytest.raises(UserError) as info:
        run(w, partition={"a": 1, "b": 1, "zz": 1})
    assert str(info.value) == "error: policy.partition.zz: unknown task 'zz'"


def test_fixed_pea_grant() -> None:
    w = wf({"a": {"kind": "general", "cycles": 1000, "peas": [1, 2]}}, ["a"], count=1)
    assert run(w, peas="min")["makespan_cycles"] == 1000
    assert run(w)["makespan_cycles"] == 500  # default peas: max -> 2 PEAs, split efficiency 1
    assert run(w, peas=7)["makespan_cycles"] == 500  # clamped to the task's max


def test_host_round_trip_per_control_block() -> None:
    """A foreach costs one host round trip to spawn and one to join."""
    w = wf({"a": {"kind": "general", "cycles": 1000}, "b": {"kind": "general", "cycles": 1000}},
           ["a", {"foreach": 1, "do": ["b"]}, "a"], count=1)
    assert run(w, host_cycles=0)["makespan_cycles"] == 3000
    assert run(w, host_cycles=100)["makespan_cycles"] == 3000 + 2 * 100


def test_back_pressure_blocks_producers_and_spreads_idleness() -> None:
    """A fast stage feeding a slow one: with bounded buffers the fast stage's PEAs are held
    (blocked) and the run takes no less time; unbounded buffers never block."""
    w = wf({"fast": {"kind": "general", "cycles": 100}, "slow": {"kind": "general",
            "cycles": 5000}, "sink": {"kind": "general", "cycles": 100}},
           ["fast", "slow", "sink"], count=200)
    part = {"fast": 2, "slow": 1, "sink": 1}
    bounded = run(w, buffer_slots=1, partition=part)
    unbounded = run(w, buffer_slots=0, partition=part)
    assert bounded["idle"]["blocked"] > 0
    assert unbounded["idle"]["blocked"] == 0
    assert bounded["instances"] == unbounded["instances"] == 200
    # Contagious idleness: the sink starves while the slow stage holds up the line.
    assert bounded["idle"]["starved"] > 0
    assert bounded["makespan_cycles"] >= unbounded["makespan_cycles"]


def test_loops_back_to_an_earlier_stage_do_not_deadlock() -> None:
    w = wf({"a": {"kind": "general", "cycles": 100, "sets": {"n": "n + 1"}},
            "b": {"kind": "general", "cycles": 300}},
           [{"loop": {"while": "n < 3", "do": ["a", "b"]}}], count=50)
    w["vars"] = {"n": 0}
    summary = run(w, buffer_slots=1)
    assert summary["instances"] == 50
    assert {name: t["count"] for name, t in summary["tasks"].items()} == {"a": 150, "b": 150}


def test_multi_cluster_round_robin_and_instances_stay_home() -> None:
    arch = dict(ZERO, grid={"rows": 1, "cols": 2})

    class Homes(Observer):
        def __init__(self) -> None:
            self.bad = 0

        def task_started(self, run, now):  # type: ignore[no-untyped-def]
            self.bad += run.tbu.cluster != run.inst.id % 2

    homes = Homes()
    w = wf({"a": {"kind": "general", "cycles": 1000}}, ["a"], count=8)
    summary = run(w, arch=arch, observers=[homes])
    assert homes.bad == 0
    assert summary["makespan_cycles"] == 1000  # 8 runs on 16 PEAs over two clusters


def test_too_few_tbus_is_a_clear_error() -> None:
    tasks = {f"t{i}": {"kind": "general", "cycles": 10} for i in range(5)}
    with pytest.raises(UserError) as info:
        run(wf(tasks, list(tasks)))
    assert str(info.value) == ("error: static needs one TBU per task type: cluster 0 has 4 "
                               "working TBUs for 5 task types")
