"""The discrete-event simulation of one run: workflow x architecture x policy x seed.

The core is a heap of ``(cycle, priority, sequence, kind, payload)``; time jumps from event to
event (no per-cycle stepping) and ties are deterministic. The engine owns the workflow
instances, the chip state and the bookkeeping of PEA time; the policy decides where and when
work runs through the small API below (:meth:`Simulation.start`, :meth:`Simulation.bind`,
:meth:`Simulation.call_at`). Observers receive task and instance events for metrics and traces.

Back-pressure: with ``policy.buffer_slots > 0`` each TBU has that many input slots, so a TB
type (stage) has ``buffer_slots`` times the TBUs bound to it (at least one TBU's worth).
A run occupies a slot from when its producer deposits it until it starts. A producer whose
successor finds the slots full keeps its PEAs (``blocked``) until the successor gets one. Only
forward edges (to a later stage in flow order) are bounded; edges back to earlier stages
(loops) are not. When each TBU serves one stage (static, reactive) blocking cannot form a
cycle. When PEAs are shared between types (indiscriminate, octopus) the blocked producers can
hold every PEA the waiting successor could use; when nothing else can progress, a blocked
producer spills its output past the full buffer (to memory) and frees its PEAs. Spills
are counted in ``backpressure_spills`` and cost no time.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from octosim.engine.events import EventKind
from octosim.engine.stats import LatencyRecorder
from octosim.engine.tasks import TaskType, build_task_types, streamed_on_peas
from octosim.engine.workload import END, JUNCTION, FlowPosition, WorkloadChunk, WorkloadCompiler
from octosim.errors import UserError
from octosim.hardware.chip import MIXED, TBU, UNBOUND, Chip
from octosim.model.arch import ArchSpec
from octosim.model.rng import KeyedRandom
from octosim.model.workflow import Phase, Workflow
from octosim.policies.base import Policy

_COMPLETE = int(EventKind.COMPLETE)
_BOUND = int(EventKind.BOUND)
_READY = int(EventKind.READY)
_ARRIVAL = int(EventKind.ARRIVAL)
_TIMER = int(EventKind.TIMER)
_FAULT = int(EventKind.FAULT)
WATCHDOG_EVENTS = 1_000_000  # events in a row with no task started and no arrival


class Instance:
    """One workflow instance (a request) travelling through the OWG."""

    __slots__ = ("id", "arrival", "cluster", "phase", "tasks_done", "done_at", "cp")

    def __init__(self, inst_id: int, arrival: int, phase: Phase | None) -> None:
        self.id = inst_id
        self.arrival = arrival
        self.cluster = 0
        self.phase = phase
        self.tasks_done = 0
        self.done_at = -1
        self.cp = 0


class TaskRun:
    """One invocation of a Task Block for one instance."""

    __slots__ = ("tt", "inst", "chunk", "node", "cbs", "work", "out_bytes", "ready_at",
                 "start_at", "end_at", "tbu", "peas", "k", "src_cluster", "seq", "reexec",
                 "svc_start", "work_left", "rate_since", "grants", "stream_scale", "mem_end")

    def __init__(self, tt: TaskType, inst: Instance, chunk: WorkloadChunk, node: int, cbs: int,
                 work: int, out_bytes: int, src_cluster: int, seq: int) -> None:
        self.tt = tt
        self.inst = inst
        self.chunk = chunk  # the compiled workload chunk holding its node
        self.node = node  # its node in the chunk's dependency graph
        self.cbs = cbs  # Control Blocks passed since its predecessor completed
        self.work = work  # cycles on one PEA
        self.out_bytes = out_bytes
        self.ready_at = 0
        self.start_at = -1
        self.end_at = -1
        self.tbu: TBU | None = None
        self.peas: list[int] = []
        self.k = 0
        self.src_cluster = src_cluster  # where its input data lies
        self.seq = seq
        self.reexec = 0
        self.svc_start = -1  # when service proper begins (after context load / input transfer)
        self.work_left = -1.0  # set once the run is grown
        self.rate_since = -1
        self.grants: list[tuple[int, list[int]]] | None = None  # PEAs added by grow()
        self.stream_scale = 1.0  # a model run's ``scale``: weights stream once per repetition
        self.mem_end = 0  # when its weight streaming over the memory channel completes

    @property
    def identity(self) -> tuple[int, int, int]:
        """Which run this is, the same under every policy and architecture for one workflow
        and seed (common random numbers): its instance, the key of its place in the flow
        (instance and the foreach copies / loop iterations it belongs to) and its block."""
        ch = self.chunk
        return (self.inst.id, int(ch.frame_key[self.node]), ch.block[self.node])

    def __repr__(self) -> str:
        return f"TaskRun({self.tt.name}, inst={self.inst.id}, seq={self.seq})"


class Fault:
    """A runtime failure: ``tbu:ID@CYCLE`` or ``cluster:ID@CYCLE``."""

    __slots__ = ("kind", "unit", "cycle", "text")

    def __init__(self, kind: str, unit: int, cycle: int, text: str = "") -> None:
        self.kind, self.unit, self.cycle = kind, unit, cycle
        self.text = text or f"{kind}:{unit}@{cycle}"

    @classmethod
    def parse(cls, text: str) -> Fault:
        try:
            unit_part, _, cycle_s = text.partition("@")
            kind, _, unit_s = unit_part.partition(":")
            kind = kind.strip()
            if kind not in ("tbu", "cluster") or not cycle_s:
                raise ValueError
            unit, cycle = int(unit_s), int(float(cycle_s))
            if unit < 0 or cycle < 0:
                raise ValueError
        except ValueError:
            raise UserError(f"--fault {text!r}: expected tbu:ID@CYCLE or cluster:ID@CYCLE "
                            "(non-negative integers)") from None
        return cls(kind, unit, cycle, text)

    def check(self, chip: Chip) -> None:
        limit = len(chip.tbus) if self.kind == "tbu" else chip.n_clusters
        if self.unit >= limit:
            raise UserError(f"--fault {self.text}: no {self.kind} {self.unit} (the arch has "
                            f"{limit})")


MAX_CYCLE = 1 << 62  # about 146 years at 1 GHz: later than this, an input value is absurd


def _too_late(at: int) -> UserError:
    return UserError(f"simulated time would pass cycle {MAX_CYCLE} (reached {at:.3g}): a "
                     "workflow or arch value (cycles, bytes, bandwidth) is far out of range")


class SimulationStuck(UserError):
    """The watchdog: work is outstanding but the run makes no progress."""


class _Blocked:
    """A producer whose successors wait for input slots."""

    __slots__ = ("run", "pending", "waiting_stages")

    def __init__(self, run: TaskRun | None) -> None:
        self.run = run
        self.pending: dict[int, deque[TaskRun]] = {}
        self.waiting_stages = 0


class Observer:
    """Receives simulation events; override what you need."""

    def task_started(self, run: TaskRun, now: int) -> None: ...

    def task_done(self, run: TaskRun, now: int) -> None: ...

    def instance_done(self, inst: Instance, now: int) -> None: ...

    def reconfigured(self, tbu: TBU, task: int, start: int, end: int) -> None: ...

    def task_grown(self, run: TaskRun, peas: list[int], now: int) -> None: ...

    def task_aborted(self, run: TaskRun, now: int) -> None:
        """``run`` was lost to a fault; it will be re-executed (started again)."""


class Simulation:
    """One run. Build it, then call :meth:`run`; the result is in :attr:`stats`."""

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
        if not self.chip.alive_clusters:
            raise UserError("no working cluster: every TBU or router is defective",
                            where="defects")
        self.observers = list(observers or [])
        self.max_events = max_events
        self.faults = list(faults or [])
        for f in self.faults:
            f.check(self.chip)
        self.cluster_alive = [c in self.chip.alive_clusters for c in range(self.chip.n_clusters)]
        self.dead_peas = 0
        self.area_dead = 0
        self.reexec_count = [0] * len(self.task_types)
        self._stale: set[tuple[int, int]] = set()
        self.now = 0
        self._heap: list[tuple[int, int, int, int, Any]] = []
        self._seq = 0
        self._run_seq = 0
        self.events = 0
        self.split_eff = arch.tbu.split_efficiency
        self._on_decision = (policy.on_decision
                             if type(policy).on_decision is not Policy.on_decision else None)
        self.workload = WorkloadCompiler(wf, self.task_types, self.rnd, arch.tbu.split_efficiency)
        self._chunks = self.workload.chunks()
        self._chunk: WorkloadChunk | None = None
        self._new_runs: list[TaskRun] = []
        self._on_complete = (policy.on_complete
                             if type(policy).on_complete is not Policy.on_complete else None)
        self._ready_now: deque[TaskRun] = deque()
        # Back-pressure state, per stage (task type index).
        n = len(self.task_types)
        self.buffer_slots = int(getattr(policy, "buffer_slots", 0) or 0)
        self.occupancy = [0] * n
        self.stage_tbus = [0] * n  # TBUs bound to each type: a stage has slots for each
        self.held_work = [0] * n  # work of runs held at their producers by back-pressure
        self._waiters: list[deque[_Blocked]] = [deque() for _ in range(n)]
        # Accounting of PEA time, integrated at each change (no per-unit scans).
        self._acc_t = 0
        self.busy_peas = 0
        self.blocked_peas = 0
        self.reconfig_peas = 0
        self.unbound_peas = 0
        self.area_busy = 0
        self.area_blocked = 0
        self.area_reconfig = 0
        self.area_unbound = 0
        # PEA time inside runs spent loading a context or waiting for input (not computing).
        self.area_setup_reconfig = 0
        self.area_setup_transfer = 0
        self.run_reconfigurations = 0
        self.pea_ctx = [UNBOUND] * (arch.n_tbus * arch.tbu.peas)
        self.alive_peas = 0
        for tbu in self.chip.tbus:
            if tbu.alive:
                self.alive_peas += tbu.n_peas
                self.unbound_peas += tbu.n_peas
        # Results.
        self.instances_arrived = 0
        self.instances_done = 0
        self.makespan = 0
        self.latencies = LatencyRecorder()
        self.lower_bound_cp = 0
        self.total_work = 0  # PEA-cycles at best efficiency (one PEA per run)
        self.total_streamed = 0  # bytes every run must stream at least (weights beyond a TBU)
        self.reconfigurations = 0
        self.control_messages = 0
        self.task_count = [0] * n
        self.task_wait = [0] * n
        self.task_service = [0] * n
        self.reexecutions = 0
        self.backpressure_spills = 0
        self.wall_seconds = 0.0
        self._progress = 0  # task starts and arrivals, for the watchdog
        self.watchdog_events = WATCHDOG_EVENTS

    # --- policy API ---------------------------------------------------------------------------

    def schedule(self, at: int, kind: int, payload: Any) -> None:
        if at >= MAX_CYCLE:
            raise _too_late(at)
        self._seq += 1
        heapq.heappush(self._heap, (at, kind, self._seq, kind, payload))

    def call_at(self, at: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at cycle ``at`` (a policy timer)."""
        self.schedule(max(at, self.now), _TIMER, callback)

    def service_cycles(self, run: TaskRun, k: int) -> int:
        """Compute cycles of ``run`` on ``k`` PEAs: speed-up 1 + (k-1)*split_efficiency."""
        work = run.work
        if k > 1:
            work = math.ceil(work / (1.0 + (k - 1) * self.split_eff))
        return work

    def min_cycles(self, run: TaskRun, k: int) -> int:
        """Service at full memory bandwidth: never below streaming the weights it must."""
        work = self.service_cycles(run, k)
        floor = run.tt.floor_cycles
        if floor and run.stream_scale != 1.0:
            floor = math.ceil(floor * run.stream_scale)
        return work if work >= floor else floor

    def start(self, run: TaskRun, tbu: TBU, k: int) -> int:
        """Start ``run`` on ``k`` free PEAs of ``tbu``, which is bound to its type; return its
        completion cycle."""
        if tbu.bound != run.tt.idx or tbu.reconfiguring or not tbu.alive:
            raise RuntimeError(f"policy bug: {run} started on {tbu} not bound to its type")
        if k < 1 or k > len(tbu.free):
            raise RuntimeError(f"policy bug: {run} asks {k} PEAs, {tbu} has {len(tbu.free)} free")
        stream = run.tt.streamed_bytes
        if stream and run.stream_scale != 1.0:
            stream = round(stream * run.stream_scale)
        return self._launch(run, tbu, k, self.now, stream)

    def start_any(self, run: TaskRun, tbu: TBU, k: int) -> int:
        """Start ``run`` on ``k`` free PEAs of ``tbu`` whatever contexts they hold: PEAs whose
        last task was of another type first load this one's context (``fixed_cycles`` plus
        the context over the shared memory channel). The TBU is then *mixed*: bound to no
        single type. For policies that share PEAs indiscriminately."""
        if tbu.reconfiguring or not tbu.alive:
            raise RuntimeError(f"policy bug: {run} started on unavailable {tbu}")
        if k < 1 or k > len(tbu.free):
            raise RuntimeError(f"policy bug: {run} asks {k} PEAs, {tbu} has {len(tbu.free)} free")
        now = self.now
        if tbu.bound != MIXED:
            self._account(now)
            if tbu.bound == UNBOUND:
                self.unbound_peas -= tbu.n_peas
            else:
                self.stage_tbus[tbu.bound] -= 1
            tbu.bound = MIXED
        tt = run.tt
        ctx = self.pea_ctx
        peas = tbu.free[-k:]
        ready = now
        if any(ctx[p] != tt.idx for p in peas):
            ready = self.chip.memory.fetch(tt.context_bytes, now) + self.arch.reconfig.fixed_cycles
            for p in peas:
                ctx[p] = tt.idx
            self.reconfigurations += 1
            self.run_reconfigurations += 1
            self.area_setup_reconfig += k * (ready - now)
            for ob in self.observers:
                ob.reconfigured(tbu, tt.idx, now, ready)
        stream = round(streamed_on_peas(tt, k, self.arch) * run.stream_scale)
        return self._launch(run, tbu, k, ready, stream)

    def _launch(self, run: TaskRun, tbu: TBU, k: int, setup_done: int, stream: int) -> int:
        now = self.now
        if now != self._acc_t:
            self._account(now)
        free = tbu.free
        if k == 1:
            run.peas = [free.pop()]
        else:
            run.peas = free[-k:]
            del free[-k:]
        tbu.busy += k
        tbu.running += 1
        self.busy_peas += k
        run.k = k
        run.tbu = tbu
        run.start_at = now
        t_in = setup_done
        src = run.src_cluster
        if src != tbu.cluster and src >= 0:
            t_in = self.chip.mesh.transfer(src, tbu.cluster, run.out_bytes, now)
            if t_in > setup_done:
                self.area_setup_transfer += k * (t_in - setup_done)
            else:
                t_in = setup_done
        run.svc_start = t_in
        end = t_in + (run.work if k == 1 else self.service_cycles(run, k))
        if stream:
            # Weights stream over the shared memory channel while the PEAs compute.
            t_mem = self.chip.memory.stream(stream, t_in)
            run.mem_end = t_mem
            if t_mem > end:
                end = t_mem
        if end >= MAX_CYCLE:
            raise _too_late(end)
        run.end_at = end
        idx = run.tt.idx
        self.task_count[idx] += 1
        self.task_wait[idx] += now - run.ready_at
        self.task_service[idx] += end - now
        self._seq += 1
        heapq.heappush(self._heap, (end, _COMPLETE, self._seq, _COMPLETE, run))
        if self.observers:
            for ob in self.observers:
                ob.task_started(run, now)
        self.occupancy[idx] -= 1
        if self.buffer_slots and self._waiters[idx]:
            self._wake_waiters(idx)
        self._progress += 1
        return end

    def grow(self, run: TaskRun, extra: int) -> int:
        """Give a running ``run`` ``extra`` more free PEAs of its TBU; the rest of its compute
        speeds up accordingly (never ending before its weight streaming does). Return the
        (possibly earlier) completion cycle."""
        tbu = run.tbu
        assert tbu is not None
        if extra < 1 or extra > len(tbu.free) or run.end_at < 0:
            raise RuntimeError(f"policy bug: growing {run} by {extra} PEAs")
        if run.k + extra > run.tt.kmax or run.mem_end >= run.end_at:
            return run.end_at  # at its widest, or waiting for memory: more PEAs cannot help
        now = self.now
        eff = self.split_eff
        rate = 1.0 + (run.k - 1) * eff
        svc_start = run.svc_start
        # Work done so far at the current rate, since service began (or the last change).
        begin = max(svc_start, run.rate_since)
        left = run.work_left if run.work_left >= 0 else float(run.work)
        if now > begin:
            left -= rate * (now - begin)
        if left <= 0:
            return run.end_at
        self._account(now)
        peas = tbu.free[-extra:]
        del tbu.free[-extra:]
        run.peas = run.peas + peas
        if run.grants is None:
            run.grants = []
        run.grants.append((now, peas))
        tbu.busy += extra
        self.busy_peas += extra
        run.k += extra
        run.work_left = left
        run.rate_since = max(now, svc_start)
        new_rate = 1.0 + (run.k - 1) * eff
        new_end = min(run.end_at, max(run.mem_end, run.rate_since + math.ceil(left / new_rate)))
        if new_end != run.end_at:
            self.task_service[run.tt.idx] += new_end - run.end_at
            run.end_at = new_end
            self._seq += 1
            heapq.heappush(self._heap, (new_end, _COMPLETE, self._seq, _COMPLETE, run))
        for ob in self.observers:
            ob.task_grown(run, peas, now)
        return new_end

    def prefetch(self, tbu: TBU, task: int) -> int:
        """Start fetching ``task``'s context for ``tbu`` now, into a shadow buffer, while the
        TBU finishes its current work; a later :meth:`bind` to that type then only pays
        the fixed cost. Return when the fetch completes."""
        if tbu.prefetch_task == task:
            return tbu.prefetch_done
        done = self.chip.memory.fetch(self.task_types[task].context_bytes, self.now)
        tbu.prefetch_task = task
        tbu.prefetch_done = done
        return done

    def bind(self, tbu: TBU, task: int) -> int:
        """Load the context of task type ``task`` into an idle TBU; return when it is ready.

        Costs ``reconfig.fixed_cycles`` plus the context bytes over the memory channel
        (fetches from all TBUs share it, one after another)."""
        if tbu.busy or tbu.blocked or tbu.reconfiguring:
            raise RuntimeError(f"policy bug: rebinding {tbu} while it is busy")
        if not tbu.alive:
            raise RuntimeError(f"policy bug: binding dead {tbu}")
        if tbu.bound == task:
            return self.now
        now = self.now
        self._account(now)
        if tbu.bound == UNBOUND:
            self.unbound_peas -= tbu.n_peas
        elif tbu.bound != MIXED:
            self.stage_tbus[tbu.bound] -= 1
        tbu.bound = UNBOUND
        tbu.reconfiguring = True
        tbu.loading = task
        self.reconfig_peas += tbu.n_peas
        tt = self.task_types[task]
        if tbu.prefetch_task == task:
            done = max(now, tbu.prefetch_done) + self.arch.reconfig.fixed_cycles
        else:
            done = self.chip.memory.fetch(tt.context_bytes, now) + self.arch.reconfig.fixed_cycles
        tbu.prefetch_task = UNBOUND
        self.reconfigurations += 1
        for ob in self.observers:
            ob.reconfigured(tbu, task, now, done)
        self.schedule(done, _BOUND, (tbu, task))
        return done

    def unbind(self, tbu: TBU) -> None:
        """Leave an idle TBU without a context (counted as ``unbound`` idle time)."""
        if tbu.busy or tbu.blocked or tbu.reconfiguring or tbu.bound == UNBOUND:
            return
        self._account(self.now)
        if tbu.bound != MIXED:
            self.stage_tbus[tbu.bound] -= 1
        tbu.bound = UNBOUND
        self.unbound_peas += tbu.n_peas

    # --- accounting ---------------------------------------------------------------------------

    def _account(self, now: int) -> None:
        dt = now - self._acc_t
        if dt:
            self.area_busy += self.busy_peas * dt
            self.area_blocked += self.blocked_peas * dt
            self.area_reconfig += self.reconfig_peas * dt
            self.area_unbound += self.unbound_peas * dt
            self.area_dead += self.dead_peas * dt
            self._acc_t = now

    # --- flow callbacks -----------------------------------------------------------------------

    def _new_run(self, ch: WorkloadChunk, node: int, cbs: int) -> None:
        """Node ``node`` of ``ch`` (a task run) has all it waits for: create it."""
        tt = self.task_types[ch.kind[node]]
        inst: Instance = ch.instances[ch.inst[node]]
        if not self.cluster_alive[inst.cluster]:
            inst.cluster = self.policy.place_instance(inst)
        self._run_seq += 1
        work = ch.work[node]
        run = TaskRun(tt, inst, ch, node, cbs, work, ch.out_bytes[node], inst.cluster,
                      self._run_seq)
        self.total_work += work
        if tt.streamed_bytes:
            run.stream_scale = ch.scale[node]
            self.total_streamed += round(tt.streamed_bytes * run.stream_scale)
        self._new_runs.append(run)

    def _release(self, ch: WorkloadChunk, node: int, cbs: int) -> None:
        """Node ``node`` of ``ch`` is done (a run completed, or a junction's last run did):
        the CBU takes the decisions it allowed, and whatever waited only for it goes on,
        ``cbs`` Control Blocks later plus those on the way."""
        a = ch.dec_ptr[node]
        b = ch.dec_ptr[node + 1]
        if a != b and self._on_decision is not None:
            for block, outcome in ch.dec[a:b]:
                self._on_decision(block, outcome)
        deps = ch.deps
        succ = ch.succ
        for e in range(ch.succ_ptr[node], ch.succ_ptr[node + 1]):
            y = succ[e]
            d = deps[y] - 1
            deps[y] = d
            if d:
                continue
            kind = ch.kind[y]
            if kind >= 0:
                self._new_run(ch, y, cbs + ch.succ_cbs[e])
            elif kind == JUNCTION:
                self._release(ch, y, cbs + ch.succ_cbs[e])
            else:
                self._instance_done(ch, ch.inst[y])

    def _instance_done(self, ch: WorkloadChunk, local: int) -> None:
        now = self.now
        inst: Instance = ch.instances[local]
        inst.done_at = now
        cp = inst.arrival + ch.cp[local]
        if cp > self.lower_bound_cp:
            self.lower_bound_cp = cp
        self.instances_done += 1
        ch.open_instances -= 1
        self.latencies.append(now - inst.arrival)
        if now > self.makespan:
            self.makespan = now
        for ob in self.observers:
            ob.instance_done(inst, now)

    def flow_position(self, run: TaskRun) -> FlowPosition:
        """Where ``run`` stands in the flow: the rest of its sequence of nodes and its scope
        (what a CBU knows when the run starts, for forecasting policies)."""
        return run.chunk.position(run.node, self.workload.positions)

    def min_service(self, run: TaskRun) -> int:
        """Service at the widest PEA grant the task allows (for the critical path)."""
        return self.min_cycles(run, run.tt.kmax)

    # --- deposit, back-pressure and readiness ------------------------------------------------

    def _deposit(self, producer: TaskRun | None, runs: list[TaskRun], cbs_latency: bool) -> bool:
        """Hand new runs to their stages; return True if the producer must block."""
        occ = self.occupancy
        if not self.buffer_slots:  # unbounded stages: nothing blocks
            for run in runs:
                occ[run.tt.idx] += 1
                self._make_ready(run)
            return False
        blocked: _Blocked | None = None
        prank = producer.tt.rank if producer is not None else -1
        for run in runs:
            idx = run.tt.idx
            if run.tt.rank > prank and (
                occ[idx] >= self.stage_capacity(idx) or self._waiters[idx]
            ):
                if blocked is None:
                    blocked = _Blocked(producer)
                q = blocked.pending.get(idx)
                if q is None:
                    q = blocked.pending[idx] = deque()
                    self._waiters[idx].append(blocked)
                q.append(run)
                self.held_work[idx] += run.work
                continue
            occ[idx] += 1
            self._make_ready(run)
        return blocked is not None

    def stage_capacity(self, idx: int) -> int:
        n = self.stage_tbus[idx]
        return self.buffer_slots * (n if n > 1 else 1)

    def _make_ready(self, run: TaskRun) -> None:
        cbs = run.cbs
        if cbs:
            self.control_messages += cbs
            latency = self.policy.control_cycles(cbs, run)
            if latency > 0:
                run.ready_at = self.now + latency
                self.schedule(run.ready_at, _READY, run)
                return
        run.ready_at = self.now
        self._ready_now.append(run)

    def _wake_waiters(self, idx: int) -> None:
        occ = self.occupancy
        waiters = self._waiters[idx]
        cap = self.stage_capacity(idx)
        while waiters and occ[idx] < cap:
            w = waiters[0]
            q = w.pending[idx]
            run = q.popleft()
            self.held_work[idx] -= run.work
            occ[idx] += 1
            self._make_ready(run)
            if not q:
                del w.pending[idx]
                waiters.popleft()
                if not w.pending:
                    self._unblock(w)

    def _spill(self) -> bool:
        """Break a back-pressure deadlock: a blocked producer (the first in stage order) hands
        its held runs on past the full buffers and frees its PEAs. False if none holds PEAs."""
        w = next((b for ws in self._waiters for b in ws
                  if b.run is not None and b.run.tbu is not None and b.run.tbu.alive), None)
        if w is None:
            return False  # only arrivals are held: no PEAs to free
        self._account(self.now)
        for idx, q in list(w.pending.items()):
            self._waiters[idx].remove(w)
            while q:
                run = q.popleft()
                self.held_work[idx] -= run.work
                self.occupancy[idx] += 1
                self._make_ready(run)
        w.pending.clear()
        self.backpressure_spills += 1
        self._progress += 1
        self._unblock(w)
        return True

    def _unblock(self, w: _Blocked) -> None:
        run = w.run
        if run is None:
            return
        tbu = run.tbu
        assert tbu is not None
        if not tbu.alive:
            return  # its PEAs died holding the output; the output had been handed on
        self._account(self.now)
        tbu.blocked -= run.k
        self.blocked_peas -= run.k
        tbu.free.extend(run.peas)
        self.policy.on_freed(tbu)

    # --- event handlers -------------------------------------------------------------------------

    def _complete(self, run: TaskRun) -> None:
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
        self._release(run.chunk, run.node, 0)
        if now != self._acc_t:
            self._account(now)
        k = run.k
        tbu.busy -= k
        self.busy_peas -= k
        if new:
            src = tbu.cluster
            for r in new:
                r.src_cluster = src
        if new and self._deposit(run, new, True):
            tbu.blocked += k
            self.blocked_peas += k
        else:
            tbu.free.extend(run.peas)
        if self._on_complete is not None:
            self._on_complete(run)
        self.policy.on_freed(tbu)

    def _arrive(self, i: int) -> None:
        wf = self.wf
        ch = self._chunk
        if ch is None or i >= ch.first + ch.count:
            ch = self._chunk = next(self._chunks)
            ch.instances = [None] * ch.count
        local = i - ch.first
        inst = Instance(i, self.now, wf.phase_of(i))
        ch.instances[local] = inst
        inst.cluster = self.policy.place_instance(inst)
        self.instances_arrived += 1
        self._progress += 1
        new = self._new_runs
        new.clear()
        a = ch.arrival_dec_ptr[local]
        b = ch.arrival_dec_ptr[local + 1]
        if a != b and self._on_decision is not None:
            for block, outcome in ch.arrival_dec[a:b]:
                self._on_decision(block, outcome)
        roots, root_cbs = ch.roots, ch.root_cbs
        for r in range(ch.root_ptr[local], ch.root_ptr[local + 1]):
            node = roots[r]
            if ch.kind[node] == END:
                self._instance_done(ch, local)
            else:
                self._new_run(ch, node, root_cbs[r])
        if new:
            self._deposit(None, new, True)  # if blocked: waits in the stage's admission queue
        if i + 1 < wf.count:
            nxt = ch.arrival[local + 1] if local + 1 < ch.count else self._peek_arrival()
            self.schedule(max(nxt, self.now), _ARRIVAL, i + 1)

    def _peek_arrival(self) -> int:
        """The arrival cycle of the first instance of the next chunk (compiled now)."""
        ch = self._chunk = next(self._chunks)
        ch.instances = [None] * ch.count
        return ch.arrival[0]

    def _bound(self, tbu: TBU, task: int) -> None:
        if not tbu.alive:
            return  # failed while loading
        self._account(self.now)
        tbu.reconfiguring = False
        tbu.loading = UNBOUND
        tbu.bound = task
        self.stage_tbus[task] += 1
        ctx = self.pea_ctx
        for p in tbu.free:
            ctx[p] = task
        self.reconfig_peas -= tbu.n_peas
        self.policy.on_bound(tbu)
        self.policy.on_freed(tbu)

    def _ready_after_faults(self, run: TaskRun) -> None:
        """With faults, a run whose home cluster died on the way is re-homed first."""
        if not self.cluster_alive[run.inst.cluster]:
            run.inst.cluster = self.policy.place_instance(run.inst)
        self.policy.on_ready(run)

    def _fault(self, fault: Fault) -> None:
        """Units fail: their PEAs are gone; runs in flight there are re-executed elsewhere
        (counted apart in ``reexecutions``); no instance is lost."""
        now = self.now
        chip = self.chip
        if fault.kind == "cluster":
            if not self.cluster_alive[fault.unit]:
                return
            self.cluster_alive[fault.unit] = False
            chip.alive_clusters = [c for c in chip.alive_clusters if c != fault.unit]
            if not chip.alive_clusters:
                raise SimulationStuck(f"fault at cycle {now} left no working cluster")
            victims = [t for t in chip.cluster_tbus[fault.unit] if t.alive]
        else:
            tbu = chip.tbus[fault.unit]
            victims = [tbu] if tbu.alive else []
        self._account(now)
        aborted: list[TaskRun] = []
        for tbu in victims:
            tbu.alive = False
            if tbu.reconfiguring:
                tbu.reconfiguring = False
                tbu.loading = UNBOUND
                self.reconfig_peas -= tbu.n_peas
            elif tbu.bound == UNBOUND:
                self.unbound_peas -= tbu.n_peas
            elif tbu.bound >= 0:
                self.stage_tbus[tbu.bound] -= 1
            tbu.bound = UNBOUND
            self.blocked_peas -= tbu.blocked
            tbu.blocked = 0
            aborted.extend(self._runs_on(tbu))
            self.busy_peas -= tbu.busy
            tbu.busy = 0
            tbu.running = 0
            tbu.free = []
            self.dead_peas += tbu.n_peas
        for tbu in victims:
            self.policy.on_fault(tbu)
        for run in aborted:
            idx = run.tt.idx
            # The aborted attempt does not count as the task's execution.
            self.task_count[idx] -= 1
            self.task_service[idx] -= run.end_at - run.start_at
            self.task_wait[idx] -= run.start_at - run.ready_at
            self.reexec_count[idx] += 1
            self.reexecutions += 1
            for ob in self.observers:
                ob.task_aborted(run, now)
            self._stale.add((run.seq, run.end_at))
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
            if not self.cluster_alive[run.inst.cluster]:
                run.inst.cluster = self.policy.place_instance(run.inst)
            self.occupancy[idx] += 1
            run.ready_at = now
            self._ready_now.append(run)

    def _runs_on(self, tbu: TBU) -> list[TaskRun]:
        """The runs in flight on ``tbu``, in start order: each has exactly one live completion
        event (its cycle is the run's ``end_at``). Faults are rare, so the heap is scanned
        rather than keeping a set per TBU on the hot path."""
        stale = self._stale
        runs = [e[4] for e in self._heap
                if e[3] == _COMPLETE and e[4].tbu is tbu and e[4].end_at == e[0]
                and (e[4].seq, e[0]) not in stale]
        return sorted(runs, key=lambda r: r.seq)

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> Simulation:
        wall0 = time.perf_counter()
        self.policy.setup(self)
        self.schedule(0, _ARRIVAL, 0)
        for f in self.faults:
            self.schedule(f.cycle, _FAULT, f)
        heap = self._heap
        pop = heapq.heappop
        ready_now = self._ready_now
        policy_ready = self.policy.on_ready if not self.faults else self._ready_after_faults
        max_events = self.max_events
        # The loop ends after max_events (if given), or when every instance is done.
        stop_at = max_events if max_events is not None else 1 << 62
        events = 0
        check_at = 65536
        progress_seen = -1
        idle_since = 0
        idle_now = 0
        n_instances = self.wf.count
        complete = self._complete
        stale = self._stale
        while True:
            if not heap:
                if self.instances_done < n_instances and self._spill():
                    while ready_now:
                        policy_ready(ready_now.popleft())
                    continue
                break
            t, _, _, kind, payload = pop(heap)
            self.now = t
            events += 1
            if kind == _COMPLETE:
                if payload.end_at != t:
                    continue  # superseded: the run was grown and ends earlier
                if stale and (payload.seq, t) in stale:
                    stale.discard((payload.seq, t))
                    continue  # the attempt that a fault aborted
                complete(payload)
                while ready_now:
                    policy_ready(ready_now.popleft())
                if self.instances_done == n_instances or events >= stop_at:
                    break
                if events < check_at:
                    continue
            elif kind == _READY:
                policy_ready(payload)
            elif kind == _ARRIVAL:
                self._arrive(payload)
            elif kind == _BOUND:
                self._bound(*payload)
            elif kind == _FAULT:
                self._fault(payload)
            else:
                payload()
            while ready_now:
                policy_ready(ready_now.popleft())
            if events >= stop_at or self.instances_done == n_instances:
                break
            if events >= check_at:
                check_at += 65536
                if self._progress != progress_seen:
                    progress_seen = self._progress
                    idle_since = events
                    idle_now = t
                elif events - idle_since >= self.watchdog_events and (
                    t == idle_now or not any(e[3] != _TIMER for e in heap)
                ):
                    # Only timers left, or time stands still: nothing will ever progress
                    # unless a producer held by back-pressure lets go of its PEAs.
                    if self._spill():
                        idle_since = events
                        while ready_now:
                            policy_ready(ready_now.popleft())
                        continue
                    self.events = events
                    self._stuck(f"{events - idle_since} events without progress")
        self.events = events
        self._account(self.now)
        self.wall_seconds = time.perf_counter() - wall0
        if self.instances_done < self.wf.count and (max_events is None or events < max_events):
            self._stuck("no events left")
        return self

    def stuck_report(self) -> str:
        """Which task types have work waiting, and what the units are doing."""
        parts = []
        for tt in self.task_types:
            waiting = self.occupancy[tt.idx]
            blocked = sum(len(w.pending.get(tt.idx, ())) for w in self._waiters[tt.idx])
            if waiting or blocked:
                parts.append(f"{tt.name}: {waiting} waiting, {blocked} held by back-pressure, "
                             f"{self.stage_tbus[tt.idx]} TBUs bound")
        tbus = [t for t in self.chip.tbus if t.alive]
        units = (f"TBUs: {sum(1 for t in tbus if t.busy)} busy, "
                 f"{sum(1 for t in tbus if t.blocked)} blocked, "
                 f"{sum(1 for t in tbus if t.reconfiguring)} reconfiguring, "
                 f"{sum(1 for t in tbus if t.bound == UNBOUND and not t.reconfiguring)} unbound "
                 f"of {len(tbus)}")
        return "; ".join(parts or ["no runs waiting"]) + "; " + units

    def _stuck(self, why: str) -> None:
        raise SimulationStuck(
            f"run stuck at cycle {self.now} ({why}) with "
            f"{self.wf.count - self.instances_done} of {self.wf.count} instances unfinished "
            f"under policy {self.policy.name!r}: {self.stuck_report()}")

    @property
    def lower_bound(self) -> int:
        """The largest of: total PEA-work / PEAs; the weights every run must stream / memory
        bandwidth; latest arrival + critical path at maximum parallelism (each run at its
        widest grant, streaming at full memory bandwidth)."""
        work_bound = math.ceil(self.total_work / max(1, self.alive_peas))
        mem_bound = math.ceil(self.total_streamed / self.arch.memory.bytes_per_cycle)
        return max(work_bound, mem_bound, self.lower_bound_cp)
