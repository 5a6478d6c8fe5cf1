"""How many PEAs of a TBU each run gets: Adaptive TBU Scheduling (ATS), or without it each
run's minimum.

A :class:`GrantStrategy` answers two questions for :class:`~octosim.policies.octopus.
OctopusPolicy`: the PEAs a run starts with (:meth:`GrantStrategy.grant`), and what to do with
PEAs that free up on a TBU with nothing waiting for them (:meth:`GrantStrategy.grow`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octosim.engine.sim import TaskRun
    from octosim.hardware.chip import TBU
    from octosim.policies.octopus import OctopusPolicy


class GrantStrategy:
    """The PEA grants of one Octopus run (chosen at setup from ``policy.ats``)."""

    def __init__(self, policy: OctopusPolicy) -> None:
        self.policy = policy
        self.kmin = policy.kmin
        self.kmax = policy.kmax

    def grant(self, run: TaskRun, free: int, waiting: int, c: int) -> int:
        """PEAs for ``run`` starting on a TBU of cluster ``c`` with ``free`` free PEAs, with
        ``waiting`` runs of its type (itself included) wanting them; at least its minimum, at
        most ``free``."""
        raise NotImplementedError

    def grow(self, tbu: TBU) -> None:
        """PEAs of ``tbu`` are free and no queued run takes them."""
        raise NotImplementedError


class MinimalGrant(GrantStrategy):
    """Without ATS: every run gets its task's minimum, and freed PEAs wait for new runs."""

    def grant(self, run: TaskRun, free: int, waiting: int, c: int) -> int:
        return self.kmin[run.tt.idx]

    def grow(self, tbu: TBU) -> None:
        return


class AdaptiveGrant(GrantStrategy):
    """ATS: a run's grant is the free PEAs shared among the runs waiting (few each under a deep
    queue, for throughput; many under a shallow one, for latency), clamped to its task's range;
    PEAs freed with nothing waiting go at once to the runs still running on the TBU."""

    def grant(self, run: TaskRun, free: int, waiting: int, c: int) -> int:
        idx = run.tt.idx
        k = free // max(1, waiting)
        return max(self.kmin[idx], min(self.kmax[idx], k, free))

    def grow(self, tbu: TBU) -> None:
        """Give the free PEAs to the runs still running here, longest remaining first."""
        running = self.policy.running[tbu.id]
        if not running or not tbu.free:
            return
        sim = self.policy.sim
        assert sim is not None
        kmax = self.kmax
        runs = [r for r in running
                if r.k < kmax[r.tt.idx] and r.mem_end < r.end_at and r.batch is None]
        if not runs:
            return
        now = sim.now
        runs.sort(key=lambda r: (-(r.end_at - now), r.seq))
        share = max(1, len(tbu.free) // len(runs))
        for r in runs:
            extra = min(share, kmax[r.tt.idx] - r.k, len(tbu.free))
            if extra >= 1:
                sim.grow(r, extra)
            if not tbu.free:
                break


class HorizonGrant(AdaptiveGrant):
    """ATS with ``horizon_grant``: a run gets at least the PEAs it needs to finish within the
    time the cluster needs for the work it holds (a started run cannot move: a narrow long run
    would outlast everything else and leave the chip idle around it)."""

    def __init__(self, policy: OctopusPolicy) -> None:
        super().__init__(policy)
        self.qwork = policy.qwork
        self.rwork = policy.rwork
        self.cluster_peas = policy.cluster_peas

    def grant(self, run: TaskRun, free: int, waiting: int, c: int) -> int:
        idx = run.tt.idx
        k = free // max(1, waiting)
        # The cluster's work in hand, spread over its PEAs, is how long it stays busy.
        horizon = (sum(self.qwork[c]) + sum(self.rwork[c])) / self.cluster_peas[c]
        need = math.ceil(run.work / horizon) if horizon >= 1 else self.kmax[idx]
        if need > k:
            k = need
        return max(self.kmin[idx], min(self.kmax[idx], k, free))
