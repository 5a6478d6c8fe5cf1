"""Runtime faults: units die, the work in flight there is re-executed elsewhere, and no
instance is lost (the aborted attempt is counted apart, in ``reexecutions``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from octosim.engine.entities import Fault, SimulationStuck, TaskRun
from octosim.engine.events import EventKind
from octosim.hardware.chip import TBU, UNBOUND

if TYPE_CHECKING:
    from octosim.engine.sim import Simulation

_COMPLETE = int(EventKind.COMPLETE)


class FaultInjector:
    """Applies ``--fault`` events to a simulation."""

    __slots__ = ("sim", "stale", "reexecutions")

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        # (run seq, cycle) of completion events whose attempt a fault aborted.
        self.stale: set[tuple[int, int]] = set()
        self.reexecutions = 0

    def runs_on(self, tbu: TBU) -> list[TaskRun]:
        """The runs in flight on ``tbu``, in start order: each has exactly one live completion
        event (its cycle is the run's ``end_at``). Faults are rare, so the heap is scanned
        rather than keeping a set per TBU on the hot path."""
        stale = self.stale
        runs = [e[4] for e in self.sim.loop.heap
                if e[3] == _COMPLETE and e[4].tbu is tbu and e[4].end_at == e[0]
                and (e[4].seq, e[0]) not in stale]
        return sorted(runs, key=lambda r: r.seq)

    def apply(self, fault: Fault) -> None:
        sim = self.sim
        now = sim.now
        chip = sim.chip
        acct = sim.acct
        if fault.kind == "cluster":
            if not sim.cluster_alive[fault.unit]:
                return
            sim.cluster_alive[fault.unit] = False
            chip.alive_clusters = [c for c in chip.alive_clusters if c != fault.unit]
            if not chip.alive_clusters:
                raise SimulationStuck(f"fault at cycle {now} left no working cluster")
            # Instances no longer enter there; with no I/O cluster left, at any live one.
            sim.io_alive = [c for c in sim.io_alive if c != fault.unit] or list(
                chip.alive_clusters)
            victims = [t for t in chip.cluster_tbus[fault.unit] if t.alive]
        else:
            tbu = chip.tbus[fault.unit]
            victims = [tbu] if tbu.alive else []
        acct.integrate(now)
        aborted: list[TaskRun] = []
        for tbu in victims:
            tbu.alive = False
            if tbu.loading_peas:
                acct.reconfig_peas -= tbu.loading_peas
                tbu.loading_peas = 0
            if tbu.reconfiguring:
                tbu.reconfiguring = False
                tbu.loading = UNBOUND
                acct.reconfig_peas -= tbu.n_peas
            elif tbu.bound == UNBOUND:
                acct.unbound_peas -= tbu.n_peas
            elif tbu.bound >= 0:
                sim.buffers.stage_tbus[tbu.bound] -= 1
            tbu.bound = UNBOUND
            acct.blocked_peas -= tbu.blocked
            tbu.blocked = 0
            aborted.extend(self.runs_on(tbu))
            acct.busy_peas -= tbu.busy
            tbu.busy = 0
            tbu.running = 0
            tbu.free = []
            acct.dead_peas += tbu.n_peas
        for tbu in victims:
            sim.policy.on_fault(tbu)
        for run in aborted:
            self._abort(run, now)

    def _abort(self, run: TaskRun, now: int) -> None:
        sim = self.sim
        acct = sim.acct
        idx = run.tt.idx
        acct.area_busy += run.pea_cycles(now)  # it held its PEAs until the fault
        sim.unbook(run, now, True)
        # The aborted attempt does not count as the task's execution.
        acct.task_count[idx] -= 1
        acct.task_service[idx] -= run.end_at - run.start_at
        acct.task_wait[idx] -= run.start_at - run.ready_at
        acct.reexec_count[idx] += 1
        self.reexecutions += 1
        for ob in sim.observers:
            ob.task_aborted(run, now)
        # Its latency terms keep the aborted attempt's wait and time (see TaskRun.lost).
        lost = run.lost
        if lost is None:
            lost = run.lost = [run.ready_at, 0, 0]
        lost[1] += run.start_at - run.ready_at
        lost[2] += now - run.start_at
        run.transfer_cycles = 0
        self.stale.add((run.seq, run.end_at))
        run.end_at = -1  # its completion event is now stale
        run.reexec += 1
        run.tbu = None
        run.peas = []
        run.k = 0
        run.start_at = run.svc_start = -1
        run.work_left = -1.0
        run.rate_since = -1
        run.grants = None
        run.mem_end = 0
        run.busy_adjust = 0
        run.batch = None
        if not sim.cluster_alive[run.inst.cluster]:
            run.inst.cluster = sim.policy.place_instance(run.inst)
        sim.buffers.occupancy[idx] += 1
        run.ready_at = now
        sim.ready_now.append(run)
