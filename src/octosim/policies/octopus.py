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
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from pydantic import Field

from octosim.engine.profile import profile_workflow
from octosim.errors import UserError
from octosim.hardware.chip import TBU
from octosim.model.dists import round_count
from octosim.model.expr import ExprError
from octosim.model.workflow import (
    BranchNode,
    ForeachNode,
    LoopNode,
    Node,
    ParallelNode,
    TaskNode,
)
from octosim.policies.base import Policy, PolicyParams
from octosim.policies.registry import register
from octosim.policies.static import allocate_tbus

if TYPE_CHECKING:
    from octosim.engine.sim import Simulation, TaskRun

LEARN_AFTER = 16  # observations of a Control Block before its learned statistics are used


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
    horizon_grant: bool = Field(True, description="ATS grants a run enough PEAs to finish "
                                "within the time the cluster needs for the work it holds "
                                "(a started run cannot move: a narrow long run is a long tail)")


class _Learned:
    """Online statistics of one Control Block."""

    __slots__ = ("n", "total", "cases")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.cases: dict[int, int] = {}


@register
class OctopusPolicy(Policy):
    name = "octopus"
    summary = "Octopus: DDS + ATS + PCS (each switchable: policy.dds / ats / pcs = false)"
    Params = OctopusParams
    params: OctopusParams

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
        self.forecast = [[0.0] * n for _ in range(nc)]
        self.avail: list[list[list[TBU]]] = [[[] for _ in range(n)] for _ in range(nc)]
        self.running: dict[int, list[TaskRun]] = {t.id: [] for t in sim.chip.tbus}
        self.announced: dict[int, list[float]] = {}
        self.learned: dict[int, _Learned] = {}
        self.moves = 0
        self._last_pass = [-1] * nc
        self.cb_cycles = sim.arch.cluster.cbu_cycles
        self.hop_cycles = sim.arch.control_plane.hop_cycles
        self.reconfig_cycles = [
            sim.arch.reconfig.fixed_cycles + tt.context_bytes / sim.arch.memory.bytes_per_cycle
            for tt in types
        ]
        prof = profile_workflow(sim.wf, types, sim.seed)
        self.mean_work = [max(1.0, prof[tt.idx].mean_work_cycles) for tt in types]
        self.work_seen = [0] * n
        demand = [prof[tt.idx].work_per_instance for tt in types]
        for c in sim.chip.alive_clusters:
            tbus = [t for t in sim.chip.cluster_tbus[c] if t.alive]
            tbus.sort(key=lambda t: (-t.n_peas, t.id))
            if len(tbus) >= n:
                counts = allocate_tbus(demand, len(tbus))
            else:
                if not (p.dds or p.pcs):
                    raise UserError(f"octopus without rebinding needs one TBU per task type: "
                                    f"cluster {c} has {len(tbus)} for {n} types")
                order = sorted(range(n), key=lambda i: -demand[i])[: len(tbus)]
                counts = [1 if i in order else 0 for i in range(n)]
            it = iter(tbus)
            for idx, count in enumerate(counts):
                for _ in range(count):
                    tbu = next(it)
                    if tbu.n_peas < self.kmin[idx] and not (p.dds or p.pcs):
                        raise UserError(f"TBU {tbu.id} has {tbu.n_peas} working PEAs, fewer "
                                        f"than the {self.kmin[idx]} that {types[idx].name} needs")
                    self._bind(tbu, idx)
        self._armed = False
        self._dirty = [False] * nc
        self._dirty_list: list[int] = []
        self._touch_all()

    def _touch_all(self) -> None:
        assert self.sim is not None
        for c in range(self.sim.chip.n_clusters):
            self._touch(c)

    def _mark(self, c: int) -> None:
        """State changed in cluster ``c``: its scheduler looks again at the next pass. Clusters
        where nothing changed are skipped (their decision would be the same), so a pass costs
        what changed, not the size of the chip."""
        if not self._dirty[c]:
            self._dirty[c] = True
            self._dirty_list.append(c)

    def _touch(self, c: int) -> None:
        """Work arrived or finished in cluster ``c``: mark it and arm the next pass."""
        self._mark(c)
        self._arm()

    def _arm(self) -> None:
        """Schedule the next scheduler pass, unless one is pending. Passes are armed by work
        events, so a long stretch in which nothing changes costs no events."""
        if not self._armed and (self.params.dds or self.params.pcs):
            self._armed = True
            assert self.sim is not None
            self.sim.call_at(self.sim.now + self.params.rebalance_cycles, self._tick)

    def control_cycles(self, cbs: int, run: TaskRun) -> int:
        return cbs * self.cb_cycles + self.hop_cycles

    # --- fine-grained: runs onto PEAs of TBUs bound to their type ---------------------------

    def _grant(self, run: TaskRun, free: int, waiting: int, c: int) -> int:
        idx = run.tt.idx
        kmin = self.kmin[idx]
        if not self.params.ats:
            return kmin
        k = free // max(1, waiting)
        if self.params.horizon_grant:
            # The cluster's work in hand, spread over its PEAs, is how long it stays busy; a
            # run granted fewer PEAs than it needs to end within that outlasts everything.
            horizon = (sum(self.qwork[c]) + sum(self.rwork[c])) / self.cluster_peas[c]
            need = math.ceil(run.work / horizon) if horizon >= 1 else self.kmax[idx]
            k = max(k, need)
        return max(kmin, min(self.kmax[idx], k, free))

    def on_ready(self, run: TaskRun) -> None:
        sim = self.sim
        assert sim is not None
        idx = run.tt.idx
        c = run.inst.cluster
        kmin = self.kmin[idx]
        lst = self.avail[c][idx]
        while lst and not self._usable(lst[-1], idx, kmin):
            lst.pop().mark = False
        q = self.queues[c][idx]
        if lst:
            tbu = lst[-1]
            self._start(run, tbu, self._grant(run, len(tbu.free), len(q) + 1, c), c)
            # _start may rebalance and so change the list; unusable entries left deeper in
            # it are dropped lazily by the loop above.
            if lst and lst[-1] is tbu and len(tbu.free) < kmin:
                lst.pop()
                tbu.mark = False
        else:
            q.append(run)
            self.qwork[c][idx] += run.work
            if self.params.dds or self.params.pcs:
                if not self._has_tbus(c, idx):
                    self._rebalance(c)
                else:
                    self._steal_idle(c, idx)
        self._touch(c)

    @staticmethod
    def _usable(tbu: TBU, idx: int, k: int) -> bool:
        return tbu.bound == idx and tbu.tag is None and len(tbu.free) >= k

    def _start(self, run: TaskRun, tbu: TBU, k: int, c: int) -> None:
        assert self.sim is not None
        self.sim.start(run, tbu, k)
        self.running[tbu.id].append(run)
        self.rwork[c][run.tt.idx] += run.work
        self._mark(c)
        if self.params.pcs:
            # Its successors arrive when it completes: announce them now. (Queued runs do not
            # announce: their successors are too far off to plan TBUs for.)
            self._announce(run, c)

    def on_complete(self, run: TaskRun) -> None:
        tbu = run.tbu
        assert tbu is not None
        self.running[tbu.id].remove(run)
        idx = run.tt.idx
        self.rwork[tbu.cluster][idx] -= run.work
        # Learn the mean work of each type online (the profile only seeds it).
        self.work_seen[idx] += 1
        w = self.work_seen[idx]
        self.mean_work[idx] += (max(run.work, run.tt.floor_cycles) - self.mean_work[idx]) / (
            w + 8)
        self._touch(tbu.cluster)
        self._touch(run.inst.cluster)
        ann = self.announced.pop(run.seq, None)
        if ann is not None:
            fc = self.forecast[run.inst.cluster]
            for i, v in enumerate(ann):
                fc[i] -= v

    def on_freed(self, tbu: TBU) -> None:
        self._mark(tbu.cluster)
        idx = tbu.bound
        if idx < 0 or tbu.reconfiguring:
            return
        sim = self.sim
        assert sim is not None
        if tbu.tag is not None:  # draining towards another type
            if self.params.ats:
                self._grow(tbu)
            if tbu.busy == 0 and tbu.blocked == 0:
                target = tbu.tag
                tbu.tag = None
                assert isinstance(target, int)
                self._bind(tbu, target)
            return
        c = tbu.cluster
        q = self.queues[c][idx]
        free = tbu.free
        kmin = self.kmin[idx]
        while q and len(free) >= kmin:
            run = q.popleft()
            self.qwork[c][idx] -= run.work
            self._start(run, tbu, self._grant(run, len(free), len(q) + 1, c), c)
        if not q and free and self.params.ats:
            self._grow(tbu)
        if len(free) >= kmin and not tbu.mark:
            tbu.mark = True
            self.avail[c][idx].append(tbu)
        # An idle TBU does not trigger a rebind by itself: idleness between runs is the
        # execution-time dynamicity the bound TBU's PEAs absorb; rebinding answers shifts in
        # how often each type runs, which the cluster scheduler's periodic pass sees. (Moving
        # a TBU the moment it idles made TBUs shuttle between types under Poisson load.) The
        # exception is a type with runs queued and no TBU at all: it must get this one.
        if tbu.busy == 0 and not q and (self.params.dds or self.params.pcs):
            queues = self.queues[c]
            if any(queues[i] for i in range(len(queues)) if i != idx):
                count = self._type_counts(c)[1]
                if any(queues[i] and not count[i] for i in range(len(queues))):
                    self._rebalance(c)

    def _grow(self, tbu: TBU) -> None:
        """Give free PEAs to the runs still running here, longest remaining first."""
        sim = self.sim
        assert sim is not None
        runs = [r for r in self.running[tbu.id] if r.k < self.kmax[r.tt.idx]
                and r.mem_end < r.end_at]
        if not runs:
            return
        runs.sort(key=lambda r: (-(r.end_at - sim.now), r.seq))
        share = max(1, len(tbu.free) // len(runs))
        for r in runs:
            extra = min(share, self.kmax[r.tt.idx] - r.k, len(tbu.free))
            if extra >= 1:
                sim.grow(r, extra)
            if not tbu.free:
                break

    def on_fault(self, tbu: TBU) -> None:
        """Forget the dead TBU's runs (they come back through ``on_ready``); if its whole
        cluster died, its queued runs move to other clusters. Types left without a TBU get
        one from the scheduler at its next pass (a starving type always does)."""
        sim = self.sim
        assert sim is not None
        c = tbu.cluster
        for run in self.running.get(tbu.id, []):
            self.rwork[c][run.tt.idx] -= run.work
            ann = self.announced.pop(run.seq, None)
            if ann is not None:
                for i, v in enumerate(ann):
                    self.forecast[run.inst.cluster][i] -= v
        self.running[tbu.id] = []
        tbu.mark = False
        tbu.tag = None
        if not any(t.alive for t in sim.chip.cluster_tbus[c]):
            for idx, q in enumerate(self.queues[c]):
                while q:
                    run = q.popleft()
                    self.qwork[c][idx] -= run.work
                    run.inst.cluster = self.place_instance(run.inst)
                    self.on_ready(run)
        else:
            self._rebalance(c)
            if not (self.params.dds or self.params.pcs):
                self._cover_all_types(c)

    def _cover_all_types(self, c: int) -> None:
        """Without a cluster scheduler nothing rebinds later: recompile the mapping around a
        fault now, so that every type keeps a TBU (taken from the type with the most)."""
        n = len(self.kmin)
        tbus, count = self._type_counts(c)
        for idx in range(n):
            if count[idx]:
                continue
            d = max(range(n), key=lambda i: (count[i], -i))
            if count[d] < 2:
                return  # too few TBUs left to give every type one
            tbu = self._donor_tbu(tbus, d)
            if tbu is not None:
                self._move(tbu, idx)
            else:
                # The donor type's TBUs are still loading: redirect one when it is ready.
                tbu = next((t for t in tbus if t.reconfiguring and t.tag is None
                            and t.loading == d), None)
                if tbu is None:
                    continue
                tbu.tag = idx
            count[d] -= 1
            count[idx] += 1
            self.moves += 1

    # --- coarse-grained: the cluster scheduler rebinds TBUs ---------------------------------

    def _bind(self, tbu: TBU, idx: int) -> None:
        assert self.sim is not None
        if tbu.mark:
            tbu.mark = False
            if tbu.bound >= 0:
                lst = self.avail[tbu.cluster][tbu.bound]
                if tbu in lst:
                    lst.remove(tbu)
        self.sim.bind(tbu, idx)

    def _type_of(self, tbu: TBU) -> int:
        if tbu.tag is not None:
            return int(tbu.tag)  # type: ignore[call-overload]
        if tbu.reconfiguring:
            return tbu.loading
        return tbu.bound

    def _has_tbus(self, c: int, idx: int) -> bool:
        assert self.sim is not None
        return any(t.alive and self._type_of(t) == idx for t in self.sim.chip.cluster_tbus[c])

    def _tick(self) -> None:
        sim = self.sim
        assert sim is not None
        self._armed = False
        todo = sorted(self._dirty_list)
        self._dirty_list = []
        dirty = self._dirty
        alive = sim.cluster_alive
        for c in todo:
            dirty[c] = False
        for c in todo:
            if not alive[c]:
                continue
            if self._last_pass[c] == sim.now:
                # It already passed this cycle, maybe before its latest change: look again at
                # the next pass rather than lose the change.
                self._touch(c)
                continue
            self._rebalance(c)

    def _type_counts(self, c: int) -> tuple[list[TBU], list[int]]:
        """The working TBUs of cluster ``c``, and how many serve each type (counting a TBU
        by the type it is loading or draining towards)."""
        assert self.sim is not None
        tbus = [t for t in self.sim.chip.cluster_tbus[c] if t.alive]
        count = [0] * len(self.kmin)
        for t in tbus:
            ty = self._type_of(t)
            if ty >= 0:
                count[ty] += 1
        return tbus, count

    def _rebalance(self, c: int) -> None:
        sim = self.sim
        assert sim is not None
        if self._last_pass[c] == sim.now:
            return
        self._last_pass[c] = sim.now
        p = self.params
        n = len(sim.task_types)
        tbus, count = self._type_counts(c)
        # TBUs a type could give now (bound to it, not loading, not already leaving).
        movable = [0] * n
        for t in tbus:
            if t.tag is None and not t.reconfiguring and t.bound >= 0:
                movable[t.bound] += 1
        held = sim.held_work if sim.chip.n_clusters == 1 else [0] * n
        queues = self.queues[c]
        # One cycle per queued run on top of its work, so runs of zero cycles still count as
        # demand (a type whose queue holds only such runs would otherwise never get a TBU).
        demand = [self.qwork[c][i] + len(queues[i]) + 0.5 * self.rwork[c][i] + held[i]
                  for i in range(n)]
        actual = list(demand)
        if p.pcs:
            fc = self.forecast[c]
            w = p.forecast_weight
            demand = [demand[i] + w * max(0.0, fc[i]) for i in range(n)]
        peas = sim.arch.tbu.peas
        for _ in range(p.max_moves):
            need = [i for i in range(n) if demand[i] > 0]
            if not need:
                return
            # A type with runs queued and no TBU must get one (or it would never progress);
            # otherwise the most loaded type per TBU receives.
            starving = [i for i in need if count[i] == 0 and queues[i]]
            if starving:
                r = max(starving, key=lambda i: (demand[i], -i))
            else:
                r = max(need, key=lambda i: (demand[i] / max(1, count[i]), -i))
            per_r = demand[r] / max(1, count[r])
            # Worth moving only if the receiver's backlog outlasts a reconfiguration.
            if not starving and per_r / peas < 2 * self.reconfig_cycles[r]:
                return

            # Donors are judged by work that exists: a forecast alone never keeps a TBU idle.
            def after(i: int) -> float:
                if count[i] <= 1:
                    return float("inf") if actual[i] > 0 else 0.0
                return actual[i] / (count[i] - 1)

            donors = [i for i in range(n) if i != r and count[i] >= 1 and movable[i]]
            if not donors:
                return
            d = min(donors, key=lambda i: (after(i), i))
            if not starving and per_r <= (1 + p.hysteresis) * after(d):
                return
            if starving and after(d) == float("inf"):
                return
            tbu = self._donor_tbu(tbus, d)
            if tbu is None:
                return
            if actual[r] <= 0 and (tbu.busy or tbu.blocked):
                return  # for forecast work alone, only an idle TBU moves
            count[d] -= 1
            count[r] += 1
            movable[d] -= 1
            self.moves += 1
            self._move(tbu, r)

    def _steal_idle(self, c: int, idx: int) -> None:
        """A run must queue: if some TBU of another type sits idle with nothing queued, and the
        wait for this type's PEAs would outlast a rebind, rebind that TBU now (the fine level
        falls back on the coarse one only when it pays)."""
        sim = self.sim
        assert sim is not None
        now = sim.now
        wait = None
        idle = None
        for t in sim.chip.cluster_tbus[c]:
            if not t.alive or t.reconfiguring or t.tag is not None:
                continue
            if t.bound == idx:
                soonest = min((r.end_at for r in self.running[t.id]), default=now)
                wait = soonest - now if wait is None else min(wait, soonest - now)
            elif idle is None and t.busy == 0 and t.blocked == 0 and (
                t.bound < 0 or not self.queues[c][t.bound]
            ):
                idle = t
        if idle is None or (wait is not None and wait <= 2 * self.reconfig_cycles[idx]):
            return
        self.moves += 1
        self._move(idle, idx)

    def _donor_tbu(self, tbus: list[TBU], d: int) -> TBU | None:
        """The TBU of type ``d`` that will drain first (idle ones at once)."""
        best = None
        for t in tbus:
            if t.tag is None and not t.reconfiguring and t.bound == d:
                runs = self.running[t.id]
                drain = max((r.end_at for r in runs), default=0)
                key = (drain, t.busy + t.blocked, t.id)
                if best is None or key < best[0]:
                    best = (key, t)
        return best[1] if best else None

    def _move(self, tbu: TBU, target: int) -> None:
        sim = self.sim
        assert sim is not None
        if tbu.mark:
            tbu.mark = False
            lst = self.avail[tbu.cluster][tbu.bound]
            if tbu in lst:
                lst.remove(tbu)
        if tbu.busy == 0 and tbu.blocked == 0:
            self._bind(tbu, target)
            return
        tbu.tag = target
        if self.params.pcs:
            # Fetch the new context while the TBU drains, timed to land when it drains: an
            # earlier fetch would only delay the weight streams of runs computing meanwhile.
            drain = max((r.end_at for r in self.running[tbu.id]), default=sim.now)
            at = drain - math.ceil(self.reconfig_cycles[target])
            if at <= sim.now:
                sim.prefetch(tbu, target)
            else:
                sim.call_at(at, lambda: self._prefetch(tbu, target))
        if self.params.ats:
            self._grow(tbu)

    def _prefetch(self, tbu: TBU, target: int) -> None:
        if tbu.alive and tbu.tag == target and (tbu.busy or tbu.blocked):
            assert self.sim is not None
            self.sim.prefetch(tbu, target)

    # --- PCS: learning Control Blocks and announcing successors' work -----------------------

    def on_decision(self, block: int, outcome: int) -> None:
        st = self.learned.get(block)
        if st is None:
            st = self.learned[block] = _Learned()
        st.n += 1
        st.total += outcome
        st.cases[outcome] = st.cases.get(outcome, 0) + 1

    def _announce(self, run: TaskRun, c: int) -> None:
        assert self.sim is not None
        pos = self.sim.flow_position(run)
        out = [0.0] * len(self.mean_work)
        self._look(pos.nodes, pos.index, pos.scope, self.params.lookahead, 1.0, out)
        if any(out):
            self.announced[run.seq] = out
            fc = self.forecast[c]
            for i, v in enumerate(out):
                fc[i] += v

    def _count(self, node: Node, value: object, scope: dict[str, float]) -> float:
        """A foreach/loop count: exact when the CBU can already decide it, else learned."""
        from octosim.model.dists import Value

        assert isinstance(value, Value)
        if not value.is_random:
            try:
                return float(round_count(value.sample(0, scope)))
            except (ExprError, KeyError):
                pass
        st = self.learned.get(node.block)
        if st is not None and st.n >= LEARN_AFTER:
            return st.total / st.n
        hint = value.mean_hint()
        return float(hint) if hint is not None else 1.0

    def _look(self, nodes: list[Node], i: int, scope: dict[str, float], depth: int,
              mult: float, out: list[float]) -> int:
        """Add the expected work of the next ``depth`` task levels; return depth left."""
        while i < len(nodes) and depth > 0 and mult > 1e-9:
            node = nodes[i]
            i += 1
            t = type(node)
            if t is TaskNode:
                idx = node.task.index  # type: ignore[attr-defined]
                out[idx] += mult * self.mean_work[idx]
                depth -= 1
            elif t is ForeachNode:
                n = self._count(node, node.count, scope)  # type: ignore[attr-defined]
                depth = self._look(node.body, 0, scope, depth, mult * n,  # type: ignore[attr-defined]
                                   out)
            elif t is ParallelNode:
                left = depth
                for arm in node.arms:  # type: ignore[attr-defined]
                    left = min(left, self._look(arm, 0, scope, depth, mult, out))
                depth = left
            elif t is BranchNode:
                depth = self._look_branch(node, scope, depth, mult, out)  # type: ignore[arg-type]
            elif t is LoopNode:
                loop: LoopNode = node  # type: ignore[assignment]
                if loop.count is not None:
                    trips = self._count(loop, loop.count, scope)
                else:
                    st = self.learned.get(loop.block)
                    trips = st.total / st.n if st is not None and st.n else 1.0
                depth = self._look(loop.body, 0, scope, depth, mult * trips, out)
        return depth

    def _look_branch(self, node: BranchNode, scope: dict[str, float], depth: int, mult: float,
                     out: list[float]) -> int:
        st = self.learned.get(node.block)
        learned = st is not None and st.n >= LEARN_AFTER
        left = depth
        rest = 1.0
        for ci, case in enumerate(node.cases):
            if case.kind == "when":
                try:
                    if case.cond(scope):  # type: ignore[misc]
                        return self._look(case.body, 0, scope, depth, mult * rest, out)
                    continue
                except (ExprError, KeyError):
                    p = (st.cases.get(ci, 0) / st.n) if learned and st is not None else 0.5
            elif case.kind == "p":
                p = (st.cases.get(ci, 0) / st.n) if learned and st is not None else case.p
            else:
                p = 1.0
            p = min(p, 1.0)
            if p > 0 and case.body:
                left = min(left, self._look(case.body, 0, scope, depth, mult * rest * p, out))
            rest *= 1.0 - p
            if rest <= 0:
                break
        return left
