"""Batched execution: runs of one task type sharing one pass over the weights.

A task with ``batch: {max: N, wait_cycles: W}`` lets up to N ready runs on one TBU run as one
*batch*, the way an LLM serving system batches the decode steps of concurrent requests:

- the batch computes its model batched (``TaskType.batch_cycles``: the systolic model with the
  batch as extra rows of every weight layer's operand matrix, so that B decode GEMVs are one
  GEMM with B rows, nearly free up to the array's row count), as many times over as its
  longest member repeats (its ``scale``), on the PEAs it was granted, split over them as a
  single run's work is;
- the weights it must stream cross the memory channel once for all its runs (weight bytes do
  not grow): the bytes of the run that streams most (a run with ``scale`` streams once per
  repetition, so a batch of token loops streams as many passes as its longest member);
- so a batch takes max(compute, weights / bandwidth), as one run does, and every run of it
  completes when the batch does.

The first run of the batch (its *leader*) holds the PEAs and the memory stream, through the
same launch as a single run; the others (``k = 0``, no PEAs) share its start and end. Each run
keeps its own wait (ready to start), service (start to the batch's end) and latency, and counts
once in its task's count. A batch keeps the PEAs it started with (``grow`` leaves it alone).

Which runs form a batch, and when a run stops waiting for partners, is the policy's choice;
:class:`~octosim.engine.policy.Batcher` is the rule every built-in policy uses.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from octosim.engine.core import COMPLETE
from octosim.engine.tasks import streamed_on_peas

if TYPE_CHECKING:
    from octosim.engine.entities import TaskRun
    from octosim.engine.resources import ResourceActions
    from octosim.hardware.chip import TBU


def start_batch(sim: ResourceActions, runs: list[TaskRun], tbu: TBU, k: int,
                any_context: bool = False, peas: list[int] | None = None) -> int:
    """Start ``runs`` as one batch on ``k`` free PEAs of ``tbu`` (see the module docstring;
    ``peas``: which ones, with ``any_context``); return the batch's completion cycle."""
    if len(runs) == 1:
        return (sim.start_any(runs[0], tbu, k, peas) if any_context
                else sim.start(runs[0], tbu, k))
    lead = runs[0]
    tt = lead.tt
    if not runs or len(runs) > tt.batch_max or any(r.tt is not tt for r in runs):
        raise RuntimeError(f"policy bug: batch of {len(runs)} runs of {tt.name} "
                           f"(batch.max {tt.batch_max}), or of several types")
    longest = 0
    scale = 0.0
    for r in runs:
        if r.work > longest:
            longest = r.work
        if r.stream_scale > scale:
            scale = r.stream_scale
    # The longest member's work is model_cycles x its scale (its repetitions): the batch runs
    # that many passes of the batched model.
    work = round(longest * (tt.batch_cycles[len(runs) - 1] / tt.model_cycles))
    if any_context:
        if peas is not None:
            sim._take_last(tbu, peas, k)
        ready = sim._load_on_peas(lead, tbu, k)
        stream = round(streamed_on_peas(tt, k, sim.arch) * scale)
    else:
        if tbu.bound != tt.idx or tbu.reconfiguring or not tbu.alive:
            raise RuntimeError(f"policy bug: {lead} started on {tbu} not bound to its type")
        if k < 1 or k > len(tbu.free):
            raise RuntimeError(f"policy bug: {lead} asks {k} PEAs, {tbu} has "
                               f"{len(tbu.free)} free")
        ready = sim.now
        stream = tt.streamed_bytes
        if stream and scale != 1.0:
            stream = round(stream * scale)
    lead.batch = runs
    end = sim._launch(lead, tbu, k, ready, stream, work)
    # The batch's compute, as the work left at its (only) grant: compute_end() then finds when
    # it is done if a context fetch delays the stream, or a fault stops it (a batch never grows).
    lead.work_left = work
    lead.rate_since = lead.svc_start
    compute_end = sim.compute_end(lead)
    now = sim.now
    idx = tt.idx
    acct = sim.acct
    loop = sim.loop
    buffers = sim.buffers
    for r in runs[1:]:
        r.batch = runs
        r.tbu = tbu
        r.peas = []
        r.k = 0
        r.start_at = now
        r.svc_start = lead.svc_start
        r.mem_end = lead.mem_end
        r.end_at = end
        tbu.running += 1
        acct.task_count[idx] += 1
        acct.task_wait[idx] += now - r.ready_at
        acct.task_service[idx] += end - now
        acct.task_compute[idx] += compute_end - lead.svc_start
        acct.task_stall[idx] += end - compute_end
        loop.seq += 1
        heapq.heappush(loop.heap, (end, COMPLETE, loop.seq, COMPLETE, r))
        for ob in sim.observers:
            ob.task_started(r, now)
        buffers.occupancy[idx] -= 1
        if buffers.slots and buffers.waiters[idx]:
            buffers.wake(idx)
        sim.progress += 1
    return end
