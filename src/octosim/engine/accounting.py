"""Where PEA time goes, and the per-task statistics of a run.

PEA time is split by what the PEAs do. *Busy* time is summed per run when it ends (k PEAs
from its start to its end, with later grants from when they were granted), so the hot path
does no time integration. The rarer states -- blocked by back-pressure, reconfiguring,
unbound, dead -- are integrated at each change: :meth:`Accounting.integrate` must be called
before any of their counts changes. Inside a run, the time its PEAs wait for a context load or
for their input is counted apart (``setup_*``), since they do not compute then, and so is the
time they wait for weight bytes after their compute is done (``stall``). Setup and stall are
booked when a run starts (and corrected when it grows, is delayed by a context fetch, or is
aborted), so ``busy - setup - stall`` is exactly the PEA time spent computing.
"""

from __future__ import annotations

import math


class Accounting:
    """PEA-cycle areas, task statistics and the terms of the lower bound."""

    __slots__ = ("acc_t", "blocked_peas", "reconfig_peas", "unbound_peas", "dead_peas",
                 "busy_peas", "area_busy", "area_blocked", "area_reconfig", "area_unbound",
                 "area_dead", "area_setup_reconfig", "area_setup_transfer", "area_stall",
                 "task_count", "task_wait", "task_service", "task_compute", "task_stall",
                 "reexec_count", "total_work", "total_streamed",
                 "lower_bound_cp")

    def __init__(self, n_types: int, unbound_peas: int) -> None:
        self.acc_t = 0
        self.busy_peas = 0  # PEAs held by runs now (a count; their area is summed per run)
        self.blocked_peas = 0
        self.reconfig_peas = 0
        self.unbound_peas = unbound_peas
        self.dead_peas = 0
        self.area_busy = 0
        self.area_blocked = 0
        self.area_reconfig = 0
        self.area_unbound = 0
        self.area_dead = 0
        self.area_setup_reconfig = 0  # PEA-cycles inside runs loading a context
        self.area_setup_transfer = 0  # PEA-cycles inside runs waiting for their input
        self.area_stall = 0  # PEA-cycles inside runs whose compute is done, waiting for bytes
        self.task_count = [0] * n_types
        self.task_wait = [0] * n_types
        self.task_service = [0] * n_types  # cycles from start to end: setup+compute+stall
        self.task_compute = [0] * n_types  # cycles from service start until compute is done
        self.task_stall = [0] * n_types  # cycles from then until the weight stream is done
        self.reexec_count = [0] * n_types
        self.total_work = 0  # PEA-cycles at best efficiency (one PEA per run)
        self.total_streamed = 0  # bytes every run must stream at least (weights beyond a TBU)
        self.lower_bound_cp = 0  # latest arrival + critical path at maximum parallelism

    def integrate(self, now: int) -> None:
        """Add the rare states' PEA time up to ``now`` (call before changing their counts)."""
        dt = now - self.acc_t
        if dt:
            self.area_blocked += self.blocked_peas * dt
            self.area_reconfig += self.reconfig_peas * dt
            self.area_unbound += self.unbound_peas * dt
            self.area_dead += self.dead_peas * dt
            self.acc_t = now

    def lower_bound(self, alive_peas: int, memory_bytes_per_cycle: float) -> int:
        """The largest of: total PEA-work / PEAs; the weights every run must stream / memory
        bandwidth; latest arrival + critical path at maximum parallelism (each run at its
        widest grant, streaming at full memory bandwidth)."""
        work_bound = math.ceil(self.total_work / max(1, alive_peas))
        mem_bound = math.ceil(self.total_streamed / memory_bytes_per_cycle)
        return max(work_bound, mem_bound, self.lower_bound_cp)
