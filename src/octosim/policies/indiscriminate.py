"""``indiscriminate``: any idle PEA anywhere takes any ready task.

The traditional answer to dynamic load: one shared FIFO queue per cluster and no notion of
TBU binding. Whenever PEAs free up, the oldest ready run takes them, whatever context they
hold; if they last ran another TB type, the run first pays a reconfiguration (fixed cycles plus
its context over the shared memory channel), and its input travels over the NoC when it runs
on another cluster (*Indiscriminate Resource Allocation*). It never idles a PEA while work
waits, but pays for contexts again and again. ``affinity: true`` is a kinder variant that
prefers PEAs already holding the run's context when there are any (not the default: it is a
step towards discrimination).

Batching types (``batch.max`` > 1): a run that starts takes with it the runs of its type queued
behind it (oldest first, up to ``batch.max``), as one batch. This policy never holds a PEA
idle while work waits, so it does not wait for partners (``batch.wait_cycles`` is not used):
batches form from what queues while the PEAs are busy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from octosim.hardware.chip import TBU
from octosim.policies.balancers import make_balancer, take_latest
from octosim.policies.base import Policy, PolicyParams
from octosim.policies.registry import register

if TYPE_CHECKING:
    from octosim.engine.sim import Simulation, TaskRun


class IndiscriminateParams(PolicyParams):
    host_cycles: int = Field(2000, ge=0, le=10**9,
                             description="coupled-control round trip per Control Block")
    # A default only: `octosim reproduce` tunes every knob (experiments/tuning.py); the
    # winners are in docs/results/results.md.
    peas: int = Field(16, ge=0, le=4096,
                      description="PEAs per run (clamped to the task's range); 0 = its minimum")
    affinity: bool = Field(False, description="prefer PEAs that already hold the context")
    spread: bool = Field(False, description="take PEAs on any cluster (else the home cluster)")


@register
class IndiscriminatePolicy(Policy):
    name = "indiscriminate"
    summary = "any idle PEA takes any ready task, reconfiguring and transferring each time"
    Params = IndiscriminateParams
    params: IndiscriminateParams

    def setup(self, sim: Simulation) -> None:
        super().setup(sim)
        nc = sim.chip.n_clusters
        self.queues: list[deque[TaskRun]] = [deque() for _ in range(nc)]
        self.qwork = [0] * nc  # work queued per cluster (what a balancer levels)
        self.balancer = make_balancer(self, sim)
        # TBUs with free PEAs, per cluster, in a fixed round-robin order; ``listed[id]``: the
        # TBU is in its cluster's list.
        self.free_tbus: list[list[TBU]] = [[] for _ in range(nc)]
        self.listed = bytearray(len(sim.chip.tbus))
        self.k = [max(tt.kmin, min(tt.kmax, self.params.peas or tt.kmin))
                  for tt in sim.task_types]
        self.batch_max = [tt.batch_max for tt in sim.task_types]
        self.any_batch = any(m > 1 for m in self.batch_max)
        for tbu in sim.chip.tbus:
            if tbu.alive:
                self.listed[tbu.id] = 1
                self.free_tbus[tbu.cluster].append(tbu)

    def control_cycles(self, cbs: int, run: TaskRun) -> int:
        return cbs * self.params.host_cycles

    def _clusters(self, home: int) -> list[int]:
        sim = self.sim
        assert sim is not None
        if not self.params.spread:
            return [home]
        alive = sim.chip.alive_clusters
        return [home] + [c for c in alive if c != home]

    def _pick(self, run: TaskRun, c: int) -> TBU | None:
        k = self.k[run.tt.idx]
        lst = self.free_tbus[c]
        best = None
        for i in range(len(lst) - 1, -1, -1):
            tbu = lst[i]
            if len(tbu.free) == 0:
                lst.pop(i)
                self.listed[tbu.id] = 0
                continue
            if len(tbu.free) < k:
                continue
            if not self.params.affinity:
                return tbu
            assert self.sim is not None
            ctx = self.sim.pea_ctx
            if all(ctx[p] == run.tt.idx for p in tbu.free[-k:]):
                return tbu
            if best is None:
                best = tbu
        return best

    def on_ready(self, run: TaskRun) -> None:
        sim = self.sim
        assert sim is not None
        home = run.inst.cluster
        if not self.queues[home]:
            for c in self._clusters(home):
                tbu = self._pick(run, c)
                if tbu is not None:
                    sim.start_any(run, tbu, self.k[run.tt.idx])
                    return
        self.queues[home].append(run)
        self.qwork[home] += run.work
        self.balancer.queued(home)

    def _partners(self, run: TaskRun, q: deque[TaskRun]) -> list[TaskRun]:
        """``run`` and the runs of its type queued in ``q`` after it, oldest first, up to its
        ``batch.max`` (removed from ``q``)."""
        tt = run.tt
        n = self.batch_max[tt.idx]
        runs = [run]
        rest: deque[TaskRun] = deque()
        while q and len(runs) < n:
            r = q.popleft()
            (runs if r.tt is tt else rest).append(r)
        rest.extend(q)
        q.clear()
        q.extend(rest)
        return runs

    def queued_runs(self, cluster: int) -> list[TaskRun]:
        q = self.queues[cluster]
        runs = list(q)
        q.clear()
        self.qwork[cluster] = 0
        return runs

    def cluster_backlog(self, cluster: int) -> float:
        return float(self.qwork[cluster])

    def take_queued(self, cluster: int, work: float, limit: float,
                    movable: Sequence[bool] | None = None) -> list[TaskRun]:
        queued = [self.qwork[cluster]]
        runs = take_latest([self.queues[cluster]], queued, work, lambda run: run.work, limit,
                           movable)
        self.qwork[cluster] = queued[0]
        return runs

    def on_freed(self, tbu: TBU) -> None:
        sim = self.sim
        assert sim is not None
        if not self.listed[tbu.id] and tbu.free:
            self.listed[tbu.id] = 1
            self.free_tbus[tbu.cluster].append(tbu)
        clusters = [tbu.cluster]
        if self.params.spread:
            clusters += [c for c in sim.chip.alive_clusters if c != tbu.cluster]
        for c in clusters:
            q = self.queues[c]
            while q and len(tbu.free) >= self.k[q[0].tt.idx]:
                run = q.popleft()
                self.qwork[c] -= run.work
                if self.any_batch and self.batch_max[run.tt.idx] > 1 and q:
                    partners = self._partners(run, q)
                    for r in partners[1:]:
                        self.qwork[c] -= r.work
                    sim.start_batch(partners, tbu, self.k[run.tt.idx], True)
                    continue
                sim.start_any(run, tbu, self.k[run.tt.idx])
            if not tbu.free:
                return
