"""The policy interface's shared queries and defaults: the incremental TBU table agrees with a
scan of the chip at every moment, work queued on a dead cluster is re-homed by the default
``on_fault``, a policy that could not recover from a fault is refused up front, and the
section of docs/policies.md that is the interface names everything in it."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from octosim.engine.core import NO_ARRIVAL
from octosim.engine.metrics import summarize
from octosim.engine.policy import NONE, Policy, TBUTable
from octosim.engine.sim import Fault, Observer, Simulation
from octosim.errors import UserError
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.registry import make_policy
from tests.engine.test_faults import ARCH as TWO_CLUSTERS
from tests.engine.test_faults import WF

DOCS = Path(__file__).parents[2] / "docs" / "policies.md"


def scan(sim: Simulation, table: TBUTable) -> None:
    """Compare the table with what a scan of every TBU gives."""
    nt = len(sim.task_types)
    for c, tbus in enumerate(sim.chip.cluster_tbus):
        counts = [0] * nt
        settled: list[set[int]] = [set() for _ in range(nt)]
        for t in tbus:
            if not t.alive:
                assert table.serves(t) == NONE
                continue
            target = table.leaving_for(t)
            serve = target if target >= 0 else t.loading if t.reconfiguring else t.bound
            assert table.serves(t) == max(serve, NONE), t
            if serve >= 0:
                counts[serve] += 1
            listed = sum(lst.count(t) for lst in table.free[c])
            if target < 0 and not t.reconfiguring and t.bound >= 0:
                settled[t.bound].add(t.id)
                # A TBU that could take a run of its type now is where first_free looks.
                if len(t.free) >= table.need[t.bound]:
                    assert table.listed[t.id] and t in table.free[c][t.bound], t
            assert listed == table.listed[t.id] <= 1, t
        assert table.counts[c] == counts, (c, table.counts[c], counts)
        assert [set(d) for d in table.settled[c]] == settled


def run_scanned(policy: str, faults: list[str], every: int = 997,
                **params: Any) -> dict[str, Any]:
    """Run with a timer that scans the chip every ``every`` cycles (between events, so the
    policy's state is settled; a timer that changes nothing changes no decision)."""
    scans = []
    paused = [False]

    class Resume(Observer):
        """Re-arm the scan when work moves again (see ``check``)."""

        def task_started(self, run: Any, now: int) -> None:
            if paused[0]:
                paused[0] = False
                sim.call_at(now + every, check)

    sim = Simulation(parse_workflow(WF, "w"), parse_arch(TWO_CLUSTERS, "a"),
                     make_policy(policy, params), seed=5,
                     faults=[Fault.parse(f) for f in faults], observers=[Resume()])

    def check() -> None:
        table = getattr(sim.policy, "tbus", None)
        assert isinstance(table, TBUTable)
        scan(sim, table)
        scans.append(sim.now)
        if sim.instances_done == sim.wf.count:
            return
        if sim.loop.only_timers() and sim.next_arrival == NO_ARRIVAL:
            # Nothing but timers left: a back-pressure deadlock the engine breaks (spill) once
            # the heap is empty. A perpetual timer would keep it stuck until the watchdog.
            paused[0] = True
            return
        sim.call_at(sim.now + every, check)

    sim.call_at(1, check)
    summary = summarize(sim.run())
    assert len(scans) > 100
    return summary


@pytest.mark.parametrize(("policy", "params", "faults"), [
    ("octopus", {}, []),
    ("octopus", {}, ["tbu:1@200000", "tbu:2@250000", "cluster:1@400000"]),
    ("octopus", {"dds": False, "pcs": False}, ["tbu:1@200000"]),
    ("octopus", {"ats": False, "max_moves": 1}, ["tbu:5@100000"]),
    ("static", {}, ["tbu:0@200000", "tbu:5@210000"]),
    ("reactive", {"threshold": 0.1, "window_cycles": 0, "check_cycles": 5000}, ["tbu:3@300000"]),
])
def test_tbu_table_agrees_with_a_scan_of_the_chip(policy: str, params: dict[str, Any],
                                                  faults: list[str]) -> None:
    summary = run_scanned(policy, faults, **params)
    assert summary["instances"] == WF["arrivals"]["count"]


def test_scanning_changes_no_decision() -> None:
    sim = Simulation(parse_workflow(WF, "w"), parse_arch(TWO_CLUSTERS, "a"),
                     make_policy("octopus"), seed=5)
    plain = summarize(sim.run())
    scanned = run_scanned("octopus", [])
    for key in ("makespan_cycles", "latency_cycles", "reconfigurations", "tasks"):
        assert scanned[key] == plain[key]


class Fifo(Policy):
    """A minimal third-party policy: TBUs bound round-robin, FIFO queues per cluster and
    type. It hands back its queued runs (``queued_runs``) and relies on the default
    ``on_fault``."""

    name = "fifo-test"

    def setup(self, sim: Simulation) -> None:
        super().setup(sim)
        n = len(sim.task_types)
        self.queues: dict[tuple[int, int], deque[Any]] = {}
        self.tbus: dict[tuple[int, int], list[Any]] = {}
        for c in range(sim.chip.n_clusters):
            alive = [t for t in sim.chip.cluster_tbus[c] if t.alive]
            for i, tbu in enumerate(alive):
                self.tbus.setdefault((c, i % n), []).append(tbu)
                sim.bind(tbu, i % n)
            for idx in range(n):
                self.queues[c, idx] = deque()

    def on_ready(self, run: Any) -> None:
        assert self.sim is not None
        key = (run.inst.cluster, run.tt.idx)
        for tbu in self.tbus.get(key, ()):
            if tbu.bound == run.tt.idx and len(tbu.free) >= run.tt.kmin:
                self.sim.start(run, tbu, run.tt.kmin)
                return
        self.queues[key].append(run)

    def on_freed(self, tbu: Any) -> None:
        assert self.sim is not None
        if tbu.bound < 0 or tbu.reconfiguring:
            return
        q = self.queues[tbu.cluster, tbu.bound]
        while q and len(tbu.free) >= q[0].tt.kmin:
            run = q.popleft()
            self.sim.start(run, tbu, run.tt.kmin)


class FifoQueued(Fifo):
    def queued_runs(self, cluster: int) -> list[Any]:
        runs: list[Any] = []
        for (c, _), q in sorted(self.queues.items()):
            if c == cluster:
                runs.extend(q)
                q.clear()
        return runs


class Homes(Observer):
    def __init__(self, sim_ref: list[Simulation]) -> None:
        self.sim_ref = sim_ref
        self.starts: list[tuple[int, int, int]] = []  # cycle, TBU's cluster, home cluster

    def task_started(self, run, now):  # type: ignore[no-untyped-def]
        sim = self.sim_ref[0]
        assert sim.cluster_alive[run.inst.cluster], "a run started while homed on a dead cluster"
        self.starts.append((now, run.tbu.cluster, run.inst.cluster))


def test_default_on_fault_rehomes_the_work_queued_on_a_dead_cluster() -> None:
    """Work queued on cluster 1 when it dies is handed back (``queued_runs``), re-homed on
    cluster 0 and dispatched there; nothing starts on cluster 1 again and no instance is
    lost."""
    ref: list[Simulation] = []
    homes = Homes(ref)
    sim = Simulation(parse_workflow(WF, "w"), parse_arch(TWO_CLUSTERS, "a"),
                     FifoQueued(), seed=5, observers=[homes],
                     faults=[Fault.parse("cluster:1@150000")])
    ref.append(sim)
    summary = summarize(sim.run())
    assert summary["instances"] == WF["arrivals"]["count"]
    assert any(c == 1 for t, c, _ in homes.starts if t < 150000)
    assert not any(c == 1 for t, c, _ in homes.starts if t >= 150000)
    # Runs that were queued there when it died start at once on cluster 0.
    assert any(t == 150000 and c == 0 for t, c, _ in homes.starts)


def test_a_policy_that_cannot_recover_from_faults_is_refused_up_front() -> None:
    wf, arch = parse_workflow(WF, "w"), parse_arch(TWO_CLUSTERS, "a")
    assert summarize(Simulation(wf, arch, Fifo(), seed=5).run())["instances"] == 300
    with pytest.raises(UserError, match=r"policy 'fifo-test' cannot run with --fault: it "
                                        r"implements neither on_fault\(tbu\) nor "
                                        r"queued_runs\(cluster\)"):
        Simulation(wf, arch, Fifo(), seed=5, faults=[Fault.parse("tbu:1@1000")]).run()


# --- the documentation ----------------------------------------------------------------------


def interface_section() -> str:
    text = DOCS.read_text()
    start = text.index("## The policy interface")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


HOOKS = ["setup", "place_instance", "control_cycles", "on_ready", "on_complete", "on_freed",
         "on_bound", "on_fault", "on_decision", "queued_runs"]
ACTIONS = ["start", "start_any", "grow", "bind", "unbind", "prefetch", "call_at",
           "flow_position", "service_cycles", "min_cycles"]
VIEWS = ["chip", "task_types", "arch", "now", "held_work", "cluster_alive"]
QUERIES = ["rehome", "rehome_queued", "rehome_instance", "TBUTable"]


def test_the_interface_section_names_every_hook_action_view_and_query() -> None:
    section = interface_section()
    for name in HOOKS + ACTIONS + VIEWS + QUERIES:
        assert re.search(rf"`[\w.]*\b{name}\b", section), name
    for name in HOOKS:
        assert getattr(Policy, name).__doc__, name  # and each has its contract in the code
    for name in ["serves", "leaving_for", "first_free", "offer", "taken", "bind", "drain",
                 "bound", "fault"]:
        assert getattr(TBUTable, name).__doc__, name
        assert name in section, name

