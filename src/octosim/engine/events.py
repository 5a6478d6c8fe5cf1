"""Event kinds and priorities of the discrete-event core.

The heap holds ``(cycle, priority, sequence, kind, payload)``: ties in time are broken by
priority, then by insertion order, so runs are deterministic. At one cycle, completions are
handled first (they free resources), then finished reconfigurations, arrivals, then timers.
"""

from __future__ import annotations

from enum import IntEnum


class EventKind(IntEnum):
    COMPLETE = 0  # a task run finished its service
    BOUND = 1  # a TBU finished loading a new context
    READY = 2  # a task run's control/data latency has passed; it can be dispatched
    ARRIVAL = 3  # a workflow instance arrives
    TIMER = 4  # a policy's own timer
    FAULT = 5  # a TBU or cluster fails (``--fault``); its work in flight is re-executed


PRIORITY = {
    EventKind.COMPLETE: 0,
    EventKind.BOUND: 1,
    EventKind.READY: 2,
    EventKind.ARRIVAL: 3,
    EventKind.TIMER: 4,
    EventKind.FAULT: 5,
}
