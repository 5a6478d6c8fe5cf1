"""Static's PEA granularity, partial partitions, and reactive taking an idle type's last TBU."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octosim.engine.metrics import summarize
from octosim.engine.sim import Fault, Observer, Simulation
from octosim.errors import UserError
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.registry import make_policy
from tests.strategies import budget

ARCH = {"arch": 1, "name": "four", "cluster": {"tbus": 4, "cbu_cycles": 0},
        "tbu": {"peas": 5, "split_efficiency": 1.0}, "noc": {"hop_cycles": 0},
        "reconfig": {"fixed_cycles": 100}, "memory": {"bytes_per_cycle": 1e12}}

# One big stage and three small ones: the whole-TBU floor gives the small ones 3 of 4 TBUs.
TASKS = {"big": {"kind": "general", "cycles": 40000, "peas": [1, 4]},
         "s1": {"kind": "general", "cycles": 500},
         "s2": {"kind": "general", "cycles": 500, "peas": [2, 2]},
         "s3": {"kind": "general", "cycles": 500}}


def wf(tasks: dict = TASKS, flow: list | None = None, count: int = 40, **extra: Any) -> dict:
    tasks = {name: {"context_bytes": 0, **spec} for name, spec in tasks.items()}
    return {"owg": 1, "name": "t", "tasks": tasks, "flow": flow or list(tasks),
            "arrivals": {"process": "batch", "count": count}, **extra}


class Loads(Observer):
    """Every context load: (TBU id, type, start cycle)."""

    def __init__(self) -> None:
        self.loads: list[tuple[int, int, int]] = []

    def reconfigured(self, tbu, task, start, end):  # type: ignore[no-untyped-def]
        self.loads.append((tbu.id, task, start))


def simulate(w: dict, policy: str = "static", observers: list | None = None,
             **params: object) -> Simulation:
    sim = Simulation(parse_workflow(w, "w.yaml"), parse_arch(ARCH, "a.yaml"),
                     make_policy(policy, params), seed=1, observers=observers)
    return sim.run()


def test_pea_partition_covers_the_chip_and_each_type_gets_a_run() -> None:
    sim = simulate(wf(), granularity="pea")
    pol: Any = sim.policy
    (peas,) = pol.pea_partition
    assert sum(peas) == 20  # the shared TBU's leftover PEA too
    for tt in sim.task_types:
        assert peas[tt.idx] >= tt.kmin and peas[tt.idx] >= pol.k[tt.idx]
    assert peas[0] >= 12  # the big stage gets the TBUs the small ones do not need
    assert sim.instances_done == 40


def test_small_stages_share_a_tbu_and_never_reconfigure() -> None:
    loads = Loads()
    sim = simulate(wf(), granularity="pea", observers=[loads])
    pol: Any = sim.policy
    assert pol.sharing, "the small stages should share a TBU"
    shared = next(iter(pol.sharing))
    assert len(pol.sharing[shared]) >= 2
    # One load per whole TBU and one per stage's PEAs of a shared TBU, all at cycle 0.
    whole = sum(pol.partition[0])
    assert sim.reconfigurations == whole + sum(len(v) for v in pol.sharing.values())
    assert all(start == 0 for _, _, start in loads.loads)
    assert sim.run_reconfigurations == 0
    # Each run on the shared TBU ran on its own stage's PEAs.
    tbu = sim.chip.tbus[shared]
    assert tbu.free and all(sim.pea_ctx[p] == pol.owner[p] for p in tbu.free)


def test_pea_beats_the_whole_tbu_floor() -> None:
    tbu = summarize(simulate(wf(), granularity="tbu"))["makespan_cycles"]
    pea = summarize(simulate(wf(), granularity="pea"))["makespan_cycles"]
    assert pea < tbu


def test_pea_with_back_pressure_completes() -> None:
    sim = simulate(wf(count=80), granularity="pea", buffer_slots=1)
    assert sim.instances_done == 80
    assert sim.buffers.spills == 0  # each PEA serves one stage: blocking forms no cycle


def test_tbu_granularity_is_the_default() -> None:
    a = summarize(simulate(wf()))
    b = summarize(simulate(wf(), granularity="tbu"))
    for key in ("wall_seconds", "events_per_second"):
        a.pop(key, None)
        b.pop(key, None)
    assert a == b
    assert simulate(wf()).policy.partition == [[1, 1, 1, 1]]  # type: ignore[attr-defined]


def test_partial_partition() -> None:
    three = {name: TASKS[name] for name in ("big", "s1", "s2")}
    sim = simulate(wf(three), partition={"s1": 2})
    assert sim.policy.partition == [[1, 2, 1]]  # type: ignore[attr-defined]
    with pytest.raises(UserError) as info:
        simulate(wf(), partition={"s1": 2, "s2": 2})
    assert str(info.value) == ("error: policy.partition: partition leaves 0 TBUs for 2 other "
                               "task types (each needs one)")
    with pytest.raises(UserError) as info:
        simulate(wf(), partition={"zz": 1})
    assert str(info.value) == "error: policy.partition.zz: unknown task 'zz'"
    with pytest.raises(UserError) as info:
        simulate(wf(), partition={"big": 5})
    assert str(info.value) == "error: policy.partition: partition uses 5 TBUs but a cluster has 4"
    # With PEA granularity the types left out share what is left, even a single TBU.
    sim = simulate(wf(), partition={"big": 3}, granularity="pea")
    assert sim.policy.partition[0][0] == 3 and sim.instances_done == 40  # type: ignore


def two_phases(slots: int) -> dict:
    """``b`` has no work in the first phase, then all of it in the second."""
    w = wf({"a": {"kind": "general", "cycles": 8000}, "b": {"kind": "general", "cycles": 4000},
            "c": {"kind": "general", "cycles": 100}},
           ["a", {"foreach": "nb", "do": ["b"]}, "c"], count=200, vars={"nb": 0},
           phases=[{"name": "a-only", "count": 100, "vars": {"nb": 0}},
                   {"name": "both", "count": 100, "vars": {"nb": 2}}])
    w["arrivals"] = {"process": "periodic", "interarrival_cycles": 400, "count": 200}
    return w


@pytest.mark.parametrize("slots", [0, 1])
def test_reactive_takes_an_idle_types_last_tbu_and_gives_one_back(slots: int) -> None:
    loads = Loads()
    sim = simulate(two_phases(slots), "reactive", observers=[loads],
                   partition={"a": 1, "b": 2, "c": 1}, threshold=0.6, window_cycles=4000,
                   check_cycles=2000, buffer_slots=slots)
    assert sim.instances_done == 200
    later = [(task, start) for _, task, start in loads.loads if start > 0]
    to_a = [s for t, s in later if t == 0]
    to_b = [s for t, s in later if t == 1]
    # Once b has work, the imbalance stays under the threshold: only the give-back rule
    # returns a TBU to b (without it the run is stuck).
    assert len(to_a) >= 2, "b's two TBUs, the last one too, should go to a while b idles"
    assert sorted(to_a)[1] < 40_000 <= min(to_b), "b gets a TBU back when its work comes"


@budget(25)
@given(part=st.dictionaries(st.sampled_from(["big", "s1", "s2", "s3", "zz"]),
                            st.integers(0, 5), max_size=4),
       gran=st.sampled_from(["tbu", "pea"]), slots=st.sampled_from([0, 1]))
def test_any_partition_runs_or_is_a_user_error(part: dict, gran: str, slots: int) -> None:
    try:
        sim = simulate(wf(count=12), partition=part or None, granularity=gran,
                       buffer_slots=slots)
    except UserError as exc:
        assert str(exc).startswith("error: policy") and "\n" not in str(exc)
        return
    assert sim.instances_done == 12


@pytest.mark.parametrize("policy", ["static", "reactive"])
def test_a_type_whose_only_slice_dies_borrows_pes_of_a_shared_tbu(policy: str) -> None:
    """Five types on six TBUs of three PEAs: one whole TBU, the rest shared. TBU 0 dies at
    cycle 0 with t0's only PEAs; no type has two whole TBUs to spare, so t0 takes a run's
    worth of PEAs another type holds on a live shared TBU (found by hypothesis: the run was
    stuck with t0 waiting and no PEA of its own)."""
    wf = {"owg": 1, "name": "gen", "arrivals": {"process": "batch", "count": 1},
          "tasks": {"t0": {"kind": "general", "cycles": 0},
                    "t1": {"kind": "ai", "model": "mobilenet_v2", "scale": 0, "peas": [1, 1]},
                    "t2": {"kind": "ai", "model": "mobilenet_v2", "scale": 0, "peas": [1, 2]},
                    "t3": {"kind": "general", "cycles": 0, "out_bytes": 0},
                    "t4": {"kind": "ai", "model": "mobilenet_v2", "scale": 0, "peas": [1, 1]}},
          "flow": ["t4", "t3", "t1", "t0", "t2", "t2"]}
    arch = {"arch": 1, "name": "six", "pea": {"rows": 1, "cols": 1, "sram_kib": 0},
            "tbu": {"peas": 3, "split_efficiency": 0.0}, "cluster": {"tbus": 6, "cbu_cycles": 0},
            "noc": {"hop_cycles": 0}, "control_plane": {"hop_cycles": 0},
            "memory": {"bytes_per_cycle": 1}, "reconfig": {"fixed_cycles": 0}}
    sim = Simulation(parse_workflow(wf, "w.yaml"), parse_arch(arch, "a.yaml"),
                     make_policy(policy, {"granularity": "pea"}), seed=0,
                     faults=[Fault.parse("tbu:0@0")])
    sim.run()
    assert sim.instances_done == 1


def test_reactive_gives_back_a_whole_tbu_from_a_type_that_also_has_a_share() -> None:
    """``w`` needs a whole TBU and idles in the first phase, so reactive gives its TBU to
    ``x``, which also holds PEAs of the shared TBU. When ``w``'s work comes, ``x`` (one whole
    TBU plus a share) is the only type that can give one back; counting only whole TBUs, no
    type had two and the run was stuck (found by hypothesis in CI)."""
    arch = {"arch": 1, "name": "two", "cluster": {"tbus": 2, "cbu_cycles": 0},
            "tbu": {"peas": 4, "split_efficiency": 1.0}, "noc": {"hop_cycles": 0},
            "reconfig": {"fixed_cycles": 100}, "memory": {"bytes_per_cycle": 1e12}}
    w = wf({"w": {"kind": "general", "cycles": 4000, "peas": [4, 4]},
            "x": {"kind": "general", "cycles": 8000, "peas": [1, 1]},
            "y": {"kind": "general", "cycles": 100, "peas": [1, 1]}},
           ["x", {"foreach": "nw", "do": ["w"]}, "y"], count=200, vars={"nw": 0},
           phases=[{"name": "x-only", "count": 100, "vars": {"nw": 0}},
                   {"name": "both", "count": 100, "vars": {"nw": 2}}])
    w["arrivals"] = {"process": "periodic", "interarrival_cycles": 400, "count": 200}
    loads = Loads()
    sim = Simulation(parse_workflow(w, "w.yaml"), parse_arch(arch, "a.yaml"),
                     make_policy("reactive", {"granularity": "pea", "threshold": 0.1,
                                              "window_cycles": 5000, "check_cycles": 1000}),
                     seed=0, observers=[loads])
    sim.run()
    assert sim.instances_done == 200
    tbu_of_w = [tbu for tbu, task, start in loads.loads if task == 0 and start > 0]
    assert tbu_of_w, "w gets a whole TBU back when its work comes"
