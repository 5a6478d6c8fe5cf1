"""Runtime faults: work in flight is re-executed elsewhere and no instance is lost."""

from __future__ import annotations

from typing import Any

import pytest

from octosim.engine.metrics import summarize
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
        self.starts: list[tuple[int, int]] = []  # (cycle, cluster) of each start

    def task_started(self, run, now):  # type: ignore[no-untyped-def]
        self.starts.append((now, run.tbu.cluster))

    def task_done(self, run, now):  # type: ignore[no-untyped-def]
        self.done.append(run.seq)
        assert run.tbu.alive

    def task_aborted(self, run, now):  # type: ignore[no-untyped-def]
        self.aborted += 1

    def instance_done(self, inst, now):  # type: ignore[no-untyped-def]
        self.finished[inst.id] = self.finished.get(inst.id, 0) + 1


def run(policy: str, faults: list[str], seed: int = 5) -> tuple[dict[str, Any], Ledger]:
    """The run's summary (the metrics of ``octosim run --json``) and what the observer saw."""
    ledger = Ledger()
    sim = Simulation(parse_workflow(WF, "w"), parse_arch(ARCH, "a"), make_policy(policy),
                     seed=seed, observers=[ledger], faults=[Fault.parse(f) for f in faults])
    return summarize(sim.run()), ledger


def counts(summary: dict[str, Any]) -> dict[str, int]:
    return {name: t["count"] for name, t in summary["tasks"].items()}


@pytest.mark.parametrize("policy", ["static", "reactive", "indiscriminate", "octopus"])
@pytest.mark.parametrize("faults", [["tbu:1@200000"], ["cluster:1@150000"],
                                    ["tbu:0@100000", "tbu:5@300000", "cluster:0@400000"]])
def test_no_instance_lost_and_each_execution_counted_once(policy: str,
                                                          faults: list[str]) -> None:
    summary, ledger = run(policy, faults)
    healthy, _ = run(policy, [])
    assert summary["instances"] == 300
    assert summary["faults"] == faults
    assert sorted(ledger.finished) == list(range(300))
    assert set(ledger.finished.values()) == {1}
    assert len(ledger.done) == len(set(ledger.done)) == summary["task_runs"]
    assert counts(summary) == counts(healthy)  # re-executions are counted apart
    assert ledger.aborted == summary["reexecutions"]
    assert len(ledger.starts) == summary["task_runs"] + summary["reexecutions"]
    assert summary["makespan_cycles"] >= summary["lower_bound_cycles"]


def test_a_fault_while_work_runs_forces_reexecution() -> None:
    summary, ledger = run("static", ["cluster:1@150000"])
    assert summary["reexecutions"] > 0
    assert ledger.aborted == summary["reexecutions"]
    assert any(c == 1 for t, c in ledger.starts if t < 150000)  # cluster 1 did work...
    assert not [(t, c) for t, c in ledger.starts if t >= 150000 and c == 1]  # ...then none
    assert summary["instances"] == 300


@pytest.mark.parametrize("text", ["tbu", "tbu:1", "disk:1@5", "tbu:-1@5", "tbu:x@5",
                                  "cluster:1@-5", "tbu:1@"])
def test_bad_fault_specs(text: str) -> None:
    with pytest.raises(UserError) as info:
        Fault.parse(text)
    assert str(info.value) == (f"error: --fault {text!r}: expected tbu:ID@CYCLE or "
                               "cluster:ID@CYCLE (non-negative integers)")


@pytest.mark.parametrize(("fault", "limit"), [("tbu:99@10", 8), ("cluster:2@10", 2)])
def test_a_fault_on_a_unit_the_arch_lacks(fault: str, limit: int) -> None:
    kind, _, rest = fault.partition(":")
    with pytest.raises(UserError) as info:
        run("static", [fault])
    assert str(info.value) == (f"error: --fault {fault}: no {kind} {rest.split('@')[0]} "
                               f"(the arch has {limit})")
