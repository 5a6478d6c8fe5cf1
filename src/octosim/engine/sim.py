"""One run: workflow x architecture x policy x seed, as a discrete-event simulation.

The simulation walks the compiled workload (:mod:`octosim.engine.workload`): an instance's
arrival releases its first runs, a run's completion releases what waited for it, and the
decisions a completion lets the CBU take reach the policy then. Runs reach the policy through
the stage buffers (:mod:`octosim.engine.backpressure`) and their control latency; the policy
acts on the chip through :class:`~octosim.engine.resources.ResourceActions`. The event loop is
:mod:`octosim.engine.core`, PEA-time bookkeeping :mod:`octosim.engine.accounting`, runtime
faults :mod:`octosim.engine.faults`. Observers receive task and instance events for metrics
and traces.
"""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Callable

from octosim.engine.accounting import Accounting
from octosim.engine.backpressure import Blocked, StageBuffers
from octosim.engine.core import (
    FAULT,
    NO_ARRIVAL,
    READY,
    TIMER,
    WATCHDOG_EVENTS,
    EventLoop,
    drive,
)
from octosim.engine.entities import (
    LATENCY_TERMS,
    MAX_CYCLE,
    NO_TERMS,
    Fault,
    Instance,
    Observer,
    SimulationStuck,
    TaskRun,
    too_late,
)
from octosim.engine.faults import FaultInjector
from octosim.engine.policy import Policy
from octosim.engine.resources import ResourceActions
from octosim.engine.stats import LatencyRecorder
from octosim.engine.tasks import build_task_types
from octosim.engine.workload import END, JUNCTION, FlowPosition, WorkloadChunk, WorkloadCompiler
from octosim.errors import UserError
from octosim.hardware.chip import TBU, UNBOUND, Chip
from octosim.hardware.defects import check_workable
from octosim.model.arch import ArchSpec
from octosim.model.rng import KeyedRandom
from octosim.model.workflow import Workflow

__all__ = ["LATENCY_TERMS", "MAX_CYCLE", "Fault", "Instance", "Observer", "Simulation",
           "SimulationStuck", "TaskRun", "too_late"]


class Simulation(ResourceActions):
    """One run. Build it, then call :meth:`run`; results are read by
    :func:`octosim.engine.metrics.summarize`."""

    def __init__(self, wf: Workflow, arch: ArchSpec, policy: Policy, seed: int = 1,
                 observers: list[Observer] | None = None,
                 max_events: int | None = None,
                 faults: list[Fault] | None = None) -> None:
        self.wf = wf
        self.arch = arch
        self.policy = policy
        self.seed = seed
        self.rnd = KeyedRandom(seed)
        self.task_types = build_task_types(wf, arch)
        self.chip = Chip(arch)
        check_workable(self.chip, [tt.kmin for tt in self.task_types],
                       [tt.name for tt in self.task_types])
        self.observers = list(observers or [])
        self.max_events = max_events
        self.faults = list(faults or [])
        for f in self.faults:
            f.check(self.chip)
        self.cluster_alive = [c in self.chip.alive_clusters for c in range(self.chip.n_clusters)]
        # Where instances enter: the live I/O clusters (kept up to date as clusters die).
        self.io_alive = [c for c in self.chip.io_clusters if self.cluster_alive[c]]
        if not self.io_alive:
            raise UserError(f"no working I/O cluster: clusters {self.chip.io_clusters} are all "
                            "defective", where="io.placement")
        self.now = 0
        self.loop = EventLoop()
        self.events = 0
        self.split_eff = arch.tbu.split_efficiency
        self.workload = WorkloadCompiler(wf, self.task_types, self.rnd, self.split_eff)
        self._chunks = self.workload.chunks()
        self._chunk: WorkloadChunk | None = None
        self._next_instance = 0
        self.next_arrival = NO_ARRIVAL
        self._run_seq = 0
        self._new_runs: list[TaskRun] = []
        self.ready_now: deque[TaskRun] = deque()
        # The run being completed (its seq; 0 at an arrival) and its instance's latency terms
        # along its critical path up to its completion: what the runs it releases inherit.
        self._crit_seq = 0
        self._path_terms = NO_TERMS
        self._on_decision = policy.hook("on_decision")
        self._on_complete = policy.hook("on_complete")
        n = len(self.task_types)
        self.alive_peas = sum(t.n_peas for t in self.chip.tbus if t.alive)
        self.acct = Accounting(n, self.alive_peas)
        self._set_bound_terms()
        self.buffers = StageBuffers(n, int(getattr(policy, "buffer_slots", 0) or 0),
                                    self._make_ready, self._unblock)
        self.faults_in = FaultInjector(self)
        self.pea_ctx = [UNBOUND] * (arch.n_tbus * arch.tbu.peas)
        # Results.
        self.instances_arrived = 0
        self.instances_done = 0
        self.makespan = 0
        self.latencies = LatencyRecorder()
        # Sums over finished instances of each latency term (LATENCY_TERMS order).
        self.latency_terms_total = [0] * len(LATENCY_TERMS)
        self.reconfigurations = 0
        self.run_reconfigurations = 0
        self.control_messages = 0
        self.wall_seconds = 0.0
        self.progress = 0  # task starts and arrivals, for the watchdog
        self.watchdog_events = WATCHDOG_EVENTS
        # Read-only views for policies and reports (the same lists the bookkeeping updates).
        self.task_count = self.acct.task_count
        self.task_wait = self.acct.task_wait
        self.task_service = self.acct.task_service
        self.held_work = self.buffers.held_work
        self.task_admission_wait = self.buffers.admission_wait
        self.policy_ready: Callable[[TaskRun], None] = (
            policy.on_ready if not self.faults else self._ready_after_faults)
        for ob in self.observers:
            ob.attached(self)

    def _set_bound_terms(self) -> None:
        """The context-load terms of the lower bound (see :meth:`Accounting.lower_bound`)."""
        acct = self.acct
        acct.context_ready_cycles = [tt.context_ready_cycles for tt in self.task_types]
        acct.context_bytes = [tt.context_bytes for tt in self.task_types]
        acct.streams_weights = [tt.streamed_bytes > 0 for tt in self.task_types]
        acct.reconfig_fixed_cycles = self.arch.reconfig.fixed_cycles
        # Before this cycle no run of any type can compute (the least over all types, so
        # it holds for every instance, whichever types it runs).
        self.first_context_ready = min(acct.context_ready_cycles, default=0)

    # --- the rest of the policy API -------------------------------------------------------

    def call_at(self, at: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at cycle ``at`` (a policy timer; never in the past)."""
        self.loop.schedule(max(at, self.now), TIMER, callback)

    def flow_position(self, run: TaskRun) -> FlowPosition:
        """Where ``run`` stands in the flow: the rest of its sequence of nodes and its scope
        (what a CBU knows when the run starts, for forecasting policies)."""
        return run.chunk.position(run.node, self.workload.positions)

    @property
    def reexecutions(self) -> int:
        return self.faults_in.reexecutions

    @property
    def backpressure_spills(self) -> int:
        return self.buffers.spills

    # --- walking the compiled workload ----------------------------------------------------

    def _new_run(self, ch: WorkloadChunk, node: int, cbs: int, src: int, in_bytes: int) -> None:
        """Node ``node`` of ``ch`` (a task run) has all it waits for: create it, its input of
        ``in_bytes`` lying on cluster ``src``."""
        tt = self.task_types[ch.kind[node]]
        inst: Instance = ch.instances[ch.inst[node]]
        if self.faults and not self.cluster_alive[inst.cluster]:
            inst.cluster = self.policy.place_instance(inst)
        self._run_seq = seq = self._run_seq + 1
        work = ch.work[node]
        run = TaskRun(tt, inst, ch, node, cbs, work, ch.out_bytes[node], src, seq, self.now,
                      self._crit_seq, self._path_terms, in_bytes)
        acct = self.acct
        # A batching type's run costs at least its share of the cheapest batch per run.
        ratio = tt.bound_work_ratio
        acct.total_work += work if ratio == 1.0 else math.floor(work * ratio)
        if tt.streamed_bytes:
            run.stream_scale = ch.scale[node]
            acct.total_streamed += round(tt.bound_streamed_bytes * run.stream_scale)
        self._new_runs.append(run)

    def _release(self, ch: WorkloadChunk, node: int, cbs: int, src: int, nbytes: int) -> None:
        """Node ``node`` of ``ch`` is done (a run completed on cluster ``src`` with ``nbytes``
        of output, or a junction's last run did): the CBU takes the decisions it allowed, and
        whatever waited only for it goes on, ``cbs`` Control Blocks later plus those on the
        way. (A run after a join gets the output of the arm that finished last.)"""
        a = ch.dec_ptr[node]
        if a != ch.dec_ptr[node + 1]:
            self._decide(ch.dec_block, ch.dec_outcome, a, ch.dec_ptr[node + 1])
        deps = ch.deps
        succ = ch.succ
        kinds = ch.kind
        for e in range(ch.succ_ptr[node], ch.succ_ptr[node + 1]):
            y = succ[e]
            d = deps[y] - 1
            deps[y] = d
            if d:
                continue
            kind = kinds[y]
            if kind >= 0:
                self._new_run(ch, y, cbs + ch.succ_cbs[e], src, nbytes)
            elif kind == JUNCTION:
                self._release(ch, y, cbs + ch.succ_cbs[e], src, nbytes)
            else:
                self._instance_done(ch, ch.inst[y])

    def _decide(self, blocks: list[int], outcomes: list[int], a: int, b: int) -> None:
        """The CBU takes decisions ``a`` .. ``b - 1``: a policy that learns is told them."""
        if self._on_decision is not None:
            for j in range(a, b):
                self._on_decision(blocks[j], outcomes[j])

    def _instance_done(self, ch: WorkloadChunk, local: int) -> None:
        now = self.now
        inst: Instance = ch.instances[local]
        inst.done_at = now
        start = inst.arrival
        if inst.tasks_done and start < self.first_context_ready:
            start = self.first_context_ready  # no run computes before a context is loaded
        cp = start + ch.cp[local]
        if cp > self.acct.lower_bound_cp:
            self.acct.lower_bound_cp = cp
        self.instances_done += 1
        self.latencies.append(now - inst.arrival)
        terms = inst.latency_terms = self._path_terms
        if terms is not NO_TERMS:
            tot = self.latency_terms_total
            tot[0] += terms[0]
            tot[1] += terms[1]
            tot[2] += terms[2]
            tot[3] += terms[3]
            tot[4] += terms[4]
        if now > self.makespan:
            self.makespan = now
        for ob in self.observers:
            ob.instance_done(inst, now)

    def _load_chunk(self) -> WorkloadChunk:
        ch = self._chunk = next(self._chunks)
        ch.instances = [None] * ch.count
        return ch

    def arrive(self) -> None:
        """The next instance arrives (at :attr:`next_arrival`)."""
        wf = self.wf
        i = self._next_instance
        ch = self._chunk
        assert ch is not None
        local = i - ch.first
        inst = Instance(i, self.now, wf.phase_of(i))
        ch.instances[local] = inst
        io = self.io_alive
        inst.entry = io[i % len(io)]
        inst.cluster = self.policy.place_instance(inst)
        self.instances_arrived += 1
        self.progress += 1
        new = self._new_runs
        new.clear()
        self._crit_seq = 0
        self._path_terms = NO_TERMS
        a = ch.arrival_dec_ptr[local]
        if a != ch.arrival_dec_ptr[local + 1]:
            self._decide(ch.arrival_dec_block, ch.arrival_dec_outcome, a,
                         ch.arrival_dec_ptr[local + 1])
        roots, root_cbs = ch.roots, ch.root_cbs
        for r in range(ch.root_ptr[local], ch.root_ptr[local + 1]):
            node = roots[r]
            if ch.kind[node] == END:
                self._instance_done(ch, local)
            else:
                self._new_run(ch, node, root_cbs[r], inst.entry, wf.input_bytes)
        if new:
            self.buffers.deposit(None, new)  # if blocked: waits in the stage's admission queue
        self._next_instance = i = i + 1
        if i < wf.count:
            if local + 1 >= ch.count:
                ch = self._load_chunk()
            self.next_arrival = ch.arrival[i - ch.first]
        else:
            self.next_arrival = NO_ARRIVAL

    # --- readiness and back-pressure --------------------------------------------------------

    def _make_ready(self, run: TaskRun) -> None:
        """A run has its buffer slot: it reaches the policy after its control latency."""
        run.admitted_at = self.now
        cbs = run.cbs
        if cbs:
            self.control_messages += cbs
            latency = self.policy.control_cycles(cbs, run)
            if latency > 0:
                run.ready_at = self.now + latency
                self.loop.schedule(run.ready_at, READY, run)
                return
        run.ready_at = self.now
        self.ready_now.append(run)

    def _unblock(self, w: Blocked) -> None:
        run = w.run
        if run is None:
            return
        tbu = run.tbu
        assert tbu is not None
        if not tbu.alive:
            return  # its PEAs died holding the output; the output had been handed on
        acct = self.acct
        acct.integrate(self.now)
        tbu.blocked -= run.k
        acct.blocked_peas -= run.k
        tbu.free.extend(run.peas)
        self.policy.on_freed(tbu)

    def spill(self) -> bool:
        """Break a back-pressure deadlock (see :meth:`StageBuffers.spill`)."""
        if not self.buffers.spill():
            return False
        self.progress += 1
        return True

    # --- event handlers ---------------------------------------------------------------------

    def complete(self, run: TaskRun) -> None:
        """``run`` finished its service."""
        now = self.now
        tbu = run.tbu
        assert tbu is not None
        run.inst.tasks_done += 1
        tbu.running -= 1
        run.end_at = -1  # finished: any later event for it is stale
        if self.observers:
            for ob in self.observers:
                ob.task_done(run, now)
        new = self._new_runs
        new.clear()
        # Its latency terms (LATENCY_TERMS order), added to those of its critical path so far:
        # what the runs it releases (and its instance, if it ends it) inherit.
        a, q, x, c, s = run.path_terms
        adm = run.admitted_at
        ready = run.ready_at
        start = run.start_at
        tr = run.transfer_cycles
        lost = run.lost
        if lost is None:
            self._path_terms = (a + adm - run.released_at, q + start - ready, x + tr,
                                c + ready - adm, s + now - start - tr)
        else:  # re-executed: see TaskRun.lost
            self._path_terms = (a + adm - run.released_at, q + start - ready + lost[1], x + tr,
                                c + lost[0] - adm, s + now - start - tr + lost[2])
        self._crit_seq = run.seq
        self._release(run.chunk, run.node, 0, tbu.cluster, run.out_bytes)
        acct = self.acct
        k = run.k
        acct.area_busy += k * (now - run.start_at) + run.busy_adjust
        tbu.busy -= k
        acct.busy_peas -= k
        if new:
            if self.buffers.deposit(run, new):
                acct.integrate(now)
                tbu.blocked += k
                acct.blocked_peas += k
            else:
                tbu.free.extend(run.peas)
        else:
            tbu.free.extend(run.peas)
        if self._on_complete is not None:
            self._on_complete(run)
        self.policy.on_freed(tbu)

    def bound(self, tbu: TBU, task: int) -> None:
        """``tbu`` finished loading the context of ``task``."""
        if not tbu.alive:
            return  # failed while loading
        acct = self.acct
        acct.integrate(self.now)
        tbu.reconfiguring = False
        tbu.loading = UNBOUND
        tbu.bound = task
        self.buffers.stage_tbus[task] += 1
        ctx = self.pea_ctx
        for p in tbu.free:
            ctx[p] = task
        acct.reconfig_peas -= tbu.n_peas
        self.policy.on_bound(tbu)
        self.policy.on_freed(tbu)

    def _ready_after_faults(self, run: TaskRun) -> None:
        """With faults, a run whose home cluster died on the way is re-homed first."""
        if not self.cluster_alive[run.inst.cluster]:
            run.inst.cluster = self.policy.place_instance(run.inst)
        self.policy.on_ready(run)

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> Simulation:
        wall0 = time.perf_counter()
        self.policy.setup(self)
        self.next_arrival = self._load_chunk().arrival[0]
        for f in self.faults:
            self.loop.schedule(f.cycle, FAULT, f)
        # A run allocates a few objects per task run and frees them soon, without cycles:
        # the cyclic collector's young-generation passes would only re-scan them.
        threshold = gc.get_threshold()
        gc.set_threshold(max(threshold[0], 200_000), *threshold[1:])
        try:
            self.events = drive(self, self.max_events, self.watchdog_events)
        finally:
            gc.set_threshold(*threshold)
        self._finish()
        self.wall_seconds = time.perf_counter() - wall0
        if self.instances_done < self.wf.count and (
            self.max_events is None or self.events < self.max_events
        ):
            self.stuck("no events left")
        return self

    def _finish(self) -> None:
        """Book the time of work still in flight (a run stopped by ``max_events``)."""
        now = self.now
        self.acct.integrate(now)
        stale = self.faults_in.stale
        for e in self.loop.heap:
            run = e[4]
            if (isinstance(run, TaskRun) and run.end_at == e[0]
                    and (run.seq, e[0]) not in stale):
                self.acct.area_busy += run.pea_cycles(now)
                self.unbook(run, now, False)

    def stuck_report(self) -> str:
        """Which task types have work waiting, and what the units are doing."""
        parts = []
        buffers = self.buffers
        for tt in self.task_types:
            waiting = buffers.occupancy[tt.idx]
            blocked = buffers.held(tt.idx)
            if waiting or blocked:
                parts.append(f"{tt.name}: {waiting} waiting, {blocked} held by back-pressure, "
                             f"{buffers.stage_tbus[tt.idx]} TBUs bound")
        tbus = [t for t in self.chip.tbus if t.alive]
        units = (f"TBUs: {sum(1 for t in tbus if t.busy)} busy, "
                 f"{sum(1 for t in tbus if t.blocked)} blocked, "
                 f"{sum(1 for t in tbus if t.reconfiguring)} reconfiguring, "
                 f"{sum(1 for t in tbus if t.bound == UNBOUND and not t.reconfiguring)} unbound "
                 f"of {len(tbus)}")
        return "; ".join(parts or ["no runs waiting"]) + "; " + units

    def stuck(self, why: str) -> None:
        raise SimulationStuck(
            f"run stuck at cycle {self.now} ({why}) with "
            f"{self.wf.count - self.instances_done} of {self.wf.count} instances unfinished "
            f"under policy {self.policy.name!r}: {self.stuck_report()}")

    @property
    def lower_bound(self) -> int:
        """See :meth:`Accounting.lower_bound`."""
        return self.acct.lower_bound(self.alive_peas, self.chip.memory_bytes_per_cycle)
