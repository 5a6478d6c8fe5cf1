"""The Python API: ``octosim.simulate`` runs what ``octosim run`` runs, through the same
configuration path; results as DataFrames; importing octosim stays cheap; the example in
docs/api.md runs as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import octosim
from octosim.api import flatten_overrides
from octosim.cli import main
from octosim.errors import UserError

REPO = Path(__file__).resolve().parents[1]
WALL = {"wall_seconds", "events_per_second"}  # the machine's speed, not the run

TINY: dict[str, Any] = {
    "owg": 1, "name": "tiny",
    "arrivals": {"process": "poisson", "interarrival_cycles": 30000, "count": 40},
    "phases": [{"count": 20}, {"count": 20, "vars": {"n": {"dist": "poisson", "mean": 4}}}],
    "vars": {"n": {"dist": "poisson", "mean": 1}},
    "tasks": {
        "pre": {"kind": "general", "cycles": 4000},
        "net": {"kind": "ai", "model": "mobilenet_v2", "peas": [1, 4]},
        "post": {"kind": "general", "cycles": "1000 + 300 * n"},
    },
    "flow": ["pre", "net", {"foreach": "n", "do": ["post"]}],
}


def _cli_summary(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert {k: v for k, v in a.items() if k not in WALL} == {
        k: v for k, v in b.items() if k not in WALL}


def test_simulate_gives_the_summary_of_run_json(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    wf = tmp_path / "tiny.yaml"
    wf.write_text(json.dumps(TINY))  # JSON is YAML
    res = octosim.simulate(wf, "octopus-chip", "reactive", seed=3,
                           **{"policy.threshold": 0.3, "workflow.arrivals.count": 30})
    cli = _cli_summary(["run", str(wf), "--policy", "reactive", "--seed", "3",
                        "--set", "policy.threshold=0.3", "--set", "workflow.arrivals.count=30"],
                       capsys)
    _same(res.summary, cli)
    assert res.instances == 30  # the phases were scaled in proportion, as on the CLI
    assert res.makespan_cycles == cli["makespan_cycles"] > 0
    assert res.lower_bound_cycles == cli["lower_bound_cycles"]
    assert res["policy"] == "reactive" and res.config.policy["threshold"] == 0.3
    assert set(res.tasks) == {"pre", "net", "post"}
    # the same document given as data runs the same
    _same(octosim.simulate(TINY, policy="reactive", seed=3,
                           overrides={"policy": {"threshold": 0.3},
                                      "workflow": {"arrivals": {"count": 30}}}).summary, cli)


def test_overrides_dotted_and_nested_are_one_thing() -> None:
    assert flatten_overrides({"policy": {"threshold": 0.3, "partition": {"net": 4}}},
                             {"arch.noc.hop_cycles": 0, "workflow.phases": [], "seed": 2}) == [
        ("policy.threshold", 0.3), ("policy.partition.net", 4), ("arch.noc.hop_cycles", 0),
        ("workflow.phases", []), ("seed", 2)]
    assert flatten_overrides({"policy.partition": {}}) == [("policy.partition", {})]


def test_to_pandas_run_row_and_task_table() -> None:
    pd = pytest.importorskip("pandas")
    runs = [octosim.simulate(TINY, policy=p) for p in ("static", "octopus")]
    frame = pd.concat([r.to_pandas() for r in runs], ignore_index=True)
    assert list(frame["policy"]) == ["static", "octopus"]
    assert list(frame["makespan_cycles"]) == [r.makespan_cycles for r in runs]
    assert frame.loc[1, "latency_cycles.p99"] == runs[1].latency_cycles["p99"]
    assert "tasks" not in frame.columns and "idle.starved" in frame.columns
    tasks = runs[0].to_pandas("tasks")
    assert list(tasks.index) == ["pre", "net", "post"]
    assert tasks.loc["net", "count"] == runs[0].tasks["net"]["count"] == 40
    assert (tasks["policy"] == "static").all()
    with pytest.raises(ValueError):
        runs[0].to_pandas("nope")  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, what", [
    ({"workflow": "no-such-workflow"}, "unknown workflow 'no-such-workflow'"),
    ({"policy": "no-such-policy"}, "unknown policy 'no-such-policy'"),
    ({"overrides": {"nonsense.x": 1}}, "must start with workflow., arch., policy."),
    ({"overrides": {"arch": {"noc": {"hop_cycles": -1}}}}, "arch.noc.hop_cycles"),
])
def test_bad_input_is_a_user_error(kwargs: dict[str, Any], what: str) -> None:
    args = {"workflow": TINY, **kwargs}
    with pytest.raises(UserError, match=re.escape(what)):
        octosim.simulate(**args)


def test_importing_octosim_stays_cheap() -> None:
    code = ("import sys, octosim; heavy = [m for m in ('octosim.api', 'octosim.engine', "
            "'pandas', 'onnx', 'numpy', 'pydantic') if m in sys.modules]; print(heavy); "
            "assert callable(octosim.simulate) and 'octosim.api' in sys.modules")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert out.strip() == "[]"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def test_the_example_in_docs_api_md_runs(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pandas")
    blocks = python_blocks(REPO / "docs" / "api.md")
    assert blocks, "docs/api.md has no python code block"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "docs/api.md", "exec"), {"__name__": "__docs__"})
