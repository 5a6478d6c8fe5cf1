"""Batched execution (task field ``batch``): a batch shares one pass over the weights."""

from __future__ import annotations

import pytest
from bench.batching import measure

from octosim.errors import UserError
from octosim.experiments.config import resolve_config
from octosim.experiments.run import run_config


@pytest.mark.parametrize("batch", [1, 4, 32])
def test_decode_throughput_follows_the_roofline(batch: int) -> None:
    """At the chip's own bandwidth a batch is bound by its batched compute (the systolic
    model with the batch as extra operand rows), at 16 B/cycle by its one weight pass."""
    r = measure(batch, passes=2)
    assert r["bound"] == "compute"
    assert abs(r["error"]) <= 0.05, r
    slow = measure(batch, passes=2, bytes_per_cycle=16.0)
    assert slow["bound"] == "memory"
    assert abs(slow["error"]) <= 0.05, slow


def test_batch_of_gemvs_is_one_gemm() -> None:
    """16 decode steps fill the 16 rows of the array at nearly the cost of one: more than
    12x the throughput of batch 1 (a batch costing the sum of its steps would give 1x)."""
    one = measure(1, passes=2)
    sixteen = measure(16, passes=2)
    assert sixteen["simulated"] > 12 * one["simulated"]


def test_memory_bound_batches_scale_with_size() -> None:
    one = measure(1, passes=2, bytes_per_cycle=16.0)
    four = measure(4, passes=2, bytes_per_cycle=16.0)
    assert one["bound"] == four["bound"] == "memory"
    assert four["simulated"] == pytest.approx(4 * one["simulated"], rel=0.02)


@pytest.mark.parametrize("policy", ["static", "reactive", "indiscriminate", "octopus"])
def test_every_run_counted_once_and_latency_adds_up(policy: str) -> None:
    sets = ["workflow.tasks.llm.batch={max: 4, wait_cycles: 2000000}",
            "workflow.arrivals.interarrival_cycles=2000000"]
    on = run_config(resolve_config("voice-assistant", "octopus-chip", policy, sets=sets))
    off = run_config(resolve_config("voice-assistant", "octopus-chip", policy,
                                    sets=sets + ["workflow.tasks.llm.batch.max=1"]))
    assert on["task_runs"] == off["task_runs"]
    for name, t in off["tasks"].items():
        assert on["tasks"][name]["count"] == t["count"]
    assert on["makespan_cycles"] >= on["lower_bound_cycles"]
    # Weights stream once per batch: never more bytes; strictly fewer where runs queue.
    assert on["memory_bytes"] <= off["memory_bytes"]
    if policy == "octopus":
        assert on["memory_bytes"] < off["memory_bytes"]


def test_batch_needs_a_model() -> None:
    with pytest.raises(UserError, match="needs 'model'"):
        resolve_config("street-camera", "octopus-chip", "static",
                       sets=["workflow.tasks.nms.batch.max=2"]).build()


@pytest.mark.parametrize("policy", ["static", "octopus"])
def test_batches_gather_partners_while_the_memory_channel_is_backlogged(policy: str) -> None:
    """With no wait window (``wait_cycles: 0``) a run would start alone the moment a TBU is
    free; while weight streams are still queued on the channel it would only queue its own
    pass behind them, so the rule keeps it gathering partners: fewer, fuller passes."""
    sets = ["workflow.tasks.llm.batch={max: 16, wait_cycles: 0}",
            "workflow.arrivals.interarrival_cycles=1000000", "workflow.arrivals.count=60",
            "workflow.phases=[]", "arch.memory.bytes_per_cycle=16"]
    batched = run_config(resolve_config("voice-assistant", "octopus-chip", policy, sets=sets))
    alone = run_config(resolve_config("voice-assistant", "octopus-chip", policy,
                                      sets=sets + ["workflow.tasks.llm.batch.max=1"]))
    assert batched["tasks"]["llm"]["count"] == alone["tasks"]["llm"]["count"]
    # Memory-bound: the passes saved show in the bytes moved and in the makespan.
    assert batched["memory_bytes"] < 0.5 * alone["memory_bytes"]
    assert batched["makespan_cycles"] < alone["makespan_cycles"]
