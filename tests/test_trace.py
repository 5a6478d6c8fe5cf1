"""``run --trace``: a Chrome/Perfetto trace (Trace Event Format) of what the run did.

Checked through the CLI: one complete event per task execution, context loads named after
their task type, metadata naming every process (cluster) and thread (TBU), queue-depth
counters, time in microseconds at the arch's clock, and events a viewer can nest."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from octosim.cli import main

SMALL = ["--set", "workflow.arrivals.count=30", "--set", "workflow.phases=[]"]


def traced(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    trace = tmp_path / "trace.json"
    assert main(["run", *args, "--trace", str(trace), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    return summary, json.loads(trace.read_text())


def check_format(doc: dict[str, Any]) -> None:
    """What the Trace Event Format (JSON object form) requires of each event, and what
    Perfetto's importer needs to draw slices: on one thread they nest or follow each other."""
    assert isinstance(doc["traceEvents"], list)
    assert doc["displayTimeUnit"] in ("ms", "ns")
    named_threads, named_procs = set(), set()
    spans: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for e in doc["traceEvents"]:
        assert isinstance(e["name"], str) and e["name"]
        assert e["ph"] in ("X", "M", "C")
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name", "process_sort_index",
                                 "thread_sort_index")
            if e["name"] == "thread_name":
                named_threads.add((e["pid"], e["tid"]))
            if e["name"] == "process_name":
                named_procs.add(e["pid"])
            assert isinstance(e["args"].get("name", e["args"].get("sort_index")), str | int)
            continue
        assert isinstance(e["ts"], int | float) and e["ts"] >= 0
        if e["ph"] == "C":
            assert e["args"] and all(isinstance(v, int | float) for v in e["args"].values())
            continue
        assert isinstance(e["dur"], int | float) and e["dur"] >= 0
        assert isinstance(e["args"], dict)
        spans[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for key, xs in spans.items():
        assert key in named_threads and key[0] in named_procs
        xs.sort(key=lambda s: (s[0], -s[1]))
        stack: list[float] = []
        for start, end in xs:
            while stack and stack[-1] <= start + 1e-9:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-9, f"slices overlap on {key}"
            stack.append(end)


@pytest.mark.parametrize("policy", ["static", "octopus"])
def test_one_event_per_task_execution(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      policy: str) -> None:
    summary, doc = traced(tmp_path, capsys, "street-camera", "--arch", "octopus-4c",
                          "--policy", policy, *SMALL)
    check_format(doc)
    events = doc["traceEvents"]
    runs = [e for e in events if e["ph"] == "X" and e["cat"] == "task"]
    assert len(runs) == summary["task_runs"]
    assert Counter(e["name"] for e in runs) == {
        name: t["count"] for name, t in summary["tasks"].items() if t["count"]}
    assert all(e["args"]["wait_cycles"] >= 0 and "instance" in e["args"] for e in runs)
    assert {e["args"]["instance"] for e in runs} == set(range(summary["instances"]))
    loads = [e for e in events if e["ph"] == "X" and e["cat"] == "reconfig"]
    assert len(loads) == summary["reconfigurations"]
    assert {e["name"] for e in loads} <= {f"reconfigure {t}" for t in summary["tasks"]}
    # Every cluster is a process, every TBU a thread (16 per cluster on octopus-4c).
    names = [e for e in events if e["ph"] == "M" and e["name"] == "process_name"]
    assert sorted(e["args"]["name"] for e in names) == [f"cluster {c}" for c in range(4)]
    threads = {e["args"]["name"] for e in events if e["ph"] == "M"
               and e["name"] == "thread_name"}
    assert {f"TBU {t}" for t in range(64)} <= threads


def test_queue_depth_counters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The ready-queue counter of each cluster rises and falls with its runs and ends empty;
    its peak is at least the one a run that waited implies."""
    summary, doc = traced(tmp_path, capsys, "street-camera", "--policy", "static", *SMALL)
    counters = [e for e in doc["traceEvents"] if e["ph"] == "C"]
    assert counters and all(e["name"] == "ready queue" for e in counters)
    depths = [e["args"]["runs"] for e in counters]
    assert min(depths) >= 0 and depths[-1] == 0 and max(depths) >= 1
    waited = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["cat"] == "task"
              and e["args"]["wait_cycles"] > 0]
    assert bool(waited) == (max(depths) >= 1)


def test_microseconds_at_the_arch_clock(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """At 2 GHz a cycle is 0.0005 us: the last run ends at makespan / 2000 us."""
    summary, doc = traced(tmp_path, capsys, "street-camera", "--set", "arch.clock_ghz=2",
                          *SMALL)
    assert doc["otherData"]["clock_ghz"] == 2
    runs = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["cat"] == "task"]
    end_us = max(e["ts"] + e["dur"] for e in runs)
    assert end_us == pytest.approx(summary["makespan_cycles"] / 2000.0, rel=1e-9)
    assert max(e["args"]["end_cycle"] for e in runs) == summary["makespan_cycles"]


def test_faults_keep_one_event_per_execution(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Attempts lost to a fault are not executions: the trace counts what the summary does."""
    summary, doc = traced(tmp_path, capsys, "street-camera", "--policy", "octopus",
                          "--fault", "tbu:3@200000", *SMALL)
    check_format(doc)
    runs = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["cat"] == "task"]
    assert len(runs) == summary["task_runs"]
