"""Sweeps: SPEC checks, a store that survives SIGKILL, failed points, results, dask."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from octosim.cli import main
from octosim.experiments.sweep import load_rows, load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[2]

TINY_WF = """\
owg: 1
name: tiny
arrivals: {process: batch, count: 3}
tasks:
  a: {kind: general, cycles: 1000}
  b: {kind: general, cycles: {dist: exponential, mean: 500}}
flow: [a, b]
"""


def write_spec(tmp: Path, text: str) -> Path:
    (tmp / "tiny.yaml").write_text(TINY_WF)
    spec = tmp / "spec.yaml"
    spec.write_text(text)
    return spec


def store_rows(out: Path) -> list[tuple[str, str, str | None, float]]:
    con = sqlite3.connect(out / "sweep.sqlite")
    try:
        return con.execute("SELECT key, params, error, finished_at FROM points").fetchall()
    finally:
        con.close()


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                       e.get("PYTHONPATH", "")])
    return e


@pytest.mark.parametrize("text, where, what", [
    ("- 1\n", None, "expected a mapping with base: and grid:"),
    ("base: {workflow: tiny.yaml}\ngrids: {}\n", "grids", "unknown field 'grids'"),
    ("grid: {seed: [1]}\n", "base", "expected a mapping"),
    ("base: {policy: static}\n", "base", "a workflow is required"),
    ("base: {workflow: tiny.yaml, sed: 1}\n", "base.sed", "unknown field 'sed'"),
    ("base: {workflow: tiny.yaml}\ngrid: {seed: 3}\n", "grid.seed",
     "expected a non-empty list"),
    ("base: {workflow: tiny.yaml}\ngrid: {seed: []}\n", "grid.seed",
     "expected a non-empty list"),
    ("base: {workflow: tiny.yaml}\ngrid: {noc.hop_cycles: [1]}\n", "grid.noc.hop_cycles",
     "expected workflow, arch, policy, seed or a dotted path"),
    ("base: {workflow: tiny.yaml}\ngrid: {seed: [1, -2]}\n", "grid.seed[1]",
     "seed must be an integer"),
    ("base: {workflow: tiny.yaml, seed: x}\n", "base.seed", "seed must be an integer"),
    ("base: {workflow: tiny.yaml, set: [1]}\n", "base.set", "expected a mapping"),
    ("base: {workflow: tiny.yaml, set: {'policy.a=b': 1}}\n", "base.set.policy.a=b",
     "has no '='"),
    ("base: {workflow: tiny.yaml, set: {seed: 2}}\n", "base.set.seed", "give seed as base.seed"),
    ("base: {workflow: tiny.yaml}\ngrid: {policy: [static, nope]}\n", None,
     ("point policy=nope: ", "unknown policy 'nope'")),
    ("base: {workflow: nope-wf}\n", None, ("point base: ", "unknown workflow 'nope-wf'")),
    ("base: {workflow: tiny.yaml}\ngrid: {seed: [1, 1]}\n", "grid",
     "resolve to the same configuration"),
    ("base: {workflow: tiny.yaml}\ngrid: {seed: [1\n", None, "YAML"),
])
def test_bad_spec_is_one_error_line_naming_file_and_place(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str | None,
        what: str | tuple[str, ...]) -> None:
    spec = write_spec(tmp_path, text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {spec}: ")
    if where:
        assert err.startswith(f"error: {spec}: {where}: ")
    for part in (what,) if isinstance(what, str) else what:
        assert part in err
    assert not (tmp_path / "out").exists()  # nothing runs or is created before the check


def test_a_killed_sweep_reruns_to_every_point_stored_exactly_once(tmp_path: Path) -> None:
    """120 points in a subprocess, SIGKILLed (with its workers) after some are stored."""
    n = 120
    spec = write_spec(tmp_path, "base: {workflow: tiny.yaml, policy: static}\n"
                                f"grid: {{seed: {list(range(n))}}}\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "octosim", "sweep", str(spec), "--out", str(out),
           "--workers", "2", "--json"]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    stored: list[tuple[str, str, str | None, float]] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "sweep.sqlite").exists():
                try:
                    if len(store_rows(out)) >= 20:
                        break
                except sqlite3.OperationalError:  # the table is not created yet
                    pass
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole job: the CLI and its pool workers
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stored = store_rows(out)
    killed_at = len(stored)
    assert 20 <= killed_at < n

    rerun = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    stats = json.loads(rerun.stdout)
    assert stats == {**stats, "points": n, "skipped": killed_at, "ran": n - killed_at,
                     "failed": 0}
    final = store_rows(out)
    seeds = sorted(json.loads(params)["seed"] for _, params, _, _ in final)
    assert seeds == list(range(n))  # every point once: none lost, none twice
    assert all(err is None for _, _, err, _ in final)
    before = {key: at for key, _, _, at in stored}
    after = {key: at for key, _, _, at in final}
    assert all(after[k] == at for k, at in before.items())  # finished points were not rerun


def test_a_failing_point_is_stored_with_its_error_and_retried_on_rerun(tmp_path: Path
                                                                      ) -> None:
    spec = write_spec(tmp_path, "base: {workflow: tiny.yaml}\n"
                                "grid: {arch.noc.hop_cycles: [1, -1, 2]}\n")
    out = tmp_path / "out"
    first = run_sweep(spec, out, workers=1)
    assert (first.points, first.ran, first.failed, first.skipped) == (3, 3, 1, 0)
    rows = {r["arch.noc.hop_cycles"]: r for r in load_rows(out)}
    assert rows[-1]["makespan_cycles"] is None
    assert "hop_cycles" in rows[-1]["error"] and "greater than or equal to 0" in rows[-1]["error"]
    for ok in (1, 2):
        assert rows[ok]["error"] is None and rows[ok]["makespan_cycles"] > 0
    again = run_sweep(spec, out, workers=1)
    assert (again.ran, again.failed, again.skipped) == (1, 1, 2)
    assert len(load_rows(out)) == 3


def test_results_json_csv_and_not_a_sweep(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, "base: {workflow: tiny.yaml, set: {workflow.arrivals.count: 2}}"
                                "\ngrid: {policy: [static, octopus], seed: [1, 2]}\n")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ran"] == 4
    assert main(["results", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert sorted((r["policy"], r["seed"]) for r in rows) == [
        ("octopus", 1), ("octopus", 2), ("static", 1), ("static", 2)]
    for r in rows:
        assert r["workflow"] == "tiny.yaml" and r["instances"] == 2 and r["error"] is None
        assert r["makespan_cycles"] >= r["lower_bound_cycles"] > 0
        assert r["latency_p99_cycles"] >= r["latency_p50_cycles"] > 0
        assert 0 < r["pea_utilization"] <= 1 and r["events"] > 0
        assert r["wall_seconds"] > 0 and r["reconfigurations"] >= 0
    assert main(["results", str(out), "--csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == 4
    assert [int(t["makespan_cycles"]) for t in table] == [r["makespan_cycles"] for r in rows]
    assert main(["results", str(out)]) == 0
    assert "4 points, 0 failed" in capsys.readouterr().out
    for bad, what in ((tmp_path / "missing", "no such directory"),
                      (tmp_path, "not a sweep directory (no sweep.sqlite)")):
        assert main(["results", str(bad)]) == 2
        assert capsys.readouterr().err == f"error: {bad}: {what}\n"


def test_dask_executor_on_a_local_cluster_of_two_workers(tmp_path: Path) -> None:
    """The same points, the same keys and numbers as the local pool, through a real
    LocalCluster of two workers joined by address. Thread workers: a cluster of processes
    takes 8-17 s to start and stop on two busy cores; the CLI's own cluster uses processes
    (docs/sweeps.md runs it)."""
    distributed = pytest.importorskip("dask.distributed")
    spec = write_spec(tmp_path, "base: {workflow: tiny.yaml}\n"
                                "grid: {policy: [static, octopus], seed: [1, 2, 3]}\n")
    local = run_sweep(spec, tmp_path / "local", workers=1)
    assert local.ran == 6
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert len(cluster.workers) == 2
        stats = run_sweep(load_spec(spec), tmp_path / "dask", executor="dask",
                          address=cluster.scheduler_address)
    assert (stats.ran, stats.failed) == (6, 0)

    def numbers(d: Path) -> dict[str, int]:
        return {r["key"]: r["makespan_cycles"] for r in load_rows(d)}

    assert numbers(tmp_path / "dask") == numbers(tmp_path / "local")


def test_editing_a_workflow_file_reruns_its_points_and_only_those(tmp_path: Path) -> None:
    """The key hashes the resolved configuration, not the file name: an edit is new work."""
    spec = write_spec(tmp_path, "base: {workflow: tiny.yaml}\ngrid: {seed: [1, 2]}\n")
    out = tmp_path / "out"
    assert run_sweep(spec, out, workers=1).ran == 2
    (tmp_path / "tiny.yaml").write_text(TINY_WF.replace("cycles: 1000", "cycles: 2000"))
    again = run_sweep(spec, out, workers=1)
    assert (again.ran, again.skipped) == (2, 0)
    rows = load_rows(out)
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4
    assert run_sweep(spec, out, workers=1).skipped == 2
