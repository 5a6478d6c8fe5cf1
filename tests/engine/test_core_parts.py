"""The event core's parts through their own interfaces: the heap's ordering, the stage
buffers' admission and back-pressure, the PEA-time accounting and the lower bound."""

from __future__ import annotations

import heapq
import math
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octosim.engine.accounting import Accounting
from octosim.engine.backpressure import Blocked, StageBuffers
from octosim.engine.core import ARRIVAL, BOUND, COMPLETE, READY, TIMER, EventLoop
from octosim.engine.entities import MAX_CYCLE
from octosim.errors import UserError


@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from([COMPLETE, BOUND, READY, TIMER])),
                max_size=60))
def test_events_pop_by_cycle_then_priority_then_insertion(items: list[tuple[int, int]]) -> None:
    loop = EventLoop()
    for i, (at, kind) in enumerate(items):
        loop.schedule(at, kind, i)
    popped = [heapq.heappop(loop.heap) for _ in range(len(items))]
    order = [e[4] for e in popped]
    expected = sorted(range(len(items)), key=lambda i: (items[i][0], items[i][1], i))
    assert order == expected


def test_an_event_past_the_end_of_time_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="would pass cycle"):
        EventLoop().schedule(MAX_CYCLE, TIMER, None)


def test_only_timers_left() -> None:
    loop = EventLoop()
    assert loop.only_timers()
    loop.schedule(5, TIMER, None)
    assert loop.only_timers()
    loop.schedule(7, READY, None)
    assert not loop.only_timers()
    assert ARRIVAL not in (COMPLETE, BOUND, READY, TIMER)  # arrivals never enter the heap


def _run(idx: int, rank: int, work: int = 10) -> Any:
    return SimpleNamespace(tt=SimpleNamespace(idx=idx, rank=rank), work=work, tbu=None,
                           released_at=0, admitted_at=0)


class _Stages:
    def __init__(self, slots: int) -> None:
        self.admitted: list[Any] = []
        self.unblocked: list[Blocked] = []
        self.buf = StageBuffers(2, slots, self.admitted.append, self.unblocked.append)
        self.buf.stage_tbus[:] = [1, 1]


def test_unbounded_stages_admit_everything_at_once() -> None:
    s = _Stages(0)
    runs = [_run(1, 1) for _ in range(50)]
    assert s.buf.deposit(_run(0, 0), runs) is False
    assert s.admitted == runs
    assert s.buf.occupancy == [0, 50]


def test_a_full_stage_blocks_its_producer_until_a_slot_frees() -> None:
    s = _Stages(2)
    producer = _run(0, 0)
    first = [_run(1, 1), _run(1, 1)]
    assert s.buf.deposit(producer, first) is False
    held = [_run(1, 1, work=7), _run(1, 1, work=5)]
    assert s.buf.deposit(producer, held) is True  # the stage holds 2 per TBU
    assert s.buf.held_work[1] == 12 and s.buf.held(1) == 2
    # A run of stage 1 starts: its slot goes to the first held run, in order.
    s.buf.occupancy[1] -= 1
    s.buf.wake(1)
    assert s.admitted[-1] is held[0] and not s.unblocked
    s.buf.occupancy[1] -= 1
    s.buf.wake(1)
    assert s.admitted[-1] is held[1]
    assert len(s.unblocked) == 1 and s.unblocked[0].run is producer
    assert s.buf.held_work[1] == 0


def test_edges_back_to_an_earlier_stage_are_not_bounded() -> None:
    s = _Stages(1)
    s.buf.occupancy[0] = 5  # stage 0 far over its capacity
    assert s.buf.deposit(_run(1, 1), [_run(0, 0)]) is False  # a loop back: admitted anyway


def test_spill_frees_the_first_blocked_producer_holding_peas() -> None:
    s = _Stages(1)
    s.buf.occupancy[1] = 1
    producer = _run(0, 0)
    producer.tbu = SimpleNamespace(alive=True)
    assert s.buf.deposit(producer, [_run(1, 1), _run(1, 1)]) is True
    assert s.buf.spill() is True
    assert s.buf.spills == 1 and len(s.admitted) == 2 and s.unblocked[0].run is producer
    assert s.buf.spill() is False  # nothing left to spill


def test_accounting_integrates_the_rare_states_between_changes() -> None:
    acct = Accounting(1, unbound_peas=8)
    acct.integrate(10)  # 8 unbound for 10 cycles
    acct.unbound_peas -= 4
    acct.reconfig_peas += 4
    acct.integrate(25)
    acct.reconfig_peas -= 4
    acct.blocked_peas += 2
    acct.integrate(30)
    assert (acct.area_unbound, acct.area_reconfig, acct.area_blocked) == (80 + 60 + 20, 60, 10)


@given(work=st.integers(0, 10**9), peas=st.integers(1, 4096), streamed=st.integers(0, 10**9),
       bw=st.floats(0.001, 1e6), cp=st.integers(0, 10**9))
def test_the_lower_bound_is_the_largest_term(work: int, peas: int, streamed: int, bw: float,
                                             cp: int) -> None:
    acct = Accounting(1, 0)
    acct.total_work, acct.total_streamed, acct.lower_bound_cp = work, streamed, cp
    terms = (math.ceil(work / peas), math.ceil(streamed / bw), cp)
    assert acct.lower_bound(peas, bw) == max(terms)
