"""Octopus's components, each through what a run shows (summaries, observers): the grant
strategy (ATS), the forecaster (PCS) and the rebalancer (DDS's cluster scheduler, or the fixed
partition without it)."""

from __future__ import annotations

from typing import Any

import pytest

from octosim.engine.metrics import summarize
from octosim.engine.sim import Fault, Observer, Simulation
from octosim.errors import UserError
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.octopus import OctopusPolicy
from octosim.policies.octopus.forecast import ControlBlockForecaster, NullForecaster
from octosim.policies.octopus.grants import AdaptiveGrant, HorizonGrant, MinimalGrant
from octosim.policies.octopus.rebalance import ClusterScheduler, FixedPartition
from octosim.policies.registry import make_policy
from tests.policies.test_policies import ARCH, ONE_TBU, SHIFT, Log, run

SMALL_HORIZON = 20_000


def simulate(wf: dict, arch: dict, observers: list | None = None, faults: tuple[str, ...] = (),
             **params: object) -> tuple[dict[str, Any], Simulation]:
    # These workflows last 10^5-10^7 cycles: the rebind horizon is scaled down with them, and
    # set by one gap between arrivals rather than many, so the components' behaviour shows.
    params = {"horizon_cycles": SMALL_HORIZON, "horizon_arrivals": 1, **params}
    sim = Simulation(parse_workflow(wf, "w.yaml"), parse_arch(arch, "a.yaml"),
                     make_policy("octopus", params), seed=1, observers=observers,
                     faults=[Fault.parse(f) for f in faults])
    return summarize(sim.run()), sim


class Lifetimes(Observer):
    """Each run's (type, ready, start, done, TBU), and each context load after cycle 0 with
    the cycle the TBU's last run before it ended (-1: none)."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, int, int, int, int]] = []
        self.open: dict[int, tuple[int, int, int]] = {}
        self.loads: list[tuple[int, int, int, int]] = []  # tbu, type, start, last done there
        self.last_done: dict[int, int] = {}

    def task_started(self, run, now):  # type: ignore[no-untyped-def]
        self.open[run.seq] = (run.tt.idx, run.ready_at, now)

    def task_done(self, run, now):  # type: ignore[no-untyped-def]
        self.runs.append((*self.open.pop(run.seq), now, run.tbu.id))
        self.last_done[run.tbu.id] = now

    def reconfigured(self, tbu, task, start, end):  # type: ignore[no-untyped-def]
        if start > 0:
            self.loads.append((tbu.id, task, start, self.last_done.get(tbu.id, -1)))

    def ahead_of_demand(self) -> list[tuple[int, int, int]]:
        """Context loads, on TBUs idle before, towards a type with no run ready or running
        then: moves made for forecast work alone. (A TBU rebound as it drains is left out: it
        was chosen earlier, when the demand may have been there.)"""
        return [(tbu, task, t) for tbu, task, t, last in self.loads if last != t
                and not any(ty == task and ready <= t <= done
                            for ty, ready, _, done, _ in self.runs)]


# --- choosing the components -----------------------------------------------------------------


@pytest.mark.parametrize(("params", "kinds"), [
    ({}, (ClusterScheduler, HorizonGrant, ControlBlockForecaster)),
    ({"horizon_grant": False}, (ClusterScheduler, AdaptiveGrant, ControlBlockForecaster)),
    ({"ats": False}, (ClusterScheduler, MinimalGrant, ControlBlockForecaster)),
    ({"pcs": False}, (ClusterScheduler, HorizonGrant, NullForecaster)),
    ({"dds": False}, (ClusterScheduler, HorizonGrant, ControlBlockForecaster)),
    ({"dds": False, "pcs": False}, (FixedPartition, HorizonGrant, NullForecaster)),
])
def test_setup_chooses_each_component_from_the_parameters(
        params: dict[str, bool], kinds: tuple[type, type, type]) -> None:
    """PCS acts through the cluster scheduler, so it runs when DDS or PCS is on."""
    _, sim = simulate(SHIFT, ARCH, **params)
    policy = sim.policy
    assert isinstance(policy, OctopusPolicy)
    assert tuple(type(x) for x in (policy.rebalancer, policy.grants, policy.forecaster)) == kinds


# --- the grant strategy (ATS) ------------------------------------------------------------------


def test_minimal_grant_gives_every_run_its_minimum_and_never_grows() -> None:
    log = Log()
    off = run("octopus", observers=[log], ats=False)
    assert off["instances"] == 200
    assert {k for _, k, _, _, _ in log.starts.values()} == {1}  # the tasks' minimum
    assert not log.grown
    log = Log()
    run("octopus", observers=[log])
    assert max(k for _, k, _, _, _ in log.starts.values()) > 1


# One long run queued behind short ones: 10000 x m cycles, m = 1, 10, 1, 1, 1.
LONG_AMONG_SHORT = {
    "owg": 1, "name": "long", "arrivals": {"process": "batch", "count": 5}, "vars": {"m": 1},
    "phases": [{"count": 1, "vars": {"m": {"dist": "const", "value": m}}}
               for m in (1, 10, 1, 1, 1)],
    "tasks": {"a": {"kind": "general", "cycles": "10000 * m", "peas": [1, 4],
                    "context_bytes": 0}},
    "flow": ["a"]}


@pytest.mark.parametrize("horizon_grant", [True, False])
def test_horizon_grant_widens_a_long_run_that_would_outlast_the_queue(
        horizon_grant: bool) -> None:
    """When the first run frees the TBU's 4 PEAs, four runs wait: shared by queue depth each
    gets 1. The long one (100,000 cycles) would then outlast the cluster's work in hand
    (30,000 cycles over 4 PEAs) many times: with ``horizon_grant`` it gets all 4 PEAs."""
    log = Log()
    summary, _ = simulate(LONG_AMONG_SHORT, ONE_TBU, observers=[log],
                          horizon_grant=horizon_grant)
    assert summary["instances"] == 5
    long_k = [k for _, k, work, _, _ in log.starts.values() if work == 100_000]
    assert long_k == ([4] if horizon_grant else [1])


# --- the forecaster (PCS) ----------------------------------------------------------------------

# Instances one at a time: a short 'a' announces a long 'b'; 'c' never runs (its TBU idles).
AHEAD = {"owg": 1, "name": "ahead",
         "arrivals": {"process": "periodic", "interarrival_cycles": 2_000_000, "count": 3},
         "tasks": {"a": {"kind": "general", "cycles": 50_000, "peas": [1, 1]},
                   "b": {"kind": "general", "cycles": 500_000, "peas": [1, 4]},
                   "c": {"kind": "general", "cycles": 1000}},
         "flow": ["a", "b", {"branch": [{"p": 0.0, "do": ["c"]}, {"else": []}]}]}


def test_forecast_moves_tbus_ahead_of_the_work_it_announces() -> None:
    """With PCS a started 'a' announces its 'b', and an idle TBU is rebound to 'b' while no
    'b' exists yet; without PCS the scheduler only ever moves TBUs towards work that exists."""
    ahead, without = Lifetimes(), Lifetimes()
    on, _ = simulate(AHEAD, ARCH, observers=[ahead])
    off, _ = simulate(AHEAD, ARCH, observers=[without], pcs=False)
    assert on["instances"] == off["instances"] == 3
    assert without.loads and without.ahead_of_demand() == []
    moves = ahead.ahead_of_demand()
    assert moves and {task for _, task, _ in moves} == {1}  # towards 'b'
    first_b = min(start for ty, _, start, _, _ in ahead.runs if ty == 1)
    assert any(t < first_b for _, _, t in moves)


def test_null_forecaster_learns_nothing_and_prefetches_nothing() -> None:
    """Without PCS decisions are not even delivered (the engine skips the hook), and a TBU
    moved while busy loads its whole context when it switches."""
    wf = dict(SHIFT, tasks={name: {**t, "context_bytes": 64_000}
                            for name, t in SHIFT["tasks"].items()})
    calls = {}
    for pcs in (True, False):
        sim = Simulation(parse_workflow(wf, "w.yaml"), parse_arch(ARCH, "a.yaml"),
                         make_policy("octopus", {"pcs": pcs, "horizon_cycles": SMALL_HORIZON,
                                                 "horizon_arrivals": 1}), seed=1)
        fetch = sim.prefetch
        seen: list[int] = []

        def prefetch(tbu, task, seen=seen, fetch=fetch):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
            seen.append(task)
            return fetch(tbu, task)

        sim.prefetch = prefetch  # type: ignore[method-assign]
        assert summarize(sim.run())["instances"] == 200
        calls[pcs] = len(seen)
    assert calls[True] > 0 and calls[False] == 0
    for pcs in (True, False):  # AHEAD has a branch to learn
        _, sim = simulate(AHEAD, ARCH, pcs=pcs)
        assert bool(sim.policy.learned) == pcs  # type: ignore[attr-defined]


# --- the rebalancer (DDS) ----------------------------------------------------------------------

THREE_STAGES = {"owg": 1, "name": "three",
                "arrivals": {"process": "periodic", "interarrival_cycles": 100_000, "count": 3},
                "tasks": {n: {"kind": "general", "cycles": 5000} for n in ("a", "b", "c")},
                "flow": ["a", "b", "c"]}
TWO_TBUS = dict(ARCH, cluster={"tbus": 2, "cbu_cycles": 10})


def test_cluster_scheduler_gives_a_type_without_tbus_one_when_its_runs_queue() -> None:
    """Two TBUs for three types: 'c' has none at first. Its first run queues while 'a''s TBU
    has no work left, and that TBU is rebound to 'c' in the same cycle (not at the next pass);
    without rebinding such a cluster cannot run the workflow at all."""
    life = Lifetimes()
    summary, _ = simulate(THREE_STAGES, TWO_TBUS, observers=[life])
    assert summary["instances"] == 3
    first_c = min(ready for ty, ready, _, _, _ in life.runs if ty == 2)
    assert min(start for _, task, start, _ in life.loads if task == 2) == first_c
    with pytest.raises(UserError, match="octopus without rebinding needs one TBU per task "
                                        "type: cluster 0 has 2 for 3 types"):
        simulate(THREE_STAGES, TWO_TBUS, dds=False, pcs=False)


def test_cluster_scheduler_drains_busy_tbus_towards_the_most_loaded_type() -> None:
    """When demand shifts ('a' first, then 'b'), the periodic pass takes TBUs from 'a' while
    'a' still has runs queued: such a TBU finishes the runs it has, takes no new ones, and
    loads 'b' the cycle its last run ends. Without DDS nothing moves."""
    life = Lifetimes()
    summary, _ = simulate(SHIFT, ARCH, observers=[life], pcs=False)
    assert summary["instances"] == 200
    drained = []
    for tbu, task, t, last in life.loads:
        before = [ty for ty, _, _, done, on in life.runs if on == tbu and done == t]
        if last == t and before and before[0] != task and any(
                ty == before[0] and ready <= t < start for ty, ready, start, _, _ in life.runs):
            drained.append((tbu, task, t))
    assert drained
    fixed = Lifetimes()
    simulate(SHIFT, ARCH, observers=[fixed], dds=False, pcs=False)
    assert fixed.loads == []


# Two instances of one long 'x' on single-PEA TBUs: the second finds 'x''s only TBU busy.
QUEUED_BEHIND = {"owg": 1, "name": "behind",
                 "arrivals": {"process": "periodic", "interarrival_cycles": 1000, "count": 2},
                 "tasks": {"x": {"kind": "general", "cycles": 1_000_000, "context_bytes": 0},
                           "y": {"kind": "general", "cycles": 1000, "context_bytes": 0}},
                 "flow": ["x", {"branch": [{"p": 0.0, "do": ["y"]}, {"else": []}]}]}
TWO_SMALL = dict(ARCH, cluster={"tbus": 2, "cbu_cycles": 10}, tbu={"peas": 1})


@pytest.mark.parametrize("dds", [True, False])
def test_a_run_that_must_queue_takes_an_idle_tbu_of_another_type_at_once(dds: bool) -> None:
    """The second 'x' would wait a million cycles for the first: 'y''s idle TBU is rebound to
    'x' the moment the run queues (not at the next pass), and the run starts there when the
    context is loaded. With the partition fixed it waits."""
    log, life = Log(), Lifetimes()
    summary, _ = simulate(QUEUED_BEHIND, TWO_SMALL, observers=[log, life], dds=dds, pcs=dds)
    assert summary["instances"] == 2
    second = max(log.starts.values())  # (start, k, work, tbu, type) of the later start
    ready = max(ready for _, ready, _, _, _ in life.runs)
    if dds:
        assert [(task, start) for _, task, start, _ in life.loads] == [(0, ready)]
        assert second[0] == next(end for tbu, task, start, end in log.reconfigs if start > 0)
    else:
        assert life.loads == []
        assert second[0] >= 1_000_000


# Periodic instances: a long 'a', then a short 'b' that waits for nothing.
FAULTED = {"owg": 1, "name": "faulted",
           "arrivals": {"process": "periodic", "interarrival_cycles": 20_000, "count": 20},
           "tasks": {"a": {"kind": "general", "cycles": 60_000, "context_bytes": 0},
                     "b": {"kind": "general", "cycles": 2000, "context_bytes": 0}},
           "flow": ["a", "b"]}


def test_without_a_scheduler_a_fault_recompiles_the_mapping_at_once() -> None:
    """The fixed partition gives 'b' one TBU. When it dies while 'b' has nothing queued, no
    pass would ever give 'b' another (there is none without DDS): the fault itself rebinds a
    TBU of the type with the most to 'b', and every instance completes."""
    log = Log()
    simulate(FAULTED, ARCH, observers=[log], dds=False, pcs=False)
    initial = {tbu: task for tbu, task, start, _ in log.reconfigs if start == 0}
    b_tbu = next(tbu for tbu, task in initial.items() if task == 1)
    assert list(initial.values()).count(1) == 1
    at = 110_000  # between two 'b' runs (each 2,000 cycles, every 20,000)
    assert not any(t == 1 and s <= at <= s + 2000 for s, _, _, _, t in log.starts.values())
    log = Log()
    summary, _ = simulate(FAULTED, ARCH, observers=[log], faults=(f"tbu:{b_tbu}@{at}",),
                          dds=False, pcs=False)
    assert summary["instances"] == 20
    later = [(tbu, task, start) for tbu, task, start, _ in log.reconfigs if start > 0]
    assert later and later[0][1] == 1 and later[0][0] != b_tbu
    assert later[0][2] < min(s for s, _, _, _, t in log.starts.values() if t == 1 and s > at)
