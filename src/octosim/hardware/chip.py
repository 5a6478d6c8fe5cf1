"""Run-time state of the chip: TBUs with their PEAs, clusters, the mesh NoC, the memory channel.

Built from an :class:`~octosim.model.arch.ArchSpec`. Nothing here scans every unit per event:
each operation touches the units it names (a transfer touches the links on its XY route).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from octosim.hardware.defects import DetourRoutes, cut_off_clusters, resolve_defects
from octosim.model.arch import ArchSpec

UNBOUND = -1
MIXED = -2  # PEAs of the TBU hold contexts of different types (indiscriminate sharing)


class TBU:
    """A Task Block Unit: PEAs bound together to one TB type."""

    __slots__ = ("id", "cluster", "local", "free", "n_peas", "busy", "blocked", "bound",
                 "reconfiguring", "loading", "alive", "running", "prefetch_task",
                 "prefetch_done", "loading_peas")

    def __init__(self, tbu_id: int, cluster: int, local: int, pea_ids: list[int]) -> None:
        self.id = tbu_id
        self.cluster = cluster
        self.local = local
        self.free: list[int] = pea_ids  # ids of PEAs free to take work
        self.n_peas = len(pea_ids)
        self.busy = 0  # PEAs running a task (or receiving its input)
        self.blocked = 0  # PEAs holding output that back-pressure keeps from leaving
        self.bound = UNBOUND  # task type index whose context the PEAs hold
        self.reconfiguring = False
        self.loading = UNBOUND  # while reconfiguring: the task type whose context it loads
        self.alive = True
        self.running = 0  # task runs in flight on this TBU
        self.prefetch_task = UNBOUND  # context being fetched ahead into a shadow buffer
        self.prefetch_done = 0
        self.loading_peas = 0  # PEAs loading a context of their own (:meth:`load_peas`)

    def __repr__(self) -> str:
        return f"TBU({self.id}, cluster={self.cluster}, bound={self.bound}, free={len(self.free)})"


class Mesh:
    """2-D mesh NoC with XY routing; each directed link is a FIFO resource (contention).

    With dead routers (manufacturing defects), routes are shortest paths around them
    (:class:`~octosim.hardware.defects.DetourRoutes`); without, XY routing as computed here."""

    __slots__ = ("rows", "cols", "hop_cycles", "bytes_per_cycle", "link_free_at", "link_busy",
                 "bytes_moved", "transfers", "detours")

    def __init__(self, rows: int, cols: int, hop_cycles: int, bytes_per_cycle: float,
                 dead_routers: set[int] | None = None) -> None:
        self.rows, self.cols = rows, cols
        self.detours = DetourRoutes(rows, cols, dead_routers) if dead_routers else None
        self.hop_cycles = hop_cycles
        self.bytes_per_cycle = bytes_per_cycle
        self.link_free_at: dict[tuple[int, int], int] = {}
        self.link_busy: dict[tuple[int, int], int] = {}
        self.bytes_moved = 0
        self.transfers = 0

    def hops(self, src: int, dst: int) -> int:
        """Links on the route from ``src`` to ``dst``."""
        if self.detours is not None:
            return len(self.detours.route(src, dst))
        sr, sc = divmod(src, self.cols)
        dr, dc = divmod(dst, self.cols)
        return abs(sr - dr) + abs(sc - dc)

    def route(self, src: int, dst: int) -> list[tuple[int, int]]:
        """Links (from node, to node) on the XY route: first along the row, then the column
        (around dead routers: :meth:`DetourRoutes.route`, a cached list not to be modified)."""
        if self.detours is not None:
            return self.detours.route(src, dst)
        links = []
        r, c = divmod(src, self.cols)
        dr, dc = divmod(dst, self.cols)
        while c != dc:
            nc = c + (1 if dc > c else -1)
            links.append((r * self.cols + c, r * self.cols + nc))
            c = nc
        while r != dr:
            nr = r + (1 if dr > r else -1)
            links.append((r * self.cols + c, nr * self.cols + c))
            r = nr
        return links

    def transfer(self, src: int, dst: int, nbytes: int, now: int) -> int:
        """Send ``nbytes`` from cluster ``src`` to ``dst`` starting at ``now``; return the
        cycle the last byte arrives. The head takes each link when it is free, one hop per
        ``hop_cycles``; each link is then occupied for the serialisation time."""
        if src == dst or nbytes <= 0 and self.hop_cycles == 0:
            return now
        ser = math.ceil(nbytes / self.bytes_per_cycle) if nbytes > 0 else 0
        t = now
        free_at = self.link_free_at
        busy = self.link_busy
        for link in self.route(src, dst):
            start = max(t, free_at.get(link, 0))
            free_at[link] = start + ser
            busy[link] = busy.get(link, 0) + ser
            t = start + self.hop_cycles
        self.bytes_moved += nbytes
        self.transfers += 1
        return t + ser

    def busiest_link(self) -> tuple[tuple[int, int] | None, int]:
        if not self.link_busy:
            return None, 0
        link = max(self.link_busy, key=lambda k: (self.link_busy[k], k))
        return link, self.link_busy[link]


class MemoryChannel:
    """Off-chip memory: one channel of ``bytes_per_cycle``, two classes of traffic.

    *Streams* (weights a running task reads while it computes) are served one after another at
    full bandwidth, first come first served. *Fetches* (contexts for a reconfiguration) are
    short bursts with preemptive priority: they are served one after another among themselves,
    and a fetch takes the channel from the streams for its own duration, so a context never
    waits behind long weight streams.

    Bytes are conserved: the channel keeps the streams it has reserved and not yet finished
    (``pending``), and a fetch delays every one of them that it overlaps -- the part of a
    stream after the fetch's start resumes when the fetch ends, and later streams follow it.
    The streams a fetch delayed are left in :attr:`delayed` as ``(token, old_end, new_end)``
    (the token given to :meth:`stream`) for the caller to move their completions. Fetch
    intervals never overlap one another, and streams use only the cycles fetches leave, so no
    interval of time carries more than ``bytes_per_cycle`` times its length.
    """

    __slots__ = ("bytes_per_cycle", "free_at", "stream_free_at", "bytes_moved", "busy_cycles",
                 "pending", "delayed")

    def __init__(self, bytes_per_cycle: float) -> None:
        self.bytes_per_cycle = bytes_per_cycle
        self.free_at = 0  # fetch queue
        self.stream_free_at = 0  # stream queue
        self.bytes_moved = 0
        self.busy_cycles = 0
        # Reserved streams that may still be running: [end, begin, token], in FIFO order.
        self.pending: deque[list[Any]] = deque()
        self.delayed: list[tuple[Any, int, int]] = []  # streams the last fetch delayed

    def fetch(self, nbytes: int, now: int) -> int:
        """Queue a context fetch of ``nbytes`` at ``now``; return the cycle it completes. The
        streams it delays are then in :attr:`delayed`."""
        if self.delayed:
            self.delayed = []
        if nbytes <= 0:
            return now
        dur = math.ceil(nbytes / self.bytes_per_cycle)
        start = max(now, self.free_at)
        end = start + dur
        self.free_at = end
        pending = self.pending
        # Fetch starts never go back in time (``now`` and ``free_at`` only grow), and every
        # earlier fetch ends by ``start``: a stream ending by then is out of reach for good.
        while pending and pending[0][0] <= start:
            pending.popleft()
        if pending:
            delayed = self.delayed
            cursor = end  # the channel is free for streams from the fetch's end
            for res in pending:
                old_end, begin = res[0], res[1]
                after = begin if begin > start else start  # its service left from ``start``
                resume = after if after > cursor else cursor
                new_end = resume + (old_end - after)
                if new_end == old_end:
                    break  # it lies past the fetch; so do all later ones
                res[1] = resume  # what is left of it is served in one piece from here
                res[0] = new_end
                delayed.append((res[2], old_end, new_end))
                cursor = new_end
            if self.stream_free_at < cursor:
                self.stream_free_at = cursor
        self.bytes_moved += nbytes
        self.busy_cycles += dur
        return end

    def stream(self, nbytes: int, start: int, token: Any = None, now: int = 0) -> int:
        """Queue a weight stream of ``nbytes`` from ``start`` (asked at cycle ``now``); return
        when it completes (a later fetch may delay it: see :attr:`delayed`)."""
        if nbytes <= 0:
            return start
        pending = self.pending
        while pending and pending[0][0] <= now:
            pending.popleft()  # done: no fetch from ``now`` on can reach it
        dur = math.ceil(nbytes / self.bytes_per_cycle)
        begin = max(start, self.stream_free_at, self.free_at)
        self.stream_free_at = end = begin + dur
        pending.append([end, begin, token])
        self.bytes_moved += nbytes
        self.busy_cycles += dur
        return end


def edge_clusters(rows: int, cols: int) -> list[int]:
    """Clusters on the grid's boundary (all of them on grids up to 2 wide), in id order."""
    return [r * cols + c for r in range(rows) for c in range(cols)
            if r in (0, rows - 1) or c in (0, cols - 1)]


def assign_nearest(mesh: Mesh, sites: list[int], clusters: list[int],
                   n_clusters: int) -> list[int]:
    """For each cluster, the index in ``sites`` of the site serving it: one of its nearest
    (fewest hops), the one serving fewest clusters so far, clusters taken nearest first. A
    site serves itself. Interior clusters of a wafer so spread over the edge controllers
    instead of piling onto the first one. Only ``clusters`` (those on the working mesh) are
    assigned; the others get site 0 and are never asked."""
    serving = [0] * n_clusters
    if len(sites) == 1:
        return serving
    dist = {c: [mesh.hops(s, c) for s in sites] for c in clusters}
    load = [0] * len(sites)
    for c in sorted(clusters, key=lambda c: (min(dist[c]), c)):
        near = min(dist[c])
        i = min((i for i, d in enumerate(dist[c]) if d == near), key=lambda i: (load[i], i))
        serving[c] = i
        load[i] += 1
    return serving


class Chip:
    """All units of one architecture, with dead units (defects) marked."""

    def __init__(self, arch: ArchSpec) -> None:
        self.arch = arch
        self.n_clusters = arch.n_clusters
        per_tbu = arch.tbu.peas
        dead_tbus, dead_peas, dead_routers = resolve_defects(arch)
        # A cluster cut off from the main part of the mesh is as good as one with a dead router.
        self.dead_routers = dead_routers
        self.cut_off = cut_off_clusters(arch.grid.rows, arch.grid.cols, dead_routers)
        off_mesh = dead_routers | self.cut_off
        self.tbus: list[TBU] = []
        self.cluster_tbus: list[list[TBU]] = []
        for c in range(self.n_clusters):
            members = []
            for local in range(arch.cluster.tbus):
                tid = c * arch.cluster.tbus + local
                peas = [tid * per_tbu + j for j in range(per_tbu)
                        if tid * per_tbu + j not in dead_peas]
                tbu = TBU(tid, c, local, peas)
                tbu.alive = tid not in dead_tbus and bool(peas) and c not in off_mesh
                self.tbus.append(tbu)
                members.append(tbu)
            self.cluster_tbus.append(members)
        self.alive_clusters = [c for c in range(self.n_clusters)
                               if c not in off_mesh and any(t.alive for t in
                                                                self.cluster_tbus[c])]
        self.mesh = Mesh(arch.grid.rows, arch.grid.cols, arch.noc.hop_cycles,
                         arch.noc.link_bytes_per_cycle, self.dead_routers)
        rows, cols = arch.grid.rows, arch.grid.cols
        # Memory controllers: their sites (clusters whose router they hang off), one channel
        # each; ``memory_of[c]`` serves cluster ``c``, ``memory_hops[c]`` routers away.
        sites = (edge_clusters(rows, cols) if arch.memory.controllers == "edge"
                 else list(range(self.n_clusters)))
        sites = [c for c in sites if c not in off_mesh] or [
            c for c in range(self.n_clusters) if c not in off_mesh][:1] or [0]
        self.memories = [MemoryChannel(arch.memory.bytes_per_cycle) for _ in sites]
        self.memory_sites = sites
        on_mesh = [c for c in range(self.n_clusters) if c not in off_mesh]  # may be none:
        # then the simulation refuses the chip (no working cluster)
        serving = assign_nearest(self.mesh, sites, on_mesh, self.n_clusters)
        self.memory_of = [self.memories[i] for i in serving]
        reach = set(on_mesh)
        self.memory_hops = [self.mesh.hops(sites[i], c) if c in reach else 0
                            for c, i in enumerate(serving)]
        self.memory = self.memories[0]  # the one channel of a single-cluster chip
        self.memory_bytes_per_cycle = arch.memory.bytes_per_cycle * len(sites)
        # Where instances enter (I/O clusters; those alive are used).
        placement = arch.io.placement
        if placement == "edge":
            self.io_clusters = edge_clusters(rows, cols)
        elif placement == "uniform":
            self.io_clusters = list(range(self.n_clusters))
        else:
            self.io_clusters = sorted(set(placement))

    @property
    def memory_bytes_moved(self) -> int:
        return sum(m.bytes_moved for m in self.memories)

    @property
    def alive_peas(self) -> int:
        return sum(t.n_peas for t in self.tbus if t.alive)
