"""Run-time state of the chip: TBUs with their PEAs, clusters, the mesh NoC, the memory channel.

Built from an :class:`~octosim.model.arch.ArchSpec`. Nothing here scans every unit per event:
each operation touches the units it names (a transfer touches the links on its XY route).
"""

from __future__ import annotations

import math

from octosim.model.arch import ArchSpec

UNBOUND = -1
MIXED = -2  # PEAs of the TBU hold contexts of different types (indiscriminate sharing)


class TBU:
    """A Task Block Unit: PEAs bound together to one TB type."""

    __slots__ = ("id", "cluster", "local", "free", "n_peas", "busy", "blocked", "bound",
                 "reconfiguring", "loading", "alive", "running", "prefetch_task",
                 "prefetch_done")

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

    def __repr__(self) -> str:
        return f"TBU({self.id}, cluster={self.cluster}, bound={self.bound}, free={len(self.free)})"


class Mesh:
    """2-D mesh NoC with XY routing; each directed link is a FIFO resource (contention)."""

    __slots__ = ("rows", "cols", "hop_cycles", "bytes_per_cycle", "link_free_at", "link_busy",
                 "bytes_moved", "transfers")

    def __init__(self, rows: int, cols: int, hop_cycles: int, bytes_per_cycle: float) -> None:
        self.rows, self.cols = rows, cols
        self.hop_cycles = hop_cycles
        self.bytes_per_cycle = bytes_per_cycle
        self.link_free_at: dict[tuple[int, int], int] = {}
        self.link_busy: dict[tuple[int, int], int] = {}
        self.bytes_moved = 0
        self.transfers = 0

    def hops(self, src: int, dst: int) -> int:
        sr, sc = divmod(src, self.cols)
        dr, dc = divmod(dst, self.cols)
        return abs(sr - dr) + abs(sc - dc)

    def route(self, src: int, dst: int) -> list[tuple[int, int]]:
        """Links (from node, to node) on the XY route: first along the row, then the column."""
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
    short bursts with priority: they are served one after another among themselves, and each
    pushes the stream queue back by its own duration (preemptive priority), so a context never
    waits behind long weight streams. Bytes are conserved: the channel never carries more than
    its bandwidth.
    """

    __slots__ = ("bytes_per_cycle", "free_at", "stream_free_at", "bytes_moved", "busy_cycles")

    def __init__(self, bytes_per_cycle: float) -> None:
        self.bytes_per_cycle = bytes_per_cycle
        self.free_at = 0  # fetch queue
        self.stream_free_at = 0  # stream queue
        self.bytes_moved = 0
        self.busy_cycles = 0

    def fetch(self, nbytes: int, now: int) -> int:
        """Queue a context fetch of ``nbytes`` at ``now``; return the cycle it completes."""
        if nbytes <= 0:
            return now
        dur = math.ceil(nbytes / self.bytes_per_cycle)
        start = max(now, self.free_at)
        self.free_at = start + dur
        if self.stream_free_at > start:
            self.stream_free_at += dur  # streams in progress yield to the fetch
        self.bytes_moved += nbytes
        self.busy_cycles += dur
        return self.free_at

    def stream(self, nbytes: int, start: int) -> int:
        """Queue a weight stream of ``nbytes`` from ``start``; return when it completes."""
        if nbytes <= 0:
            return start
        dur = math.ceil(nbytes / self.bytes_per_cycle)
        begin = max(start, self.stream_free_at, self.free_at)
        self.stream_free_at = begin + dur
        self.bytes_moved += nbytes
        self.busy_cycles += dur
        return self.stream_free_at


class Chip:
    """All units of one architecture, with dead units (defects) marked."""

    def __init__(self, arch: ArchSpec) -> None:
        self.arch = arch
        self.n_clusters = arch.n_clusters
        per_tbu = arch.tbu.peas
        dead_tbus = set(arch.defects.dead_tbus)
        dead_peas = set(arch.defects.dead_peas)
        dead_routers = set(arch.defects.dead_routers)
        self.tbus: list[TBU] = []
        self.cluster_tbus: list[list[TBU]] = []
        for c in range(self.n_clusters):
            members = []
            for local in range(arch.cluster.tbus):
                tid = c * arch.cluster.tbus + local
                peas = [tid * per_tbu + j for j in range(per_tbu)
                        if tid * per_tbu + j not in dead_peas]
                tbu = TBU(tid, c, local, peas)
                tbu.alive = tid not in dead_tbus and bool(peas) and c not in dead_routers
                self.tbus.append(tbu)
                members.append(tbu)
            self.cluster_tbus.append(members)
        self.alive_clusters = [c for c in range(self.n_clusters)
                               if c not in dead_routers and any(t.alive for t in
                                                                self.cluster_tbus[c])]
        self.mesh = Mesh(arch.grid.rows, arch.grid.cols, arch.noc.hop_cycles,
                         arch.noc.link_bytes_per_cycle)
        self.memory = MemoryChannel(arch.memory.bytes_per_cycle)

    @property
    def alive_peas(self) -> int:
        return sum(t.n_peas for t in self.tbus if t.alive)
