"""Load balancing across clusters (``policy.balancer``): ``none``, ``diffusion``, ``central``.

A balancer moves *queued* work between clusters: a run taken from one cluster's queues is
re-homed (its instance's later runs queue there too) and handed to the policy again, on the
new cluster; its input still lies where it was produced, so when it starts the bytes cross the
NoC (XY hops and link contention, :meth:`~octosim.hardware.chip.Mesh.transfer`): moving work
is never free.

- ``diffusion`` (Cybenko 1989): every ``balance_period_cycles`` each cluster with queued work
  compares its load (queued PEA-cycles per live PEA, i.e. cycles to drain) with its mesh
  neighbours' and sends each less-loaded neighbour ``diffusion_coefficient`` times the
  difference (in PEA-cycles, scaled by the smaller of the two clusters' PEAs), in whole runs
  that fit in it. It uses only
  its own and its neighbours' loads: no global state.
- ``central``: an idealised global view, the yardstick: every period the most loaded clusters
  send work straight to the least loaded ones, anywhere on the grid, until the loads are
  within one run of each other.

The period timer runs only while some cluster has queued work (policies call :meth:`queued`
when they queue a run), so an idle or balanced chip costs nothing, and a period visits only
the clusters with work queued: the cost grows with the work, not with the grid.

A policy that balances provides ``queued_work(cluster)`` and ``take_queued(cluster, work)``
(:class:`~octosim.engine.policy.Policy`); its ``on_ready`` takes the moved runs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from octosim.engine.profile import profile_workflow

if TYPE_CHECKING:
    from octosim.engine.entities import TaskRun
    from octosim.engine.policy import Policy
    from octosim.engine.sim import Simulation


class Balancer:
    """No balancing (``none``): work stays on the cluster where it was placed."""

    name = "none"

    def __init__(self, policy: Policy, sim: Simulation) -> None:
        self.policy = policy
        self.sim = sim
        self.period = policy.params.balance_period_cycles
        self.coefficient = policy.params.diffusion_coefficient
        self.headroom = policy.params.balance_memory_headroom

    def queued(self, cluster: int) -> None:
        """A run was queued on ``cluster`` (it did not start at once)."""


class _Periodic(Balancer):
    """The period timer and the moves; subclasses decide the flows."""

    def __init__(self, policy: Policy, sim: Simulation) -> None:
        super().__init__(policy, sim)
        self.loaded: set[int] = set()  # clusters that may have queued work
        self.armed = False
        self.interval = self.period  # until the next check (see MAX_BACKOFF)
        self.dirty = False  # a run queued since the last check
        self._peas: dict[int, int] = {}
        self._peas_stamp = -1
        types = sim.task_types
        # A move re-homes the run's instance, so its later runs go too. Per task type, the
        # channel cycles of the weights an instance still streams from that stage on (the
        # types of the same or a later stage, loops aside, as often as the workflow's profile
        # runs them per instance), and whether any of them streams in batches; from them the
        # answers of :meth:`movable`.
        prof = (profile_workflow(sim.wf, types, sim.seed)
                if any(t.streamed_bytes for t in types) else {})
        self.stream_cost = [sum(prof[u.idx].runs_per_instance * u.floor_cycles for u in types
                                if u.rank >= t.rank and u.streamed_bytes) for t in types]
        batch_stream_ahead = [any(u.streamed_bytes and u.batch_max > 1 for u in types
                                  if u.rank >= t.rank) for t in types]
        self._none = [False] * len(types)
        self._with_room = [not b for b in batch_stream_ahead]
        self._without_room = [not c for c in self.stream_cost]
        chip = sim.chip
        rows, cols = sim.arch.grid.rows, sim.arch.grid.cols
        self.neighbours: list[list[int]] = []
        for c in range(chip.n_clusters):
            r, k = divmod(c, cols)
            near = [(r - 1) * cols + k if r > 0 else -1, (r + 1) * cols + k if r + 1 < rows
                    else -1, c - 1 if k > 0 else -1, c + 1 if k + 1 < cols else -1]
            self.neighbours.append([n for n in near if n >= 0])

    # A period that moved nothing doubles the wait before the next, up to this many periods
    # (back to one period once work moves again): queues that stay level -- a uniformly
    # loaded grid, or work waiting out a long context load -- cost a few checks, not one per
    # period. Without it a 10M-cycle reconfiguration with a 1,000-cycle period made 10,000
    # idle checks per run.
    MAX_BACKOFF = 64

    def queued(self, cluster: int) -> None:
        self.loaded.add(cluster)
        self.dirty = True
        if not self.armed:
            self.armed = True
            self.interval = self.period
            self.sim.call_at(self.sim.now + self.period, self._tick)

    def peas(self, cluster: int) -> int:
        """Live PEAs of ``cluster`` (0 if it died); cached until a unit dies."""
        sim = self.sim
        stamp = sim.acct.dead_peas
        if stamp != self._peas_stamp:
            self._peas_stamp = stamp
            self._peas = {}
        got = self._peas.get(cluster)
        if got is None:
            got = self._peas[cluster] = (
                sum(t.n_peas for t in sim.chip.cluster_tbus[cluster] if t.alive)
                if sim.cluster_alive[cluster] else 0)
        return got

    def _tick(self) -> None:
        # ``armed`` stays set while the moves run: the runs they queue must not arm a
        # second timer.
        policy = self.policy
        dirty, self.dirty = self.dirty, False
        work = {c: policy.cluster_backlog(c) for c in self.loaded}
        self.loaded = {c for c, w in work.items() if w > 0}
        moved = 0
        if self.loaded:
            for src, dst, amount in self.flows(work):
                moved += self.move(src, dst, amount, work)
        # Sleep until a run queues again once a period moved nothing and nothing queued since
        # the last one: the loads can then only have evened out (runs started), so a long
        # memory-bound run costs checks per queueing, not per period of simulated time.
        if self.loaded and (moved or dirty):
            self.interval = (self.period if moved else
                             min(2 * self.interval, self.MAX_BACKOFF * self.period))
            self.sim.call_at(self.sim.now + self.interval, self._tick)
        else:
            self.armed = False

    def flows(self, work: dict[int, float]) -> list[tuple[int, int, float]]:
        raise NotImplementedError

    def movable(self, src: int, dst: int, gain: float) -> list[bool]:
        """Per task type: is moving one of its queued runs from ``src`` to ``dst`` worth it,
        when it may start ``gain`` cycles sooner there (before its input's hops)?

        A move re-homes the instance, so the weights its later runs stream go to ``dst``'s
        memory channel. An instance that still streams weights (:attr:`stream_cost`) moves
        only to a channel with room (booked for less than ``balance_memory_headroom`` of the
        time so far; 0.6 by default: on ``octopus-wafer``, where an edge channel serves 2.3
        clusters on average, it kept most of the compute-bound workflows' gain and the
        memory-bound ones at no balancing's makespan, see docs/results.md), and not at all if it
        streams them in batches (one pass for many runs: alone on another cluster its runs
        would each stream the weights). Without this, diffusion on
        ``octopus-wafer`` was 1.3-1.5x slower than no balancing on the memory-bound workflows
        (rag-agent, recommendation, content-moderation): their channels are 74-97% busy
        without balancing, the instances moved inwards piled their streams onto the edge
        channels that also serve interior clusters, and the LLM batches split.

        A reconfiguration at ``dst`` is not charged to the move: it is paid once for the many
        runs of the type that follow (charging it per move cost street-camera a third of its
        gain)."""
        sim = self.sim
        chip = sim.chip
        ok = gain > chip.mesh.hops(src, dst) * chip.mesh.hop_cycles
        if not ok:
            return self._none
        m_dst = chip.memory_of[dst]
        room = m_dst.busy_cycles < self.headroom * sim.now
        return self._with_room if room else self._without_room

    def move(self, src: int, dst: int, amount: float, work: dict[int, float]) -> int:
        """Move about ``amount`` PEA-cycles of queued runs from ``src`` to ``dst``, never more
        than evens their loads out (``work``: the queued work seen this period, kept up to
        date); return how many runs moved."""
        policy = self.policy
        p_src, p_dst = self.peas(src), self.peas(dst)
        # (``central`` may name a sender not yet in ``work``: a cluster that queued nothing
        # since the last period but still has work queued.)
        w_src = work[src] if src in work else policy.cluster_backlog(src)
        w_dst = work[dst] if dst in work else policy.cluster_backlog(dst)
        gain = w_src / p_src - w_dst / p_dst  # cycles sooner a run may start at ``dst``
        limit = gain * p_src * p_dst / (p_src + p_dst)
        if limit <= 0:
            return 0
        runs = policy.take_queued(src, amount, limit, self.movable(src, dst, gain))
        if not runs:
            return 0
        for run in runs:
            run.inst.cluster = dst
            policy.moved_runs += 1
            policy.moved_work_cycles += run.work
        for run in runs:
            policy.on_ready(run)
        work[src] = policy.cluster_backlog(src)
        work[dst] = policy.cluster_backlog(dst)  # less what started there at once
        if work[dst] > 0:
            self.loaded.add(dst)
        return len(runs)


class DiffusionBalancer(_Periodic):
    name = "diffusion"

    def flows(self, work: dict[int, float]) -> list[tuple[int, int, float]]:
        policy = self.policy
        alpha = self.coefficient
        out = []
        for src in sorted(work):
            w_src = work[src]
            p_src = self.peas(src)
            if w_src <= 0 or p_src == 0:
                continue
            load_src = w_src / p_src
            for dst in self.neighbours[src]:
                p_dst = self.peas(dst)
                if p_dst == 0:
                    continue
                w_dst = work.get(dst)
                if w_dst is None:
                    w_dst = work[dst] = policy.cluster_backlog(dst)
                diff = load_src - w_dst / p_dst
                if diff > 0:
                    out.append((src, dst, alpha * diff * min(p_src, p_dst)))
        return out


class CentralBalancer(_Periodic):
    name = "central"

    def flows(self, work: dict[int, float]) -> list[tuple[int, int, float]]:
        """Greedy: the most loaded cluster sends to the least loaded until both reach the
        mean load (every live cluster is looked at: the idealised global view)."""
        policy = self.policy
        sim = self.sim
        peas = {c: self.peas(c) for c in sim.chip.alive_clusters}
        peas = {c: p for c, p in peas.items() if p > 0}
        if len(peas) < 2:
            return []
        load = {c: (work[c] if c in work else policy.cluster_backlog(c)) for c in peas}
        mean = sum(load.values()) / sum(peas.values())
        give = sorted(((load[c] - mean * p, c) for c, p in peas.items()
                       if load[c] > mean * p), reverse=True)
        take = sorted(((mean * p - load[c], c) for c, p in peas.items()
                       if load[c] < mean * p), reverse=True)
        out = []
        i = j = 0
        give_left = [g for g, _ in give]
        take_left = [t for t, _ in take]
        while i < len(give) and j < len(take):
            amount = min(give_left[i], take_left[j])
            if amount > 0:
                out.append((give[i][1], take[j][1], amount))
            give_left[i] -= amount
            take_left[j] -= amount
            if give_left[i] <= 0:
                i += 1
            if take_left[j] <= 0:
                j += 1
        return out


def take_latest(queues: list[deque[TaskRun]], queued: list[Any], work: float,
                weight: Callable[[TaskRun], float],
                limit: float = math.inf, movable: Sequence[bool] | None = None
                ) -> list[TaskRun]:
    """:meth:`~octosim.engine.policy.Policy.take_queued` for per-type queues with their
    queued work tallied (``queued[i]``, kept up to date here): the latest run of the type with
    the most work queued, one after another, while at least half of the next fits in ``work``
    and all of it in ``limit`` (what evens the two clusters out: a move never leaves the
    receiver more loaded than the sender, so no run swaps back and forth). ``movable``
    (per task type index, :meth:`_Periodic.movable`): the types worth moving; a queue whose
    latest run is not is left alone (a queue of mixed types stops at it: FIFO order kept)."""
    runs: list[TaskRun] = []
    moved = 0.0
    live = list(range(len(queues)))
    while live:
        idx = max(live, key=lambda i: (queued[i], -i))
        q = queues[idx]
        if not q:
            return runs
        if movable is not None and not movable[q[-1].tt.idx]:
            live.remove(idx)
            continue
        w = weight(q[-1])
        if moved + w / 2 > work or moved + w > limit:
            return runs
        runs.append(q.pop())
        queued[idx] -= w
        moved += w
    return runs


BALANCERS: dict[str, type[Balancer]] = {
    "none": Balancer, "diffusion": DiffusionBalancer, "central": CentralBalancer}


def make_balancer(policy: Policy, sim: Simulation) -> Balancer:
    """The balancer ``policy.params.balancer`` names (no-op on a single cluster)."""
    name = policy.params.balancer
    if sim.chip.n_clusters == 1:
        name = "none"
    return BALANCERS[name](policy, sim)
