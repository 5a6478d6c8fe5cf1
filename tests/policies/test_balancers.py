"""Balancers across clusters (policies/balancers.py): work moves, pays the NoC, and diffuses
hop by hop; I/O placement decides where work enters."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from octosim.engine.sim import Observer, Simulation
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.balancers import take_latest
from octosim.policies.registry import make_policy


class _Type:
    def __init__(self, idx: int) -> None:
        self.idx = idx


class _Run:
    def __init__(self, work: int, kind: int = 0) -> None:
        self.work = work
        self.tt = _Type(kind)


def test_take_latest_takes_the_newest_runs_of_the_fullest_queue() -> None:
    a = deque([_Run(10), _Run(20)])
    b = deque([_Run(5), _Run(6), _Run(7)])
    queued = [30, 18]
    runs = take_latest([a, b], queued, 26, lambda r: r.work)  # type: ignore[list-item]
    # a has the most: its newest (20) goes; then b (18 > 10): its newest (7) would pass 26 by
    # less than half its size, so it goes too; then nothing fits by half.
    assert [r.work for r in runs] == [20, 7]
    assert queued == [10, 11] and len(a) == 1 and len(b) == 2
    assert take_latest([deque()], [0], 100, lambda r: r.work) == []
    big = deque([_Run(100)])
    assert take_latest([big], [100], 40, lambda r: r.work) == []  # less than half of it fits
    # The limit (what evens two clusters out) is never passed, whatever fits by half.
    c = deque([_Run(10), _Run(10), _Run(10)])
    assert len(take_latest([c], [30], 30, lambda r: r.work, limit=25)) == 2  # type: ignore
    # Types not worth moving stay: their queue is skipped; a queue of mixed types stops at
    # the first such run (its order is kept).
    a = deque([_Run(10, 0), _Run(20, 0)])
    b = deque([_Run(5, 1)])
    queued = [30, 5]
    runs = take_latest([a, b], queued, 100, lambda r: r.work, movable=[False, True])
    assert [r.work for r in runs] == [5] and len(a) == 2 and queued == [30, 0]
    mixed = deque([_Run(10, 1), _Run(20, 0), _Run(30, 1)])
    runs = take_latest([mixed], [60], 100, lambda r: r.work, movable=[False, True])
    assert [r.work for r in runs] == [30] and len(mixed) == 2


def test_diffusion_never_swaps_runs_back_and_forth() -> None:
    """Two clusters whose PEAs are all busy for long (a 10M-cycle context load) and a queue
    on one: diffusion moves what evens them out, then nothing -- with a 1,000-cycle period it
    must not move the same runs every period until the load ends."""
    arch = {**ARCH, "grid": {"rows": 1, "cols": 2}, "reconfig": {"fixed_cycles": 10_000_000}}
    sim, _ = simulate("static", "diffusion", arch, balance_period_cycles=1000,
                      diffusion_coefficient=0.25)
    assert sim.instances_done == 120
    assert sim.policy.moved_runs <= 240  # each run moves at most about once
    assert sim.events < 20_000, sim.events  # no tick every period for 10M cycles


ARCH = {"arch": 1, "name": "line", "grid": {"rows": 1, "cols": 4},
        "cluster": {"tbus": 2, "cbu_cycles": 0}, "tbu": {"peas": 4, "split_efficiency": 1.0},
        "noc": {"hop_cycles": 5, "link_bytes_per_cycle": 64},
        "memory": {"bytes_per_cycle": 1e6, "controllers": "per_cluster"},
        "reconfig": {"fixed_cycles": 100}, "io": {"placement": [0]}}

WF = {"owg": 1, "name": "two", "arrivals": {"process": "batch", "count": 120,
                                            "input_bytes": 4096},
      "tasks": {"a": {"kind": "general", "cycles": 20000, "out_bytes": 2048,
                      "context_bytes": 0},
                "b": {"kind": "general", "cycles": 40000, "peas": [1, 4], "context_bytes": 0}},
      "flow": ["a", "b"]}


class Starts(Observer):
    """The first cycle a run started on each cluster, and runs per cluster."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}
        self.count: dict[int, int] = {}

    def task_started(self, run, now):  # type: ignore[no-untyped-def]
        c = run.tbu.cluster
        self.first.setdefault(c, now)
        self.count[c] = self.count.get(c, 0) + 1


def simulate(policy: str, balancer: str, arch: dict | None = None,
             **params: Any) -> tuple[Simulation, Starts]:
    starts = Starts()
    sim = Simulation(parse_workflow(WF, "w.yaml"), parse_arch(arch or ARCH, "a.yaml"),
                     make_policy(policy, {"balancer": balancer, **params}), seed=3,
                     observers=[starts])
    return sim.run(), starts


POLICIES = ["static", "reactive", "indiscriminate", "octopus"]


@pytest.mark.parametrize("policy", POLICIES)
def test_balancers_move_work_off_the_io_cluster_and_pay_the_noc(policy: str) -> None:
    none, starts_none = simulate(policy, "none")
    assert set(starts_none.count) == {0}, "without a balancer work stays where it entered"
    assert none.chip.mesh.bytes_moved == 0 and none.policy.moved_runs == 0
    for name in ("diffusion", "central"):
        sim, starts = simulate(policy, name, balance_period_cycles=2000)
        assert sim.instances_done == 120
        assert len(starts.count) == 4, f"{name}: every cluster takes some work"
        assert sim.policy.moved_runs > 0
        assert sim.chip.mesh.bytes_moved > 0, "moved runs' inputs cross the NoC"
        assert sim.makespan < none.makespan / 2, (name, sim.makespan, none.makespan)


def test_diffusion_spreads_hop_by_hop_central_jumps() -> None:
    """Diffusion sees only mesh neighbours: work reaches cluster 1 before 2, and 2 before 3.
    The central balancer sends work to the far end at its first period."""
    for policy in POLICIES:
        _, starts = simulate(policy, "diffusion", balance_period_cycles=10_000)
        first = starts.first
        assert first[0] < 10_000 <= first[1] < first[2] < first[3], (policy, first)
        _, central = simulate(policy, "central", balance_period_cycles=10_000)
        assert central.first[1] == central.first[2] == central.first[3] == 10_000, policy


def test_diffusion_is_within_reach_of_central() -> None:
    for policy in ("static", "octopus"):
        diffusion, _ = simulate(policy, "diffusion", balance_period_cycles=2000)
        central, _ = simulate(policy, "central", balance_period_cycles=2000)
        assert diffusion.makespan <= 1.3 * central.makespan, policy


def test_a_single_cluster_ignores_the_balancer() -> None:
    arch = {**ARCH, "grid": {"rows": 1, "cols": 1}, "io": {"placement": "edge"}}
    none, _ = simulate("octopus", "none", arch)
    diff, _ = simulate("octopus", "diffusion", arch)
    assert diff.makespan == none.makespan and diff.policy.moved_runs == 0


def test_edge_io_leaves_the_centre_of_a_3x3_grid_idle_without_a_balancer() -> None:
    arch = {**ARCH, "grid": {"rows": 3, "cols": 3}, "io": {"placement": "edge"}}
    sim, starts = simulate("static", "none", arch)
    assert 4 not in starts.count and set(starts.count) == {0, 1, 2, 3, 5, 6, 7, 8}
    assert sim.chip.io_clusters == [0, 1, 2, 3, 5, 6, 7, 8]
    _, balanced = simulate("static", "diffusion", arch, balance_period_cycles=2000)
    assert 4 in balanced.count
    uniform = {**arch, "io": {"placement": "uniform"}}
    _, everywhere = simulate("static", "none", uniform)
    assert set(everywhere.count) == set(range(9))


def _streaming_workflow(batch_max: int) -> dict[str, Any]:
    """``a`` then an LLM decode step whose weights stream from memory on every run (in
    batches of ``batch_max`` sharing one pass)."""
    llm: dict[str, Any] = {"kind": "ai", "model": "llm1b_decode"}
    if batch_max > 1:
        llm["batch"] = {"max": batch_max, "wait_cycles": 10_000}
    return {**WF, "tasks": {"a": WF["tasks"]["a"], "llm": llm}, "flow": ["a", "llm"]}


def _simulate_workflow(wf: dict[str, Any], policy: str, balancer: str,
                       **params: Any) -> Simulation:
    sim = Simulation(parse_workflow(wf, "w.yaml"), parse_arch(ARCH, "a.yaml"),
                     make_policy(policy, {"balancer": balancer, **params}), seed=3)
    return sim.run()


@pytest.mark.parametrize("policy", POLICIES)
def test_instances_that_stream_weights_in_batches_stay_with_their_partners(policy: str) -> None:
    """Moving an instance whose later run streams weights in batches would leave it to stream
    them alone elsewhere (rag-agent's LLM batches split on the wafer: 1.5x slower than no
    balancing); one that streams them run by run moves where a channel has room."""
    batched = _simulate_workflow(_streaming_workflow(4), policy, "diffusion",
                                 balance_period_cycles=2000)
    assert batched.instances_done == 120
    assert batched.policy.moved_runs == 0
    single = _simulate_workflow(_streaming_workflow(1), policy, "diffusion",
                                balance_period_cycles=2000)
    assert single.instances_done == 120 and single.policy.moved_runs > 0
    # No channel has room at a headroom of 0: only work with no weights ahead moves.
    full = _simulate_workflow(_streaming_workflow(1), policy, "diffusion",
                              balance_period_cycles=2000, balance_memory_headroom=0.0)
    assert full.instances_done == 120 and full.policy.moved_runs == 0
    plain = _simulate_workflow(WF, policy, "diffusion", balance_period_cycles=2000,
                               balance_memory_headroom=0.0)
    assert plain.policy.moved_runs > 0
