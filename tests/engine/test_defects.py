"""Manufacturing defects in whole runs: a wafer with dead TBUs and routers, plus runtime
faults, completes every instance under every policy; a workflow that cannot run on what is
left is an error at load time (issue 11 item 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from octosim.cli import main
from octosim.engine.metrics import summarize
from octosim.engine.sim import Observer, Simulation
from octosim.experiments.config import RunConfig
from octosim.experiments.run import simulate
from octosim.hardware.chip import Chip
from octosim.model.arch import parse_arch
from octosim.model.loader import load_yaml_file
from octosim.model.workflow import parse_workflow
from octosim.policies.registry import make_policy, policies
from octosim.workloads import resolve
from tests.cli.test_errors import assert_user_error

POLICIES = sorted(policies())
WF: dict[str, Any] = {
    "owg": 1, "name": "d",
    "arrivals": {"process": "poisson", "interarrival_cycles": 400, "count": 400},
    "vars": {"n": {"dist": "poisson", "mean": 2}},
    "tasks": {"a": {"kind": "general", "cycles": 20000, "peas": [1, 2], "out_bytes": 4096},
              "b": {"kind": "general", "cycles": {"dist": "exponential", "mean": 15000},
                    "out_bytes": 1024},
              "c": {"kind": "general", "cycles": 5000}},
    "flow": ["a", {"foreach": "n", "do": ["b"]}, "c"],
}
DEFECTS = {"dead_tbu_fraction": 0.05, "dead_router_fraction": 0.02, "seed": 3}


def builtin(name: str, **defects: Any) -> dict[str, Any]:
    arch = load_yaml_file(resolve("arch", name))
    arch["defects"] = dict(defects)
    return arch


class Finished(Observer):
    def __init__(self) -> None:
        self.finished: dict[int, int] = {}

    def task_done(self, run, now):  # type: ignore[no-untyped-def]
        assert run.tbu.alive and run.tbu.cluster not in self.off_mesh

    def instance_done(self, inst, now):  # type: ignore[no-untyped-def]
        self.finished[inst.id] = self.finished.get(inst.id, 0) + 1


def run(arch: dict[str, Any], policy: dict[str, Any], faults: tuple[str, ...] = (),
        count: int = 400, batch: bool = False) -> tuple[Simulation, Finished]:
    arrivals = {"process": "batch", "count": count} if batch else dict(WF["arrivals"],
                                                                         count=count)
    wf = dict(WF, arrivals=arrivals)
    cfg = RunConfig(workflow=wf, workflow_file="w", arch=arch, arch_file="a", policy=policy,
                    seed=1, faults=faults)
    obs = Finished()
    chip = Chip(parse_arch(arch, "a"))
    obs.off_mesh = chip.dead_routers | chip.cut_off  # type: ignore[attr-defined]
    return simulate(cfg, observers=[obs]), obs


def faults_for(arch: dict[str, Any], at: int) -> tuple[str, ...]:
    """A runtime TBU fault and a cluster fault, on units the defects left working."""
    chip = Chip(parse_arch(arch, "a"))
    cluster = chip.alive_clusters[len(chip.alive_clusters) // 2]
    tbu = next(t.id for c in chip.alive_clusters[1:] if c != cluster
               for t in chip.cluster_tbus[c] if t.alive)
    return (f"tbu:{tbu}@{at // 3}", f"cluster:{cluster}@{at // 2}")


@pytest.mark.parametrize("name,count", [("octopus-4c", 400), ("octopus-wafer", 600)])
@pytest.mark.parametrize("policy", POLICIES)
def test_defects_and_faults_lose_no_instance(name: str, count: int, policy: str) -> None:
    arch = builtin(name, **DEFECTS)
    if name == "octopus-4c":
        arch["defects"]["dead_routers"] = [3]  # 2% of 4 routers rounds to none
    chip = Chip(parse_arch(arch, "a"))
    assert sum(not t.alive for t in chip.tbus) >= round(0.05 * len(chip.tbus))
    assert chip.dead_routers
    healthy, _ = run(arch, {"name": policy}, count=count)
    sim, obs = run(arch, {"name": policy}, faults_for(arch, healthy.makespan), count=count)
    assert sim.instances_done == count
    assert obs.finished == dict.fromkeys(range(count), 1)
    assert sim.task_count == healthy.task_count


def test_the_noc_carries_work_around_dead_routers() -> None:
    """``indiscriminate`` with ``spread`` moves work between clusters: its transfers take
    links between working routers only. (Small clusters, so that queues form.)"""
    arch = builtin("octopus-wafer", dead_router_fraction=0.1, dead_tbu_fraction=0.05, seed=2)
    arch["cluster"]["tbus"] = arch["tbu"]["peas"] = 2
    sim, _ = run(arch, {"name": "indiscriminate", "spread": True}, count=300, batch=True)
    assert sim.instances_done == 300
    mesh = sim.chip.mesh
    dead = sim.chip.dead_routers
    assert len(dead) == 6 and mesh.transfers > 0
    used = {n for link in mesh.link_busy for n in link}
    assert used and not used & dead


def test_the_defect_map_does_not_depend_on_the_run_seed_or_policy() -> None:
    arch = parse_arch(builtin("octopus-wafer", **DEFECTS), "a")
    wf = parse_workflow(WF, "w")
    alive = [[t.alive for t in Simulation(wf, arch, make_policy(policy), seed=seed).chip.tbus]
             for policy, seed in (("octopus", 1), ("static", 2))]
    assert alive[0] == alive[1]


def test_defects_do_not_move_a_healthy_run() -> None:
    """Fractions of 0 are no defects: the run is the one without a ``defects`` section."""
    arch = builtin("octopus-4c")
    del arch["defects"]
    a, _ = run(arch, {"name": "octopus"}, count=100)
    b, _ = run(builtin("octopus-4c", dead_tbu_fraction=0.0, seed=9), {"name": "octopus"},
               count=100)
    sa, sb = summarize(a), summarize(b)
    for key in ("wall_seconds", "events_per_second"):
        sa.pop(key), sb.pop(key)
    assert sa == sb


# --- load-time errors, through the command line -------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


ARCH_4C = """\
arch: 1
name: small
grid: {rows: 2, cols: 2}
cluster: {tbus: 2}
tbu: {peas: 4}
"""
WIDE = """\
owg: 1
name: wide
arrivals: {process: batch, count: 4}
tasks:
  a: {kind: general, cycles: 1000, peas: [4, 4]}
flow: [a]
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(list(args))
    return rc, capsys.readouterr().err


def test_no_working_cluster_left_is_an_error_naming_the_arch_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "wf.yaml", WIDE)
    arch = write(tmp_path, "arch.yaml", ARCH_4C + "defects: {dead_router_fraction: 0.9}\n")
    rc, err = cli(capsys, "run", wf, "--arch", arch, "--policy", "octopus")
    assert_user_error(rc, err, arch, "defects", "no working cluster")
    # every TBU dead, routers fine
    arch = write(tmp_path, "arch2.yaml", ARCH_4C + "defects: {dead_tbu_fraction: 0.99}\n")
    rc, err = cli(capsys, "run", wf, "--arch", arch, "--policy", "static")
    assert_user_error(rc, err, arch, "defects", "8 of 8 TBUs dead")


def test_a_task_wider_than_every_working_tbu_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "wf.yaml", WIDE)
    # one dead PEA in each of the 8 TBUs: none keeps the 4 that task a needs
    arch = write(tmp_path, "arch.yaml",
                 ARCH_4C + "defects: {dead_peas: [0, 5, 10, 15, 16, 21, 26, 31]}\n")
    for policy in POLICIES:
        rc, err = cli(capsys, "run", wf, "--arch", arch, "--policy", policy)
        assert_user_error(rc, err, arch, "defects", "task 'a' needs at least 4 PEAs")
    # one TBU left whole: instances placed on the other clusters could still not run
    arch = write(tmp_path, "arch2.yaml",
                 ARCH_4C + "defects: {dead_peas: [0, 5, 10, 15, 16, 21, 26]}\n")
    rc, err = cli(capsys, "run", wf, "--arch", arch, "--policy", "indiscriminate")
    assert_user_error(rc, err, arch, "defects", "cluster 0, where instances are placed, has "
                      "at most 3 of 4")
    # a whole TBU in every cluster: it runs (static and reactive bind every TBU, so they
    # refuse the narrow ones with an error of their own)
    arch = write(tmp_path, "arch3.yaml",
                 ARCH_4C + "defects: {dead_peas: [0, 10, 16, 26]}\n")
    for policy in ("indiscriminate", "octopus"):
        rc, err = cli(capsys, "run", wf, "--arch", arch, "--policy", policy, "--json")
        assert rc == 0, err


def test_a_defect_error_from_set_names_the_set(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "wf.yaml", WIDE)
    arch = write(tmp_path, "arch.yaml", ARCH_4C)
    rc, err = cli(capsys, "run", wf, "--arch", arch, "--policy", "octopus",
                  "--set", "arch.defects.dead_pea_fraction=0.5")
    line = assert_user_error(rc, err, arch, "defects", "needs at least 4 PEAs")
    assert "(set by --set arch.defects.dead_pea_fraction)" in line


def test_a_fraction_out_of_range_is_an_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "wf.yaml", WIDE)
    arch = write(tmp_path, "arch.yaml", ARCH_4C + "defects: {dead_tbu_fraction: 1.0}\n")
    rc, err = cli(capsys, "run", wf, "--arch", arch, "--policy", "octopus")
    assert_user_error(rc, err, arch, "defects.dead_tbu_fraction")
