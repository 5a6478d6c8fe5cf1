"""The reference workflow as the leanest plain-Python event loop: the speed floor.

The same model as ``reference_simpy.py`` (detect -> Poisson fan-out of recognitions joined at
the end -> review with p = 0.3, a FIFO pool of PEAs per stage), written as one ``heapq`` loop
with no generality at all: no workflow interpreter, no keyed random draws, no policy
interface, no metrics beyond latency. Its random numbers are drawn up front with numpy, as in
the SimPy model. ``bench/speed.py`` times it next to SimPy and octosim, to show how much of the
gap between a general simulator and SimPy a hand-written loop would have.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import Any

from reference_simpy import _params, draw_workload


def run_minimal(
    n_instances: int, seed: int, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Same result keys as ``reference_simpy.run_simpy``."""
    p = _params(params)
    n = int(n_instances)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    # The SimPy model's own draws (same generator, same order), so both simulate the same work.
    arrivals, detect_t, objects_l, recog_l, reviewed, review_t = draw_workload(n, seed, p)

    DETECT, RECOG, REVIEW, ARRIVE = 0, 1, 2, 3
    free = [p["pools"]["detect"], p["pools"]["recognize"], p["pools"]["review"]]
    queues: list[deque[tuple[int, float]]] = [deque(), deque(), deque()]
    heap: list[tuple[float, int, int, int]] = [(arrivals[0], 0, ARRIVE, 0)]
    push, pop = heapq.heappush, heapq.heappop
    seq = 1
    pending = [0] * n
    latencies: list[float] = []
    done = [0, 0, 0]
    recog_next = 0

    def submit(stage: int, inst: int, service: float, now: float) -> None:
        nonlocal seq
        if free[stage]:
            free[stage] -= 1
            seq += 1
            push(heap, (now + service, seq, stage, inst))
        else:
            queues[stage].append((inst, service))

    now: float = 0
    while heap:
        now, _, kind, i = pop(heap)
        if kind == ARRIVE:
            submit(DETECT, i, detect_t[i], now)
            if i + 1 < n:
                seq += 1
                push(heap, (arrivals[i + 1], seq, ARRIVE, i + 1))
            continue
        done[kind] += 1
        q = queues[kind]
        if q:
            j, service = q.popleft()
            seq += 1
            push(heap, (now + service, seq, kind, j))
        else:
            free[kind] += 1
        if kind == DETECT:
            k = objects_l[i]
            if k:
                pending[i] = k
                for _ in range(k):
                    submit(RECOG, i, recog_l[recog_next], now)
                    recog_next += 1
                continue
        elif kind == RECOG:
            pending[i] -= 1
            if pending[i]:
                continue
        if kind != REVIEW and reviewed[i]:
            submit(REVIEW, i, review_t[i], now)
            continue
        latencies.append(now - arrivals[i])
    wall = time.perf_counter() - wall0
    return {
        "latencies": latencies,
        "completions": dict(zip(("detect", "recognize", "review"), done, strict=True)),
        "task_runs": sum(done),
        "makespan_cycles": now,
        "wall_seconds": wall,
        "cpu_seconds": time.process_time() - cpu0,
    }
