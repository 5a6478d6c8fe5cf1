"""``weight_passes``: a model task's passes over its streamed weights, apart from ``scale``.

By default a run streams the weights a TBU cannot hold ``scale`` times (an LLM step per token);
``weight_passes`` says how many passes it makes whatever its compute (a BERT pass over a short
sequence computes less but reads every weight once). Checked through runs: the bytes on the
memory channel, the memory term of the lower bound and the compute stay as documented.
"""

from __future__ import annotations

from typing import Any

import pytest

from octosim.engine.metrics import summarize
from octosim.engine.sim import Simulation
from octosim.engine.tasks import build_task_types
from octosim.errors import UserError
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.registry import make_policy

ARCH = {"arch": 1, "name": "small", "cluster": {"tbus": 2}, "tbu": {"peas": 4},
        "reconfig": {"fixed_cycles": 0}}


def run(task: dict[str, Any], count: int = 4) -> Simulation:
    wf = parse_workflow({"owg": 1, "name": "w", "arrivals": {"process": "batch", "count": count},
                         "vars": {"history": {"dist": "uniform", "low": 10, "high": 120}},
                         "tasks": {"rank": task}, "flow": ["rank"]}, "w.yaml")
    arch = parse_arch(ARCH, "a.yaml")
    return Simulation(wf, arch, make_policy("static"), seed=3).run()


BERT = {"kind": "ai", "model": "bert_base", "scale": "min(history, 128) / 128"}


def test_one_pass_streams_the_weights_once_whatever_the_scale() -> None:
    scaled, once, twice = run(BERT), run({**BERT, "weight_passes": 1}), run(
        {**BERT, "weight_passes": 2})
    tt = scaled.task_types[0]
    assert tt.streamed_bytes > 0  # BERT-base does not fit a 4-PEA TBU's SRAM
    assert once.acct.total_streamed == 4 * tt.streamed_bytes
    assert twice.acct.total_streamed == 8 * tt.streamed_bytes
    assert scaled.acct.total_streamed < once.acct.total_streamed  # scale < 1 on every run
    # The same compute, and the memory channel carries what the bound counts, plus contexts.
    assert scaled.acct.total_work == once.acct.total_work == twice.acct.total_work
    fetched = summarize(scaled)["memory_bytes"] - scaled.acct.total_streamed
    assert summarize(once)["memory_bytes"] == once.acct.total_streamed + fetched
    assert summarize(once)["lower_bound_cycles"] >= once.acct.total_streamed / 256


def test_weight_passes_may_be_drawn_per_run_and_zero_is_free() -> None:
    free = run({**BERT, "weight_passes": 0})
    assert free.acct.total_streamed == 0
    drawn = run({**BERT, "weight_passes": {"dist": "choice", "values": [1, 3]}}, count=40)
    per_pass = drawn.task_types[0].streamed_bytes
    passes = drawn.acct.total_streamed / per_pass
    assert passes == round(passes) and 40 < passes < 120


@pytest.mark.parametrize(("task", "where", "what"), [
    ({"kind": "general", "cycles": 10, "weight_passes": 1}, "tasks.rank.weight_passes",
     "applies to a model"),
    ({**BERT, "weight_passes": "tokens"}, "tasks.rank.weight_passes", "tokens"),
    ({**BERT, "weight_passes": -1}, "tasks.rank.weight_passes", ">= 0"),
])
def test_bad_weight_passes_name_the_field(task: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(UserError) as err:
        run(task)
    assert err.value.where == where and what in str(err.value)


def test_the_default_is_scale_passes() -> None:
    wf = parse_workflow({"owg": 1, "name": "w", "arrivals": {"process": "batch", "count": 1},
                         "vars": {"history": 60}, "tasks": {"rank": BERT}, "flow": ["rank"]},
                        "w.yaml")
    assert build_task_types(wf, parse_arch(ARCH, "a.yaml"))[0].weight_passes is None


def test_critical_path_term_streams_exactly_what_a_scaled_run_streams() -> None:
    """A run of ``scale`` s streams round(streamed bytes x s) bytes, at ceil(bytes / bandwidth)
    cycles; the critical-path term once took ceil(ceil(bytes / bandwidth) x s), a cycle more
    than the run (found by hypothesis: makespan 86,180 < bound 86,181). With one run on one
    PEA at 1 B/cycle the bound is then exactly the makespan."""
    def workflow(scale: float) -> dict[str, Any]:
        return {"owg": 1, "name": "gen", "arrivals": {"process": "batch", "count": 1},
                "tasks": {"t0": {"kind": "ai", "model": "resnet50", "scale": scale}},
                "flow": ["t0"]}

    arch = parse_arch({"arch": 1, "name": "one", "tbu": {"peas": 1, "split_efficiency": 0.0},
                       "cluster": {"tbus": 1, "cbu_cycles": 0}, "pea": {"sram_kib": 64},
                       "noc": {"hop_cycles": 0}, "control_plane": {"hop_cycles": 0},
                       "memory": {"bytes_per_cycle": 1}, "reconfig": {"fixed_cycles": 0}},
                      "a.yaml")
    streamed = build_task_types(parse_workflow(workflow(1.0), "w.yaml"), arch)[0].streamed_bytes
    scale = 12_718.25 / streamed  # streams 12,718.25 bytes: the run 12,718 cycles, ceil 12,719
    for policy in ("static", "octopus"):
        sim = Simulation(parse_workflow(workflow(scale), "w.yaml"), arch,
                         make_policy(policy, {}), seed=0)
        sim.run()
        assert sim.lower_bound <= sim.makespan
        assert sim.lower_bound == sim.makespan  # one run, nothing else: the bound is tight
