"""Manufacturing defects: which units of a chip are dead, and routing around dead routers.

A defect map is a property of the chip, not of a run: :func:`resolve_defects` draws it from
``arch.defects.seed`` alone, with numpy Generators of its own (never the global random state,
never the run's seed), so every policy and every run seed sees the same wafer. Sampling rules
are in docs/hardware.md ("Defects").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from octosim.errors import UserError
from octosim.model.arch import ArchSpec

if TYPE_CHECKING:
    from octosim.hardware.chip import Chip

__all__ = ["DetourRoutes", "check_workable", "cut_off_clusters", "resolve_defects"]

# One independent stream per kind of unit, so that changing one fraction leaves the units
# drawn for the other kinds as they were.
_ROUTERS, _TBUS, _PEAS = 0, 1, 2


def _draw(seed: int, kind: int, n_units: int, fraction: float) -> set[int]:
    """``round(fraction * n_units)`` distinct unit indices, uniformly at random."""
    count = round(fraction * n_units)
    if count <= 0:
        return set()
    rng = np.random.default_rng([seed, kind])
    return set(rng.choice(n_units, size=count, replace=False).tolist())


def resolve_defects(arch: ArchSpec) -> tuple[set[int], set[int], set[int]]:
    """The dead ``(tbus, peas, routers)`` of ``arch``: the units its defect lists name, united
    with ``round(fraction * units)`` distinct units of each kind drawn from ``defects.seed``.
    Each kind is drawn over all units of the chip, independently of the others (a drawn PEA
    may lie in a TBU that is dead anyway)."""
    d = arch.defects
    dead_tbus = set(d.dead_tbus) | _draw(d.seed, _TBUS, arch.n_tbus, d.dead_tbu_fraction)
    dead_peas = set(d.dead_peas) | _draw(d.seed, _PEAS, arch.n_peas, d.dead_pea_fraction)
    dead_routers = set(d.dead_routers) | _draw(d.seed, _ROUTERS, arch.n_clusters,
                                               d.dead_router_fraction)
    return dead_tbus, dead_peas, dead_routers


def _neighbours(node: int, rows: int, cols: int) -> list[int]:
    """Mesh neighbours of ``node``: east, west, south, north (a fixed order, for ties)."""
    r, c = divmod(node, cols)
    out = []
    if c + 1 < cols:
        out.append(node + 1)
    if c > 0:
        out.append(node - 1)
    if r + 1 < rows:
        out.append(node + cols)
    if r > 0:
        out.append(node - cols)
    return out


def cut_off_clusters(rows: int, cols: int, dead_routers: set[int]) -> set[int]:
    """Clusters whose router works but cannot reach the largest connected set of working
    routers (ties: the set holding the lowest cluster id). Their work could never reach
    the rest of the chip, so the chip treats them as dead."""
    seen = set(dead_routers)
    best: list[int] = []
    comps: list[list[int]] = []
    for start in range(rows * cols):
        if start in seen:
            continue
        seen.add(start)
        comp = [start]
        queue = deque([start])
        while queue:
            for nb in _neighbours(queue.popleft(), rows, cols):
                if nb not in seen:
                    seen.add(nb)
                    comp.append(nb)
                    queue.append(nb)
        comps.append(comp)
        if len(comp) > len(best):
            best = comp
    return {c for comp in comps if comp is not best for c in comp}


class DetourRoutes:
    """Shortest routes on the mesh of working routers, for a chip with dead routers.

    A route is a shortest path on the graph of working routers (breadth-first distances to the
    destination). Ties are broken as XY routing would: a step along the row towards the
    destination first, then along the column, then the other directions (east, west, south,
    north); so a route that no dead router is in the way of is exactly the XY route. Distances
    are kept per destination and routes per (source, destination)."""

    __slots__ = ("rows", "cols", "dead", "_dist", "_routes")

    def __init__(self, rows: int, cols: int, dead_routers: set[int]) -> None:
        self.rows, self.cols = rows, cols
        self.dead = frozenset(dead_routers)
        self._dist: dict[int, list[int]] = {}
        self._routes: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def _distances(self, dst: int) -> list[int]:
        dist = self._dist.get(dst)
        if dist is None:
            dist = [-1] * (self.rows * self.cols)
            if dst not in self.dead:
                dist[dst] = 0
                queue = deque([dst])
                while queue:
                    u = queue.popleft()
                    for nb in _neighbours(u, self.rows, self.cols):
                        if dist[nb] < 0 and nb not in self.dead:
                            dist[nb] = dist[u] + 1
                            queue.append(nb)
            self._dist[dst] = dist
        return dist

    def route(self, src: int, dst: int) -> list[tuple[int, int]]:
        """Links (from node, to node) from ``src`` to ``dst``; the cached list (do not modify).
        Raises ValueError if no working path joins them (the chip never routes there: a
        cluster cut off from the others is dead)."""
        key = (src, dst)
        links = self._routes.get(key)
        if links is not None:
            return links
        dist = self._distances(dst)
        if dist[src] < 0:
            raise ValueError(f"no route from cluster {src} to cluster {dst} "
                             "over working routers")
        cols = self.cols
        dr, dc = divmod(dst, cols)
        links = []
        u = src
        while u != dst:
            r, c = divmod(u, cols)
            prefer: list[int] = []
            if c != dc:
                prefer.append(u + (1 if dc > c else -1))
            if r != dr:
                prefer.append(u + (cols if dr > r else -cols))
            want = dist[u] - 1
            nxt = next(v for v in (*prefer, *_neighbours(u, self.rows, cols)) if dist[v] == want)
            links.append((u, nxt))
            u = nxt
        self._routes[key] = links
        return links


def check_workable(chip: Chip, kmins: Sequence[int], names: Sequence[str]) -> None:
    """Raise :class:`UserError` (``where="defects"``) if the workflow cannot run on what the
    defects left of ``chip``: no working cluster, or a task type (at least ``kmins[i]`` PEAs
    on one TBU, named ``names[i]``) that some working cluster has no TBU wide enough for. An
    instance's runs stay on its home cluster unless a policy moves them, and instances are
    homed on every working cluster, so each must be able to run every type."""
    if not chip.alive_clusters:
        dead_tbus = sum(1 for t in chip.tbus if not t.alive)
        raise UserError(
            f"no working cluster left: {dead_tbus} of {len(chip.tbus)} TBUs dead, "
            f"{len(chip.dead_routers)} of {chip.n_clusters} routers dead, "
            f"{len(chip.cut_off)} clusters cut off", where="defects")
    need = max(kmins, default=0)
    if need <= 1:
        return  # every working TBU has a PEA
    per_tbu = chip.arch.tbu.peas
    widest = {c: max(t.n_peas for t in chip.cluster_tbus[c] if t.alive)
              for c in chip.alive_clusters}
    best = max(widest.values())
    for kmin, name in zip(kmins, names, strict=True):
        short = [c for c in chip.alive_clusters if widest[c] < kmin]
        if not short:
            continue
        if kmin > best:
            what = f"the widest working TBU has {best} of {per_tbu} after defects"
        else:
            c = short[0]
            what = (f"cluster {c}, where instances are placed, has at most {widest[c]} of "
                    f"{per_tbu} on a working TBU after defects")
        raise UserError(f"task {name!r} needs at least {kmin} PEAs on one TBU, but {what}",
                        where="defects")
