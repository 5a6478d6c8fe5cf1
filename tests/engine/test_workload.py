"""The compiled workload (engine/workload.py), through its public interface and through runs.

The regression corpus (test_corpus.py) checks that runs on the compiled workload give exactly
the numbers of the interpreter it replaced; these tests check its own promises: chunking does
not change the workload, memory is bounded and an exploding instance is a clear error,
decisions reach a policy only when a CBU takes them, and joins count Control Blocks from the
predecessor that finishes last.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from octosim.engine.entities import Observer, TaskRun
from octosim.engine.sim import Simulation
from octosim.engine.tasks import build_task_types
from octosim.engine.workload import CHUNK_INSTANCES, END, JUNCTION, WorkloadChunk, WorkloadCompiler
from octosim.errors import UserError
from octosim.model.arch import parse_arch
from octosim.model.rng import KeyedRandom
from octosim.model.workflow import Workflow, parse_workflow
from octosim.policies.registry import make_policy
from octosim.policies.static import StaticPolicy

ARCH = {"arch": 1, "name": "small", "cluster": {"tbus": 8}, "tbu": {"peas": 4},
        "reconfig": {"fixed_cycles": 0}}


def workflow(flow: list[Any], tasks: dict[str, Any], count: int = 40, **extra: Any) -> Workflow:
    raw = {"owg": 1, "name": "w", "arrivals": {"process": "poisson",
                                               "interarrival_cycles": 5000, "count": count},
           "tasks": tasks, "flow": flow, **extra}
    return parse_workflow(raw, "w.yaml")


def compiler(wf: Workflow, chunk: int = CHUNK_INSTANCES, seed: int = 1) -> WorkloadCompiler:
    arch = parse_arch(ARCH, "a.yaml")
    return WorkloadCompiler(wf, build_task_types(wf, arch), KeyedRandom(seed),
                            arch.tbu.split_efficiency, chunk_instances=chunk)


def per_instance(chunks: list[WorkloadChunk]) -> dict[int, tuple[Any, ...]]:
    """Each instance's arrival, critical path and sorted (type, work, out_bytes) runs."""
    out = {}
    for ch in chunks:
        runs: dict[int, list[tuple[int, int, int]]] = {i: [] for i in range(ch.count)}
        for node in range(ch.n_nodes):
            if ch.kind[node] >= 0:
                runs[ch.inst[node]].append((ch.kind[node], ch.work[node], ch.out_bytes[node]))
        for i in range(ch.count):
            out[ch.first + i] = (ch.arrival[i], ch.cp[i], sorted(runs[i]))
    return out


NESTED = workflow(
    ["a", {"foreach": "n", "do": [{"foreach": {"dist": "poisson", "mean": 2}, "do": ["b"]},
                                  {"branch": [{"p": 0.4, "do": ["c"]}, {"else": []}]}]},
     {"parallel": [["c"], ["b", "c"]]}, "a"],
    {"a": {"kind": "general", "cycles": {"dist": "exponential", "mean": 4000},
           "sets": {"n": {"dist": "poisson", "mean": 2}}},
     "b": {"kind": "general", "cycles": "1000 + 10 * n"},
     "c": {"kind": "general", "cycles": {"dist": "uniform", "low": 100, "high": 900}}},
    count=300, vars={"n": 0})


def test_chunk_size_does_not_change_the_workload() -> None:
    whole = per_instance(list(compiler(NESTED).chunks()))
    pieces = per_instance(list(compiler(NESTED, chunk=7).chunks()))
    assert len(whole) == 300
    assert whole == pieces
    assert len({w for _, _, runs in whole.values() for _, w, _ in runs}) > 100  # draws vary


def test_each_instance_has_one_end_and_every_node_is_reachable() -> None:
    for ch in compiler(NESTED, chunk=50).chunks():
        kinds = np.array(ch.kind)
        assert (kinds == END).sum() == ch.count
        waiting = np.array(ch.deps)
        roots = set(ch.roots)
        # Every node but the roots waits for something; every edge points to a later node
        # of the same instance.
        assert all(waiting[n] > 0 for n in range(ch.n_nodes) if n not in roots)
        for n in range(ch.n_nodes):
            for e in range(ch.succ_ptr[n], ch.succ_ptr[n + 1]):
                assert ch.inst[ch.succ[e]] == ch.inst[n]
                assert ch.succ_cbs[e] >= 0
        assert (kinds == JUNCTION).sum() > 0  # the branch after the inner foreach joins


def test_chunks_are_compiled_lazily() -> None:
    wf = workflow(["a"], {"a": {"kind": "general", "cycles": 100}}, count=50_000_000)
    t0 = time.perf_counter()
    first = next(compiler(wf).chunks())
    assert first.count == CHUNK_INSTANCES
    assert time.perf_counter() - t0 < 5.0


def test_an_exploding_instance_is_a_clear_error() -> None:
    wf = workflow([{"foreach": 1000, "do": [{"foreach": 1000, "do": [
        {"foreach": 1000, "do": ["a"]}]}]}], {"a": {"kind": "general", "cycles": 1}}, count=3)
    t0 = time.perf_counter()
    with pytest.raises(UserError) as err:
        list(compiler(wf).chunks())
    assert time.perf_counter() - t0 < 20.0
    msg = str(err.value)
    assert "expands to more than 2000000 task runs" in msg
    assert "workflow.max_runs_per_instance" in msg
    assert err.value.where == "flow[0].do[0].do[0]"


def test_the_run_limit_can_be_raised() -> None:
    flow = [{"foreach": 300, "do": [{"foreach": 300, "do": ["a"]}]}]
    tasks = {"a": {"kind": "general", "cycles": 1}}
    with pytest.raises(UserError, match="expands to more than 50000 task runs"):
        list(compiler(workflow(flow, tasks, count=2, max_runs_per_instance=50_000)).chunks())
    runs = sum(sum(1 for k in ch.kind if k >= 0)
               for ch in compiler(workflow(flow, tasks, count=2,
                                           max_runs_per_instance=200_000)).chunks())
    assert runs == 2 * 300 * 300


class _Decisions(StaticPolicy):
    """static, recording when each Control Block decision reaches it."""

    name = "test-decisions"

    def setup(self, sim: Simulation) -> None:
        super().setup(sim)
        self.seen: list[tuple[int, int, int]] = []

    def on_decision(self, block: int, outcome: int) -> None:
        assert self.sim is not None
        self.seen.append((self.sim.now, block, outcome))


class _Ends(Observer):
    def __init__(self) -> None:
        self.ends: dict[str, list[int]] = {}
        self.arrivals: list[int] = []

    def task_done(self, run: TaskRun, now: int) -> None:
        self.ends.setdefault(run.tt.name, []).append(now)

    def instance_done(self, inst: Any, now: int) -> None:
        self.arrivals.append(inst.arrival)


def test_a_policy_learns_a_decision_only_when_the_cbu_takes_it() -> None:
    wf = workflow(["a", {"foreach": "n", "do": ["b"]}, {"branch": [
        {"when": "n > 2", "do": ["b"]}, {"else": []}]}],
        {"a": {"kind": "general", "cycles": {"dist": "exponential", "mean": 3000},
               "sets": {"n": {"dist": "poisson", "mean": 2}}},
         "b": {"kind": "general", "cycles": 2000}}, count=60)
    policy = _Decisions(_Decisions.Params(buffer_slots=0, host_cycles=0))
    ends = _Ends()
    sim = Simulation(wf, parse_arch(ARCH, "a.yaml"), policy, seed=3, observers=[ends]).run()
    foreach = [(t, out) for t, block, out in policy.seen if block == 1]
    assert len(foreach) == 60
    # The foreach is decided when its instance's `a` completes, never earlier.
    assert sorted(t for t, _ in foreach) == sorted(ends.ends["a"])
    # The branch after the join is decided when the last copy of `b` completes (or with the
    # foreach when it has no copies): always at some task's completion.
    branch_times = [t for t, block, _ in policy.seen if block == 3]
    assert len(branch_times) == 60
    done_at = set(ends.ends["a"]) | set(ends.ends["b"])
    assert set(branch_times) <= done_at
    assert sim.instances_done == 60


def test_a_join_counts_control_blocks_from_the_run_that_finishes_last() -> None:
    """Two parallel arms: one ends with its task, the other passes a branch after its task.
    The run after the join pays the Control Blocks on the path of whichever arm finished
    last, so with a host round trip per CB its wait depends on which arm was slower."""
    tasks = {"fast": {"kind": "general", "cycles": 1000},
             "slow": {"kind": "general", "cycles": 50_000},
             "after": {"kind": "general", "cycles": 10}}
    arch = parse_arch(ARCH, "a.yaml")
    waits = {}
    for slow_arm_branches in (False, True):
        arm_slow: list[Any] = ["slow"]
        arm_fast: list[Any] = ["fast"]
        (arm_slow if slow_arm_branches else arm_fast).append(
            {"branch": [{"p": 1.0, "do": []}]})
        wf = workflow([{"parallel": [arm_slow, arm_fast]}, "after"], tasks, count=1)
        policy = make_policy("static", {"buffer_slots": 0, "host_cycles": 1000})
        ends = _Ends()
        Simulation(wf, arch, policy, observers=[ends]).run()
        waits[slow_arm_branches] = ends.ends["after"][0] - ends.ends["slow"][0]
    # Join (1 CB) alone, or join plus the branch on the slow arm (2 CBs), before `after`.
    assert waits[False] == 1000 + 10
    assert waits[True] == 2000 + 10


def test_an_exploding_instance_ends_a_run_with_exit_2_and_one_line(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI: the profiler compiles its sample too, before any run starts (it once
    let an internal chunk-splitting signal escape as a traceback)."""
    from octosim.cli import main

    path = tmp_path / "boom.yaml"
    path.write_text("owg: 1\nname: boom\narrivals: {process: batch, count: 2}\n"
                    "tasks: {a: {kind: general, cycles: 1}}\n"
                    "flow: [{foreach: 1000, do: [{foreach: 1000, do: [{foreach: 1000, "
                    "do: [a]}]}]}]\n")
    assert main(["run", str(path), "--arch", "octopus-chip", "--policy", "static"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expands to more than 2000000 task runs" in err[0]


def _chunk_fields(ch: WorkloadChunk) -> tuple[Any, ...]:
    """Everything a chunk holds, as plain values."""
    return (ch.first, ch.count, ch.arrival, ch.cp, ch.root_ptr, ch.roots, ch.root_cbs,
            ch.arrival_dec_ptr, ch.arrival_dec_block, ch.arrival_dec_outcome, ch.kind, ch.inst,
            ch.work, ch.out_bytes, ch.scale, ch.block.tolist(), ch.deps, ch.succ_ptr, ch.succ,
            ch.succ_cbs, ch.dec_ptr, ch.dec_block, ch.dec_outcome, ch._snap_of.tolist(),
            ch._elem_of.tolist(), ch.frame_key.tolist(),
            [{k: v.tolist() for k, v in snap.items()} for snap in ch._snaps])


# Shapes each shortcut of the compiler serves, and the ones where it must step aside: a
# parallel of one-task arms (tails joined without sorting), an empty arm and an arm that ends
# in a foreach (joined the general way), loops whose frames all go on and loops that some
# leave early, a while loop, a foreach and a branch over one-tail frames, constant cycles, a
# decision at the arrival.
SHORTCUTS = workflow(
    [{"branch": [{"p": 0.5, "do": ["c"]}, {"else": []}]}, "a",
     {"loop": {"count": 3, "do": [{"parallel": [["b"], ["c"]]}]}},
     {"loop": {"count": {"dist": "poisson", "mean": 2}, "do": [
         {"parallel": [["b"], [], ["c", {"foreach": "n", "do": ["b"]}]]}, "c"]}},
     {"loop": {"while": "m < n", "do": ["d", {"parallel": [["b"], ["c"]]}]}},
     {"foreach": "n", "do": ["c", {"branch": [{"p": 0.5, "do": ["b"]}, {"else": []}]}]},
     {"parallel": [[], []]}, "d"],
    {"a": {"kind": "general", "cycles": {"dist": "exponential", "mean": 4000},
           "sets": {"n": {"dist": "poisson", "mean": 2}}},
     "b": {"kind": "general", "cycles": "1000 + 10 * n"},
     "c": {"kind": "general", "cycles": 700},
     "d": {"kind": "general", "cycles": {"dist": "uniform", "low": 100, "high": 900},
           "sets": {"m": "m + 1"}}},
    count=60, vars={"n": 0, "m": 0})


@pytest.mark.parametrize("chunk", [1, 7, CHUNK_INSTANCES])
def test_the_compilers_shortcuts_give_the_general_graph(
        chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import octosim.engine.workload as workload

    fast = [_chunk_fields(ch) for ch in compiler(SHORTCUTS, chunk=chunk).chunks()]
    monkeypatch.setattr(workload, "FAST_PATHS", False)
    general = [_chunk_fields(ch) for ch in compiler(SHORTCUTS, chunk=chunk).chunks()]
    assert fast == general
    assert sum(1 for ch in fast for k in ch[10] if k >= 0) > 60 * 10  # the flow ran


def test_the_shortcuts_give_the_general_graph_for_the_builtin_workflows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import octosim.engine.workload as workload
    from octosim.model.loader import load_yaml_file
    from octosim.workloads import builtin_names, resolve

    arch = parse_arch(load_yaml_file(resolve("arch", "octopus-chip")), "octopus-chip.yaml")
    graphs: dict[bool, list[Any]] = {}
    for fast in (True, False):
        monkeypatch.setattr(workload, "FAST_PATHS", fast)
        graphs[fast] = []
        for name in builtin_names("workflow"):
            path = resolve("workflow", name)
            wf = parse_workflow(load_yaml_file(path), str(path))
            comp = WorkloadCompiler(wf, build_task_types(wf, arch), KeyedRandom(5),
                                    arch.tbu.split_efficiency)
            graphs[fast].append(_chunk_fields(comp.compile(0, min(20, wf.count))))
    assert graphs[True] == graphs[False]
