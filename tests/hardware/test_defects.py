"""Manufacturing defects: resolving ``arch.defects`` into dead units, and the NoC routing around
dead routers (docs/hardware.md, "Defects")."""

from __future__ import annotations

import random
from typing import Any

import pytest

from octosim.errors import UserError
from octosim.hardware.chip import Chip, Mesh
from octosim.hardware.defects import resolve_defects
from octosim.model.arch import ArchSpec, parse_arch


def arch(rows: int = 8, cols: int = 8, tbus: int = 16, peas: int = 16,
         **defects: Any) -> ArchSpec:
    return parse_arch({"arch": 1, "name": "t", "grid": {"rows": rows, "cols": cols},
                       "cluster": {"tbus": tbus}, "tbu": {"peas": peas},
                       "defects": defects}, "t.yaml")


# --- resolution -------------------------------------------------------------------------------


def test_fractions_give_round_fraction_times_units_distinct_dead_units() -> None:
    a = arch(dead_tbu_fraction=0.05, dead_pea_fraction=0.013, dead_router_fraction=0.02)
    tbus, peas, routers = resolve_defects(a)
    assert len(tbus) == round(0.05 * 1024) == 51
    assert len(peas) == round(0.013 * 16384) == 213
    assert len(routers) == round(0.02 * 64) == 1
    assert all(0 <= t < 1024 for t in tbus) and all(0 <= p < 16384 for p in peas)
    assert all(0 <= r < 64 for r in routers)


def test_no_fraction_no_list_no_defect() -> None:
    assert resolve_defects(arch()) == (set(), set(), set())


def test_same_seed_same_wafer_whatever_else() -> None:
    """A defect map is the chip's: the same seed gives the same one, and the global random
    state plays no part."""
    d = {"dead_tbu_fraction": 0.1, "dead_pea_fraction": 0.05, "dead_router_fraction": 0.1,
         "seed": 7}
    random.seed(1)
    first = resolve_defects(arch(**d))
    random.seed(2)
    import numpy as np

    np.random.seed(3)
    assert resolve_defects(arch(**d)) == first


def test_different_seeds_differ() -> None:
    maps = {repr(sorted(resolve_defects(arch(dead_tbu_fraction=0.1, seed=s))[0]))
            for s in range(5)}
    assert len(maps) == 5


def test_one_fraction_does_not_move_the_units_of_another() -> None:
    base = resolve_defects(arch(dead_tbu_fraction=0.1, seed=3))[0]
    assert resolve_defects(arch(dead_tbu_fraction=0.1, dead_pea_fraction=0.2, seed=3))[0] == base


def test_fractions_are_united_with_the_lists() -> None:
    drawn = resolve_defects(arch(dead_tbu_fraction=0.05, seed=1))[0]
    listed = {0, 5, 1023}
    tbus, _, routers = resolve_defects(
        arch(dead_tbu_fraction=0.05, seed=1, dead_tbus=sorted(listed), dead_routers=[9]))
    assert tbus == drawn | listed
    assert routers == {9}


def test_chip_marks_the_drawn_units_dead() -> None:
    a = arch(rows=2, cols=2, dead_tbu_fraction=0.25, dead_pea_fraction=0.1, seed=4)
    tbus, peas, _ = resolve_defects(a)
    chip = Chip(a)
    for t in chip.tbus:
        expect = {t.id * 16 + j for j in range(16)} - peas
        assert set(t.free) == expect
        assert t.alive == (t.id not in tbus and bool(expect))


@pytest.mark.parametrize("field", ["dead_tbu_fraction", "dead_pea_fraction",
                                   "dead_router_fraction"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 2])
def test_fraction_outside_0_1_is_an_error(field: str, value: float) -> None:
    with pytest.raises(UserError) as err:
        arch(**{field: value})
    assert err.value.file == "t.yaml"
    assert err.value.where == f"defects.{field}"


def test_negative_seed_is_an_error() -> None:
    with pytest.raises(UserError) as err:
        arch(seed=-1)
    assert err.value.where == "defects.seed"


# --- routing ----------------------------------------------------------------------------------


def mesh(rows: int, cols: int, dead: set[int] | None = None) -> Mesh:
    return Mesh(rows, cols, 2, 64.0, dead)


def nodes(links: list[tuple[int, int]], src: int) -> list[int]:
    path = [src]
    for a, b in links:
        assert a == path[-1], "links do not chain"
        path.append(b)
    return path


def is_mesh_step(a: int, b: int, cols: int) -> bool:
    return (abs(a - b) == 1 and a // cols == b // cols) or abs(a - b) == cols


def test_without_dead_routers_routes_are_xy() -> None:
    m = mesh(4, 5)
    assert m.detours is None
    assert m.route(0, 19) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 9), (9, 14), (14, 19)]
    assert m.route(13, 5) == [(13, 12), (12, 11), (11, 10), (10, 5)]
    assert m.hops(13, 5) == 4


def test_detour_routes_are_xy_where_no_dead_router_is_in_the_way() -> None:
    plain, holed = mesh(6, 6), mesh(6, 6, {14})
    compared = 0
    for src in range(36):
        for dst in range(36):
            xy = plain.route(src, dst)
            if src != dst and 14 not in nodes(xy, src):
                assert holed.route(src, dst) == xy, (src, dst)
                compared += 1
    assert compared > 1000


def test_route_detours_around_a_dead_router() -> None:
    # 3x3, the centre (4) dead: 3 -> 5 cannot go straight along the row.
    m = mesh(3, 3, {4})
    links = m.route(3, 5)
    path = nodes(links, 3)
    assert path[-1] == 5 and 4 not in path
    assert len(links) == 4 == m.hops(3, 5)
    # Ties: a step along the row towards 5 is blocked, so east, west, south, north: south
    # first, then east along the bottom row, then north into 5.
    assert path == [3, 6, 7, 8, 5]


def test_routes_avoid_dead_routers_and_are_shortest() -> None:
    rnd = random.Random(11)
    rows, cols = 8, 8
    for _ in range(20):
        dead = set(rnd.sample(range(rows * cols), 8))
        chip = Chip(arch(rows=rows, cols=cols, tbus=1, peas=1, dead_routers=sorted(dead)))
        m = chip.mesh
        alive = chip.alive_clusters
        assert not set(alive) & (dead | chip.cut_off)
        # breadth-first distances on the working routers, independently of the code under test
        for src in alive[:6]:
            dist = {src: 0}
            frontier = [src]
            while frontier:
                nxt = []
                for u in frontier:
                    for v in range(rows * cols):
                        if v not in dead and v not in dist and is_mesh_step(u, v, cols):
                            dist[v] = dist[u] + 1
                            nxt.append(v)
                frontier = nxt
            for dst in alive:
                links = m.route(src, dst)
                path = nodes(links, src)
                assert path[-1] == dst
                assert not set(path) & dead
                assert all(is_mesh_step(a, b, cols) for a, b in links)
                assert len(links) == dist[dst] == m.hops(src, dst)
                assert m.route(src, dst) is links  # cached


def test_transfer_takes_the_detour() -> None:
    m = mesh(3, 3, {4})
    done = m.transfer(3, 5, 640, now=100)
    # 4 hops of 2 cycles, then 10 cycles of serialisation
    assert done == 100 + 4 * 2 + 10
    assert set(m.link_busy) == {(3, 6), (6, 7), (7, 8), (8, 5)}


def test_a_cluster_cut_off_from_the_mesh_is_dead() -> None:
    # 3x3: routers 1 and 3 dead leave cluster 0 alone in its corner.
    chip = Chip(arch(rows=3, cols=3, tbus=2, peas=2, dead_routers=[1, 3]))
    assert chip.cut_off == {0}
    assert 0 not in chip.alive_clusters
    assert not any(t.alive for t in chip.cluster_tbus[0])
    assert chip.alive_clusters == [2, 4, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="no route"):
        chip.mesh.route(0, 8)


def test_of_two_equal_parts_the_one_with_the_lowest_cluster_is_kept() -> None:
    # 1x3: the middle router dead splits it into {0} and {2}.
    chip = Chip(arch(rows=1, cols=3, tbus=1, peas=1, dead_routers=[1]))
    assert chip.cut_off == {2}
    assert chip.alive_clusters == [0]


def test_ties_prefer_steps_towards_the_destination() -> None:
    # 4x4, routers 0 and 5 dead; 13 (row 3, col 1) to 1 (row 0, col 1). Going east first
    # (13 -> 14) is as short as going north first (13 -> 9); north is towards 1, so it wins.
    m = mesh(4, 4, {0, 5})
    assert nodes(m.route(13, 1), 13) == [13, 9, 10, 6, 2, 1]
