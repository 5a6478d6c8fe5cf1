"""Stage buffers and back-pressure between producers and consumers.

With ``policy.buffer_slots > 0`` each TBU has that many input slots, so a TB type (stage) has
``buffer_slots`` times the TBUs bound to it (at least one TBU's worth). A run occupies a slot
from when its producer deposits it until it starts. A producer whose successor finds the slots
full keeps its PEAs (``blocked``) until the successor gets one. Only forward edges (to a later
stage in flow order) are bounded; edges back to earlier stages (loops) are not. When each TBU
serves one stage (static, reactive) blocking cannot form a cycle. When PEAs are shared between
types (indiscriminate, octopus) the blocked producers can hold every PEA the waiting successor
could use; when nothing else can progress, a blocked producer spills its output past the full
buffer (to memory) and frees its PEAs. Spills are counted in ``spills`` and cost no time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octosim.engine.entities import TaskRun


class Blocked:
    """A producer (None for an arriving instance) whose successors wait for input slots."""

    __slots__ = ("run", "pending")

    def __init__(self, run: TaskRun | None) -> None:
        self.run = run
        self.pending: dict[int, deque[TaskRun]] = {}


class StageBuffers:
    """Occupancy and capacity of each stage's buffer, and the producers waiting on it.

    ``admit(run)`` makes a run ready (charging control latency: the engine's
    ``make_ready``, which sets ``run.admitted_at``); ``unblock(producer)`` lets a blocked
    producer's PEAs go. A run's *admission wait* is from its release (``run.released_at``: its
    last predecessor completed, or its instance arrived) to its admission."""

    __slots__ = ("slots", "occupancy", "stage_tbus", "held_work", "waiters", "spills", "admit",
                 "unblock", "admission_wait")

    def __init__(self, n_types: int, slots: int, admit: Callable[[TaskRun], None],
                 unblock: Callable[[Blocked], None]) -> None:
        self.slots = slots  # per TBU of a stage; 0 = unbounded
        self.occupancy = [0] * n_types  # runs deposited and not yet started, per stage
        self.stage_tbus = [0] * n_types  # TBUs bound to each type: a stage has slots for each
        self.held_work = [0] * n_types  # work of runs held at their producers
        self.waiters: list[deque[Blocked]] = [deque() for _ in range(n_types)]
        self.spills = 0
        # Per stage: cycles its runs waited for a slot (from release to admission). Runs
        # admitted at once (in ``deposit``) add nothing, so only late admissions book it.
        self.admission_wait = [0] * n_types
        self.admit = admit
        self.unblock = unblock

    def capacity(self, idx: int) -> int:
        n = self.stage_tbus[idx]
        return self.slots * (n if n > 1 else 1)

    def deposit(self, producer: TaskRun | None, runs: list[TaskRun]) -> bool:
        """Hand new runs to their stages; return True if the producer must block."""
        occ = self.occupancy
        admit = self.admit
        if not self.slots:  # unbounded stages: nothing blocks
            for run in runs:
                occ[run.tt.idx] += 1
                admit(run)
            return False
        blocked: Blocked | None = None
        prank = producer.tt.rank if producer is not None else -1
        for run in runs:
            idx = run.tt.idx
            if run.tt.rank > prank and (occ[idx] >= self.capacity(idx) or self.waiters[idx]):
                if blocked is None:
                    blocked = Blocked(producer)
                q = blocked.pending.get(idx)
                if q is None:
                    q = blocked.pending[idx] = deque()
                    self.waiters[idx].append(blocked)
                q.append(run)
                self.held_work[idx] += run.work
                continue
            occ[idx] += 1
            admit(run)
        return blocked is not None

    def wake(self, idx: int) -> None:
        """Slots of stage ``idx`` freed: admit the runs held at its waiting producers."""
        occ = self.occupancy
        waiters = self.waiters[idx]
        cap = self.capacity(idx)
        while waiters and occ[idx] < cap:
            w = waiters[0]
            q = w.pending[idx]
            run = q.popleft()
            self.held_work[idx] -= run.work
            occ[idx] += 1
            self.admit(run)
            self.admission_wait[idx] += run.admitted_at - run.released_at
            if not q:
                del w.pending[idx]
                waiters.popleft()
                if not w.pending:
                    self.unblock(w)

    def spill(self) -> bool:
        """Break a back-pressure deadlock: a blocked producer (the first in stage order) hands
        its held runs on past the full buffers and frees its PEAs. False if none holds PEAs."""
        w = next((b for ws in self.waiters for b in ws
                  if b.run is not None and b.run.tbu is not None and b.run.tbu.alive), None)
        if w is None:
            return False  # only arrivals are held: no PEAs to free
        for idx, q in list(w.pending.items()):
            self.waiters[idx].remove(w)
            while q:
                run = q.popleft()
                self.held_work[idx] -= run.work
                self.occupancy[idx] += 1
                self.admit(run)
                self.admission_wait[idx] += run.admitted_at - run.released_at
        w.pending.clear()
        self.spills += 1
        self.unblock(w)
        return True

    def held(self, idx: int) -> int:
        """Runs of stage ``idx`` held at their producers."""
        return sum(len(w.pending.get(idx, ())) for w in self.waiters[idx])
