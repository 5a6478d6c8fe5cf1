"""greedy-fifo: an example policy plug-in for octosim.

Every TBU of a cluster is bound once, round-robin, to a task type; ready runs wait in one FIFO
queue per (cluster, type) and start on the free PEAs of a TBU bound to their type. With
``greedy`` (the default) a run takes every free PEA its task allows (up to ``peas`` max),
otherwise its minimum. It is a deliberately simple strawman, not a tuned baseline: it shows
the interface (docs/policies.md, docs/plugins.md).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import Field

from octosim.errors import UserError
from octosim.policies.base import Policy, PolicyParams


class GreedyFifoParams(PolicyParams):
    greedy: bool = Field(True, description="a run takes all the free PEAs it may use, not its "
                                           "minimum")


class GreedyFifo(Policy):
    name = "greedy-fifo"
    summary = "example plug-in: TBUs bound round-robin, FIFO queues, greedy PEAs per run"
    Params = GreedyFifoParams

    def setup(self, sim: Any) -> None:
        super().setup(sim)
        types = len(sim.task_types)
        self.queues: dict[tuple[int, int], deque[Any]] = {}
        self.tbus: dict[tuple[int, int], list[Any]] = {}
        for c in sim.chip.alive_clusters:
            alive = [t for t in sim.chip.cluster_tbus[c] if t.alive]
            if len(alive) < types:
                raise UserError(f"greedy-fifo needs a TBU per task type: cluster {c} has "
                                f"{len(alive)} for {types} types", where="policy")
            for i, tbu in enumerate(alive):
                self.tbus.setdefault((c, i % types), []).append(tbu)
                sim.bind(tbu, i % types)
            for idx in range(types):
                self.queues[c, idx] = deque()

    def _peas(self, run: Any, free: int) -> int:
        return min(free, run.tt.kmax) if self.params.greedy else run.tt.kmin

    def on_ready(self, run: Any) -> None:
        key = (run.inst.cluster, run.tt.idx)
        if not self.queues.get(key):  # nobody ahead of it: start it now if it fits
            for tbu in self.tbus.get(key, ()):
                if (tbu.alive and tbu.bound == run.tt.idx and not tbu.reconfiguring
                        and len(tbu.free) >= run.tt.kmin):
                    self.sim.start(run, tbu, self._peas(run, len(tbu.free)))
                    return
        self.queues.setdefault(key, deque()).append(run)

    def on_freed(self, tbu: Any) -> None:
        if tbu.bound < 0 or tbu.reconfiguring or not tbu.alive:
            return
        q = self.queues[tbu.cluster, tbu.bound]
        while q and len(tbu.free) >= q[0].tt.kmin:
            run = q.popleft()
            self.sim.start(run, tbu, self._peas(run, len(tbu.free)))

    def queued_runs(self, cluster: int) -> list[Any]:
        """Hand back what waits on a dead cluster (so ``--fault cluster:N@T`` works)."""
        out: list[Any] = []
        for (c, _), q in self.queues.items():
            if c == cluster:
                out.extend(q)
                q.clear()
        return out
