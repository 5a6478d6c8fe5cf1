"""Which TB type each TBU serves: the cluster scheduler of Discriminate Dual-Scheduling (DDS),
or without it the profiled partition, kept fixed.

A :class:`Rebalancer` is told where work changed (:meth:`Rebalancer.note`,
:meth:`Rebalancer.touch`), when a run must queue (:meth:`Rebalancer.queued`), when a TBU went
idle (:meth:`Rebalancer.idle`) and when a TBU died (:meth:`Rebalancer.fault`), and moves TBUs
between types: a TBU chosen to change type stops taking work, drains, then loads its new
context. It reads what the policy keeps per cluster and type (queues, queued and running
work), the policy's :class:`~octosim.engine.policy.TBUTable` (which type each TBU serves, which
TBUs could move now) and the forecast of the policy's
:class:`~octosim.policies.octopus.forecast.Forecaster`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octosim.hardware.chip import TBU
    from octosim.policies.octopus import OctopusPolicy

INF = float("inf")


class Rebalancer:
    """The coarse level of one Octopus run (chosen at setup: :class:`ClusterScheduler` when
    ``policy.dds`` or ``policy.pcs`` -- PCS's forecasts act through it --, else
    :class:`FixedPartition`)."""

    rebinds = True  # does it move TBUs as demand shifts (so setup may leave a type without)?

    def __init__(self, policy: OctopusPolicy) -> None:
        sim = policy.sim
        assert sim is not None
        self.policy = policy
        self.sim = sim
        self.params = policy.params
        nc = sim.chip.n_clusters
        self.moves = 0  # TBUs moved to another type
        self._armed = False
        self._dirty = [False] * nc
        self._dirty_list: list[int] = []
        self._last_pass = [-1] * nc
        self.n_types = n = len(sim.task_types)
        self.peas = sim.arch.tbu.peas
        # Work held by back-pressure is tracked per stage for the whole chip: it counts as
        # demand only on a chip of one cluster.
        self.one_cluster = nc == 1
        self.no_held = [0] * n

    def start(self) -> None:
        """The TBUs are bound: look at every cluster at the first pass."""

    def note(self, c: int) -> None:
        """State changed in cluster ``c``: look at it again at the next pass."""

    def touch(self, c: int) -> None:
        """Work arrived or finished in cluster ``c``: note it and arm the next pass."""

    def queued(self, c: int, idx: int) -> None:
        """A run of type ``idx`` had to queue in cluster ``c`` (no TBU had its PEAs free)."""

    def idle(self, c: int, idx: int) -> None:
        """A TBU of type ``idx`` in cluster ``c`` has nothing running, and no run of type
        ``idx`` is queued there."""

    def fault(self, c: int) -> None:
        """A TBU of cluster ``c`` died (the cluster still has working TBUs)."""
        self.rebalance(c)

    # --- the pass ---------------------------------------------------------------------------

    def rebalance(self, c: int) -> None:
        """One pass of cluster ``c``'s scheduler: move up to ``max_moves`` TBUs from the type
        whose load per TBU would stay lowest to the most loaded one (a type with runs queued
        and no TBU first), when the receiver's backlog outlasts a reconfiguration and the move
        cuts its load per TBU below the donor's after the move by the hysteresis."""
        sim = self.sim
        now = sim.now
        if self._last_pass[c] == now:
            return
        self._last_pass[c] = now
        policy = self.policy
        n = self.n_types
        queues = policy.queues[c]
        qwork = policy.qwork[c]
        rwork = policy.rwork[c]
        held = sim.held_work if self.one_cluster else self.no_held
        # One cycle per queued run on top of its work, so runs of zero cycles still count as
        # demand (a type whose queue holds only such runs would otherwise never get a TBU).
        # ``actual`` is work that exists; ``demand`` adds the forecast.
        actual = [qwork[i] + len(queues[i]) + 0.5 * rwork[i] + held[i] for i in range(n)]
        demand = policy.forecaster.demand(c, actual)
        for i in range(n):
            if demand[i] > 0:
                break
        else:
            return  # nothing to balance
        table = policy.tbus
        count = list(table.counts[c])
        # TBUs a type could give now (bound to it, not loading, not already leaving).
        movable = [len(s) for s in table.settled[c]]
        peas = self.peas
        reconfig = policy.reconfig_cycles
        slack = 1 + self.params.hysteresis
        for _ in range(self.params.max_moves):
            # A type with runs queued and no TBU must get one (or it would never progress):
            # the one with the most demand; otherwise the most loaded type per TBU receives.
            # (Ties go to the lower index.)
            r = -1
            best = 0.0
            starving = False
            for i in range(n):
                if demand[i] > 0 and count[i] == 0 and queues[i] and (
                        not starving or demand[i] > best):
                    r, best, starving = i, demand[i], True
            if not starving:
                for i in range(n):
                    di = demand[i]
                    if di > 0:
                        v = di / (count[i] if count[i] > 1 else 1)
                        if r < 0 or v > best:
                            r, best = i, v
                if r < 0:
                    return
            per_r = demand[r] / max(1, count[r])
            # Worth moving only if the receiver's backlog outlasts a reconfiguration.
            if not starving and per_r / peas < 2 * reconfig[r]:
                return
            # The donor: among types with a TBU that could move now, the one whose work per
            # TBU stays lowest after giving one. Donors are judged by work that exists: a
            # forecast alone never keeps a TBU idle.
            d = -1
            after_d = 0.0
            for i in range(n):
                ci = count[i]
                if i != r and ci >= 1 and movable[i]:
                    # A type's last TBU goes only if it has no work.
                    after = actual[i] / (ci - 1) if ci > 1 else INF if actual[i] > 0 else 0.0
                    if d < 0 or after < after_d:
                        d, after_d = i, after
            if d < 0:
                return
            if not starving and per_r <= slack * after_d:
                return
            if starving and after_d == INF:
                return
            tbu = self.donor_tbu(c, d)
            if tbu is None:
                return
            if actual[r] <= 0 and (tbu.busy or tbu.blocked):
                return  # for forecast work alone, only an idle TBU moves
            count[d] -= 1
            count[r] += 1
            movable[d] -= 1
            self.moves += 1
            self.move(tbu, r)

    def donor_tbu(self, c: int, d: int) -> TBU | None:
        """The TBU of type ``d`` in cluster ``c`` that could move now and will drain first
        (idle ones at once)."""
        running = self.policy.running
        best = None
        # The least (drain cycle, PEAs held, id), compared field by field.
        b_drain = b_held = b_id = 0
        for t in self.policy.tbus.settled[c][d].values():
            drain = 0
            for r in running[t.id]:
                if r.end_at > drain:
                    drain = r.end_at
            held = t.busy + t.blocked
            if best is None or drain < b_drain or drain == b_drain and (
                    held < b_held or held == b_held and t.id < b_id):
                best, b_drain, b_held, b_id = t, drain, held, t.id
        return best

    def move(self, tbu: TBU, target: int) -> None:
        """Rebind ``tbu`` to ``target``: at once if idle, else when it has drained (its next
        context fetched ahead by the forecaster, its free PEAs given to its running runs)."""
        policy = self.policy
        if tbu.busy == 0 and tbu.blocked == 0:
            policy.tbus.bind(tbu, target)
            return
        policy.tbus.drain(tbu, target)
        policy.forecaster.prefetch(tbu, target)
        policy.grants.grow(tbu)


class ClusterScheduler(Rebalancer):
    """DDS's coarse level: each cluster's scheduler rebinds TBUs between types from the work
    waiting and running per type (and the PCS forecast), on a timer armed by work events; a
    type with runs queued and no TBU gets one at once, and a run that must queue takes an idle
    TBU of another type when waiting would outlast a rebind."""

    def start(self) -> None:
        for c in range(self.sim.chip.n_clusters):
            self.touch(c)

    def note(self, c: int) -> None:
        """Clusters where nothing changed are skipped at a pass (their decision would be the
        same), so a pass costs what changed, not the size of the chip."""
        if not self._dirty[c]:
            self._dirty[c] = True
            self._dirty_list.append(c)

    def touch(self, c: int) -> None:
        self.note(c)
        if not self._armed:
            # Passes are armed by work events, so a long stretch in which nothing changes
            # costs no events.
            self._armed = True
            self.sim.call_at(self.sim.now + self.params.rebalance_cycles, self._tick)

    def _tick(self) -> None:
        sim = self.sim
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
                self.touch(c)
                continue
            self.rebalance(c)

    def queued(self, c: int, idx: int) -> None:
        if not self.policy.tbus.counts[c][idx]:
            self.rebalance(c)
        else:
            self.steal_idle(c, idx)

    def idle(self, c: int, idx: int) -> None:
        # An idle TBU does not trigger a rebind by itself: idleness between runs is the
        # execution-time dynamicity the bound TBU's PEAs absorb; rebinding answers shifts in
        # how often each type runs, which the periodic pass sees. (Moving a TBU the moment it
        # idles made TBUs shuttle between types under Poisson load.) The exception is a type
        # with runs queued and no TBU at all: it must get this one.
        if self.policy.n_queued[c]:  # runs of another type wait (type idx has none)
            queues = self.policy.queues[c]
            count = self.policy.tbus.counts[c]
            for i in range(self.n_types):
                if queues[i] and not count[i]:
                    self.rebalance(c)
                    return

    def steal_idle(self, c: int, idx: int) -> None:
        """A run must queue: if some TBU of another type sits idle with nothing queued, and the
        wait for this type's PEAs would outlast a rebind, rebind that TBU now (the fine level
        falls back on the coarse one only when it pays)."""
        policy = self.policy
        now = self.sim.now
        running = policy.running
        settled = policy.tbus.settled[c]
        wait = None
        for t in settled[idx].values():
            soonest = now
            runs = running[t.id]
            if runs:
                soonest = min(r.end_at for r in runs)
            if wait is None or soonest - now < wait:
                wait = soonest - now
        # The first idle TBU (by id) bound to a type with nothing queued.
        idle = None
        queues = policy.queues[c]
        for j, tbus in enumerate(settled):
            if j == idx or queues[j]:
                continue
            for t in tbus.values():
                if t.busy == 0 and t.blocked == 0 and (idle is None or t.id < idle.id):
                    idle = t
        if idle is None or (wait is not None and wait <= 2 * policy.reconfig_cycles[idx]):
            return
        self.moves += 1
        self.move(idle, idx)


class FixedPartition(Rebalancer):
    """Without DDS (and PCS): the profiled partition stays; nothing rebinds as demand shifts. A
    fault recompiles the mapping around the dead TBU: one pass of the scheduler, then every
    type left without a TBU takes one from the type with the most."""

    rebinds = False

    def fault(self, c: int) -> None:
        self.rebalance(c)
        self.cover_all_types(c)

    def cover_all_types(self, c: int) -> None:
        table = self.policy.tbus
        n = len(self.policy.kmin)
        count = list(table.counts[c])
        for idx in range(n):
            if count[idx]:
                continue
            d = max(range(n), key=lambda i: (count[i], -i))
            if count[d] < 2:
                return  # too few TBUs left to give every type one
            tbu = self.donor_tbu(c, d)
            if tbu is not None:
                self.move(tbu, idx)
            else:
                # The donor type's TBUs are still loading: redirect one when it is ready.
                tbu = next((t for t in self.sim.chip.cluster_tbus[c]
                            if t.alive and t.reconfiguring and table.leaving_for(t) < 0
                            and t.loading == d), None)
                if tbu is None:
                    continue
                table.drain(tbu, idx)
            count[d] -= 1
            count[idx] += 1
            self.moves += 1
