"""The built-in workflow suite: every workflow is valid, phased, dual-dynamic, built from the
model zoo, runnable under ``static`` on one and four clusters, sized as documented in
docs/workloads.md, and draws the same random numbers on every architecture."""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from octosim.cli import main
from octosim.experiments.config import resolve_config
from octosim.experiments.run import run_config
from octosim.hardware.zoo import list_models
from octosim.workloads import builtin_names, resolve

NAMES = builtin_names("workflow")
CONTROL = ("foreach", "loop", "branch", "parallel")
# Instances in the small runs. The rarest task type of the suite (autonomous-driving's
# emergency planner, ~7% of sweeps, almost all in its second phase) then expects ~10 runs, so
# "every task type runs" holds for any seed, not just the one used here.
SMALL = 150
SEED = 3


def raw(name: str) -> dict[str, Any]:
    return yaml.safe_load(resolve("workflow", name).read_text())


def steps(flow: list[Any], conditional: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every step of a flow, with whether it runs only under some Control Block decision
    (inside a branch case, a foreach body or a loop body)."""
    for step in flow:
        yield step, conditional
        if not isinstance(step, dict):
            continue
        if "foreach" in step:
            yield from steps(step["do"], True)
        elif "loop" in step:
            yield from steps(step["loop"]["do"], True)
        elif "branch" in step:
            for case in step["branch"]:
                yield from steps(case.get("do", case.get("else")) or [], True)
        elif "parallel" in step:
            for arm in step["parallel"]:
                yield from steps(arm, conditional)


def always_runs(flow: list[Any]) -> Counter[str]:
    """Tasks every instance runs, with how many times (parallel arms may repeat a task)."""
    return Counter(s for s, cond in steps(flow) if isinstance(s, str) and not cond)


def small_sets(name: str) -> list[str]:
    """Keep the phases, scaled down to about SMALL instances in proportion."""
    wf = raw(name)
    total = wf["arrivals"]["count"]
    phases = [dict(p, count=max(1, round(p["count"] * SMALL / total))) for p in wf["phases"]]
    n = sum(p["count"] for p in phases)
    return [f"workflow.arrivals.count={n}", f"workflow.phases={json.dumps(phases)}"]


@functools.cache
def small_run(name: str, arch: str) -> dict[str, Any]:
    cfg = resolve_config(name, arch, "static", seed=SEED, sets=small_sets(name))
    return run_config(cfg)


@functools.cache
def full_batch_run(name: str) -> dict[str, Any]:
    cfg = resolve_config(name, "octopus-chip", "static", seed=1,
                         sets=["workflow.arrivals.process=batch"])
    return run_config(cfg)


def test_suite_is_large_enough() -> None:
    assert len(NAMES) >= 9 and "street-camera" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_validates(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(resolve("workflow", name))]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_documented(name: str) -> None:
    text = resolve("workflow", name).read_text()
    assert text.startswith("#"), "a header comment explains the workflow and its sources"
    wf = raw(name)
    assert wf["name"] == name
    assert isinstance(wf.get("description"), str) and len(wf["description"]) > 20


@pytest.mark.parametrize("name", NAMES)
def test_phases_change_variables_and_add_up(name: str) -> None:
    wf = raw(name)
    phases = wf.get("phases") or []
    assert len(phases) >= 2
    assert sum(p["count"] for p in phases) == wf["arrivals"]["count"]
    assert any(p.get("vars") for p in phases), "a phase change overrides some distribution"
    assert wf["arrivals"]["process"] == "poisson" and wf["arrivals"]["interarrival_cycles"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_zoo_models_control_blocks_and_dual_dynamicity(name: str) -> None:
    wf = raw(name)
    tasks = wf["tasks"]
    assert len(tasks) <= 8, "static needs one TBU per task type; keep room on a 16-TBU cluster"
    ai = {t: s for t, s in tasks.items() if s["kind"] == "ai"}
    assert ai and all(s["model"] in list_models() for s in ai.values())
    used = [s for s, _ in steps(wf["flow"])]
    blocks = {k for s in used if isinstance(s, dict) for k in s if k in CONTROL}
    # Execution-frequency dynamicity: a run-time count or decision.
    assert blocks & {"foreach", "loop", "branch"}, blocks
    # Execution-time dynamicity: per-invocation cost drawn or computed at run time.
    dynamic_cost = [t for t, s in tasks.items()
                    if isinstance(s.get("cycles"), dict | str) or s.get("scale") is not None]
    assert dynamic_cost


@pytest.mark.parametrize("name", NAMES)
def test_small_run_exercises_every_task(name: str) -> None:
    s = small_run(name, "octopus-chip")
    n = s["instances"]
    assert n >= SMALL - 5
    counts = {t: v["count"] for t, v in s["tasks"].items()}
    for task, times in always_runs(raw(name)["flow"]).items():
        assert counts[task] >= times * n, task
    assert all(c > 0 for c in counts.values()), counts
    assert s["makespan_cycles"] >= s["lower_bound_cycles"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_common_random_numbers_across_archs(name: str) -> None:
    one, four = small_run(name, "octopus-chip"), small_run(name, "octopus-4c")
    assert one["instances"] == four["instances"]
    assert ({t: v["count"] for t, v in one["tasks"].items()}
            == {t: v["count"] for t, v in four["tasks"].items()})


@pytest.mark.parametrize("name", NAMES)
def test_full_size_and_load_as_documented(name: str) -> None:
    """docs/workloads.md: 2,000-20,000 task runs per batch run, Poisson load ~70% of the
    lower bound's capacity (retune interarrival_cycles if the hardware model changes)."""
    s = full_batch_run(name)
    wf = raw(name)
    assert s["instances"] == wf["arrivals"]["count"]
    assert 2000 <= s["task_runs"] <= 20000, s["task_runs"]
    load = s["lower_bound_cycles"] / s["instances"] / wf["arrivals"]["interarrival_cycles"]
    assert 0.5 <= load <= 0.9, load
