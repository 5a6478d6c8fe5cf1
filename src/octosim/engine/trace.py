"""Chrome/Perfetto trace of a run (Trace Event Format; opens in ui.perfetto.dev).

Layout (docs/traces.md): one process per cluster, one thread per TBU (named by metadata
events), one complete (``"X"``) event per task execution named after its task type, one per
context load named ``reconfigure TYPE``, and a counter (``"C"``) per cluster with the depth of
its queue of ready runs. ``ts``/``dur`` are microseconds at the arch's clock; the exact cycles
are in each event's ``args``.

Runs share a TBU (each holds some of its PEAs), so a TBU's events may overlap; a viewer needs
the events of one thread to nest, so a TBU whose events overlap gets extra lanes, threads named
``TBU n (lane 2)`` and sorted under it. Lane 0 has ``tid`` = the TBU's global id.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from octosim.engine.sim import Instance, Observer, TaskRun
from octosim.errors import UserError
from octosim.hardware.chip import TBU

MAX_TRACE_EVENTS = 2_000_000
LANE_TID_BASE = 1_000_000  # tid of lane L > 0 of TBU t: LANE_TID_BASE + t * 1000 + L


class TraceObserver(Observer):
    """Records task executions and context loads as cycles; :meth:`write` lays them out."""

    def __init__(self, max_events: int = MAX_TRACE_EVENTS) -> None:
        # (start, end, cluster, tbu, name, cat, args) in cycles.
        self.spans: list[tuple[int, int, int, int, str, str, dict[str, Any]]] = []
        # (ready, start, cluster) of every started run, for the queue-depth counters.
        self.waits: list[tuple[int, int, int]] = []
        self.max_events = max_events
        self.dropped = 0
        self.task_names: list[str] = []
        self.clusters: list[list[tuple[int, int]]] = []  # per cluster: (tbu id, local index)
        self.clock_ghz = 1.0

    @property
    def events(self) -> list[tuple[int, int, int, int, str, str, dict[str, Any]]]:
        """The recorded spans (task runs and context loads), in cycles."""
        return self.spans

    def attached(self, sim: Any) -> None:
        self.task_names = [tt.name for tt in sim.task_types]
        self.clock_ghz = float(sim.arch.clock_ghz)
        self.clusters = [[] for _ in range(sim.chip.n_clusters)]
        for tbu in sim.chip.tbus:
            self.clusters[tbu.cluster].append((tbu.id, tbu.local))

    def task_done(self, run: TaskRun, now: int) -> None:
        if len(self.spans) >= self.max_events:
            self.dropped += 1
            return
        tbu = run.tbu
        assert tbu is not None
        start = run.start_at
        self.spans.append((start, now, tbu.cluster, tbu.id, run.tt.name, "task", {
            "instance": run.inst.id, "peas": run.k, "wait_cycles": start - run.ready_at,
            "start_cycle": start, "end_cycle": now}))
        self.waits.append((run.ready_at, start, tbu.cluster))

    def reconfigured(self, tbu: TBU, task: int, start: int, end: int) -> None:
        if len(self.spans) >= self.max_events:
            self.dropped += 1
            return
        name = self.task_names[task] if 0 <= task < len(self.task_names) else f"type {task}"
        self.spans.append((start, end, tbu.cluster, tbu.id, f"reconfigure {name}", "reconfig",
                           {"task": name, "start_cycle": start, "end_cycle": end}))

    def instance_done(self, inst: Instance, now: int) -> None:
        pass

    def trace_events(self, clock_ghz: float | None = None) -> list[dict[str, Any]]:
        """The trace's events: metadata, spans with lanes, queue-depth counters."""
        ghz = clock_ghz if clock_ghz is not None else self.clock_ghz
        us = 1.0 / (ghz * 1000.0)
        out: list[dict[str, Any]] = []
        lanes_used: dict[int, int] = defaultdict(int)  # tbu id -> lanes
        cluster_of: dict[int, int] = {}
        by_tbu: dict[int, list[int]] = defaultdict(list)
        for i, span in enumerate(self.spans):
            by_tbu[span[3]].append(i)
            cluster_of[span[3]] = span[2]
        for tbu_id, idxs in by_tbu.items():
            # Longest first at equal starts, so a span that contains another is its parent.
            idxs.sort(key=lambda i: (self.spans[i][0], -self.spans[i][1]))
            lane_ends: list[tuple[int, int]] = []  # heap of (end, lane) of busy lanes
            free: list[int] = []  # heap of free lanes
            for i in idxs:
                start, end, cluster, _, name, cat, args = self.spans[i]
                while lane_ends and lane_ends[0][0] <= start:
                    heapq.heappush(free, heapq.heappop(lane_ends)[1])
                lane = heapq.heappop(free) if free else lanes_used[tbu_id]
                lanes_used[tbu_id] = max(lanes_used[tbu_id], lane + 1)
                heapq.heappush(lane_ends, (end, lane))
                out.append({"name": name, "cat": cat, "ph": "X", "ts": start * us,
                            "dur": (end - start) * us, "pid": cluster,
                            "tid": _tid(tbu_id, lane), "args": args})
        meta: list[dict[str, Any]] = []
        for c, tbus in enumerate(self.clusters):
            meta.append({"name": "process_name", "ph": "M", "ts": 0, "pid": c, "tid": 0,
                         "args": {"name": f"cluster {c}"}})
            meta.append({"name": "process_sort_index", "ph": "M", "ts": 0, "pid": c, "tid": 0,
                         "args": {"sort_index": c}})
            for tbu_id, local in tbus:
                for lane in range(max(1, lanes_used.get(tbu_id, 0))):
                    label = f"TBU {tbu_id}" + (f" (lane {lane + 1})" if lane else "")
                    meta.append({"name": "thread_name", "ph": "M", "ts": 0, "pid": c,
                                 "tid": _tid(tbu_id, lane), "args": {"name": label}})
                    meta.append({"name": "thread_sort_index", "ph": "M", "ts": 0, "pid": c,
                                 "tid": _tid(tbu_id, lane),
                                 "args": {"sort_index": local * 1000 + lane}})
        return meta + out + self._queue_counters(us)

    def _queue_counters(self, us: float) -> list[dict[str, Any]]:
        """Depth of each cluster's queue of ready runs (ready, not yet started) over time."""
        deltas: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for ready, start, cluster in self.waits:
            if start > ready:
                deltas[cluster][ready] += 1
                deltas[cluster][start] -= 1
        out: list[dict[str, Any]] = []
        for cluster in sorted(deltas):
            depth = 0
            for t in sorted(deltas[cluster]):
                d = deltas[cluster][t]
                if d == 0:
                    continue
                depth += d
                out.append({"name": "ready queue", "ph": "C", "ts": t * us, "pid": cluster,
                            "tid": 0, "args": {"runs": depth}})
        return out

    def write(self, path: str, clock_ghz: float | None = None) -> None:
        """Write the trace, cycles turned into microseconds at ``clock_ghz`` (default: the
        simulated arch's clock)."""
        ghz = clock_ghz if clock_ghz is not None else self.clock_ghz
        doc = {"traceEvents": self.trace_events(ghz), "displayTimeUnit": "ns",
               "otherData": {"dropped_events": self.dropped, "time_unit": "us",
                             "clock_ghz": ghz}}
        try:
            Path(path).write_text(json.dumps(doc))
        except OSError as exc:
            raise UserError(f"cannot write trace: {exc.strerror or exc}", file=path) from None


def _tid(tbu_id: int, lane: int) -> int:
    return tbu_id if lane == 0 else LANE_TID_BASE + tbu_id * 1000 + lane
