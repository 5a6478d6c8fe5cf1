"""The discrete-event core: a heap keyed by (cycle, priority, sequence) and the loop.

Time jumps from event to event (no per-cycle stepping) and ties are deterministic: at one
cycle, completions come first (they free resources), then finished reconfigurations, delayed
readiness, arrivals, policy timers and faults; within a priority, insertion order. Arrivals
are not kept in the heap: the next one is a single cycle, compared with the heap's top.

A watchdog ends a run that makes no progress (no task started and no arrival for
``watchdog_events`` events, with time standing still or only timers left) with a clear error,
after letting a producer held by back-pressure spill its output.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from octosim.engine.entities import MAX_CYCLE, too_late
from octosim.engine.events import EventKind

if TYPE_CHECKING:
    from octosim.engine.sim import Simulation

COMPLETE = int(EventKind.COMPLETE)
BOUND = int(EventKind.BOUND)
READY = int(EventKind.READY)
ARRIVAL = int(EventKind.ARRIVAL)
TIMER = int(EventKind.TIMER)
FAULT = int(EventKind.FAULT)
NO_ARRIVAL = 1 << 63  # later than any event
WATCHDOG_EVENTS = 1_000_000  # events in a row with no task started and no arrival
CHECK_EVERY = 65536  # events between watchdog looks


class EventLoop:
    """The heap of ``(cycle, priority, sequence, kind, payload)``."""

    __slots__ = ("heap", "seq")

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, int, int, Any]] = []
        self.seq = 0

    def schedule(self, at: int, kind: int, payload: Any) -> None:
        """An event of ``kind`` (its priority) at cycle ``at``."""
        if at >= MAX_CYCLE:
            raise too_late(at)
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, kind, payload))

    def only_timers(self) -> bool:
        return not any(e[3] != TIMER for e in self.heap)


def drive(sim: Simulation, max_events: int | None, watchdog_events: int) -> int:
    """Run ``sim``'s events until every instance is done (or ``max_events``); return the
    number of events processed. The hot loop: locals only, one branch per event kind."""
    loop = sim.loop
    heap = loop.heap
    pop = heapq.heappop
    ready_now = sim.ready_now
    policy_ready = sim.policy_ready
    complete = sim.complete
    arrive = sim.arrive
    stop_at = max_events if max_events is not None else 1 << 62
    n_instances = sim.wf.count
    stale = sim.faults_in.stale
    events = 0
    check_at = CHECK_EVERY
    progress_seen = -1
    idle_since = 0
    idle_now = 0
    while True:
        t_arr = sim.next_arrival
        if heap and (heap[0][0] < t_arr or (heap[0][0] == t_arr and heap[0][1] < ARRIVAL)):
            t, _, _, kind, payload = pop(heap)
            sim.now = t
            events += 1
            if kind == COMPLETE:
                if payload.end_at != t:
                    continue  # superseded: the run was grown and ends earlier
                if stale and (payload.seq, t) in stale:
                    stale.discard((payload.seq, t))
                    continue  # the attempt that a fault aborted
                complete(payload)
                while ready_now:
                    policy_ready(ready_now.popleft())
                if sim.instances_done == n_instances or events >= stop_at:
                    break
                if events < check_at:
                    continue
            elif kind == READY:
                policy_ready(payload)
            elif kind == BOUND:
                sim.bound(*payload)
            elif kind == FAULT:
                sim.faults_in.apply(payload)
            else:
                payload()
        elif t_arr != NO_ARRIVAL:
            t = sim.now = t_arr
            events += 1
            arrive()
        else:
            if sim.instances_done < n_instances and sim.spill():
                while ready_now:
                    policy_ready(ready_now.popleft())
                continue
            break
        while ready_now:
            policy_ready(ready_now.popleft())
        if events >= stop_at or sim.instances_done == n_instances:
            break
        if events >= check_at:
            check_at += CHECK_EVERY
            if sim.progress != progress_seen:
                progress_seen = sim.progress
                idle_since = events
                idle_now = t
            elif events - idle_since >= watchdog_events and (
                t == idle_now or (sim.next_arrival == NO_ARRIVAL and loop.only_timers())
            ):
                # Only timers left, or time stands still: nothing will ever progress unless a
                # producer held by back-pressure lets go of its PEAs.
                if sim.spill():
                    idle_since = events
                    while ready_now:
                        policy_ready(ready_now.popleft())
                    continue
                sim.events = events
                sim.stuck(f"{events - idle_since} events without progress")
    return events
