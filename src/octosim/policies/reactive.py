"""``reactive``: the static baseline plus threshold-triggered rebalancing.

Every ``check_cycles`` the cluster scheduler compares the work waiting per TBU of each TB type
(queued, or held at producers by back-pressure). When the imbalance ``1 - mean / max`` stays
above ``threshold`` for ``window_cycles``, one
TBU of the least loaded type (that has more than one) stops taking work, drains, and is rebound
to the most loaded type, paying the reconfiguration (*Reactive Load Rebalancing*): it acts only
after the imbalance has shown itself, and only on drained TBUs. Its threshold and window are
tuned with the other knobs by ``octosim reproduce``, as every policy's are (docs/results.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from octosim.hardware.chip import TBU
from octosim.policies.registry import register
from octosim.policies.static import StaticParams, StaticPolicy

if TYPE_CHECKING:
    from octosim.engine.sim import Simulation, TaskRun


class ReactiveParams(StaticParams):
    # Defaults only: `octosim reproduce` tunes every knob from them (experiments/tuning.py);
    # the winners are in docs/results/results.md.
    threshold: float = Field(0.7, gt=0.0, le=1.0,
                             description="imbalance 1 - mean/max of waiting work per TBU that "
                                         "triggers a rebind")
    window_cycles: int = Field(200_000_000, ge=0, le=10**12,
                               description="how long the imbalance must last")
    check_cycles: int = Field(20_000_000, ge=1, le=10**12,
                              description="how often the cluster scheduler looks")
    max_moves: int = Field(1, ge=1, le=1024, description="TBUs rebound per trigger")


@register
class ReactivePolicy(StaticPolicy):
    name = "reactive"
    summary = "static + rebinding drained TBUs when queue imbalance persists (threshold, window)"
    Params = ReactiveParams
    params: ReactiveParams

    def setup(self, sim: Simulation) -> None:
        super().setup(sim)
        n_clusters = sim.chip.n_clusters
        self.imbalanced_since: list[int | None] = [None] * n_clusters
        self.moves = 0
        # Per cluster and type: the last cycle it had work (a run became ready or finished).
        self.last_work = [[0] * len(sim.task_types) for _ in range(n_clusters)]
        self._armed = False
        self._arm()

    def _arm(self) -> None:
        """Schedule the next check unless one is pending; checks are armed by work events, so
        long stretches in which nothing changes cost nothing."""
        if not self._armed:
            self._armed = True
            assert self.sim is not None
            self.sim.call_at(self.sim.now + self.params.check_cycles, self._check)

    def on_ready(self, run: TaskRun) -> None:
        super().on_ready(run)
        c = run.inst.cluster
        idx = run.tt.idx
        self.last_work[c][idx] = self.sim.now if self.sim is not None else 0
        if not self.tbus.counts[c][idx]:
            self._restore(c)
        self._arm()

    def on_complete(self, run: TaskRun) -> None:
        tbu = run.tbu
        if tbu is not None and self.sim is not None:
            self.last_work[tbu.cluster][run.tt.idx] = self.sim.now
        self._arm()

    def on_bound(self, tbu: TBU) -> None:
        super().on_bound(tbu)
        self._restore(tbu.cluster)

    def _starved(self, c: int, idx: int) -> bool:
        """Type ``idx`` has work on cluster ``c`` (queued, or held at producers) and no PEAs
        there: no TBU serving it, no PEAs of a shared TBU."""
        assert self.sim is not None
        if self.tbus.counts[c][idx] or any(t.alive for t in self.slices[c][idx]):
            return False
        return bool(self.queues[c][idx]) or self.sim.held_work[idx] > 0

    def _restore(self, c: int) -> None:
        """Give every starved type of cluster ``c`` (:meth:`_starved`; it gave its last TBU
        away while idle) a TBU back at once: from a type that keeps PEAs after giving one
        (it has two TBUs, or one and PEAs of a shared TBU; one of them settled), the type with
        the most TBUs, and its TBU least held by back-pressure and least busy. Such a type
        exists whenever one is starved: the TBU it gave away went to a type that had a TBU or
        a share of one. If the donor's TBUs are all still loading, :meth:`on_bound` retries."""
        sim = self.sim
        assert sim is not None
        counts = self.tbus.counts[c]
        for idx in range(len(counts)):
            if not self._starved(c, idx):
                continue
            settled = self.tbus.settled[c]
            # With granularity pea a type may hold one whole TBU and PEAs of a shared one; it
            # can give the whole TBU (a hypothesis case stuck: the only type with a spare was
            # such a type, and the starved stage needed a whole TBU).
            donors = [i for i in range(len(counts)) if settled[i] and (
                counts[i] > 1 or any(t.alive for t in self.slices[c][i]))]
            if not donors:
                return
            donor = max(donors, key=lambda i: (counts[i], -i))
            tbu = min(settled[donor].values(),
                      key=lambda t: (t.blocked > 0, t.busy + t.blocked, t.id))
            self.tbus.drain(tbu, idx)
            self.moves += 1
            if tbu.busy == 0 and tbu.blocked == 0:
                self.drained(tbu)

    def _idle(self, c: int, idx: int) -> bool:
        """Type ``idx`` has had no work on cluster ``c`` (nothing queued, running or held by
        back-pressure) for its window (never, if the window is 0)."""
        sim = self.sim
        assert sim is not None
        if self.queues[c][idx] or sim.held_work[idx] > 0:
            return False
        # Only with a window: without one, a last TBU given up after a check period's quiet
        # came straight back, and the two types shuttled it (face-access-control with
        # threshold 0.3, window 0, check 200,000 cycles took 5.6G cycles instead of 1.24G).
        window = self.params.window_cycles
        if window <= 0 or sim.now - self.last_work[c][idx] < window:
            return False
        if any(t.busy or t.blocked for t in self.tbus.settled[c][idx].values()):
            return False
        owner = self.owner
        for t in self.slices[c][idx]:
            if t.alive and sum(1 for p in t.free if owner[p] == idx) < self.slice_peas[
                    (t.id, idx)]:
                return False  # a run of it is on its PEAs of a shared TBU
        return True

    def _check(self) -> None:
        sim = self.sim
        assert sim is not None
        self._armed = False
        for c in sim.chip.alive_clusters:
            self._check_cluster(c)

    def _bound_counts(self, c: int) -> list[int]:
        """TBUs of cluster ``c`` per type they are bound to or leaving for (a TBU loading a
        context counts for none)."""
        sim = self.sim
        assert sim is not None
        counts = [0] * len(sim.task_types)
        leaving = self.tbus.target
        for tbu in sim.chip.cluster_tbus[c]:
            if not tbu.alive:
                continue
            target = leaving[tbu.id]
            if target < 0:
                target = tbu.bound
            if target >= 0:
                counts[target] += 1
        return counts

    def _check_cluster(self, c: int) -> None:
        sim = self.sim
        assert sim is not None
        counts = self._bound_counts(c)
        # Work waiting for each type: in its queue, and held at producers by back-pressure
        # (held work is counted on the chip as a whole: it is tracked per stage).
        held = sim.held_work if sim.chip.n_clusters == 1 else [0] * len(counts)
        waiting = [self.queued_work[c][i] + held[i] for i in range(len(counts))]
        if self.pea_mode:  # PEAs in shared TBUs count as the fraction of a TBU they are
            per_tbu = sim.arch.tbu.peas
            share = [sum(self.slice_peas[(t.id, i)] for t in self.slices[c][i] if t.alive)
                     / per_tbu for i in range(len(counts))]
            load = [waiting[i] / max(1, counts[i] + share[i]) for i in range(len(counts))]
        else:
            load = [waiting[i] / max(1, counts[i]) for i in range(len(counts))]
        hi = max(load)
        if hi <= 0 or 1.0 - (sum(load) / len(load)) / hi <= self.params.threshold:
            self.imbalanced_since[c] = None
            return
        since = self.imbalanced_since[c]
        if since is None:
            self.imbalanced_since[c] = sim.now
            if self.params.window_cycles > 0:
                return
            since = sim.now
        if sim.now - since < self.params.window_cycles:
            return
        self.imbalanced_since[c] = None
        for _ in range(self.params.max_moves):
            receiver = max(range(len(load)), key=lambda i: (load[i], -i))
            # A donor keeps at least one TBU that is bound to it and not leaving, so every
            # stage can always drain (with back-pressure, a stage without TBUs would block
            # its producers forever).
            # A type may give its last TBU only if it has had no work for the window: it gets
            # one back as soon as work comes (:meth:`_restore`).
            settled = self.tbus.settled[c]
            donors = [i for i in range(len(load)) if i != receiver and (
                len(settled[i]) > 1 or (len(settled[i]) == 1 and self._idle(c, i)))]
            if not donors:
                return
            donor = min(donors, key=lambda i: (load[i], i))
            # Move only if the donor, one TBU poorer, is still less loaded than the receiver
            # is now: otherwise the move would just turn the imbalance around (ping-pong).
            if waiting[donor] / max(1, counts[donor] - 1) >= load[receiver]:
                return
            tbu = self._pick_donor_tbu(c, donor)
            if tbu is None:
                return
            self.tbus.drain(tbu, receiver)
            counts[donor] -= 1
            counts[receiver] += 1
            self.moves += 1
            load[donor] = waiting[donor] / max(1, counts[donor])
            load[receiver] = waiting[receiver] / max(1, counts[receiver])
            if tbu.busy == 0 and tbu.blocked == 0:
                self.drained(tbu)

    def _pick_donor_tbu(self, c: int, donor: int) -> TBU | None:
        """The TBU bound to ``donor`` (not loading, not leaving) with the least work on it."""
        candidates = self.tbus.settled[c][donor]
        if not candidates:
            return None
        return min(candidates.values(), key=lambda t: (t.busy + t.blocked, t.id))
