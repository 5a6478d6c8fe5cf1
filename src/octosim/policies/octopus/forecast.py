"""What the CBU sees coming: Proactive Cluster Scheduling (PCS), or without it nothing.

A :class:`Forecaster` keeps, per cluster, the work announced for each task type by runs that
have started (their successors arrive when they complete), adds it to the demand the cluster
scheduler balances, and times the fetch of a moved TBU's next context.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from octosim.model.dists import Value, round_count
from octosim.model.expr import ExprError
from octosim.model.workflow import (
    BranchNode,
    ForeachNode,
    LoopNode,
    Node,
    ParallelNode,
    TaskNode,
)

if TYPE_CHECKING:
    from octosim.engine.profile import TaskProfile
    from octosim.engine.sim import TaskRun
    from octosim.engine.workload import FlowPosition
    from octosim.hardware.chip import TBU
    from octosim.policies.octopus import OctopusPolicy

LEARN_AFTER = 16  # observations of a Control Block before its learned statistics are used


class Learned:
    """Online statistics of one Control Block: how often it was decided, the sum of its
    outcomes (foreach copies, loop trips) and how often each branch case was taken."""

    __slots__ = ("n", "total", "cases")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.cases: dict[int, int] = {}


class Forecaster:
    """The forecast of one Octopus run (chosen at setup from ``policy.pcs``)."""

    learned: dict[int, Learned]

    def decided(self, block: int, outcome: int) -> None:
        """The CBU decided Control Block ``block`` (``Policy.on_decision``)."""

    def started(self, run: TaskRun, c: int) -> None:
        """``run`` started on cluster ``c``: announce the work its successors will bring."""

    def completed(self, run: TaskRun) -> None:
        """``run`` completed: its announcement is due (its successors are real now)."""

    def aborted(self, run: TaskRun) -> None:
        """``run`` was lost to a fault: withdraw its announcement."""

    def demand(self, c: int, demand: list[float]) -> list[float]:
        """``demand`` per type in cluster ``c`` (work that exists), with the forecast added."""
        return demand

    def prefetch(self, tbu: TBU, target: int) -> None:
        """``tbu`` leaves for type ``target`` and drains first: fetch its context ahead."""


class NullForecaster(Forecaster):
    """Without PCS: the scheduler sees only work that exists, and contexts load at the switch."""

    def __init__(self) -> None:
        self.learned = {}


class ControlBlockForecaster(Forecaster):
    """PCS. A started run announces the next ``lookahead`` task levels of its flow, with
    foreach counts and branch conditions evaluated on the instance's variables when the CBU can
    already decide them, else from statistics of each Control Block learned online; work per
    run of each type is learned online too (the profile only seeds it). The forecast, weighted
    by ``forecast_weight``, joins the demand. A TBU moved while busy has its new context fetched
    into its shadow buffer, timed to land when it drains (an earlier fetch would take the
    memory channel ahead of the weight streams of the runs computing meanwhile)."""

    def __init__(self, policy: OctopusPolicy, profile: dict[int, TaskProfile]) -> None:
        sim = policy.sim
        assert sim is not None
        self.policy = policy
        self.sim = sim
        types = sim.task_types
        n = len(types)
        self.mean_work = [max(1.0, profile[tt.idx].mean_work_cycles) for tt in types]
        self.work_seen = [0] * n
        self.floor = [tt.floor_cycles for tt in types]
        self.forecast = [[0.0] * n for _ in range(sim.chip.n_clusters)]
        self.announced: dict[int, list[float]] = {}
        self.learned = {}
        self.lookahead = policy.params.lookahead
        self.weight = policy.params.forecast_weight
        # Flow positions whose lookahead reads no decision, count or statistic (only task
        # nodes ahead, maybe in parallel arms): the (type, multiplier) of each task level it
        # adds, in order, replayed instead of walked (speed: the same float additions in the
        # same order, without the walk or reading the scope). Keyed by the identity of the
        # node list, which the compiled workload keeps for the whole run.
        self._plans: dict[tuple[int, int], list[tuple[int, float]]] = {}
        self._trace: list[tuple[int, float]] | None = None

    # --- learning ---------------------------------------------------------------------------

    def decided(self, block: int, outcome: int) -> None:
        st = self.learned.get(block)
        if st is None:
            st = self.learned[block] = Learned()
        st.n += 1
        st.total += outcome
        st.cases[outcome] = st.cases.get(outcome, 0) + 1

    def completed(self, run: TaskRun) -> None:
        idx = run.tt.idx
        self.work_seen[idx] += 1
        w = self.work_seen[idx]
        self.mean_work[idx] += (max(run.work, self.floor[idx]) - self.mean_work[idx]) / (w + 8)
        ann = self.announced.pop(run.seq, None)
        if ann is not None:
            fc = self.forecast[run.inst.cluster]
            for i, v in enumerate(ann):
                fc[i] -= v

    def aborted(self, run: TaskRun) -> None:
        ann = self.announced.pop(run.seq, None)
        if ann is not None:
            fc = self.forecast[run.inst.cluster]
            for i, v in enumerate(ann):
                fc[i] -= v

    # --- the forecast -----------------------------------------------------------------------

    def demand(self, c: int, demand: list[float]) -> list[float]:
        fc = self.forecast[c]
        w = self.weight
        # (``f if f > 0.0 else 0.0`` is max(0.0, f) without a builtin call per type.)
        return [d + w * (f if f > 0.0 else 0.0) for d, f in zip(demand, fc, strict=True)]

    def started(self, run: TaskRun, c: int) -> None:
        # (Queued runs do not announce: their successors are too far off to plan TBUs for.)
        pos = self.sim.flow_position(run)
        out = [0.0] * len(self.mean_work)
        key = (id(pos.nodes), pos.index)
        plan = self._plans.get(key)
        if plan is not None:
            mean_work = self.mean_work
            for idx, mult in plan:
                out[idx] += mult * mean_work[idx]
        else:
            self._trace = []
            self._look(pos.nodes, pos.index, pos, self.lookahead, 1.0, out)
            if self._trace is not None:
                self._plans[key] = self._trace
        if any(out):
            self.announced[run.seq] = out
            fc = self.forecast[c]
            for i, v in enumerate(out):
                fc[i] += v

    def _count(self, node: Node, value: object, pos: FlowPosition) -> float:
        """A foreach/loop count: exact when the CBU can already decide it, else learned."""
        assert isinstance(value, Value)
        self._trace = None  # not replayable
        if not value.is_random:
            try:
                return float(round_count(value.sample(0, pos.scope)))
            except (ExprError, KeyError):
                pass
        st = self.learned.get(node.block)
        if st is not None and st.n >= LEARN_AFTER:
            return st.total / st.n
        hint = value.mean_hint()
        return float(hint) if hint is not None else 1.0

    def _look(self, nodes: list[Node], i: int, pos: FlowPosition, depth: int,
              mult: float, out: list[float]) -> int:
        """Add the expected work of the next ``depth`` task levels; return depth left (and
        trace them in ``_trace`` while it is not None)."""
        while i < len(nodes) and depth > 0 and mult > 1e-9:
            node = nodes[i]
            i += 1
            t = type(node)
            if t is TaskNode:
                idx = node.task.index  # type: ignore[attr-defined]
                out[idx] += mult * self.mean_work[idx]
                if self._trace is not None:
                    self._trace.append((idx, mult))
                depth -= 1
            elif t is ForeachNode:
                n = self._count(node, node.count, pos)  # type: ignore[attr-defined]
                depth = self._look(node.body, 0, pos, depth, mult * n,  # type: ignore[attr-defined]
                                   out)
            elif t is ParallelNode:
                left = depth
                for arm in node.arms:  # type: ignore[attr-defined]
                    left = min(left, self._look(arm, 0, pos, depth, mult, out))
                depth = left
            elif t is BranchNode:
                depth = self._look_branch(node, pos, depth, mult, out)  # type: ignore[arg-type]
            elif t is LoopNode:
                loop: LoopNode = node  # type: ignore[assignment]
                self._trace = None  # not replayable
                if loop.count is not None:
                    trips = self._count(loop, loop.count, pos)
                else:
                    st = self.learned.get(loop.block)
                    trips = st.total / st.n if st is not None and st.n else 1.0
                depth = self._look(loop.body, 0, pos, depth, mult * trips, out)
        return depth

    def _look_branch(self, node: BranchNode, pos: FlowPosition, depth: int, mult: float,
                     out: list[float]) -> int:
        self._trace = None  # not replayable
        st = self.learned.get(node.block)
        learned = st is not None and st.n >= LEARN_AFTER
        left = depth
        rest = 1.0
        for ci, case in enumerate(node.cases):
            if case.kind == "when":
                try:
                    if case.cond(pos.scope):  # type: ignore[misc]
                        return self._look(case.body, 0, pos, depth, mult * rest, out)
                    continue
                except (ExprError, KeyError):
                    p = (st.cases.get(ci, 0) / st.n) if learned and st is not None else 0.5
            elif case.kind == "p":
                p = (st.cases.get(ci, 0) / st.n) if learned and st is not None else case.p
            else:
                p = 1.0
            p = min(p, 1.0)
            if p > 0 and case.body:
                left = min(left, self._look(case.body, 0, pos, depth, mult * rest * p, out))
            rest *= 1.0 - p
            if rest <= 0:
                break
        return left

    # --- prefetch ---------------------------------------------------------------------------

    def prefetch(self, tbu: TBU, target: int) -> None:
        sim = self.sim
        drain = max((r.end_at for r in self.policy.running[tbu.id]), default=sim.now)
        at = drain - math.ceil(self.policy.reconfig_cycles[target])
        if at <= sim.now:
            sim.prefetch(tbu, target)
        else:
            sim.call_at(at, lambda: self._prefetch(tbu, target))

    def _prefetch(self, tbu: TBU, target: int) -> None:
        if tbu.alive and self.policy.tbus.leaving_for(tbu) == target and (tbu.busy or tbu.blocked):
            self.sim.prefetch(tbu, target)
