"""The compiled workload: every instance's task runs, decided once per seed, in chunks.

Common random numbers make the workload independent of the schedule: what each run costs,
which Control Block outcomes an instance meets and which run waits for which are fixed by the
seed. So the flow is interpreted once, ahead of the timed engine, for a chunk of instances at a
time, with numpy over all frames that stand at the same flow node (a *frame set*), and the
result is a dependency graph the engine walks:

- *nodes*: task runs, *junctions* (a point where a frame waits for several runs before it
  takes a Control Block decision) and one *end* node per instance;
- *edges* from a node to the nodes that wait for it, each with the number of Control Blocks
  passed on the way (their latency is the policy's: coupled host round trip or CBU);
- *decisions* (a foreach's copies, a branch's case, a loop's trips) attached to the node whose
  completion lets the CBU take them, so a policy learns an outcome only when it is taken in
  simulated time.

The graph reproduces the interpreter it replaces exactly (``tests/engine/test_workload.py``):
the same keys and draws, the same successors in the same order (depth-first flow order, which
decides the order runs reach the policy), and the same Control Block count on each edge. A run
with several predecessors (a join) takes the count of whichever completes last, as the
interpreter did.

Memory is bounded: a chunk holds ``CHUNK_INSTANCES`` instances, fewer when their frames would
exceed ``CHUNK_FRAMES``, and one instance may not expand to more than
``workflow.max_runs_per_instance`` frames (a clear error names the block).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from octosim.engine.tasks import TaskType
from octosim.errors import UserError
from octosim.model.dists import Const, Value, round_count_array
from octosim.model.expr import DrawError, Expression
from octosim.model.rng import (
    KeyedRandom,
    child_keys_array,
    first_uniform_array,
    instance_keys_array,
    mix64_array,
    salt,
)
from octosim.model.workflow import (
    BranchNode,
    ForeachNode,
    LoopNode,
    Node,
    ParallelNode,
    TaskNode,
    Workflow,
)

CHUNK_INSTANCES = 2048
CHUNK_FRAMES = 1 << 20  # frames of one chunk at one node: beyond this, the chunk is split
MAX_FOREACH_COUNT = 1_000_000
JUNCTION = -1  # node kinds besides task type indices
END = -2
ARRIVAL_SALT = salt("arrival")

_I64 = np.int64
_EMPTY = np.zeros(0, dtype=_I64)
# Shortcuts for the common shapes of a frame set (one tail per frame, a parallel over all
# frames, a loop iteration of all frames...): they give the very same graph as the general
# steps (tests/engine/test_workload.py compiles with them off and compares). They matter when
# few frames pass many nodes (a long loop), where numpy's per-call cost dominates.
FAST_PATHS = True


def _shared(cache: dict[int, np.ndarray], n: int, make: Any) -> np.ndarray:
    """``make(n, dtype=int64)`` shared read-only: frame sets of one size (up to
    ``_SHARED_MAX``) reuse it, and a write to it would raise."""
    a = cache.get(n)
    if a is None:
        a = make(n, dtype=_I64)
        a.setflags(write=False)
        if n <= _SHARED_MAX:
            cache[n] = a
    return a


def _ramp(n: int) -> np.ndarray:
    """``arange(n)``, shared read-only (see :func:`_shared`)."""
    return _shared(_RAMPS, n, np.arange)


def _nought(n: int) -> np.ndarray:
    """``zeros(n)`` of int64, shared read-only (see :func:`_shared`)."""
    return _shared(_NOUGHTS, n, np.zeros)


_SHARED_MAX = 64  # kept for small frame sets only (where a fresh array costs most)
_RAMPS: dict[int, np.ndarray] = {}
_NOUGHTS: dict[int, np.ndarray] = {}


class _ChunkTooLarge(Exception):
    """The chunk's frames outgrow CHUNK_FRAMES: compile fewer instances at once."""


class FlowPosition:
    """Where a run stands in the flow, as a CBU sees it when the run starts: the rest of its
    sequence of nodes and the variables of its scope. The scope is read from the compiled
    arrays only when first asked for (speed: a forecast that sees only task nodes ahead never
    reads it, and reading it is most of the cost of a position)."""

    __slots__ = ("nodes", "index", "_scope", "_read")

    def __init__(self, nodes: list[Node], index: int,
                 scope: dict[str, float] | None = None,
                 read: Callable[[], dict[str, float]] | None = None) -> None:
        self.nodes = nodes
        self.index = index
        self._scope = scope
        self._read = read

    @property
    def scope(self) -> dict[str, float]:
        """The variables of the run's scope."""
        if self._scope is None:
            self._scope = self._read() if self._read is not None else {}
        return self._scope


class WorkloadChunk:
    """Instances ``first`` .. ``first + count - 1``: their arrivals and dependency graph.

    Everything the engine reads per event is a plain list (indexing a list is several times
    cheaper than indexing a numpy array from Python); ``deps`` is decremented as runs finish.
    """

    __slots__ = ("first", "count", "arrival", "cp", "root_ptr", "roots", "root_cbs",
                 "arrival_dec_ptr", "arrival_dec_block", "arrival_dec_outcome", "kind", "inst",
                 "work", "out_bytes", "scale", "block", "deps", "succ_ptr", "succ", "succ_cbs",
                 "dec_ptr", "dec_block", "dec_outcome",
                 "instances", "_snaps", "_snap_of", "_elem_of", "frame_key")

    first: int
    count: int
    arrival: list[int]
    cp: list[int]
    root_ptr: list[int]
    roots: list[int]
    root_cbs: list[int]
    arrival_dec_ptr: list[int]
    arrival_dec_block: list[int]
    arrival_dec_outcome: list[int]
    kind: list[int]
    inst: list[int]
    work: list[int]
    out_bytes: list[int]
    scale: list[float]  # per node: passes over a model's streamed weights (``weight_passes``)
    block: np.ndarray  # per node: its flow block (-1 for junctions and ends)
    deps: list[int]
    succ_ptr: list[int]
    succ: list[int]
    succ_cbs: list[int]
    dec_ptr: list[int]
    dec_block: list[int]
    dec_outcome: list[int]
    instances: list[Any]  # the engine's instance objects, filled as they arrive
    _snaps: list[dict[str, np.ndarray]]  # scopes at the task nodes (flow positions)
    _snap_of: np.ndarray
    _elem_of: np.ndarray
    frame_key: np.ndarray  # per node: the key of its frame (hashes instance and flow path)

    def position(self, node: int, positions: dict[int, tuple[list[Node], int]]) -> FlowPosition:
        """The flow position of run ``node`` (for forecasting policies; not on the hot path)."""
        nodes, index = positions[int(self.block[node])]
        return FlowPosition(nodes, index, read=lambda: self._scope_at(node))

    def _scope_at(self, node: int) -> dict[str, float]:
        snap = self._snaps[int(self._snap_of[node])]
        elem = int(self._elem_of[node])
        scope = {}
        for name, arr in snap.items():
            x = float(arr[elem])
            if x == x:
                scope[name] = x
        return scope

    @property
    def n_nodes(self) -> int:
        return len(self.kind)


class _Frames:
    """Frames (one per element) that stand at the same flow node.

    ``tf``/``tn``/``tc`` are the frames' *tails*, sorted by frame: the nodes each frame waits
    for before it goes on (-1: the instance's arrival) and the Control Blocks passed since.
    Scope arrays are never written in place, so a shallow copy of ``scope`` is a snapshot.
    """

    __slots__ = ("n", "inst", "key", "cp", "path", "scope", "tf", "tn", "tc")

    def __init__(self, n: int, inst: np.ndarray, key: np.ndarray, cp: np.ndarray,
                 path: np.ndarray, scope: dict[str, np.ndarray], tf: np.ndarray,
                 tn: np.ndarray, tc: np.ndarray) -> None:
        self.n, self.inst, self.key, self.cp, self.path, self.scope = n, inst, key, cp, path, scope
        self.tf, self.tn, self.tc = tf, tn, tc

    def subset(self, idx: np.ndarray) -> _Frames:
        """The frames ``idx`` (sorted) with their tails, renumbered from 0."""
        m = len(idx)
        if FAST_PATHS:
            if m == self.n:  # all of them (idx is sorted and unique): the same arrays
                return _Frames(m, self.inst, self.key, self.cp, self.path, dict(self.scope),
                               self.tf, self.tn, self.tc)
            if len(self.tf) == self.n:  # one tail per frame: tf is arange(n)
                return _Frames(m, self.inst[idx], self.key[idx], self.cp[idx], self.path[idx],
                               {k: v[idx] for k, v in self.scope.items()}, _ramp(m),
                               self.tn[idx], self.tc[idx])
        pos = np.full(self.n, -1, dtype=_I64)
        pos[idx] = np.arange(len(idx))
        keep = pos[self.tf] >= 0
        return _Frames(len(idx), self.inst[idx], self.key[idx], self.cp[idx], self.path[idx],
                       {k: v[idx] for k, v in self.scope.items()}, pos[self.tf[keep]],
                       self.tn[keep], self.tc[keep])

    def merge(self, idx: np.ndarray, sub: _Frames) -> None:
        """Frames ``idx`` went on as ``sub`` in the same scope (a branch case, a loop
        iteration): take back its variables, critical path and tails."""
        if FAST_PATHS and len(idx) == self.n:  # all of them: idx is arange(n)
            for name, arr in sub.scope.items():
                cur = self.scope.get(name)
                dtype = np.float64 if cur is None else cur.dtype
                self.scope[name] = arr if arr.dtype == dtype else arr.astype(dtype)
            self.cp = sub.cp
            self.tf, self.tn, self.tc = sub.tf, sub.tn, sub.tc  # sorted by frame already
            return
        for name, arr in sub.scope.items():
            cur = self.scope.get(name)
            new = np.full(self.n, np.nan) if cur is None else cur.copy()
            new[idx] = arr
            self.scope[name] = new
        cp = self.cp.copy()
        cp[idx] = sub.cp
        self.cp = cp
        mine = np.zeros(self.n, dtype=bool)
        mine[idx] = True
        keep = ~mine[self.tf]
        self._set_tails(np.concatenate((self.tf[keep], idx[sub.tf])),
                        np.concatenate((self.tn[keep], sub.tn)),
                        np.concatenate((self.tc[keep], sub.tc)))

    def _set_tails(self, tf: np.ndarray, tn: np.ndarray, tc: np.ndarray) -> None:
        order = np.argsort(tf, kind="stable")
        self.tf, self.tn, self.tc = tf[order], tn[order], tc[order]

    def passed_cb(self, frames: np.ndarray | None = None) -> None:
        """The frames (all, or those given as a boolean mask) passed one Control Block."""
        if frames is None:
            self.tc = self.tc + 1
        else:
            self.tc = self.tc + frames[self.tf]


def _normalise_tails(tf: np.ndarray, tn: np.ndarray, tc: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame, keep the last of equal tails (they complete together and the last edge
    decides the count), and drop the arrival when the frame also waits for runs (it has
    happened before any of them completes). Order within a frame is kept."""
    if len(tf) < 2:
        return tf, tn, tc
    m = len(tf)
    # Last occurrence of each (frame, node): one integer per pair (nodes are >= -1), unique
    # over the reversed array (np.unique of rows is several times slower).
    pair = tf * (int(tn.max()) + 2) + (tn + 1)
    _, first_rev = np.unique(pair[::-1], return_index=True)
    keep = np.zeros(m, dtype=bool)
    keep[m - 1 - first_rev] = True
    has_run = np.zeros(int(tf.max()) + 1, dtype=bool)
    has_run[tf[tn >= 0]] = True
    keep &= (tn >= 0) | ~has_run[tf]
    return tf[keep], tn[keep], tc[keep]


class _Builder:
    """Accumulates the nodes, edges and decisions of one chunk."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self.first = int(ids[0])
        self.count = count = len(ids)
        self.n_nodes = 0
        # kind, inst, work, out, scale, block, snap, size, key (numbers: the same for all)
        self.node_parts: list[tuple[Any, ...]] = []
        self.path_parts: list[np.ndarray] = []  # each part's paths (2-D)
        self.edge_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.root_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # inst, node, cbs
        self.dec_parts: list[tuple[np.ndarray, int, np.ndarray]] = []  # trigger, block, outcome
        self.snaps: list[dict[str, np.ndarray]] = []
        self.frames_of_inst = np.zeros(count, dtype=_I64)
        self.frames_total = 0
        self.size_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | int]] = []

    # --- nodes and edges --------------------------------------------------------------------

    def add_nodes(self, kind: int, frames: _Frames, work: np.ndarray | int,
                  out_bytes: np.ndarray | int, scale: np.ndarray | float, block: int,
                  snap: int) -> np.ndarray:
        """New nodes, one per frame, waiting for the frames' tails; return their ids.
        ``work``, ``out_bytes`` and ``scale`` may be one number for all (filled in at finish)."""
        n = frames.n
        first = self.n_nodes
        ids = np.arange(first, first + n, dtype=_I64)
        self.n_nodes += n
        self.node_parts.append((kind, frames.inst, work, out_bytes, scale, block, snap, n,
                                frames.key))
        self.path_parts.append(frames.path)
        tf, tn, tc = frames.tf, frames.tn, frames.tc
        if FAST_PATHS and len(tn) and tn.min() >= 0:  # every tail is a run: no roots
            self.edge_parts.append((tn, ids if len(tf) == n else tf + first, tc))
            return ids
        run = tn >= 0
        self.edge_parts.append((tn[run], ids[tf[run]], tc[run]))
        # Frames waiting for nothing but the arrival start with it: roots of their instance.
        waits = np.zeros(n, dtype=bool)
        waits[tf[run]] = True
        arr = ~run & ~waits[tf]
        if arr.any():
            self.root_parts.append((frames.inst[tf[arr]], ids[tf[arr]], tc[arr]))
        return ids

    def triggers(self, frames: _Frames, idx: np.ndarray) -> np.ndarray:
        """For frames ``idx``, the node whose completion lets the CBU decide there (a frame
        waiting for several runs first gets a junction); ``-1 - instance`` for the arrival."""
        if FAST_PATHS and len(frames.tf) == frames.n:  # one tail per frame: no junction
            tn = frames.tn[idx]
            return np.where(tn >= 0, tn, -1 - frames.inst[idx])
        counts = np.bincount(frames.tf, minlength=frames.n)
        multi = idx[counts[idx] > 1]
        if len(multi):
            sub = frames.subset(multi)
            jn = len(multi)
            ids = self.add_nodes(JUNCTION, sub, 0, 0, 1.0, -1, -1)
            mine = np.zeros(frames.n, dtype=bool)
            mine[multi] = True
            keep = ~mine[frames.tf]
            frames._set_tails(np.concatenate((frames.tf[keep], multi)),
                              np.concatenate((frames.tn[keep], ids)),
                              np.concatenate((frames.tc[keep], np.zeros(jn, dtype=_I64))))
        first = np.searchsorted(frames.tf, idx)
        tn = frames.tn[first]
        return np.where(tn >= 0, tn, -1 - frames.inst[idx])

    def decide(self, frames: _Frames, idx: np.ndarray, block: int,
               outcome: np.ndarray) -> None:
        if len(idx):
            self.dec_parts.append((self.triggers(frames, idx), block, outcome))

    # --- finishing ----------------------------------------------------------------------------

    def instance_id(self, local: int) -> int:
        return int(self.ids[local])

    def finish(self, root: _Frames, arrival: np.ndarray) -> WorkloadChunk:
        count = self.count
        # One end node per instance, waiting for the root frame's tails.
        self.add_nodes(END, root, 0, 0, 1.0, -1, -1)
        n = self.n_nodes
        kind_p, inst_p, work_p, out_p, scale_p, block_p, snap_p, size_p, key_p = zip(
            *self.node_parts, strict=True)
        sizes = np.array(size_p, dtype=_I64)
        kind = np.repeat(np.array(kind_p, dtype=_I64), sizes)
        block = np.repeat(np.array(block_p, dtype=_I64), sizes)
        snap = np.repeat(np.array(snap_p, dtype=_I64), sizes)
        elem = np.arange(n, dtype=_I64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        inst = np.concatenate(inst_p)
        frame_key = np.concatenate(key_p)
        work = _column(work_p, size_p, n, _I64)
        out_bytes = _column(out_p, size_p, n, _I64)
        scale = _column(scale_p, size_p, n, np.float64)
        depth = max((p.shape[1] for p in self.path_parts), default=0)
        path = np.full((n, depth), -1, dtype=_I64)
        row = 0
        for p in self.path_parts:
            path[row:row + len(p), :p.shape[1]] = p
            row += len(p)
        src = np.concatenate([e[0] for e in self.edge_parts]) if self.edge_parts else _EMPTY
        dst = np.concatenate([e[1] for e in self.edge_parts]) if self.edge_parts else _EMPTY
        cbs = np.concatenate([e[2] for e in self.edge_parts]) if self.edge_parts else _EMPTY
        # Successors in depth-first flow order: by the targets' paths of copy/arm indices.
        keys = [path[dst, d] for d in range(depth - 1, -1, -1)]
        order = np.lexsort((*keys, src)) if len(src) else _EMPTY
        src, dst, cbs = src[order], dst[order], cbs[order]
        ch = WorkloadChunk()
        ch.first, ch.count = self.first, count
        ch.arrival = arrival.tolist()
        ch.kind, ch.inst = kind.tolist(), inst.tolist()
        ch.work, ch.out_bytes, ch.scale = work.tolist(), out_bytes.tolist(), scale.tolist()
        ch.block = block
        ch.deps = np.bincount(dst, minlength=n).tolist()
        ptr = np.zeros(n + 1, dtype=_I64)
        np.cumsum(np.bincount(src, minlength=n), out=ptr[1:])
        ch.succ_ptr, ch.succ, ch.succ_cbs = ptr.tolist(), dst.tolist(), cbs.tolist()
        # Roots per instance, in flow order.
        if self.root_parts:
            r_inst = np.concatenate([r[0] for r in self.root_parts])
            r_node = np.concatenate([r[1] for r in self.root_parts])
            r_cbs = np.concatenate([r[2] for r in self.root_parts])
            o = np.lexsort((*[path[r_node, d] for d in range(depth - 1, -1, -1)], r_inst))
            r_inst, r_node, r_cbs = r_inst[o], r_node[o], r_cbs[o]
        else:
            r_inst = r_node = r_cbs = _EMPTY
        rptr = np.zeros(count + 1, dtype=_I64)
        np.cumsum(np.bincount(r_inst, minlength=count), out=rptr[1:])
        ch.root_ptr, ch.roots, ch.root_cbs = rptr.tolist(), r_node.tolist(), r_cbs.tolist()
        # Decisions per trigger node, and per instance for those taken at arrival.
        if self.dec_parts:
            trig = np.concatenate([d[0] for d in self.dec_parts])
            blk = np.concatenate([np.full(len(d[0]), d[1], dtype=_I64) for d in self.dec_parts])
            out = np.concatenate([d[2] for d in self.dec_parts]).astype(_I64)
        else:
            trig = blk = out = _EMPTY
        at_node = trig >= 0
        ch.dec_ptr, ch.dec_block, ch.dec_outcome = _grouped(trig[at_node], blk[at_node],
                                                            out[at_node], n)
        ch.arrival_dec_ptr, ch.arrival_dec_block, ch.arrival_dec_outcome = _grouped(
            -1 - trig[~at_node], blk[~at_node], out[~at_node], count)
        ch.cp = root.cp.tolist()
        ch._snaps = self.snaps
        ch._snap_of = snap
        ch._elem_of = elem
        ch.frame_key = frame_key
        return ch


def _column(parts: tuple[Any, ...], sizes: tuple[int, ...], n: int, dtype: Any) -> np.ndarray:
    """One node column from its parts, each an array or one number for all its nodes."""
    col = np.empty(n, dtype=dtype)
    row = 0
    for part, size in zip(parts, sizes, strict=True):
        col[row:row + size] = part
        row += size
    return col


def _grouped(owner: np.ndarray, block: np.ndarray, outcome: np.ndarray, n: int
             ) -> tuple[list[int], list[int], list[int]]:
    """CSR of (block, outcome) per owner, in the order they were taken."""
    order = np.argsort(owner, kind="stable")
    ptr = np.zeros(n + 1, dtype=_I64)
    np.cumsum(np.bincount(owner, minlength=n), out=ptr[1:])
    return ptr.tolist(), block[order].tolist(), outcome[order].tolist()


class WorkloadCompiler:
    """Compiles instances of one workflow for one seed into :class:`WorkloadChunk` s."""

    def __init__(self, wf: Workflow, task_types: list[TaskType], rnd: KeyedRandom,
                 split_efficiency: float, chunk_instances: int = CHUNK_INSTANCES) -> None:
        self.wf = wf
        self.types = task_types
        self.rnd = rnd
        self.split_eff = split_efficiency
        self.chunk_instances = chunk_instances
        self.max_frames = wf.max_runs_per_instance
        n = wf.n_blocks
        self.salt_block = [salt(f"block {b}") for b in range(n)]
        self.salt_c = [salt(f"{b}/c") for b in range(n)]
        self.salt_s = [salt(f"{b}/s") for b in range(n)]
        self.salt_w = [salt(f"{b}/w") for b in range(n)]
        self.salt_o = [salt(f"{b}/o") for b in range(n)]
        self.salt_n = [salt(f"{b}/n") for b in range(n)]
        self.salt_b = [salt(f"{b}/b") for b in range(n)]
        self.salt_root_v = {name: salt(f"v/{name}") for name in wf.vars}
        self._salt_v: dict[tuple[int, str], int] = {}
        self._const: dict[int, tuple[int, int]] = {}
        self._clock = 0.0
        self._next_arrival = 0
        # The flow position after each task node (what a forecasting policy reads).
        self.positions: dict[int, tuple[list[Node], int]] = {}
        self._index_positions(wf.flow)
        starts = [p.start for p in wf.phases]
        self._phase_starts = np.array(starts, dtype=_I64)

    def _index_positions(self, nodes: list[Node]) -> None:
        for i, node in enumerate(nodes):
            t = type(node)
            if t is TaskNode:
                self.positions[node.block] = (nodes, i + 1)
            elif t is ForeachNode or t is LoopNode:
                self._index_positions(node.body)  # type: ignore[attr-defined]
            elif t is BranchNode:
                for case in node.cases:  # type: ignore[attr-defined]
                    self._index_positions(case.body)
            elif t is ParallelNode:
                for arm in node.arms:  # type: ignore[attr-defined]
                    self._index_positions(arm)

    # --- chunks -------------------------------------------------------------------------------

    def chunks(self, first: int = 0) -> Iterator[WorkloadChunk]:
        """All instances from ``first``, chunk by chunk (lazily: memory stays bounded)."""
        i = first
        total = self.wf.count
        size = self.chunk_instances
        while i < total:
            m = min(size, total - i)
            try:
                ch = self.compile(i, m)  # arrivals are drawn only once the graph is built
            except _ChunkTooLarge:
                if m == 1:  # pragma: no cover - one instance within max_runs always fits
                    raise
                size = max(1, m // 2)
                continue
            i += m
            size = min(self.chunk_instances, size * 2)
            yield ch

    def arrivals(self, first: int, count: int) -> np.ndarray:
        """Arrival cycles of instances ``first`` .. (they must be asked for in order)."""
        wf = self.wf
        ids = np.arange(first, first + count, dtype=_I64)
        if wf.arrival_process == "batch":
            return np.zeros(count, dtype=_I64)
        if wf.arrival_process == "periodic":
            return round_count_array(ids * wf.interarrival_cycles)
        keys = instance_keys_array(self.rnd, ids)
        gaps = -wf.interarrival_cycles * np.log(
            first_uniform_array(mix64_array(keys ^ np.uint64(ARRIVAL_SALT))))
        if first == 0:
            gaps[0] = 0.0  # the first instance arrives at cycle 0
        acc = np.cumsum(np.concatenate(([self._clock], gaps)))[1:]
        self._clock = float(acc[-1])
        return round_count_array(acc)

    def compile(self, first: int, count: int) -> WorkloadChunk:
        """Instances ``first`` .. ``first + count - 1`` with their arrivals (which must follow
        the previous chunk's: call in order)."""
        ids = np.arange(first, first + count, dtype=_I64)
        b, root = self._build(ids)
        return b.finish(root, self.arrivals(first, count))

    def compile_instances(self, ids: np.ndarray) -> list[WorkloadChunk]:
        """The runs of any instances (a profile's sample), without arrival times, in as many
        chunks (in order) as memory needs."""
        ids = ids.astype(_I64)
        try:
            b, root = self._build(ids)
        except _ChunkTooLarge:
            half = len(ids) // 2  # more than one instance: _build splits no further
            return self.compile_instances(ids[:half]) + self.compile_instances(ids[half:])
        return [b.finish(root, np.zeros(len(ids), dtype=_I64))]

    def _build(self, ids: np.ndarray) -> tuple[_Builder, _Frames]:
        b = _Builder(ids)
        count = len(ids)
        local = np.arange(count, dtype=_I64)
        root = _Frames(count, local, instance_keys_array(self.rnd, ids),
                       np.zeros(count, dtype=_I64), np.zeros((count, 0), dtype=_I64), {},
                       local.copy(), np.full(count, -1, dtype=_I64),
                       np.zeros(count, dtype=_I64))
        self._phase = (np.searchsorted(self._phase_starts, ids, side="right") - 1
                       if len(self._phase_starts) else None)
        for name, value in self.wf.vars.items():
            root.scope[name] = self._draw_var(name, value, root, self.salt_root_v[name],
                                              f"vars.{name}", b)
        self._seq(self.wf.flow, root, b)
        return b, root

    # --- draws --------------------------------------------------------------------------------

    def _error(self, exc: DrawError, frames: _Frames, b: _Builder, where: str) -> UserError:
        err = exc.error
        msg = err.what if isinstance(err, UserError) else str(err)
        inst = b.instance_id(int(frames.inst[exc.index]))
        return UserError(f"{msg} (instance {inst})", file=self.wf.file, where=where)

    def _draw(self, value: Value, frames: _Frames, quantity_salt: int, where: str,
              b: _Builder) -> np.ndarray:
        states = mix64_array(frames.key ^ np.uint64(quantity_salt))
        try:
            return value.sample_array(states, frames.scope)
        except DrawError as exc:
            raise self._error(exc, frames, b, where) from None

    def _draw_var(self, name: str, value: Value, frames: _Frames, quantity_salt: int,
                  where: str, b: _Builder) -> np.ndarray:
        """A variable, drawn from the phase's override where an instance's phase has one."""
        phases = self.wf.phases
        if self._phase is None or not any(name in p.overrides for p in phases):
            return self._draw(value, frames, quantity_salt, where, b)
        phase_of = self._phase[frames.inst]
        out = np.empty(frames.n)
        for pi, phase in enumerate(phases):
            sel = np.flatnonzero(phase_of == pi)
            if not len(sel):
                continue
            sub = frames.subset(sel)
            out[sel] = self._draw(phase.overrides.get(name, value), sub, quantity_salt, where,
                                  b)
        return out

    def _cond(self, cond: Expression, frames: _Frames, idx: np.ndarray, where: str,
              b: _Builder) -> np.ndarray:
        env = {k: v[idx] for k, v in frames.scope.items()}
        try:
            return cond.evaluate_array(env, len(idx)) != 0
        except DrawError as exc:
            inst = b.instance_id(int(frames.inst[idx[exc.index]]))
            raise UserError(f"{exc.error} (instance {inst})", file=self.wf.file,
                            where=where) from None

    def salt_var(self, block: int, name: str) -> int:
        key = (block, name)
        s = self._salt_v.get(key)
        if s is None:
            s = self._salt_v[key] = salt(f"{block}/v.{name}")
        return s

    # --- the flow, for a set of frames ---------------------------------------------------------

    def _seq(self, nodes: list[Node], f: _Frames, b: _Builder) -> None:
        for node in nodes:
            if f.n == 0:
                return
            t = type(node)
            if t is TaskNode:
                self._task(node, f, b)  # type: ignore[arg-type]
            elif t is ForeachNode:
                self._foreach(node, f, b)  # type: ignore[arg-type]
            elif t is ParallelNode:
                self._parallel(node, f, b)  # type: ignore[arg-type]
            elif t is BranchNode:
                self._branch(node, f, b)  # type: ignore[arg-type]
            elif t is LoopNode:
                self._loop(node, f, b)  # type: ignore[arg-type]
            else:  # pragma: no cover
                raise AssertionError(f"unknown node {node!r}")

    def _task(self, node: TaskNode, f: _Frames, b: _Builder) -> None:
        tt = self.types[node.task.index]
        block = node.block
        n = f.n
        scale: np.ndarray | float = 1.0
        work: np.ndarray | int
        cp_cycles: np.ndarray | int | None = None
        if tt.cycles is not None and FAST_PATHS and type(tt.cycles) is Const:
            work, cp_cycles = self._const_work(tt)  # a constant draws nothing
        elif tt.cycles is not None:
            work = round_count_array(self._draw(tt.cycles, f, self.salt_c[block],
                                                f"tasks.{tt.name}.cycles", b))
        elif tt.scale is None:
            work, cp_cycles = self._const_work(tt)
        else:
            drawn = np.maximum(0.0, self._draw(tt.scale, f, self.salt_s[block],
                                               f"tasks.{tt.name}.scale", b))
            scale = drawn
            work = round_count_array(tt.model_cycles * drawn)
        if tt.weight_passes is not None:
            # From here on ``scale`` is what the weights stream by (a node's stream scale):
            # the task says how many passes over them a run makes, whatever its compute.
            scale = np.maximum(0.0, self._draw(tt.weight_passes, f, self.salt_w[block],
                                               f"tasks.{tt.name}.weight_passes", b))
            if not isinstance(work, np.ndarray):
                work = np.full(n, work, dtype=_I64)
            cp_cycles = None  # the streaming floor follows the passes
        out: np.ndarray | int
        if tt.out_fixed is not None:
            out = tt.out_fixed
        else:
            out = round_count_array(self._draw(tt.out_bytes, f, self.salt_o[block],
                                               f"tasks.{tt.name}.out_bytes", b))
        b.snaps.append(dict(f.scope))
        ids = b.add_nodes(tt.idx, f, work, out, scale, block, len(b.snaps) - 1)
        f.tf, f.tn, f.tc = _ramp(n), ids, _nought(n)
        if cp_cycles is None:
            assert isinstance(work, np.ndarray)
            cp_cycles = self._cp_cycles(tt, work, scale if isinstance(scale, np.ndarray)
                                        else np.ones(n))
        f.cp = f.cp + cp_cycles
        for name, value in node.task.sets.items():
            f.scope[name] = self._draw_var(name, value, f, self.salt_var(block, name),
                                           f"tasks.{tt.name}.sets.{name}", b)

    def _const_work(self, tt: TaskType) -> tuple[int, int]:
        """A task type's work when it is the same for every run, and its critical path."""
        got = self._const.get(tt.idx)
        if got is None:
            if tt.cycles is not None:
                work = round_count_array(tt.cycles.sample_array(np.zeros(1, np.uint64), {}))
            else:
                work = np.full(1, tt.model_cycles, dtype=_I64)
            got = self._const[tt.idx] = (int(work[0]),
                                         int(self._cp_cycles(tt, work, np.ones(1))[0]))
        return got

    def _cp_cycles(self, tt: TaskType, work: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Each run's service at its widest grant (the critical path at full parallelism)."""
        if tt.plain_cp:
            return work
        k = tt.kmax
        svc = work
        if k > 1:
            svc = np.ceil(work / (1.0 + (k - 1) * self.split_eff)).astype(_I64)
        floor = tt.floor_cycles
        if not floor:
            return svc
        # Exactly the stream the engine issues for such a run (``ResourceActions.start``:
        # round(streamed bytes x scale), then the channel's ceil over the bandwidth), so the
        # critical path never exceeds what a run can do (ceil(floor x scale) could, by a cycle).
        scaled = np.ceil(np.round(tt.streamed_bytes * scale) / tt.memory_bytes_per_cycle)
        floors = np.where(scale != 1.0, scaled, float(floor)).astype(_I64)
        return np.maximum(svc, floors)

    def _foreach(self, node: ForeachNode, f: _Frames, b: _Builder) -> None:
        f.passed_cb()
        counts = round_count_array(self._draw(node.count, f, self.salt_n[node.block],
                                              f"{node.where}.foreach", b))
        big = np.flatnonzero(counts > MAX_FOREACH_COUNT)
        if len(big):
            i = int(big[0])
            raise UserError(f"foreach count {int(counts[i])} is larger than "
                            f"{MAX_FOREACH_COUNT} (instance {b.instance_id(int(f.inst[i]))})",
                            file=self.wf.file, where=node.where)
        all_idx = np.arange(f.n, dtype=_I64)
        b.decide(f, all_idx, node.block, counts)
        go = np.flatnonzero(counts > 0)
        if not len(go):
            return
        n_go = counts[go]
        total = int(n_go.sum())
        self._check_size(f, go, n_go, total, node, b)
        parent = np.repeat(go, n_go)
        starts = np.cumsum(n_go) - n_go
        j = np.arange(total, dtype=_I64) - np.repeat(starts, n_go)
        keys = child_keys_array(f.key[parent], self.salt_block[node.block], j)
        kids = self._children(f, parent, j, keys)
        self._seq(node.body, kids, b)
        self._join(f, go, [(kids, parent)])

    def _check_size(self, f: _Frames, go: np.ndarray, n_go: np.ndarray | int, total: int,
                    node: Node, b: _Builder) -> None:
        """Bound the frames one instance (and one chunk) may expand to. Per-instance counts
        are only formed once the chunk as a whole passes the limit (no instance can before):
        a long loop's iterations then cost no bincount each."""
        b.frames_total += total
        b.size_parts.append((f.inst, go, n_go))  # f.inst[go], formed only when needed
        if b.frames_total <= self.max_frames:
            if total > CHUNK_FRAMES and b.count > 1:
                raise _ChunkTooLarge
            return
        for insts, sel, n in b.size_parts:
            inst = insts[sel]
            if isinstance(n, np.ndarray):
                b.frames_of_inst += np.bincount(inst, weights=n, minlength=b.count).astype(_I64)
            else:  # the same count for each
                b.frames_of_inst += np.bincount(inst, minlength=b.count) * n
        b.size_parts.clear()
        worst = int(np.argmax(b.frames_of_inst))
        if b.frames_of_inst[worst] > self.max_frames:
            raise UserError(
                f"instance {b.instance_id(worst)} expands to more than {self.max_frames} task runs "
                f"here (nested foreach or loop); raise workflow.max_runs_per_instance if "
                "intended", file=self.wf.file, where=node.where)
        if total > CHUNK_FRAMES and b.count > 1:
            raise _ChunkTooLarge

    def _children(self, f: _Frames, parent: np.ndarray, j: np.ndarray,
                  keys: np.ndarray, every: bool = False) -> _Frames:
        """Child frames (foreach copies or parallel arms) of ``f``'s frames ``parent``, copy
        index ``j``: own scope copies, the parent's tails. ``every``: ``parent`` is
        ``arange(f.n)`` (a parallel's arm)."""
        m = len(parent)
        if FAST_PATHS and every:  # child i is frame i: the same arrays
            return _Frames(m, f.inst, keys, f.cp, np.concatenate((f.path, j[:, None]), axis=1),
                           dict(f.scope), f.tf, f.tn, f.tc)
        path = np.concatenate((f.path[parent], j[:, None]), axis=1)
        scope = {k: v[parent] for k, v in f.scope.items()}
        if FAST_PATHS and len(f.tf) == f.n:  # one tail per parent: tf is arange(f.n)
            return _Frames(m, f.inst[parent], keys, f.cp[parent], path, scope, _ramp(m),
                           f.tn[parent], f.tc[parent])
        ntails = np.bincount(f.tf, minlength=f.n)
        tptr = np.cumsum(ntails) - ntails
        per_child = ntails[parent]
        total = int(per_child.sum())
        child = np.repeat(np.arange(m, dtype=_I64), per_child)
        offs = np.arange(total, dtype=_I64) - np.repeat(np.cumsum(per_child) - per_child,
                                                         per_child)
        src = np.repeat(tptr[parent], per_child) + offs
        return _Frames(m, f.inst[parent], keys, f.cp[parent], path, scope, child, f.tn[src],
                       f.tc[src])

    def _join(self, f: _Frames, idx: np.ndarray,
              groups: list[tuple[_Frames, np.ndarray]]) -> None:
        """Frames ``idx`` of ``f`` waited for their children (``groups``: child frames and
        their parent of each): their tails become the children's, one CB later."""
        mine = np.zeros(f.n, dtype=bool)
        mine[idx] = True
        keep = ~mine[f.tf]
        tfs, tns, tcs, rank = [f.tf[keep]], [f.tn[keep]], [f.tc[keep]], [np.zeros(int(keep.sum()))]
        cp = f.cp.copy()
        for g, (kids, parent) in enumerate(groups):
            tfs.append(parent[kids.tf])
            tns.append(kids.tn)
            tcs.append(kids.tc + 1)
            rank.append(np.full(len(kids.tf), g + 1.0))
            np.maximum.at(cp, parent, kids.cp)
        f.cp = cp
        tf, tn, tc, rk = (np.concatenate(x) for x in (tfs, tns, tcs, rank))
        # By frame, then group (parallel arm), keeping each child's order (children of one
        # group are in copy order already).
        order = np.lexsort((rk, tf))
        tf, tn, tc = _normalise_tails(tf[order], tn[order], tc[order])
        f.tf, f.tn, f.tc = tf, tn, tc

    def _join_arms(self, f: _Frames, arms: list[_Frames], starts: list[int]) -> None:
        """:meth:`_join` of every frame with one child per arm (a parallel); ``starts``: the
        first node id each arm could create. When each arm's child ends with one tail, made
        in that arm, the joined tails are the arms' in order, all distinct runs: nothing to
        sort or deduplicate."""
        n = f.n
        if not FAST_PATHS or any(len(k.tf) != n for k in arms):
            idx = _ramp(n)
            self._join(f, idx, [(k, idx) for k in arms])
            return
        cp = f.cp
        for kids in arms:
            cp = np.maximum(cp, kids.cp)
        f.cp = cp
        g = len(arms)
        tf = np.repeat(_ramp(n), g) if g > 1 else _ramp(n)
        tn = np.empty(n * g, dtype=_I64)
        tc = np.empty(n * g, dtype=_I64)
        for a, kids in enumerate(arms):  # frame by frame, arm by arm
            tn[a::g] = kids.tn
            tc[a::g] = kids.tc
        tc += 1
        if not all(int(k.tn.min()) >= s for k, s in zip(arms, starts, strict=True)):
            tf, tn, tc = _normalise_tails(tf, tn, tc)
        f.tf, f.tn, f.tc = tf, tn, tc

    def _parallel(self, node: ParallelNode, f: _Frames, b: _Builder) -> None:
        f.passed_cb()
        n = f.n
        idx = _ramp(n)
        arms, starts = [], []
        for a, arm in enumerate(node.arms):
            kids = self._children(f, idx, np.full(n, a, dtype=_I64), f.key, every=True)
            starts.append(b.n_nodes)
            self._seq(arm, kids, b)
            arms.append(kids)
        self._check_size(f, idx, len(node.arms), n * len(node.arms), node, b)
        self._join_arms(f, arms, starts)

    def _branch(self, node: BranchNode, f: _Frames, b: _Builder) -> None:
        f.passed_cb()
        chosen = np.full(f.n, -1, dtype=_I64)
        undecided = np.ones(f.n, dtype=bool)
        u: np.ndarray | None = None
        acc = 0.0
        for ci, case in enumerate(node.cases):
            idx = np.flatnonzero(undecided)
            if not len(idx):
                break
            if case.kind == "when":
                assert case.cond is not None
                hit = idx[self._cond(case.cond, f, idx, f"{node.where}.branch", b)]
            elif case.kind == "p":
                if u is None:
                    u = first_uniform_array(mix64_array(f.key ^ np.uint64(
                        self.salt_b[node.block])))
                acc += case.p
                hit = idx[u[idx] < acc]
            else:
                hit = idx
            chosen[hit] = ci
            undecided[hit] = False
        b.decide(f, np.arange(f.n, dtype=_I64), node.block, chosen)
        for ci, case in enumerate(node.cases):
            if not case.body:
                continue
            sel = np.flatnonzero(chosen == ci)
            if len(sel):
                sub = f.subset(sel)
                self._seq(case.body, sub, b)
                f.merge(sel, sub)

    def _loop(self, node: LoopNode, f: _Frames, b: _Builder) -> None:
        f.passed_cb()
        remaining = None
        if node.count is not None:
            remaining = round_count_array(self._draw(node.count, f, self.salt_n[node.block],
                                                     f"{node.where}.loop.count", b))
        active = np.arange(f.n, dtype=_I64)
        iteration = 0
        fewest = -1  # a count loop: the fewest trips of the active frames (all go on below)
        while len(active):
            if FAST_PATHS and iteration < fewest:
                go = None
            elif remaining is not None:
                go = remaining[active] > iteration
                if FAST_PATHS:
                    fewest = int(remaining[active].min()) if go.all() else -1
            else:
                assert node.cond is not None
                go = self._cond(node.cond, f, active, f"{node.where}.loop.while", b)
            if go is None or go.all():
                pass  # none stops here
            else:
                stop = active[~go]
                b.decide(f, stop, node.block, np.full(len(stop), iteration, dtype=_I64))
                active = active[go]
                if not len(active):
                    break
            if iteration >= node.max_iterations:
                raise UserError(f"loop ran {node.max_iterations} iterations without ending "
                                f"(instance {b.instance_id(int(f.inst[active[0]]))}); raise "
                                "loop.max_iterations if intended", file=self.wf.file,
                                where=node.where)
            n_active = len(active)
            self._check_size(f, active, 1, n_active, node, b)
            sub = f.subset(active)
            sub.key = child_keys_array(sub.key, self.salt_block[node.block], iteration)
            self._seq(node.body, sub, b)
            f.merge(active, sub)
            if FAST_PATHS and n_active == f.n:
                f.passed_cb()
            else:
                mask = np.zeros(f.n, dtype=bool)
                mask[active] = True
                f.passed_cb(mask)
            iteration += 1
