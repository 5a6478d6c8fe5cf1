"""examples/custom_policy, installed as a user would (pip, into a directory of its own) and run
through the command line: its entry point makes ``--policy greedy-fifo`` work, parameters and
faults included, with nothing of it in octosim itself."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "custom_policy"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"  # a copy: pip builds in the source tree, which must stay clean
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
           "--disable-pip-version-check", "--target", str(target), str(src)]
    if importlib.util.find_spec("setuptools") and importlib.util.find_spec("wheel"):
        cmd.insert(4, "--no-build-isolation")  # offline: build with what is installed
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def octosim(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO / "src")])}
    return subprocess.run([sys.executable, "-m", "octosim", *args], capture_output=True,
                          text=True, env=env, timeout=120)


SMALL = ["--set", "workflow.arrivals.count=30", "--json"]

# More runs in one process (each `python -m octosim` costs a start-up): parameter, faults, a
# bad value. Prints one JSON object: per case, the exit code, stdout and stderr.
DRIVER = """
import contextlib, io, json, sys
from octosim.cli import main
small = ["--set", "workflow.arrivals.count=30", "--json"]
cases = {
    "minimum": ["run", "street-camera", "--policy", "greedy-fifo",
                "--set", "policy.greedy=false", *small],
    "fault": ["run", "street-camera", "--arch", "octopus-4c", "--policy", "greedy-fifo",
              "--fault", "cluster:1@2000000", *small],
    "bad": ["run", "street-camera", "--policy", "greedy-fifo", "--set", "policy.greedy=maybe"],
}
out = {}
for name, argv in cases.items():
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        code = main(argv)
    out[name] = [code, o.getvalue(), e.getvalue()]
sys.stdout.write(json.dumps(out))
"""


def test_the_installed_example_is_listed_and_runs(site: Path) -> None:
    listed = octosim(site, "list", "policies", "--json")
    assert listed.returncode == 0, listed.stderr
    policies = json.loads(listed.stdout)["policies"]
    assert policies["greedy-fifo"].startswith("example plug-in")
    assert {"static", "reactive", "indiscriminate", "octopus"} <= set(policies)

    proc = octosim(site, "run", "street-camera", "--policy", "greedy-fifo", *SMALL)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    greedy = json.loads(proc.stdout)
    assert greedy["policy"] == "greedy-fifo" and greedy["instances"] == 30
    assert greedy["makespan_cycles"] >= greedy["lower_bound_cycles"] > 0

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO / "src")])}
    more = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True,
                          env=env, timeout=120)
    assert more.returncode == 0, more.stderr
    cases = json.loads(more.stdout)
    code, out, err = cases["minimum"]
    assert (code, err) == (0, "")
    # the parameter reaches the policy: minimum PEAs per run is slower here
    assert json.loads(out)["makespan_cycles"] > greedy["makespan_cycles"]
    code, out, err = cases["fault"]
    assert (code, err) == (0, "") and json.loads(out)["instances"] == 30
    code, out, err = cases["bad"]
    assert code == 2 and err.startswith("error: ") and "greedy" in err
    assert err.count("\n") == 1


def test_without_the_plugin_the_name_is_unknown() -> None:
    from octosim.errors import UserError
    from octosim.policies.registry import get_policy

    with pytest.raises(UserError, match="unknown policy 'greedy-fifo'"):
        get_policy("greedy-fifo")
