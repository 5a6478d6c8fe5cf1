"""Chrome/Perfetto trace of task executions (opens in ui.perfetto.dev)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from octosim.engine.sim import Instance, Observer, TaskRun
from octosim.errors import UserError
from octosim.hardware.chip import TBU

MAX_TRACE_EVENTS = 2_000_000


class TraceObserver(Observer):
    """One complete ("X") event per task run: pid = cluster, tid = TBU; ``ts``/``dur`` in
    microseconds at the arch's clock (DESIGN.md section 5), converted from cycles on
    :meth:`write`, so the timeline reads in real time."""

    def __init__(self, max_events: int = MAX_TRACE_EVENTS) -> None:
        self.events: list[dict[str, Any]] = []
        self.max_events = max_events
        self.dropped = 0

    def task_done(self, run: TaskRun, now: int) -> None:
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return
        tbu = run.tbu
        assert tbu is not None
        self.events.append({
            "name": run.tt.name, "ph": "X", "ts": run.start_at, "dur": now - run.start_at,
            "pid": tbu.cluster, "tid": tbu.id,
            "args": {"instance": run.inst.id, "peas": run.k},
        })

    def reconfigured(self, tbu: TBU, task: int, start: int, end: int) -> None:
        if len(self.events) < self.max_events:
            self.events.append({"name": f"reconfigure->{task}", "ph": "X", "ts": start,
                                "dur": end - start, "pid": tbu.cluster, "tid": tbu.id,
                                "cat": "reconfig"})

    def instance_done(self, inst: Instance, now: int) -> None:
        pass

    def write(self, path: str, clock_ghz: float = 1.0) -> None:
        """Write the trace, cycles turned into microseconds at ``clock_ghz``."""
        us_per_cycle = 1.0 / (clock_ghz * 1000.0)
        events = [{**e, "ts": e["ts"] * us_per_cycle, "dur": e["dur"] * us_per_cycle}
                  for e in self.events]
        doc = {"traceEvents": events, "displayTimeUnit": "ns",
               "otherData": {"dropped_events": self.dropped, "time_unit": "us",
                             "clock_ghz": clock_ghz}}
        try:
            Path(path).write_text(json.dumps(doc))
        except OSError as exc:
            raise UserError(f"cannot write trace: {exc.strerror or exc}", file=path) from None
