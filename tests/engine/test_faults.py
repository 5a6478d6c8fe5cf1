"""Runtime faults: work in flight is re-executed elsewhere and no instance is lost."""

from __future__ import annotations

import pytest

from octosim.engine.sim import Fault, Observer, Simulation
from octosim.errors import UserError
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.registry import make_policy

WF = {"owg": 1, "name": "f", "arrivals": {"process": "poisson", "interarrival_cycles": 3000,
                                          "count": 300},
      "vars": {"n": {"dist": "poisson", "mean": 2}},
      "tasks": {"a": {"kind": "general", "cycles": 20000, "peas": [1, 2]},
                "b": {"kind": "general", "cycles": {"dist": "exponential", "mean": 15000}},
                "c": {"kind": "general", "cycles": 5000}},
      "flow": ["a", {"foreach": "n", "do": ["b"]}, "c"]}
ARCH = {"arch": 1, "name": "two", "grid": {"rows": 1, "cols": 2}, "cluster": {"tbus": 4},
        "tbu": {"peas": 4}}


class Ledger(Observer):
    def __init__(self) -> None:
        self.done: list[int] = []
        self.aborted = 0
        self.finished: dict[int, int] = {}

    def task_done(self, run, now):  # type: ignore[no-untyped-def]
        self.done.append(run.seq)
        assert run.tbu.alive

    def task_aborted(self, run, now):  # type: ignore[no-untyped-def]
        self.aborted += 1

    def instance_done(self, inst, now):  # type: ignore[no-untyped-def]
        self.finished[inst.id] = self.finished.get(inst.id, 0) + 1


def run(policy: str, faults: list[str], seed: int = 5) -> tuple[Simulation, Ledger]:
    ledger = Ledger()
    sim = Simulation(parse_workflow(WF, "w"), parse_arch(ARCH, "a"), make_policy(policy),
                     seed=seed, observers=[ledger], faults=[Fault.parse(f) for f in faults])
    return sim.run(), ledger


@pytest.mark.parametrize("policy", ["static", "reactive", "indiscriminate", "octopus"])
@pytest.mark.parametrize("faults", [["tbu:1@200000"], ["cluster:1@150000"],
                                    ["tbu:0@100000", "tbu:5@300000", "cluster:0@400000"]])
def test_no_instance_lost_and_each_execution_counted_once(policy: str,
                                                          faults: list[str]) -> None:
    sim, ledger = run(policy, faults)
    healthy, _ = run(policy, [])
    assert sim.instances_done == 300
    assert sorted(ledger.finished) == list(range(300))
    assert set(ledger.finished.values()) == {1}
    assert len(ledger.done) == len(set(ledger.done)) == sum(sim.task_count)
    assert sim.task_count == healthy.task_count  # re-executions are counted apart
    assert ledger.aborted == sim.reexecutions
    assert sim.makespan >= sim.lower_bound


def test_a_fault_while_work_runs_forces_reexecution() -> None:
    sim, ledger = run("static", ["cluster:1@150000"])
    assert sim.reexecutions > 0
    assert all(not t.alive for t in sim.chip.cluster_tbus[1])


def test_bad_fault_specs() -> None:
    for text in ("tbu", "tbu:1", "disk:1@5", "tbu:-1@5", "tbu:x@5"):
        with pytest.raises(UserError):
            Fault.parse(text)
    with pytest.raises(UserError, match="no tbu 99"):
        run("static", ["tbu:99@10"])
