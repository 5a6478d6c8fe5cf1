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
                 "lower_bound_cp",
                 # the lower bound's context-load terms, set by the simulation
                 "context_ready_cycles", "context_bytes", "streams_weights",
                 "reconfig_fixed_cycles")

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
        # Per type: the earliest cycle its context can be ready anywhere (the fixed cost plus
        # one fetch from cycle 0), its context bytes, whether its runs stream weights.
        self.context_ready_cycles = [0] * n_types
        self.context_bytes = [0] * n_types
        self.streams_weights = [False] * n_types
        self.reconfig_fixed_cycles = 0

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
        """A makespan no schedule can beat, under any policy: the largest of

        - *work*: ``E + ceil(total PEA-work / PEAs)``;
        - *memory*: ``E_s + ceil(weights every run must stream / memory bandwidth)``;
        - *contexts*: ``ceil(context bytes of the types that ran / memory bandwidth)`` plus
          ``reconfig.fixed_cycles``;
        - *critical path*: the largest of ``max(arrival, E_0) + critical path at maximum
          parallelism`` over instances (each run at its widest grant, streaming at full memory
          bandwidth; gathered as instances finish, in ``lower_bound_cp``, with ``E_0`` the
          least ready time over all the workflow's types, whichever an instance runs),

        where ``E`` (``E_s``) is the earliest cycle at which a context of a type that ran
        (that ran and streams weights) can be ready: ``reconfig.fixed_cycles +
        ceil(context bytes / bandwidth)``, the least over those types.

        Why each holds. Every TBU and every PEA starts holding no context, and no policy
        action binds one for free: a run computes only on PEAs whose context was loaded by
        ``bind`` (the fixed cost after a fetch over the memory channel, or after a prefetch,
        itself such a fetch) or by ``start_any`` (its own fetch plus the fixed cost), and a
        fetch of ``b`` bytes issued at cycle ``t >= 0`` completes no earlier than
        ``t + ceil(b / bandwidth)``. So no run of type ``T`` starts its service before
        ``E_T``, nor any run before ``E``; a run's compute and its weight stream both lie in
        ``[E, makespan]``. Work: compute takes at least a run's one-PEA work in PEA-cycles
        (k PEAs speed a run up at most k-fold), and ``alive_peas`` PEAs offer at most
        ``alive_peas * (makespan - E)`` of them after ``E``. Memory: streams are served one
        after another, the first beginning no earlier than ``E_s``. Contexts: every type that
        ran had its context fetched at least once, fetches are served one after another, and
        the last of those first fetches is followed by the fixed cost before a run can start.
        Critical path: an instance's first run on any chain starts no earlier than its
        arrival nor than ``E_0``. Reconfigurations beyond each type's first are the policy's
        choice (a static partition makes none), so they are not counted. Faults only re-run
        work (the bound counts each run once) and kill PEAs (``alive_peas`` is the count at
        cycle 0); a run cut short by ``max_events`` is no completed schedule.

        The context terms only count for types with a started run (``task_count``), so with
        no run at all the bound is the plain work / memory / critical-path one.
        """
        ran = [i for i, c in enumerate(self.task_count) if c]
        ready = [self.context_ready_cycles[i] for i in ran]
        first = min(ready, default=0)
        work_bound = math.ceil(self.total_work / max(1, alive_peas))
        if ran:
            work_bound += first
        mem_bound = math.ceil(self.total_streamed / memory_bytes_per_cycle)
        if mem_bound:
            mem_bound += min((r for i, r in zip(ran, ready, strict=True)
                              if self.streams_weights[i]), default=0)
        ctx_bound = 0
        if ran:
            ctx_bound = (math.ceil(sum(self.context_bytes[i] for i in ran)
                                   / memory_bytes_per_cycle) + self.reconfig_fixed_cycles)
        return max(work_bound, mem_bound, ctx_bound, self.lower_bound_cp)
