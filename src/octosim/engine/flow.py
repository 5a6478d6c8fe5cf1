"""Interpreting the Orchestrated Workflow Graph for one instance.

A :class:`Frame` walks a list of flow nodes in one variable scope. Control Blocks are decided
here, in logic and instantly; their *latency* is charged by the policy (coupled host round
trip or CBU over the control plane) when the successor tasks are dispatched, from the number
of CBs passed (``Frame.cbs``). The interpreter is shared by the timed engine and by the
untimed profiler, so both see the same decisions for the same keys.

Random draws are keyed by (instance, path, block, what): each frame carries an integer
``key`` that hashes its instance and its path (the foreach copies and loop iterations it
belongs to, see :mod:`octosim.model.rng`); a draw XORs it with the salt of ``(block, what)``,
``what`` being the quantity (``c`` cycles, ``s`` scale, ``o`` out_bytes, ``n`` a count, ``b``
a branch, ``v.NAME`` a variable a task sets, so no variable name can share a task's own
stream). Nothing depends on event order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from octosim.engine.tasks import TaskType
from octosim.errors import UserError
from octosim.model.dists import Value, round_count
from octosim.model.expr import ExprError
from octosim.model.rng import KeyedRandom, first_uniform, salt
from octosim.model.workflow import (
    BranchNode,
    ForeachNode,
    LoopNode,
    Node,
    ParallelNode,
    TaskDef,
    TaskNode,
    Workflow,
)

ROOT, CHILD, LOOP, BODY = 0, 1, 2, 3


class Frame:
    """One sequence of nodes being executed for one instance."""

    __slots__ = ("inst", "nodes", "idx", "scope", "key", "parent", "kind", "pending", "cp",
                 "cp_max", "cbs", "node", "iteration", "remaining")

    def __init__(self, inst: Any, nodes: list[Node], scope: dict[str, float], key: int,
                 parent: Frame | None, kind: int, cp: int, cbs: int) -> None:
        self.inst = inst
        self.nodes = nodes
        self.idx = 0
        self.scope = scope
        self.key = key  # hashes (seed, instance, path): see octosim.model.rng
        self.parent = parent
        self.kind = kind
        self.pending = 0  # children still running (foreach / parallel join)
        self.cp = cp  # critical path so far at maximum parallelism (cycles)
        self.cp_max = 0
        self.cbs = cbs  # Control Blocks passed since the last task completion
        self.node: Node | None = None  # the loop node a LOOP frame repeats
        self.iteration = 0
        self.remaining = -1  # iterations left of a count loop (-1: a while loop)


class FlowRunner:
    """Advances frames; ``on_task(frame, node)`` is called for each Task Block reached."""

    def __init__(self, wf: Workflow, rnd: KeyedRandom,
                 on_task: Callable[[Frame, TaskNode], None],
                 on_instance_done: Callable[[Any, Frame], None],
                 on_decision: Callable[[Node, Frame, int], None] | None = None) -> None:
        self.wf = wf
        self.rnd = rnd
        self.on_task = on_task
        self.on_instance_done = on_instance_done
        # Told each Control Block outcome: foreach copies, branch case index (-1: none),
        # loop iterations (when the loop ends). This is what a CBU sees, before the work.
        self.on_decision = on_decision
        self._stack: list[Frame] = []
        # Salts of every (block, quantity), computed once (see octosim.model.rng).
        n = wf.n_blocks
        self.salt_block = [salt(f"block {b}") for b in range(n)]
        self.salt_c = [salt(f"{b}/c") for b in range(n)]
        self.salt_s = [salt(f"{b}/s") for b in range(n)]
        self.salt_o = [salt(f"{b}/o") for b in range(n)]
        self.salt_n = [salt(f"{b}/n") for b in range(n)]
        self.salt_b = [salt(f"{b}/b") for b in range(n)]
        self._salt_v: dict[tuple[int, str], int] = {}
        self._salt_root_v = {name: salt(f"v/{name}") for name in wf.vars}

    def salt_var(self, block: int, name: str) -> int:
        """The salt of variable ``name`` set by the task at ``block``."""
        key = (block, name)
        s = self._salt_v.get(key)
        if s is None:
            s = self._salt_v[key] = salt(f"{block}/v.{name}")
        return s

    # --- values ---------------------------------------------------------------------------

    def draw(self, value: Value, frame: Frame, key: int, where: str) -> float:
        """``value`` for the draw keyed ``key`` (the frame key XOR the quantity's salt)."""
        try:
            return value.sample(self.rnd.at(key), frame.scope)
        except (ExprError, UserError) as exc:
            msg = exc.what if isinstance(exc, UserError) else str(exc)
            raise UserError(f"{msg} (instance {frame.inst.id})", file=self.wf.file,
                            where=where) from None

    def draw_var(self, name: str, value: Value, frame: Frame, key: int, where: str) -> float:
        phase = frame.inst.phase
        if phase is not None:
            value = phase.overrides.get(name, value)
        return self.draw(value, frame, key, where)

    def sample_work(self, tt: TaskType, frame: Frame, block: int) -> tuple[int, float]:
        """A run's work on one PEA and its ``scale`` (1 for general tasks): the one place
        where a Task Block's dynamic run time is drawn, for the engine and the profiler (the
        engine inlines the first branch, its common case)."""
        if tt.cycles is not None:
            fast = tt.cycles_fast
            if fast is not None:
                x = fast(self.rnd.at(frame.key ^ self.salt_c[block]))
                if 0.0 <= x <= tt.cycles_upper:
                    return int(x + 0.5), 1.0  # round_count(checked(x))
                return self.checked_work(tt, frame, x), 1.0
            return round_count(self.draw(tt.cycles, frame, frame.key ^ self.salt_c[block],
                                         f"tasks.{tt.name}.cycles")), 1.0
        if tt.scale is None:
            return tt.model_cycles, 1.0
        scale = max(0.0, self.draw(tt.scale, frame, frame.key ^ self.salt_s[block],
                                   f"tasks.{tt.name}.scale"))
        return round_count(tt.model_cycles * scale), scale

    def checked_work(self, tt: TaskType, frame: Frame, x: float) -> int:
        """A drawn ``cycles`` value outside the fast range: checked, rounded (or an error)."""
        assert tt.cycles is not None
        try:
            return round_count(tt.cycles.checked(x))
        except ExprError as exc:
            raise UserError(f"{exc} (instance {frame.inst.id})", file=self.wf.file,
                            where=f"tasks.{tt.name}.cycles") from None

    def start_instance(self, inst: Any) -> Frame:
        scope: dict[str, float] = {}
        root = Frame(inst, self.wf.flow, scope, self.rnd.instance_key(inst.id), None, ROOT, 0, 0)
        for name, value in self.wf.vars.items():
            scope[name] = self.draw_var(name, value, root, root.key ^ self._salt_root_v[name],
                                        f"vars.{name}")
        self.resume(root)
        return root

    def task_done(self, frame: Frame, task: TaskDef, node: TaskNode, cp_cycles: int) -> None:
        """The task a frame waited for finished: apply its ``sets`` and go on."""
        if task.sets:
            for name, value in task.sets.items():
                frame.scope[name] = self.draw_var(
                    name, value, frame, frame.key ^ self.salt_var(node.block, name),
                    f"tasks.{task.name}.sets.{name}")
        frame.cp += cp_cycles
        frame.cbs = 0
        # The common cases without the interpreter loop: the next node is a task, or a
        # foreach copy / parallel arm ends while others are still running.
        nodes = frame.nodes
        i = frame.idx
        if i < len(nodes):
            nxt = nodes[i]
            if type(nxt) is TaskNode:
                frame.idx = i + 1
                self.on_task(frame, nxt)
                return
        elif frame.kind == CHILD:
            parent: Frame = frame.parent  # type: ignore[assignment]
            if parent.pending > 1:
                parent.pending -= 1
                if frame.cp > parent.cp_max:
                    parent.cp_max = frame.cp
                return
            self._done(frame)  # the last copy or arm: the join, then the parent goes on
            stack = self._stack
            while stack:
                self._run(stack.pop())
            return
        self.resume(frame)

    # --- the interpreter --------------------------------------------------------------------

    def resume(self, frame: Frame) -> None:
        stack = self._stack
        stack.append(frame)
        while stack:
            self._run(stack.pop())

    def _run(self, f: Frame) -> None:
        nodes = f.nodes
        stack = self._stack
        inst_id = f.inst.id
        while f.idx < len(nodes):
            node = nodes[f.idx]
            f.idx += 1
            t = type(node)
            if t is TaskNode:
                self.on_task(f, node)  # type: ignore[arg-type]
                return
            f.cbs += 1
            if t is ForeachNode:
                n = round_count(self.draw(node.count, f,  # type: ignore[attr-defined]
                                          f.key ^ self.salt_n[node.block],
                                          f"{node.where}.foreach"))
                if n > 1_000_000:
                    raise UserError(f"foreach count {n} is larger than 1000000 (instance "
                                    f"{inst_id})", file=self.wf.file, where=node.where)
                if self.on_decision is not None:
                    self.on_decision(node, f, n)
                if n == 0:
                    continue
                f.pending = n
                f.cp_max = f.cp
                bsalt = self.salt_block[node.block]
                child_key = KeyedRandom.child_key
                body = node.body  # type: ignore[attr-defined]
                if body and type(body[0]) is TaskNode:
                    # Each copy starts with a task: reach it directly, in copy order (as the
                    # stack would), without a pass of the interpreter per copy.
                    first = body[0]
                    for j in range(n):
                        child = Frame(f.inst, body, dict(f.scope),
                                      child_key(f.key, bsalt, j), f, CHILD,
                                      f.cp, f.cbs)
                        child.idx = 1
                        self.on_task(child, first)
                    return
                for j in range(n - 1, -1, -1):
                    stack.append(Frame(f.inst, node.body, dict(f.scope),  # type: ignore[attr-defined]
                                       child_key(f.key, bsalt, j), f, CHILD,
                                       f.cp, f.cbs))
                return
            if t is ParallelNode:
                arms = node.arms  # type: ignore[attr-defined]
                f.pending = len(arms)
                f.cp_max = f.cp
                for a in range(len(arms) - 1, -1, -1):
                    stack.append(Frame(f.inst, arms[a], dict(f.scope), f.key, f, CHILD, f.cp,
                                       f.cbs))
                return
            if t is BranchNode:
                body = self._choose(node, f)  # type: ignore[arg-type]
                if self.on_decision is not None:
                    cases = node.cases  # type: ignore[attr-defined]
                    self.on_decision(node, f, next((i for i, c in enumerate(cases)
                                                    if c.body is body), -1))
                if body:
                    stack.append(Frame(f.inst, body, f.scope, f.key, f, BODY, f.cp, f.cbs))
                    return
                continue
            if t is LoopNode:
                lf = Frame(f.inst, node.body, f.scope, f.key, f, LOOP, f.cp,  # type: ignore[attr-defined]
                           f.cbs)
                lf.node = node
                if node.count is not None:  # type: ignore[attr-defined]
                    lf.remaining = round_count(self.draw(
                        node.count, f, f.key ^ self.salt_n[node.block],  # type: ignore[attr-defined]
                        f"{node.where}.loop.count"))
                if self._loop_continues(lf):
                    stack.append(lf)
                    return
                continue
            raise AssertionError(f"unknown node {node!r}")  # pragma: no cover
        self._done(f)

    def _loop_continues(self, lf: Frame) -> bool:
        node: LoopNode = lf.node  # type: ignore[assignment]
        if lf.remaining >= 0:
            go = lf.iteration < lf.remaining
        else:
            try:
                go = bool(node.cond(lf.scope))  # type: ignore[misc]
            except ExprError as exc:
                raise UserError(f"{exc} (instance {lf.inst.id})", file=self.wf.file,
                                where=f"{node.where}.loop.while") from None
        if not go:
            if self.on_decision is not None:
                self.on_decision(node, lf, lf.iteration)
            return False
        if lf.iteration >= node.max_iterations:
            raise UserError(f"loop ran {node.max_iterations} iterations without ending "
                            f"(instance {lf.inst.id}); raise loop.max_iterations if intended",
                            file=self.wf.file, where=node.where)
        lf.key = KeyedRandom.child_key(lf.parent.key,  # type: ignore[union-attr]
                                       self.salt_block[node.block], lf.iteration)
        lf.idx = 0
        return True

    def _choose(self, node: BranchNode, f: Frame) -> list[Node]:
        u = -1.0
        acc = 0.0
        for case in node.cases:
            if case.kind == "when":
                try:
                    if case.cond(f.scope):  # type: ignore[misc]
                        return case.body
                except ExprError as exc:
                    raise UserError(f"{exc} (instance {f.inst.id})", file=self.wf.file,
                                    where=f"{node.where}.branch") from None
            elif case.kind == "p":
                if u < 0:
                    u = first_uniform(self.rnd.at(f.key ^ self.salt_b[node.block]))
                acc += case.p
                if u < acc:
                    return case.body
            else:
                return case.body
        return []

    def _done(self, f: Frame) -> None:
        kind = f.kind
        if kind == ROOT:
            self.on_instance_done(f.inst, f)
            return
        parent: Frame = f.parent  # type: ignore[assignment]
        if kind == CHILD:
            if f.cp > parent.cp_max:
                parent.cp_max = f.cp
            parent.pending -= 1
            if parent.pending == 0:
                parent.cp = parent.cp_max
                parent.cbs = f.cbs + 1  # the join is decided by a CB too
                self._stack.append(parent)
            return
        if kind == LOOP:
            f.iteration += 1
            f.cbs += 1
            if self._loop_continues(f):
                self._stack.append(f)
                return
        parent.cp = f.cp
        parent.cbs = f.cbs
        self._stack.append(parent)
