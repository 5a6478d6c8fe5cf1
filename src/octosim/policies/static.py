"""``static``: the traditional spatial architecture baseline.

At compile time TBUs are partitioned among TB types in proportion to profiled demand (the
allocation minimises the largest demand per TBU), or as given by ``partition``. Each run gets a
fixed number of PEAs; queues are FIFO; Control Blocks run coupled, through a host round trip of
``host_cycles`` each; stages have ``buffer_slots`` input slots with back-pressure (0 =
unbounded), so a slow stage blocks its producers (Contagious PEA Idleness). On several clusters
each cluster gets the same partition and instances are spread round-robin.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from octosim.engine.policy import Batcher, TBUTable
from octosim.engine.profile import profile_workflow
from octosim.errors import UserError
from octosim.hardware.chip import TBU
from octosim.policies.base import Policy, PolicyParams
from octosim.policies.registry import register

if TYPE_CHECKING:
    from octosim.engine.sim import Simulation, TaskRun
    from octosim.engine.tasks import TaskType


class StaticParams(PolicyParams):
    buffer_slots: int = Field(4, ge=0, le=1_000_000,
                              description="input slots per stage; 0 = unbounded")
    host_cycles: int = Field(2000, ge=0, le=10**9,
                             description="coupled-control round trip per Control Block")
    partition: dict[str, int] | None = Field(
        None, description="TBUs per cluster for each TB type, instead of the profiled split")
    # "max" won the sweep in `octosim reproduce` (docs/results.md): tuned, not a strawman.
    peas: Literal["min", "max"] | int = Field(
        "max", description="PEAs per run: the task's min, its max, or a number (clamped)")
    profile_instances: int = Field(256, ge=1, le=100_000)


def allocate_tbus(demand: list[float], n_tbus: int) -> list[int]:
    """Give each type one TBU, then each next TBU to the type with the largest demand per TBU
    (the allocation that minimises the maximum load; ties to the lower index)."""
    n = len(demand)
    alloc = [1] * n
    for _ in range(n_tbus - n):
        best = max(range(n), key=lambda i: (demand[i] / alloc[i], -i))
        alloc[best] += 1
    return alloc


@register
class StaticPolicy(Policy):
    name = "static"
    summary = "compile-time TBU partition, fixed PEAs, FIFO, coupled control, bounded buffers"
    Params = StaticParams
    params: StaticParams

    def pea_grant(self, tt: TaskType) -> int:
        p = self.params.peas
        k = tt.kmin if p == "min" else tt.kmax if p == "max" else int(p)
        return max(tt.kmin, min(tt.kmax, k))

    def partition_counts(self, sim: Simulation, n_tbus: int) -> list[int]:
        types = sim.task_types
        if self.params.partition is not None:
            part = self.params.partition
            names = {tt.name for tt in types}
            for name, count in part.items():
                if name not in names:
                    raise UserError(f"unknown task {name!r}", where=f"policy.partition.{name}")
                if count < 1:
                    raise UserError("each task needs at least 1 TBU",
                                    where=f"policy.partition.{name}")
            missing = [tt.name for tt in types if tt.name not in part]
            if missing:
                raise UserError(f"task {missing[0]!r} has no TBUs", where="policy.partition")
            counts = [part[tt.name] for tt in types]
            if sum(counts) > n_tbus:
                raise UserError(f"partition uses {sum(counts)} TBUs but a cluster has {n_tbus}",
                                where="policy.partition")
            return counts
        prof = profile_workflow(sim.wf, types, sim.seed, self.params.profile_instances)
        demand = []
        for tt in types:
            p = prof[tt.idx]
            k = self.pea_grant(tt)
            # A full batch streams the weights once for batch.max runs, and computes its
            # batched model (batch_work_ratio of batch.max single runs' compute).
            floor = tt.floor_cycles if tt.batch_max == 1 else tt.floor_cycles / tt.batch_max
            work = p.mean_work_cycles * tt.batch_work_ratio
            svc = max(work / (1 + (k - 1) * sim.split_eff), floor)
            demand.append(p.runs_per_instance * svc * k)
        return allocate_tbus(demand, n_tbus)

    def setup(self, sim: Simulation) -> None:
        super().setup(sim)
        types = sim.task_types
        n = len(types)
        self.k = [self.pea_grant(tt) for tt in types]
        self.queues: list[list[deque[TaskRun]]] = []
        self.queued_work: list[list[int]] = [[0] * n for _ in range(sim.chip.n_clusters)]
        # Which type each TBU serves or leaves for, and the TBUs with a run's PEAs free.
        self.tbus = TBUTable(sim, self.k)
        self.batcher = Batcher(sim, self._dispatch)
        self.any_batch = any(self.batcher.on)
        self.partition: list[list[int]] = []
        for _ in range(sim.chip.n_clusters):
            self.queues.append([deque() for _ in range(n)])
        by_size: dict[int, list[int]] = {}
        for c in sim.chip.alive_clusters:
            alive = [t for t in sim.chip.cluster_tbus[c] if t.alive]
            if len(alive) < n:
                raise UserError(f"static needs one TBU per task type: cluster {c} has "
                                f"{len(alive)} working TBUs for {n} task types")
            usable = [t for t in alive if t.n_peas >= 1]
            if len(alive) not in by_size:
                by_size[len(alive)] = self.partition_counts(sim, len(alive))
            counts = by_size[len(alive)]
            # Larger TBUs (fewer dead PEAs) first, to the most demanding types.
            usable.sort(key=lambda t: (-t.n_peas, t.id))
            it = iter(usable)
            for idx, count in enumerate(counts):
                for _ in range(count):
                    tbu = next(it)
                    if tbu.n_peas < self.k[idx]:
                        raise UserError(f"TBU {tbu.id} has {tbu.n_peas} working PEAs, fewer "
                                        f"than the {self.k[idx]} that {types[idx].name} needs")
                    self.tbus.bind(tbu, idx)
            self.partition.append(counts)

    def control_cycles(self, cbs: int, run: TaskRun) -> int:
        return cbs * self.params.host_cycles

    def on_ready(self, run: TaskRun) -> None:
        sim = self.sim
        assert sim is not None
        idx = run.tt.idx
        c = run.inst.cluster
        if self.any_batch and self.batcher.on[idx]:
            self.queues[c][idx].append(run)
            self.queued_work[c][idx] += run.work
            self._dispatch(c, idx)
            return
        tbu = self.tbus.first_free(c, idx)
        if tbu is not None:
            sim.start(run, tbu, self.k[idx])
            self.tbus.taken(tbu)
            return
        self.queues[c][idx].append(run)
        self.queued_work[c][idx] += run.work

    def on_bound(self, tbu: TBU) -> None:
        self.tbus.bound(tbu)

    def on_freed(self, tbu: TBU) -> None:
        idx = tbu.bound
        if idx < 0 or tbu.reconfiguring:
            return
        if self.tbus.leaving_for(tbu) >= 0:  # draining for a rebind
            self.drained(tbu)
            return
        sim = self.sim
        assert sim is not None
        k = self.k[idx]
        q = self.queues[tbu.cluster][idx]
        free = tbu.free
        if self.any_batch and self.batcher.on[idx]:
            while q and len(free) >= k and self.batcher.due(q, tbu.cluster, idx):
                self._start_batch(tbu, q, idx)
            self.tbus.offer(tbu)
            return
        while q and len(free) >= k:
            run = q.popleft()
            self.queued_work[tbu.cluster][idx] -= run.work
            sim.start(run, tbu, k)
        self.tbus.offer(tbu)

    def _dispatch(self, c: int, idx: int) -> None:
        """Start the batches of type ``idx`` queued on cluster ``c`` that are due
        (:class:`~octosim.engine.policy.Batcher`) on free TBUs bound to it."""
        q = self.queues[c][idx]
        self.batcher.dispatch(q, c, idx, self.tbus, lambda tbu: self._start_batch(tbu, q, idx))

    def _start_batch(self, tbu: TBU, q: deque[TaskRun], idx: int) -> None:
        assert self.sim is not None
        runs = self.batcher.take(q, idx)
        for r in runs:
            self.queued_work[tbu.cluster][idx] -= r.work
        self.sim.start_batch(runs, tbu, self.k[idx])

    def drained(self, tbu: TBU) -> None:
        """A TBU leaving for another type (:meth:`TBUTable.drain`) freed PEAs: once it holds
        no work, load the new context."""
        if tbu.busy or tbu.blocked:
            return
        self.tbus.bind(tbu, self.tbus.leaving_for(tbu))

    def queued_runs(self, cluster: int) -> list[TaskRun]:
        runs = []
        for q in self.queues[cluster]:
            while q:
                run = q.popleft()
                self.queued_work[cluster][run.tt.idx] -= run.work
                runs.append(run)
        return runs

    def on_fault(self, tbu: TBU) -> None:
        """A TBU died. If its type has no TBU left in the cluster, the TBU of the best
        provided type that drains first is rebound to it (a static mapping is recompiled
        around the fault); if the whole cluster died, its queued runs move to others."""
        sim = self.sim
        assert sim is not None
        c = tbu.cluster
        self.tbus.fault(tbu)
        alive = [t for t in sim.chip.cluster_tbus[c] if t.alive]
        if not alive:
            self.rehome_queued(c)
            return
        counts = list(self.tbus.counts[c])
        leaving = self.tbus.target
        for idx, n in enumerate(counts):
            if n:
                continue
            donor = max(range(len(counts)), key=lambda i: (counts[i], -i))
            if counts[donor] < 2:
                return  # too few TBUs left to give every type one: work waits for none
            cands = [t for t in alive if leaving[t.id] < 0 and (
                t.bound == donor or (t.reconfiguring and t.loading == donor))]
            if not cands:
                continue
            pick = min(cands, key=lambda t: (t.busy + t.blocked, t.id))
            self.tbus.drain(pick, idx)
            counts[donor] -= 1
            counts[idx] += 1
            if pick.busy == 0 and pick.blocked == 0 and not pick.reconfiguring:
                self.drained(pick)  # else when it drains, or when its context has loaded
