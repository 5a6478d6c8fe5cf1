"""``octopus``: Discriminate Dual-Scheduling, Adaptive TBU Scheduling, Proactive Cluster
Scheduling (Deng et al., arXiv 2405.17221), each switchable for ablation.

- Control Blocks run on the cluster's CBU and reach TBU schedulers over the control plane
  (``cbu_cycles`` per CB plus a hop), not through a host round trip; stage buffers are unbounded
  (``buffer_slots: 0``) because TBUs of a type share one queue and nothing blocks a producer.
- **DDS** treats the two resource levels differently. Idle PEAs inside TBUs already bound to a
  run's type take it at once (fine-grained, local, cheap): that absorbs execution-time
  dynamicity. Rebinding whole TBUs between types (coarse, costly) is decided by the cluster
  scheduler from the work waiting and running per type: that absorbs execution-frequency
  dynamicity. A TBU chosen to change type stops taking work, drains, then loads its new
  context. Without DDS the profiled partition stays fixed.
- **ATS** sizes each run's PEA grant from the queue: few PEAs each when the queue is deep
  (throughput), many when it is shallow (latency), and PEAs freed with nothing waiting go at
  once to the runs still running on the TBU (they speed up). Without ATS every run gets its
  minimum.
- **PCS** makes the cluster scheduler proactive. Each ready run announces the work its
  successors will bring, read from decisions the CBU has already taken (a foreach of 12 objects
  announces 12 recognitions) and from branch probabilities, foreach sizes and loop trips
  learned online; rebinding targets include this forecast, so TBUs move *before* the work
  arrives, and the new context is fetched into a shadow buffer while the TBU drains (only the
  fixed cost remains when it switches).

The policy class keeps the queues and dispatches runs (the fine level); each strategy is a
component behind a small interface, chosen once at setup from the parameters, so the hot path
asks no ``if params.x``:

- a :class:`~.rebalance.Rebalancer` (the coarse level: :class:`~.rebalance.ClusterScheduler`
  with DDS or PCS, else :class:`~.rebalance.FixedPartition`),
- a :class:`~.grants.GrantStrategy` (:class:`~.grants.HorizonGrant` or
  :class:`~.grants.AdaptiveGrant` with ATS, else :class:`~.grants.MinimalGrant`),
- a :class:`~.forecast.Forecaster` (:class:`~.forecast.ControlBlockForecaster` with PCS, else
  :class:`~.forecast.NullForecaster`).

Which type each TBU serves, how many serve each type and which could move now are kept
incrementally in a :class:`~octosim.engine.policy.TBUTable`, so a scheduler pass costs what it
looks at, not the size of the cluster.
"""

# The policy class is defined here, in the package itself, not in a submodule: the registry
# finds built-in policies by the module that defines them (``registry.refresh`` keeps a class
# only if its ``__module__`` is a module of ``octosim.policies``).

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from octosim.engine.policy import Batcher, TBUTable
from octosim.engine.profile import profile_workflow
from octosim.errors import UserError
from octosim.hardware.chip import TBU
from octosim.policies.balancers import make_balancer, take_latest
from octosim.policies.base import Policy, PolicyParams
from octosim.policies.octopus.forecast import (
    ControlBlockForecaster,
    Forecaster,
    Learned,
    NullForecaster,
)
from octosim.policies.octopus.grants import (
    AdaptiveGrant,
    GrantStrategy,
    HorizonGrant,
    MinimalGrant,
)
from octosim.policies.octopus.rebalance import ClusterScheduler, FixedPartition, Rebalancer
from octosim.policies.registry import register
from octosim.policies.static import allocate_tbus

if TYPE_CHECKING:
    from octosim.engine.entities import Instance
    from octosim.engine.sim import Simulation, TaskRun

__all__ = ["OctopusParams", "OctopusPolicy", "Rebalancer", "GrantStrategy", "Forecaster"]


class OctopusParams(PolicyParams):
    dds: bool = Field(True, description="Discriminate Dual-Scheduling: rebind TBUs on demand")
    ats: bool = Field(True, description="Adaptive TBU Scheduling: PEA grants follow the queue")
    pcs: bool = Field(True, description="Proactive Cluster Scheduling: forecast and prefetch")
    rebalance_cycles: int = Field(20_000, ge=1, le=10**12,
                                  description="period of the cluster scheduler")
    hysteresis: float = Field(0.25, ge=0.0, le=10.0,
                              description="a move must cut the receiver's load per TBU by this "
                                          "fraction over the donor's after the move")
    lookahead: int = Field(1, ge=1, le=64,
                           description="task levels a started run announces (PCS)")
    forecast_weight: float = Field(0.5, ge=0.0, le=10.0,
                                   description="weight of announced work against work waiting")
    max_moves: int = Field(4, ge=1, le=1024, description="TBUs moved per scheduler pass")
    horizon_cycles: int = Field(
        100_000, ge=1, le=10**13,
        description="decision horizon of a rebind: a TBU moves only if the work it would do "
                    "for its new type within this horizon, beyond what that type's own TBUs "
                    "can do, exceeds the reconfiguration plus the work its old type then "
                    "could not do (expected work: waiting, running, forecast, and arrivals "
                    "at the rate of the last horizon)")
    horizon_arrivals: int = Field(
        32, ge=0, le=10**6,
        description="the horizon spans at least this many of the usual gaps between instance "
                    "arrivals (0: horizon_cycles alone)")
    horizon_grant: bool = Field(True, description="ATS grants a run enough PEAs to finish "
                                "within the time the cluster needs for the work it holds "
                                "(a started run cannot move: a narrow long run is a long tail)")


@register
class OctopusPolicy(Policy):
    name = "octopus"
    summary = "Octopus: DDS + ATS + PCS (each switchable: policy.dds / ats / pcs = false)"
    Params = OctopusParams
    params: OctopusParams

    rebalancer: Rebalancer
    grants: GrantStrategy
    forecaster: Forecaster

    # --- setup ----------------------------------------------------------------------------

    def setup(self, sim: Simulation) -> None:
        super().setup(sim)
        p = self.params
        types = sim.task_types
        n = len(types)
        nc = sim.chip.n_clusters
        self.kmin = [tt.kmin for tt in types]
        self.cluster_peas = [max(1, sum(t.n_peas for t in sim.chip.cluster_tbus[c] if t.alive))
                             for c in range(nc)]
        self.kmax = [min(tt.kmax, sim.arch.tbu.peas) for tt in types]
        self.queues: list[list[deque[TaskRun]]] = [[deque() for _ in range(n)] for _ in range(nc)]
        self.qwork = [[0.0] * n for _ in range(nc)]
        self.rwork = [[0.0] * n for _ in range(nc)]
        # A run's share of the work it brings: a run of a batching type computes as part of a
        # full batch (the batched model's cycles over batch.max runs' single cycles); 1.0 else
        # (an exact no-op on the work of types that do not batch).
        self.share = [tt.batch_work_ratio for tt in sim.task_types]
        self.n_queued = [0] * nc  # runs queued per cluster, all types
        self.running: list[list[TaskRun]] = [[] for _ in sim.chip.tbus]
        self.tbus = TBUTable(sim, self.kmin)
        self.batcher = Batcher(sim, self._dispatch)
        self.balancer = make_balancer(self, sim)
        self.any_batch = any(self.batcher.on)
        self.cb_cycles = sim.arch.cluster.cbu_cycles
        self.hop_cycles = sim.arch.control_plane.hop_cycles
        self.reconfig_cycles = [
            sim.arch.reconfig.fixed_cycles + tt.context_bytes / sim.arch.memory.bytes_per_cycle
            for tt in types
        ]
        prof = profile_workflow(sim.wf, types, sim.seed)
        # Expected work of each type per instance, as the rebalancer counts work.
        self.profile_work = [prof[tt.idx].work_per_instance * self.share[tt.idx] for tt in types]
        # The strategies, chosen once.
        self.grants = (MinimalGrant(self) if not p.ats else
                       HorizonGrant(self) if p.horizon_grant else AdaptiveGrant(self))
        self.forecaster = ControlBlockForecaster(self, prof) if p.pcs else NullForecaster()
        self.rebalancer = ClusterScheduler(self) if p.dds or p.pcs else FixedPartition(self)
        rebinds = self.rebalancer.rebinds
        demand = [prof[tt.idx].work_per_instance for tt in types]
        for c in sim.chip.alive_clusters:
            tbus = [t for t in sim.chip.cluster_tbus[c] if t.alive]
            tbus.sort(key=lambda t: (-t.n_peas, t.id))
            if len(tbus) >= n:
                counts = allocate_tbus(demand, len(tbus))
            else:
                if not rebinds:
                    raise UserError(f"octopus without rebinding needs one TBU per task type: "
                                    f"cluster {c} has {len(tbus)} for {n} types")
                order = sorted(range(n), key=lambda i: -demand[i])[: len(tbus)]
                counts = [1 if i in order else 0 for i in range(n)]
            it = iter(tbus)
            for idx, count in enumerate(counts):
                for _ in range(count):
                    tbu = next(it)
                    if tbu.n_peas < self.kmin[idx] and not rebinds:
                        raise UserError(f"TBU {tbu.id} has {tbu.n_peas} working PEAs, fewer "
                                        f"than the {self.kmin[idx]} that {types[idx].name} needs")
                    self.tbus.bind(tbu, idx)
        self.rebalancer.start()

    def hook(self, name: str) -> Any:
        if name == "on_decision" and not self.params.pcs:
            return None  # only the forecaster learns from decisions
        return super().hook(name)

    def on_decision(self, block: int, outcome: int) -> None:
        self.forecaster.decided(block, outcome)

    @property
    def learned(self) -> dict[int, Learned]:
        """What the forecaster learned of each Control Block, by block number."""
        return self.forecaster.learned

    @property
    def moves(self) -> int:
        """TBUs the coarse level moved to another type."""
        return self.rebalancer.moves

    def place_instance(self, inst: Instance) -> int:
        c = super().place_instance(inst)
        self.rebalancer.instance_arrived(c)
        return c

    def control_cycles(self, cbs: int, run: TaskRun) -> int:
        return cbs * self.cb_cycles + self.hop_cycles

    # --- fine-grained: runs onto PEAs of TBUs bound to their type ---------------------------

    def on_ready(self, run: TaskRun) -> None:
        idx = run.tt.idx
        c = run.inst.cluster
        q = self.queues[c][idx]
        self.rebalancer.arrived(c, idx, run.work * self.share[idx])
        if self.any_batch and self.batcher.on[idx]:
            self._queue(run, c, idx)
            self._dispatch(c, idx)
            self.rebalancer.touch(c)
            return
        tbu = self.tbus.first_free(c, idx)
        if tbu is not None:
            self._start(run, tbu, self.grants.grant(run, len(tbu.free), len(q) + 1, c), c)
            self.tbus.taken(tbu)
        else:
            q.append(run)
            self.qwork[c][idx] += run.work * self.share[idx]
            self.n_queued[c] += 1
            self.rebalancer.queued(c, idx)
            self.balancer.queued(c)
        self.rebalancer.touch(c)

    def _queue(self, run: TaskRun, c: int, idx: int) -> None:
        self.queues[c][idx].append(run)
        self.qwork[c][idx] += run.work * self.share[idx]
        self.n_queued[c] += 1
        self.rebalancer.queued(c, idx)
        self.balancer.queued(c)

    def _dispatch(self, c: int, idx: int) -> None:
        """Start the batches of type ``idx`` queued on cluster ``c`` that are due
        (:class:`~octosim.engine.policy.Batcher`) on TBUs bound to it with PEAs free."""
        self.batcher.dispatch(self.queues[c][idx], c, idx, self.tbus,
                              lambda tbu: self._start_batch(tbu, c, idx))

    def _start_batch(self, tbu: TBU, c: int, idx: int) -> None:
        """The next batch of the queue of ``idx`` on ``c``, on ``tbu``. With ATS its PEAs are
        the TBU's free PEAs shared among the batches waiting, as for single runs."""
        assert self.sim is not None
        q = self.queues[c][idx]
        runs = self.batcher.take(q, idx)
        for r in runs:
            self.qwork[c][idx] -= r.work * self.share[idx]
        self.n_queued[c] -= len(runs)
        bmax = self.batcher.max[idx]
        waiting = 1 + (len(q) + bmax - 1) // bmax
        k = self.grants.grant(runs[0], len(tbu.free), waiting, c)
        self.sim.start_batch(runs, tbu, k)
        running = self.running[tbu.id]
        rwork = self.rwork[c]
        for r in runs:
            running.append(r)
            rwork[idx] += r.work * self.share[idx]
            self.forecaster.started(r, c)
        self.rebalancer.note(c)

    def _start(self, run: TaskRun, tbu: TBU, k: int, c: int) -> None:
        assert self.sim is not None
        self.sim.start(run, tbu, k)
        self.running[tbu.id].append(run)
        self.rwork[c][run.tt.idx] += run.work * self.share[run.tt.idx]
        self.rebalancer.note(c)
        # Its successors arrive when it completes: the forecaster announces them now.
        self.forecaster.started(run, c)

    def on_complete(self, run: TaskRun) -> None:
        tbu = run.tbu
        assert tbu is not None
        self.running[tbu.id].remove(run)
        self.rwork[tbu.cluster][run.tt.idx] -= run.work * self.share[run.tt.idx]
        self.rebalancer.touch(tbu.cluster)
        self.rebalancer.touch(run.inst.cluster)
        self.forecaster.completed(run)
        self.rebalancer.completed(run.inst.cluster, run.tt.idx, run.work * self.share[run.tt.idx])

    def on_bound(self, tbu: TBU) -> None:
        self.tbus.bound(tbu)

    def on_freed(self, tbu: TBU) -> None:
        self.rebalancer.note(tbu.cluster)
        idx = tbu.bound
        if idx < 0 or tbu.reconfiguring:
            return
        target = self.tbus.leaving_for(tbu)
        if target >= 0:  # draining towards another type
            if tbu.busy == 0:
                if tbu.blocked == 0:
                    self.tbus.bind(tbu, target)
                    return
                # Drained but for output back-pressure holds: it leaves only when the stage
                # it waits on admits that output, maybe never (if that stage is ``target``
                # with no other TBU). The move is called off, so the TBU serves its type
                # again and ``target`` counts only TBUs that can reach it: the scheduler
                # decides again (a type left with runs queued and no TBU gets one at once).
                self.tbus.stay(tbu)
                self.rebalancer.called_off(tbu, target)
                if self.tbus.leaving_for(tbu) >= 0:
                    return  # chosen again (no other TBU could go)
            else:
                self.grants.grow(tbu)
                return
        c = tbu.cluster
        q = self.queues[c][idx]
        free = tbu.free
        kmin = self.kmin[idx]
        if self.any_batch and self.batcher.on[idx]:
            while q and len(free) >= kmin and self.batcher.due(q, c, idx):
                self._start_batch(tbu, c, idx)
            kmin = len(free) + 1  # nothing single to start below
        while q and len(free) >= kmin:
            run = q.popleft()
            self.qwork[c][idx] -= run.work * self.share[idx]
            self.n_queued[c] -= 1
            self._start(run, tbu, self.grants.grant(run, len(free), len(q) + 1, c), c)
        if not q and free:
            self.grants.grow(tbu)
        self.tbus.offer(tbu)
        if tbu.busy == 0 and not q:
            self.rebalancer.idle(c, idx)

    # --- faults -----------------------------------------------------------------------------

    def on_fault(self, tbu: TBU) -> None:
        """Forget the dead TBU's runs (they come back through ``on_ready``); if its whole
        cluster died, its queued runs move to other clusters. Types left without a TBU get
        one from the scheduler (at once, and at its next pass: a starving type always does)."""
        sim = self.sim
        assert sim is not None
        c = tbu.cluster
        for run in self.running[tbu.id]:
            self.rwork[c][run.tt.idx] -= run.work * self.share[run.tt.idx]
            self.forecaster.aborted(run)
        self.running[tbu.id] = []
        self.tbus.fault(tbu)
        if not any(t.alive for t in sim.chip.cluster_tbus[c]):
            self.rehome_queued(c)
        else:
            self.rebalancer.fault(c)

    def cluster_backlog(self, cluster: int) -> float:
        return sum(self.qwork[cluster])

    def take_queued(self, cluster: int, work: float, limit: float,
                    movable: Sequence[bool] | None = None) -> list[TaskRun]:
        share = self.share
        runs = take_latest(self.queues[cluster], self.qwork[cluster], work,
                           lambda run: run.work * share[run.tt.idx], limit, movable)
        self.n_queued[cluster] -= len(runs)
        self.rebalancer.touch(cluster)
        return runs

    def queued_runs(self, cluster: int) -> list[TaskRun]:
        runs = []
        for idx, q in enumerate(self.queues[cluster]):
            while q:
                run = q.popleft()
                self.qwork[cluster][idx] -= run.work * self.share[idx]
                runs.append(run)
        self.n_queued[cluster] = 0
        return runs
