"""Common random numbers (DESIGN section 1).

Every draw is keyed by (seed, instance, block, iteration, variable), so runs with the same
seed see exactly the same workload -- objects per frame, branch outcomes, loop trips and task
sizes -- whatever the policy, its parameters or the architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from octosim.cli import main
from octosim.engine.sim import Observer, TaskRun
from octosim.experiments.config import resolve_config
from octosim.experiments.run import simulate
from octosim.policies.registry import policies

# Random in every way a workflow can be: arrival vars, task `sets`, foreach counts, branch
# probabilities and conditions, while-loops driven by random draws, random cycles, phases.
WORKFLOW = """\
owg: 1
name: crn
arrivals: {process: poisson, interarrival_cycles: 20000, count: 60}
phases:
  - {count: 30}
  - {count: 30, vars: {objects: {dist: poisson, mean: 6}}}
vars:
  mode: {dist: choice, values: [0, 1, 2], weights: [1, 1, 2]}
  err: 1
tasks:
  decode: {kind: general, cycles: {dist: lognormal, mean: 6000, sd: 1500}, out_bytes: 4096,
           sets: {objects: {dist: poisson, mean: 2}}}
  recog:  {kind: general, cycles: {dist: uniform, low: 1000, high: 9000}, peas: [1, 4],
           sets: {conf: {dist: normal, mean: 0.5, sd: 0.2}}}
  track:  {kind: general, cycles: "500 + 3000 * conf"}
  refine: {kind: general, cycles: {dist: exponential, mean: 2000},
           sets: {err: {dist: uniform, low: 0, high: 1}}}
  alarm:  {kind: general, cycles: {dist: empirical, samples: [100, 200, 5000]}}
flow:
  - decode
  - foreach: objects
    do:
      - recog
      - branch:
          - {when: "conf > 0.6", do: [track]}
          - {p: 0.3, do: [track, track]}
  - loop: {while: "err > 0.3", do: [refine]}
  - branch:
      - {when: "mode == 2", do: [alarm]}
      - {p: 0.5, do: [alarm]}
"""


class Recorder(Observer):
    """Every task run's (instance, block, work): the workload as the engine sampled it."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, tuple[int, int], str, int]] = []

    def task_started(self, run: TaskRun, now: int) -> None:
        self.runs.append((run.inst.id, run.identity[1:], run.tt.name, run.work))


@pytest.fixture(scope="module")
def wf_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    p = tmp_path_factory.mktemp("crn") / "crn.yaml"
    p.write_text(WORKFLOW)
    return str(p)


def workload(
    wf: str,
    arch: str = "octopus-chip",
    policy: str = "static",
    seed: int = 1,
    sets: tuple[str, ...] = (),
) -> tuple[list[int], int, list[tuple[int, int, str, int]]]:
    rec = Recorder()
    sim = simulate(resolve_config(wf, arch, policy, seed, list(sets)), [rec])
    assert sim.instances_done == sim.wf.count
    # A run can be re-executed (faults) or restarted; the workload is the set of distinct runs.
    return list(sim.task_count), sim.acct.total_work, sorted(set(rec.runs))


VARIANTS = [
    ("octopus-chip", ()),
    ("octopus-chip", ("arch.cluster.tbus=32",)),
    ("octopus-chip", ("arch.cluster.tbus=8",)),
    ("octopus-chip", ("policy.buffer_slots=0",)),
    ("octopus-chip", ("policy.buffer_slots=1",)),
    ("octopus-chip", ("policy.host_cycles=0",)),
    ("octopus-chip", ("policy.peas=max",)),
    ("octopus-chip", ("arch.noc.hop_cycles=0", "arch.reconfig.fixed_cycles=0")),
    ("octopus-chip", ("arch.tbu.peas=4", "arch.tbu.split_efficiency=0.5")),
    ("octopus-4c", ()),
]


@pytest.fixture(scope="module")
def reference(wf_path: str) -> tuple[list[int], int, list[tuple[int, int, str, int]]]:
    return workload(wf_path)


def test_the_workload_is_random_enough(
    reference: tuple[list[int], int, list[tuple[int, int, str, int]]],
) -> None:
    counts, total, runs = reference
    decode, recog, track, refine, alarm = counts
    assert decode == 60
    assert recog > 60 and track > 0 and refine > 0 and 0 < alarm < 60
    assert len({w for _, _, name, w in runs if name == "recog"}) > 50  # sizes vary


@pytest.mark.parametrize("arch,sets", VARIANTS, ids=[" ".join(s) or a for a, s in VARIANTS])
def test_same_seed_same_workload_across_archs_and_params(
    wf_path: str,
    reference: tuple[list[int], int, list[tuple[int, int, str, int]]],
    arch: str,
    sets: tuple[str, ...],
) -> None:
    counts, total, runs = workload(wf_path, arch=arch, sets=sets)
    assert counts == reference[0]
    assert total == reference[1]
    assert runs == reference[2]


@pytest.mark.parametrize("policy", sorted(policies()))
def test_same_seed_same_workload_across_policies(
    wf_path: str,
    reference: tuple[list[int], int, list[tuple[int, int, str, int]]],
    policy: str,
) -> None:
    counts, total, runs = workload(wf_path, policy=policy)
    assert counts == reference[0]
    assert total == reference[1]
    assert runs == reference[2]


def test_different_seeds_differ(
    wf_path: str, reference: tuple[list[int], int, list[tuple[int, int, str, int]]]
) -> None:
    for seed in (2, 3):
        counts, total, runs = workload(wf_path, seed=seed)
        assert total != reference[1]
        assert runs != reference[2]
        assert counts[0] == reference[0][0]  # one decode per instance, whatever the seed
    assert workload(wf_path, seed=2)[2] == workload(wf_path, seed=2)[2]


def test_phase_override_changes_only_its_own_instances(
    wf_path: str, reference: tuple[list[int], int, list[tuple[int, int, str, int]]]
) -> None:
    """Dropping the phases changes the second half's draws of `objects`, not the first's."""
    _, _, runs = workload(wf_path, sets=("workflow.phases=[]",))

    def first_half(rs: list[tuple[int, int, str, int]]) -> list[tuple[int, int, str, int]]:
        return [r for r in rs if r[0] < 30]

    assert first_half(runs) == first_half(reference[2])
    assert runs != reference[2]


def test_builtin_workflow_crn_across_archs() -> None:
    small = ("workflow.arrivals.count=10", "workflow.phases=[]")
    a = workload("street-camera", sets=small)
    b = workload("street-camera", sets=(*small, "arch.cluster.tbus=32", "policy.buffer_slots=0"))
    assert a == b


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["run", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_cli_json_is_repeatable(
    wf_path: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [wf_path, "--arch", "octopus-chip", "--policy", "static", "--seed", "11"]
    a = _run_json(capsys, *args)
    b = _run_json(capsys, *args)
    for d in (a, b):
        assert d.pop("wall_seconds") >= 0
        d.pop("events_per_second", None)
    assert a == b
    assert a["seed"] == 11 and a["instances"] == 60
    c = _run_json(capsys, *args[:-1], "12")
    c.pop("wall_seconds")
    c.pop("events_per_second", None)
    assert c != a
