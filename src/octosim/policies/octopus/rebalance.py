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

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octosim.hardware.chip import TBU
    from octosim.policies.octopus import OctopusPolicy

QUIET_GAPS = 4  # a type is quiet after this many of its usual gaps without an arrival


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
        # The decision horizon per cluster: ``horizon_cycles``, or ``horizon_arrivals`` of the usual
        # gaps between instance arrivals there if longer: a decision should hold while the mix
        # of work it was made for lasts, and the arrival rates it reads are estimated from
        # about that many arrivals (from 4 the estimate is noisy enough, +-50%, that TBUs
        # shuttle between types as Poisson bursts come and go).
        self.min_horizon = float(self.params.horizon_cycles)
        self.horizons = [self.min_horizon] * nc
        self._inst_at = [-1] * nc
        self._inst_gap = [0.0] * nc
        # Work arrived per cluster and type, decayed to the cycle in ``_recent_at``.
        self._recent = [[0.0] * n for _ in range(nc)]
        self._recent_at = [[-1] * n for _ in range(nc)]  # -1: nothing arrived yet
        self._gap = [[-1.0] * n for _ in range(nc)]  # usual gap between arrivals; -1: none yet
        self._moved_at = [-(10**18)] * len(sim.chip.tbus)  # cycle each TBU last moved
        # With bounded stage buffers a stage left without a TBU does not just queue its input:
        # its producers fill its buffer and then hold their PEAs, blocked, and theirs in turn.
        self.bounded = policy.buffer_slots > 0
        self.ranks = [tt.rank for tt in sim.task_types]
        # With bounded buffers the queues show only what the buffers hold: the work still to
        # come is estimated from the profile, per instance arrived, less the work completed
        # (:meth:`demand`).
        self.arrived_instances = [0] * nc
        self.done_work = [[0.0] * n for _ in range(nc)]
        self.profile_work = policy.profile_work

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

    def completed(self, c: int, idx: int, work: float) -> None:
        """A run of type ``idx`` homed in cluster ``c`` completed ``work`` PEA-cycles."""
        self.done_work[c][idx] += work

    def called_off(self, tbu: TBU, target: int) -> None:
        """The move of ``tbu`` to ``target`` was called off: it drained but for output that
        back-pressure holds, so it cannot leave until the stage it waits on admits it. It
        serves its type again; ``target``, if that leaves it with runs queued and no TBU,
        gets one now from a TBU that can drain."""
        self.moves -= 1
        self._moved_at[tbu.id] = -(10**18)  # it never moved: nothing commits it
        c = tbu.cluster
        policy = self.policy
        if policy.queues[c][target] and not policy.tbus.counts[c][target]:
            self.rebalance(c)
        self.touch(c)

    # --- expected work over the decision horizon ------------------------------------------

    def instance_arrived(self, c: int) -> None:
        """An instance arrived with its home in cluster ``c``: the pace of arrivals sets the
        horizon."""
        now = self.sim.now
        self.arrived_instances[c] += 1
        last = self._inst_at[c]
        self._inst_at[c] = now
        if last < 0 or now == last:
            return
        g = self._inst_gap[c]
        g = now - last if g == 0 else 0.75 * g + 0.25 * (now - last)
        self._inst_gap[c] = g
        self.horizons[c] = max(self.min_horizon, self.params.horizon_arrivals * g)

    def arrived(self, c: int, idx: int, work: float) -> None:
        """``work`` PEA-cycles of type ``idx`` became ready in cluster ``c``. The work that
        arrived over about the last horizon (exponentially decayed, time constant one horizon)
        is what the next horizon is expected to bring: a type with steady traffic keeps the
        TBUs it needs even at an instant when its queue happens to be empty."""
        now = self.sim.now
        at = self._recent_at[c]
        recent = self._recent[c]
        if at[idx] < 0:
            at[idx] = now
        elif at[idx] != now:
            gap = now - at[idx]
            recent[idx] *= math.exp(-gap / self.horizons[c])
            at[idx] = now
            # The usual gap between arrivals of the type (a moving average of the last few).
            g = self._gap[c]
            g[idx] = gap if g[idx] < 0 else 0.75 * g[idx] + 0.25 * gap
        recent[idx] += work

    def work_now(self, c: int, held: list[int] | None = None) -> list[float]:
        """Work that exists per type in cluster ``c``: queued, half the running, and ``held``
        (by back-pressure) if given. One cycle per queued run on top of its work, so runs of
        zero cycles still count (a type whose queue holds only such runs would otherwise
        never get a TBU)."""
        policy = self.policy
        queues = policy.queues[c]
        qwork = policy.qwork[c]
        rwork = policy.rwork[c]
        if held is None:
            return [qwork[i] + len(queues[i]) + 0.5 * rwork[i] for i in range(self.n_types)]
        return [qwork[i] + len(queues[i]) + 0.5 * rwork[i] + held[i]
                for i in range(self.n_types)]

    def demand(self, c: int, actual: list[float]) -> list[float]:
        """Work per type in cluster ``c``: ``actual`` (waiting, running, held) with the
        forecast. With bounded buffers and every instance there at once, the buffers hold
        little of the work to come, so the queues alone would strip the stages downstream of
        the current bottleneck: each type's demand is then its profiled work for the
        instances arrived, less the work it completed (what a pipeline must be balanced on)."""
        demand = self.policy.forecaster.demand(c, actual)
        if self.bounded and not self._inst_gap[c]:
            arrived = self.arrived_instances[c]
            done = self.done_work[c]
            pw = self.profile_work
            for i in range(self.n_types):
                rest = arrived * pw[i] - done[i]
                if rest > demand[i]:
                    demand[i] = rest
        return demand

    def expected(self, c: int, demand: list[float]) -> list[float]:
        """``demand`` (work waiting, running and forecast per type) plus the work expected to
        arrive within the horizon."""
        now = self.sim.now
        at = self._recent_at[c]
        recent = self._recent[c]
        h = self.horizons[c]
        return [demand[i] + (recent[i] * math.exp((at[i] - now) / h) if recent[i] else 0.0)
                for i in range(self.n_types)]

    def quiet(self, c: int, idx: int, actual: list[float]) -> bool:
        """Type ``idx`` has no work in cluster ``c`` and none arrived within the horizon nor
        within four of its usual gaps between arrivals (a type whose work comes rarely but
        regularly is not quiet between two arrivals)."""
        if actual[idx] > 0 or self.fed(idx, actual):
            return False
        if not self._inst_gap[c]:
            return True  # no pace of arrivals: all the work there is, is there
        at = self._recent_at[c][idx]
        if at < 0:
            return True  # no work of the type has arrived yet
        since = self.sim.now - at
        return since >= self.horizons[c] and since >= QUIET_GAPS * self._gap[c][idx]

    def fed(self, idx: int, actual: list[float]) -> bool:
        """With bounded buffers: does work of an earlier stage (in flow order) exist, which
        may bring type ``idx`` work? Such a type keeps its last TBU: given away, its
        producers would block on its full buffer and hold their PEAs until it came back."""
        if not self.bounded:
            return False
        rank = self.ranks[idx]
        ranks = self.ranks
        return any(actual[j] > 0 and ranks[j] < rank for j in range(self.n_types))

    def horizon_of(self, c: int, expect: list[float]) -> float:
        """The horizon a move in cluster ``c`` is judged over: the pace-set horizon, or the
        time the cluster's PEAs need for all the work expected there if longer (when every
        instance is there at once, that backlog is all the future there is: a type whose TBUs
        cannot finish its share of it within that time is short of TBUs)."""
        return max(self.horizons[c], sum(expect) / self.policy.cluster_peas[c])

    def commit_cycles(self, c: int) -> float:
        """How long a moved TBU stays with its new type (:meth:`donor_tbu`): the horizon when
        instances arrive over time; nothing when all arrived at once (the backlog is all the
        work there will be, so there are no bursts to chase)."""
        return self.horizons[c] if self._inst_gap[c] else 0.0

    def net_gain(self, c: int, expect: list[float], count: list[int], r: int, d: int,
                 drain_cycles: float) -> float:
        """PEA-cycles a move of one TBU from type ``d`` to type ``r`` gains within the horizon,
        net of its cost (the cost model of docs/policies.md): the work the TBU would do for
        ``r`` beyond what ``r``'s own TBUs can do in the horizon (it starts after draining and
        loading ``r``'s context), minus the work of ``d`` that ``d``'s remaining TBUs then
        cannot do in the horizon, minus the reconfiguration's PEA-time times one plus the
        hysteresis (the margin for the chance the TBU must come back)."""
        peas = self.peas
        h = self.horizon_of(c, expect)
        span = peas * h
        reconfig = self.policy.reconfig_cycles[r]
        # (Conditionals for max(0.0, x) and min: the same values without builtin calls.)
        x = h - drain_cycles - reconfig
        useful = peas * (x if x > 0.0 else 0.0)
        x = expect[r] - count[r] * span
        gain = x if x > 0.0 else 0.0
        if useful < gain:
            gain = useful
        x = expect[d] - (count[d] - 1) * span
        loss = x if x > 0.0 else 0.0
        if span < loss:
            loss = span
        return gain - loss - (1 + self.params.hysteresis) * peas * reconfig

    # --- the pass ---------------------------------------------------------------------------

    def rebalance(self, c: int) -> None:
        """One pass of cluster ``c``'s scheduler: move up to ``max_moves`` TBUs to the most
        loaded type per TBU (a type with runs queued and no TBU first) from the type that
        loses least by giving one, each only if its :meth:`net_gain` is positive."""
        sim = self.sim
        now = sim.now
        if self._last_pass[c] == now:
            return
        self._last_pass[c] = now
        policy = self.policy
        n = self.n_types
        queues = policy.queues[c]
        # ``actual`` is work that exists; ``expect`` adds the forecast and the arrivals the
        # horizon is expected to bring.
        actual = self.work_now(c, sim.held_work if self.one_cluster else None)
        demand = self.demand(c, actual)
        for i in range(n):
            if demand[i] > 0:
                break
        else:
            return  # nothing to balance
        expect = self.expected(c, demand)
        table = policy.tbus
        # Read-only until the first move, which copies it (speed: most passes move nothing).
        count = table.counts[c]
        copied = False
        movable: list[int] | None = None
        span = self.peas * self.horizon_of(c, expect)
        # The move's cost without its loss: a receiver whose gain cannot exceed it makes
        # :meth:`net_gain` non-positive for every donor (gain <= its bound below, loss >= 0,
        # and float rounding is monotone), so the pass ends before the donor search
        # (speed: ~2x cheaper passes under Poisson load, where most passes move nothing).
        cost = (1 + self.params.hysteresis) * self.peas
        reconfig = policy.reconfig_cycles
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
                    ei = expect[i]
                    if demand[i] > 0 and ei > 0:
                        v = ei / (count[i] if count[i] > 1 else 1)
                        if r < 0 or v > best:
                            r, best = i, v
                if r < 0:
                    return
                if max(0.0, expect[r] - count[r] * span) <= cost * reconfig[r]:
                    return  # net_gain <= 0 whichever the donor
            if movable is None:
                # TBUs a type could give now (bound to it, not loading, not already leaving).
                movable = [len(s) for s in table.settled[c]]
            # The donor: among types with a TBU that could move now, the one that loses the
            # least work in the horizon by giving one, then the one whose expected work per
            # TBU stays lowest. A type's last TBU goes only if the type has gone quiet: no
            # work now and none arrived within the last horizon (else its next run would wait
            # for a rebind back, and the two would shuttle); to a starving type, as soon as
            # it has no work now (the starving type cannot progress at all without one).
            d = -1
            loss_d = after_d = 0.0
            for i in range(n):
                ci = count[i]
                if i == r or ci < 1 or not movable[i]:
                    continue
                if ci == 1 and (actual[i] > 0 or self.fed(i, actual) if starving
                                else not self.quiet(c, i, actual)):
                    continue
                loss = expect[i] - (ci - 1) * span
                if not loss > 0.0:
                    loss = 0.0
                after = expect[i] / (ci - 1) if ci > 1 else expect[i]
                if d < 0 or loss < loss_d or loss == loss_d and after < after_d:
                    d, loss_d, after_d = i, loss, after
            if d < 0:
                return
            tbu, drain = self.donor_tbu(c, d, committed_too=starving)
            if tbu is None:
                movable[d] = 0  # all its movable TBUs are committed: try the next donor
                continue
            if not starving and self.net_gain(c, expect, count, r, d, drain - now) <= 0:
                return
            if actual[r] <= 0 and (tbu.busy or tbu.blocked):
                return  # for forecast work alone, only an idle TBU moves
            if not copied:
                count, copied = list(count), True
            count[d] -= 1
            count[r] += 1
            movable[d] -= 1
            self.moves += 1
            self.move(tbu, r)

    def donor_tbu(self, c: int, d: int, committed_too: bool = True
                  ) -> tuple[TBU | None, int]:
        """The TBU of type ``d`` in cluster ``c`` that could move now and will drain first
        (idle ones at once), and the cycle it drains (now for an idle one). Unless
        ``committed_too``, a TBU that moved less than a horizon ago stays: the gain a move was
        judged on is a gain over the horizon, so the move holds that long (without this, TBUs
        shuttle between types as Poisson bursts come and go)."""
        running = self.policy.running
        moved_at = self._moved_at
        since = self.sim.now - self.commit_cycles(c)
        best = None
        # The least (holds blocked output, drain cycle, PEAs held, id), field by field. A TBU
        # holding output that back-pressure keeps drains only when the stage it waits on
        # admits it, which no end time says (and never, if that stage is the one it would
        # serve and has no other TBU): one still running goes only if no other TBU of the
        # type can, one with nothing else running (all it holds is blocked) never.
        b_blocked = False
        b_drain = b_held = b_id = 0
        for t in self.policy.tbus.settled[c][d].values():
            if not committed_too and moved_at[t.id] > since:
                continue
            blocked = t.blocked > 0
            if blocked and not t.busy:
                continue
            if best is not None and blocked and not b_blocked:
                continue
            drain = 0
            for r in running[t.id]:
                if r.end_at > drain:
                    drain = r.end_at
            held = t.busy + t.blocked
            if best is None or blocked < b_blocked or blocked == b_blocked and (
                    drain < b_drain or drain == b_drain and (
                        held < b_held or held == b_held and t.id < b_id)):
                best, b_blocked, b_drain, b_held, b_id = t, blocked, drain, held, t.id
        return best, max(b_drain, self.sim.now)

    def move(self, tbu: TBU, target: int) -> None:
        """Rebind ``tbu`` to ``target``: at once if idle, else when it has drained (its next
        context fetched ahead by the forecaster, its free PEAs given to its running runs)."""
        policy = self.policy
        self._moved_at[tbu.id] = self.sim.now
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
        # (The three conditions -- an idle TBU, a long wait, a gain -- are checked cheapest
        # and most often failing first: the same answer, for less. Speed.)
        # The first idle TBU (by id) bound to a type with nothing queued (its last TBU only if
        # it has gone quiet), and only if the move pays within the horizon.
        queues = policy.queues[c]
        count = policy.tbus.counts[c]
        idle = None
        actual: list[float] | None = None
        since = now - self.commit_cycles(c)  # TBUs moved after this are committed
        moved_at = self._moved_at
        for j, tbus in enumerate(settled):
            if j == idx or queues[j]:
                continue
            may_give: bool | None = None  # the type may give a TBU; read when first needed
            for t in tbus.values():
                if (t.busy == 0 and t.blocked == 0 and moved_at[t.id] <= since
                        and (idle is None or t.id < idle.id)):
                    if may_give is None:
                        if count[j] > 1:
                            may_give = True
                        else:  # (every type's work, built only where it is read)
                            if actual is None:
                                actual = self.work_now(c)
                            may_give = self.quiet(c, j, actual)
                    if not may_give:
                        break
                    idle = t
        if idle is None:
            return
        # The wait is the least, over this type's TBUs, of the cycles until one of its runs
        # ends (none for a TBU with nothing running): stop at the first TBU whose wait is
        # short enough (the same answer as the least, without scanning every run).
        limit = 2 * policy.reconfig_cycles[idx]
        for t in settled[idx].values():
            runs = running[t.id]
            if not runs:
                return
            for r in runs:
                if r.end_at - now <= limit:
                    return
        if actual is None:
            actual = self.work_now(c)
        expect = self.expected(c, self.demand(c, actual))
        if self.net_gain(c, expect, list(count), idx, idle.bound, 0) <= 0:
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
            tbu, _ = self.donor_tbu(c, d)
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
