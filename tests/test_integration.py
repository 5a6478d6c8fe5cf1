"""End-to-end runs of the command line on small built-in workloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from octosim.cli import main
from octosim.workloads import builtin_dir, builtin_names

SMALL = ["--set", "workflow.arrivals.count=12", "--set", "workflow.phases=[]"]


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(list(args) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_json_has_every_contract_field(capsys: pytest.CaptureFixture[str]) -> None:
    s = run_json(capsys, "run", "street-camera", "--arch", "octopus-chip", "--policy", "static",
                 "--seed", "7", *SMALL)
    for key in ("workflow", "arch", "policy", "seed", "instances", "makespan_cycles",
                "latency_cycles", "pea_utilization", "idle", "tasks", "reconfigurations",
                "lower_bound_cycles", "events", "wall_seconds"):
        assert key in s, key
    assert set(s["latency_cycles"]) >= {"mean", "p50", "p95", "p99", "max"}
    assert set(s["idle"]) >= {"starved", "blocked", "reconfiguring", "unbound"}
    assert s["seed"] == 7 and s["instances"] == 12
    assert s["makespan_cycles"] >= s["lower_bound_cycles"] > 0
    assert 0 < s["pea_utilization"] <= 1
    assert abs(s["pea_utilization"] + sum(s["idle"].values()) - 1) < 1e-4
    for t in s["tasks"].values():
        assert set(t) >= {"count", "mean_admission_wait_cycles", "mean_wait_cycles",
                          "mean_service_cycles", "mean_compute_cycles", "mean_stall_cycles"}
    assert "memory_stalled" in s["idle"] and s["pea_occupancy"] >= s["pea_utilization"]
    assert s["tasks"]["decode"]["count"] == 12


def test_same_seed_same_output(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "street-camera", *SMALL]
    a, b = run_json(capsys, *args), run_json(capsys, *args)
    for d in (a, b):
        d.pop("wall_seconds")
        d.pop("events_per_second")
    assert a == b
    c = run_json(capsys, *args, "--seed", "2")
    assert c["makespan_cycles"] != a["makespan_cycles"]


def test_out_dir_and_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    trace = tmp_path / "trace.json"
    assert main(["run", "street-camera", *SMALL, "--out", str(out), "--trace", str(trace)]) == 0
    assert "makespan" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["instances"] == 12
    config = (out / "config.yaml").read_text()
    assert "count: 12" in config and "owg: 1" in config
    events = json.loads(trace.read_text())["traceEvents"]
    runs = [e for e in events if e["ph"] == "X" and e["cat"] == "task"]
    assert len(runs) == sum(t["count"] for t in summary["tasks"].values())
    assert all(e["dur"] >= 0 for e in events if e["ph"] == "X")
    assert {"decode", "detect"} <= {e["name"] for e in runs}
    # Microseconds at the arch's clock (1 GHz here): the last event ends at the makespan.
    end_us = max(e["ts"] + e["dur"] for e in runs)
    assert end_us == pytest.approx(summary["makespan_cycles"] / 1000.0, rel=1e-9)


def test_rerun_from_resolved_config_is_identical(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """config.yaml holds everything needed to repeat a run."""
    import yaml

    out = tmp_path / "o"
    first = run_json(capsys, "run", "street-camera", *SMALL, "--set", "policy.buffer_slots=2",
                     "--out", str(out))
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(cfg["workflow"]))
    (tmp_path / "arch.yaml").write_text(yaml.safe_dump(cfg["arch"]))
    second = run_json(capsys, "run", str(tmp_path / "wf.yaml"), "--arch",
                      str(tmp_path / "arch.yaml"), "--set", "policy.buffer_slots=2")
    assert first["makespan_cycles"] == second["makespan_cycles"]


@pytest.mark.parametrize("kind", ["workflow", "arch"])
def test_builtins_validate(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(builtin_dir(kind) / f"{n}.yaml") for n in builtin_names(kind)]
    assert files
    assert main(["validate", *files]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(files)


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    d = run_json(capsys, "list")
    assert {"octopus-chip", "octopus-4c", "octopus-wafer"} <= set(d["archs"])
    assert "street-camera" in d["workflows"]
    assert "static" in d["policies"]
    assert {"resnet50", "mobilenet_v2", "yolov5s", "bert_base", "arcface_r100", "crnn", "unet",
            "llm1b_decode", "whisper_tiny_encoder"} <= set(d["models"])


def test_model_cycles_json(capsys: pytest.CaptureFixture[str]) -> None:
    d = run_json(capsys, "model-cycles", "resnet50", "--pea", "16x16")
    assert d["total_cycles"] == sum(layer["cycles"] for layer in d["layers"])
    assert len(d["layers"]) >= 50
    ws = run_json(capsys, "model-cycles", "resnet50", "--pea", "16x16", "--dataflow", "ws")
    assert ws["total_cycles"] != d["total_cycles"]


@pytest.mark.parametrize("arch", ["octopus-4c", "octopus-wafer"])
def test_multi_cluster_archs_run(arch: str, capsys: pytest.CaptureFixture[str]) -> None:
    s = run_json(capsys, "run", "street-camera", "--arch", arch, *SMALL)
    assert s["instances"] == 12
