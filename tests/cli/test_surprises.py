"""The command line as a new user meets it (issue 12, item 7): what the docs say works.

Every error line is ``error: FILE: where: what`` with FILE the input the user gave (a path as
given, a built-in by its name, never its installed path; or the option, ``--policy``,
``--set KEY``); a run directory reruns exactly; ``compare --set POLICY:KEY=VALUE`` reaches one
policy; ``validate`` rejects what ``run`` rejects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from octosim.cli import main
from octosim.workloads import builtin_dir

TINY = """\
owg: 1
name: tiny
arrivals: {process: batch, count: 6}
tasks:
  a: {kind: general, cycles: 1000}
  b: {kind: ai, model: resnet50, peas: [1, 4]}
flow: [a, b]
"""
SMALL = ["--set", "workflow.arrivals.count=30"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch directory as the working directory, with tiny.yaml and a run directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "model.yaml").write_text(TINY.replace("resnet50", "mobilenetv2"))
    (tmp_path / "wide.yaml").write_text(TINY.replace("[1, 4]", "[1, 32]"))
    assert main(["run", "tiny.yaml", "--out", "R", "--json"]) == 0
    broken = yaml.safe_load((tmp_path / "R" / "config.yaml").read_text())
    broken["workflow"]["tasks"]["a"]["cycles"] = -5
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "config.yaml").write_text(yaml.safe_dump(broken))
    return tmp_path


# (command line, FILE the line must name, what it must say)
BAD: list[tuple[str, list[str], str, str]] = [
    ("unknown-workflow", ["run", "nope"], "nope", "unknown workflow 'nope'"),
    ("unknown-arch", ["run", "tiny.yaml", "--arch", "nope"], "nope", "unknown arch 'nope'"),
    ("unknown-policy", ["run", "tiny.yaml", "--policy", "nope"], "--policy", "unknown policy"),
    ("set-unknown-policy", ["run", "tiny.yaml", "--set", "policy=nope"], "--set policy",
     "unknown policy"),
    ("unknown-policy-field", ["run", "tiny.yaml", "--set", "policy.bogus=1"],
     "--set policy.bogus", "unknown field"),
    ("builtin-arch-value", ["run", "tiny.yaml", "--set", "arch.noc.hop_cycles=abc"],
     "octopus-chip", "set by --set arch.noc.hop_cycles"),
    ("builtin-arch-defects", ["run", "tiny.yaml", "--set", f"arch.defects.dead_tbus="
                              f"{list(range(16))}"], "octopus-chip", "no working cluster"),
    ("builtin-workflow-value", ["run", "street-camera", "--set", "workflow.arrivals.count=0"],
     "street-camera", "set by --set workflow.arrivals.count"),
    ("bad-seed", ["run", "tiny.yaml", "--seed", "-1"], "--seed", "seed must be an integer"),
    ("missing-file", ["run", "missing.yaml"], "missing.yaml", "no such file"),
    ("unknown-model", ["validate", "model.yaml"], "model.yaml", "unknown model 'mobilenetv2'"),
    ("peas-wider-than-tbu", ["validate", "wide.yaml"], "wide.yaml", "wider than a TBU"),
    ("validate-unknown-arch", ["validate", "tiny.yaml", "--arch", "nope"], "nope",
     "unknown arch"),
    ("too-few-tbus", ["run", "tiny.yaml", "--set", "arch.cluster.tbus=1"],
     "tiny.yaml on octopus-chip under static", "1 working TBUs for 2 task types"),
    ("bad-fault", ["run", "tiny.yaml", "--fault", "tbu:99@5"], "--fault tbu:99@5", "no tbu 99"),
    ("run-config-broken", ["run", "B/config.yaml"], "B/config.yaml", "must be >= 0"),
    ("rerun-broken", ["rerun", "B"], "B/config.yaml", "must be >= 0"),
    ("rerun-not-a-dir", ["rerun", "nodir"], "nodir", "not a run directory"),
    ("run-config-fixes-arch", ["run", "R/config.yaml", "--arch", "octopus-4c"], "--arch",
     "fixes the arch"),
    ("compare-policy-not-listed", ["compare", "tiny.yaml", "--policies", "static",
                                   "--set", "octopus:policy.pcs=false"],
     "--set octopus:policy.pcs", "not among --policies"),
    ("compare-unknown-prefix", ["compare", "tiny.yaml", "--set", "nope:policy.pcs=false"],
     "--set nope:policy.pcs", "unknown policy 'nope'"),
    ("run-other-policy-prefix", ["run", "tiny.yaml", "--set", "octopus:policy.pcs=false"],
     "--set octopus:policy.pcs", "this run's policy is static"),
    ("compare-no-policies", ["compare", "tiny.yaml", "--policies", ","], "--policies",
     "at least one"),
    ("model-cycles-unknown", ["model-cycles", "nope"], "nope", "unknown model"),
    ("model-cycles-nothing", ["model-cycles"], "octosim model-cycles", "give a MODEL"),
    ("argparse", ["run"], "octosim run", "required: workflow"),
]


@pytest.mark.parametrize("args,file,what", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_error_line_names_the_input(
    d: Path, capsys: pytest.CaptureFixture[str], args: list[str], file: str, what: str
) -> None:
    rc, out, err = cli(capsys, *args)
    assert rc == 2, err
    assert out == "" or args[0] == "validate"
    assert err.endswith("\n") and err.count("\n") == 1, err
    line = err.rstrip("\n")
    # error: FILE: [where: ]what, FILE being what the user typed (or the option), never where
    # the package is installed.
    assert line.startswith(f"error: {file}: "), line
    assert line[len(f"error: {file}: "):].strip(": ")
    assert what in line, line
    assert str(builtin_dir("arch").parent) not in line, line
    assert "site-packages" not in line, line


def _summary(out: str) -> dict[str, object]:
    s = json.loads(out)
    for host in ("wall_seconds", "events_per_second"):
        s.pop(host)
    return dict(s)


def test_a_run_directory_reruns_exactly(d: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, first, err = cli(capsys, "run", "street-camera", "--policy", "octopus", "--seed", "7",
                         "--fault", "tbu:3@2000000", *SMALL, "--set", "policy.pcs=false",
                         "--out", "S", "--json")
    assert rc == 0, err
    rc, again, err = cli(capsys, "run", "S/config.yaml", "--json")
    assert rc == 0, err
    assert _summary(again) == _summary(first)
    assert _summary(first)["seed"] == 7 and _summary(first)["policy"] == "octopus"
    rc, rerun, err = cli(capsys, "rerun", "S", "--json")
    assert rc == 0, err
    assert _summary(rerun) == _summary(first)
    assert "S/summary.json: this rerun is identical" in err
    # A summary that does not match is said so (another octosim version, a bug).
    s = json.loads((d / "S" / "summary.json").read_text())
    s["makespan_cycles"] += 1
    (d / "S" / "summary.json").write_text(json.dumps(s))
    rc, _, err = cli(capsys, "rerun", "S")
    assert rc == 0 and "differs in makespan_cycles" in err, err
    # --seed and --set still edit a run config.
    rc, other, err = cli(capsys, "run", "S/config.yaml", "--seed", "8", "--json")
    assert rc == 0, err
    assert _summary(other)["seed"] == 8
    rc, out, err = cli(capsys, "validate", "S/config.yaml")
    assert rc == 0 and "run config" in out, err


def test_compare_sets_one_policys_parameter(d: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def makespans(*sets: str) -> dict[str, int]:
        rc, out, err = cli(capsys, "compare", "street-camera", "--policies", "static,octopus",
                           "--workers", "1", *SMALL, *sets, "--json")
        assert rc == 0, err
        return {r["policy"]: r["makespan_cycles"] for r in json.loads(out)["results"]}

    # A parameter static does not have: the plain form fails, the POLICY: form reaches octopus.
    rc, _, err = cli(capsys, "compare", "street-camera", "--policies", "static,octopus",
                     *SMALL, "--set", "policy.horizon_grant=false")
    assert rc == 2 and "unknown field" in err
    base = makespans()
    off = makespans("--set", "octopus:policy.horizon_grant=false")
    assert off["static"] == base["static"]
    assert off["octopus"] != base["octopus"]


def test_validate_checks_against_arch(d: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wide = d / "widearch.yaml"
    wide.write_text("arch: 1\nname: widearch\ntbu: {peas: 32}\n")
    rc, out, err = cli(capsys, "validate", "wide.yaml", "--arch", str(wide))
    assert rc == 0, err
    assert "fits" in out
    rc, out, err = cli(capsys, "validate", "tiny.yaml")
    assert rc == 0 and "fits octopus-chip" in out, err


RUN_FIELDS: list[tuple[str, Callable[[dict[str, object]], None]]] = [
    ("unknown-key", lambda c: c.update(colour="blue")),
    ("no-seed", lambda c: c.pop("seed")),
    ("workflow-not-mapping", lambda c: c.update(workflow=3)),
]


@pytest.mark.parametrize("edit", [c[1] for c in RUN_FIELDS], ids=[c[0] for c in RUN_FIELDS])
def test_bad_run_config(d: Path, capsys: pytest.CaptureFixture[str],
                        edit: Callable[[dict[str, object]], None]) -> None:
    cfg = yaml.safe_load((d / "R" / "config.yaml").read_text())
    edit(cfg)
    (d / "B" / "config.yaml").write_text(yaml.safe_dump(cfg))
    rc, _, err = cli(capsys, "run", "B/config.yaml")
    assert rc == 2 and err.startswith("error: B/config.yaml: "), err
