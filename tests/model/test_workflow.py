"""Workflow files: parsing of every flow construct, and their semantics when run.

Semantics (DESIGN section 5) are checked end to end: a tiny workflow is resolved and
simulated, and ``sim.task_count`` (indexed in the order of the ``tasks:`` mapping) says how
often each task ran.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from octosim.errors import UserError
from octosim.experiments.config import resolve_config
from octosim.experiments.run import simulate
from octosim.model.dists import Const, Dist, Expr
from octosim.model.workflow import (
    BranchNode,
    ForeachNode,
    LoopNode,
    Node,
    ParallelNode,
    TaskNode,
    Workflow,
    parse_workflow,
)
from octosim.workloads import builtin_dir, builtin_names


def doc(body: str, count: int = 4, vars_: str = "{}") -> dict[str, Any]:
    text = (
        f"owg: 1\nname: t\narrivals: {{process: batch, count: {count}}}\n"
        f"vars: {vars_}\n" + textwrap.dedent(body)
    )
    return yaml.safe_load(text)


def parse(body: str, **kw: Any) -> Workflow:
    return parse_workflow(doc(body, **kw), "w.yaml")


def run(
    tmp_path: Path,
    body: str,
    count: int = 50,
    vars_: str = "{}",
    seed: int = 1,
    sets: tuple[str, ...] = (),
) -> dict[str, int]:
    """Simulate; return {task: runs}. Tasks are given ``cycles`` small enough to be fast."""
    data = doc(body, count=count, vars_=vars_)
    p = tmp_path / "w.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = resolve_config(str(p), "octopus-chip", "static", seed, list(sets))
    sim = simulate(cfg)
    assert sim.instances_done == count
    return dict(zip(data["tasks"], sim.task_count, strict=True))


def walk(nodes: list[Node]) -> list[Node]:
    """Nodes in pre-order."""
    out: list[Node] = []
    for n in nodes:
        out.append(n)
        if isinstance(n, ForeachNode | LoopNode):
            out += walk(n.body)
        elif isinstance(n, BranchNode):
            for c in n.cases:
                out += walk(c.body)
        elif isinstance(n, ParallelNode):
            for arm in n.arms:
                out += walk(arm)
    return out


# --- parsing ------------------------------------------------------------------------------------

EVERYTHING = """\
tasks:
  decode: {kind: general, cycles: 100, out_bytes: 10}
  detect: {kind: general, cycles: {dist: exponential, mean: 50},
           sets: {objects: {dist: poisson, mean: 3}, n: 0}}
  recog:  {kind: general, cycles: "10 + objects"}
  step:   {kind: general, cycles: 5, sets: {n: "n + 1"}}
  alarm:  {kind: general, cycles: 7}
  left:   {kind: general, cycles: 1}
  right:  {kind: general, cycles: 1}
flow:
  - decode
  - detect
  - foreach: objects
    do: [recog]
  - foreach: 3
    do: [recog]
  - foreach: {dist: poisson, mean: 2}
    do: [recog]
  - foreach: "objects * 2 + 1"
    do: [recog]
  - loop: {while: "n < 3", do: [step]}
  - loop: {count: 2, do: [step], max_iterations: 5}
  - loop: {count: {dist: geometric, p: 0.5}, do: [step]}
  - branch:
      - {when: "objects > 5", do: [alarm]}
      - {p: 0.25, do: [alarm, left]}
      - {p: 0.5, do: []}
      - {else: [right]}
  - parallel:
      - [left, {foreach: 2, do: [recog]}]
      - [right]
"""


def test_parse_every_construct() -> None:
    wf = parse(EVERYTHING)
    assert [t.name for t in wf.task_list()] == [
        "decode",
        "detect",
        "recog",
        "step",
        "alarm",
        "left",
        "right",
    ]
    assert [t.index for t in wf.task_list()] == list(range(7))
    f = wf.flow
    assert [type(n).__name__ for n in f] == [
        "TaskNode",
        "TaskNode",
        "ForeachNode",
        "ForeachNode",
        "ForeachNode",
        "ForeachNode",
        "LoopNode",
        "LoopNode",
        "LoopNode",
        "BranchNode",
        "ParallelNode",
    ]
    assert [n.where for n in f] == [f"flow[{i}]" for i in range(11)]
    # foreach counts: variable, number, distribution, expression.
    assert isinstance(f[2].count, Expr) and f[2].count.names == {"objects"}
    assert isinstance(f[3].count, Const) and f[3].count.value == 3
    assert isinstance(f[4].count, Dist) and f[4].count.kind == "poisson"
    assert isinstance(f[5].count, Expr) and f[5].count.text == "objects * 2 + 1"
    assert isinstance(f[2].body[0], TaskNode) and f[2].body[0].task.name == "recog"
    assert f[2].body[0].where == "flow[2].do[0]"
    # loops: while, count, distribution count; max_iterations default 10000.
    assert f[6].cond is not None and f[6].count is None and f[6].max_iterations == 10000
    assert f[6].cond({"n": 2}) == 1 and f[6].cond({"n": 3}) == 0
    assert f[6].body[0].where == "flow[6].loop.do[0]"
    assert f[7].cond is None and isinstance(f[7].count, Const) and f[7].max_iterations == 5
    assert isinstance(f[8].count, Dist)
    # branch: cases in order with their kinds.
    cases = f[9].cases
    assert [c.kind for c in cases] == ["when", "p", "p", "else"]
    assert [c.p for c in cases] == [0.0, 0.25, 0.5, 0.0]
    assert [len(c.body) for c in cases] == [1, 2, 0, 1]
    assert cases[1].body[1].where == "flow[9].branch[1].do[1]"
    assert cases[3].body[0].where == "flow[9].branch[3].else[0]"
    # parallel: arms with nested blocks.
    arms = f[10].arms
    assert len(arms) == 2 and isinstance(arms[0][1], ForeachNode)
    assert arms[0][1].body[0].where == "flow[10].parallel[0][1].do[0]"
    # Stage order: first appearance in the flow.
    assert wf.stage_order == {
        "decode": 0,
        "detect": 1,
        "recog": 2,
        "step": 3,
        "alarm": 4,
        "left": 5,
        "right": 6,
    }


def test_blocks_are_numbered_in_pre_order() -> None:
    """Random draws are keyed by block number, so it must not depend on anything but the file."""
    wf = parse(EVERYTHING)
    blocks = [n.block for n in walk(wf.flow)]
    assert blocks == list(range(wf.n_blocks))
    again = parse(EVERYTHING)
    assert [n.block for n in walk(again.flow)] == blocks


def test_task_definition_fields() -> None:
    wf = parse("""\
        tasks:
          a: {kind: general, cycles: "2000 + 400 * k", peas: [1, 4], context_bytes: 64,
              out_bytes: {dist: uniform, low: 1, high: 3}, sets: {k: {dist: poisson, mean: 3}}}
        flow: [a]
        """, vars_="{k: 0}")
    a = wf.tasks["a"]
    assert a.kind == "general" and a.peas == (1, 4) and a.context_bytes == 64
    assert isinstance(a.cycles, Expr) and a.cycles.names == {"k"}
    assert isinstance(a.out_bytes, Dist) and set(a.sets) == {"k"}
    assert a.model is None and a.scale is None


def test_else_may_be_empty_and_branch_without_else() -> None:
    wf = parse("""\
        tasks: {a: {kind: general, cycles: 1}}
        flow:
          - branch: [{p: 0.5, do: [a]}, {else: }]
          - branch: [{p: 0.5, do: [a]}]
        """)
    assert wf.flow[0].cases[1].kind == "else" and wf.flow[0].cases[1].body == []
    assert [c.kind for c in wf.flow[1].cases] == ["p"]


def test_phases_parse() -> None:
    wf = parse(
        """\
        phases:
          - {name: quiet, count: 3}
          - {count: 5, vars: {k: {dist: poisson, mean: 9}}}
        tasks: {a: {kind: general, cycles: 1}}
        flow: [{foreach: k, do: [a]}]
        """,
        count=8,
        vars_="{k: 1}",
    )
    assert [(p.name, p.start, p.count) for p in wf.phases] == [("quiet", 0, 3), ("phase1", 3, 5)]
    assert wf.phase_of(0).name == "quiet" and wf.phase_of(2).name == "quiet"
    assert wf.phase_of(3).name == "phase1" and wf.phase_of(7).name == "phase1"
    assert set(wf.phases[1].overrides) == {"k"}


@pytest.mark.parametrize("name", builtin_names("workflow"))
def test_builtin_workflows_parse(name: str) -> None:
    path = builtin_dir("workflow") / f"{name}.yaml"
    wf = parse_workflow(yaml.safe_load(path.read_text()), str(path))
    assert wf.tasks and wf.flow and wf.n_blocks >= len(wf.tasks)


@pytest.mark.parametrize(
    "body,where,what",
    [
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [a, {foreach: 2, do: [b]}]\n",
            "flow[1].do[0]",
            "unknown task 'b'",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [{loop: {while: 'q', do: [a]}}]\n",
            "flow[0].loop.while",
            "unknown variable 'q'",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [{loop: {count: 2}}]\n",
            "flow[0].loop",
            "'do' is missing",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [{loop: {count: 2, do: [a], x: 1}}]\n",
            "flow[0].loop",
            "unknown field 'x'",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [{parallel: [[a], a]}]\n",
            "flow[0].parallel[1]",
            "expected a list of steps",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\n"
            "flow: [{branch: [{when: '1', p: 1, do: [a]}]}]\n",
            "flow[0].branch[0]",
            "either 'p' or 'when'",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [{branch: []}]\n",
            "flow[0].branch",
            "non-empty list",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [{foreach: 2, do: [a], x: 1}]\n",
            "flow[0]",
            "exactly 'foreach' and 'do'",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [{foreach: 1.0e+10, do: [a]}]\n",
            "flow[0].foreach",
            "larger than the maximum",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1}}\nflow: [a, {foreach: '2 +', do: [a]}]\n",
            "flow[1].foreach",
            "cannot parse",
        ),
        (
            "tasks: {a: {kind: ai, model: m, scale: 1.0e+9}}\nflow: [a]\n",
            "tasks.a.scale",
            "larger than the maximum",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1, scale: 2}}\nflow: [a]\n",
            "tasks.a.scale",
            "applies to a model",
        ),
        ("tasks: {a: {kind: general}}\nflow: [a]\n", "tasks.a", "give 'cycles' or 'model'"),
        (
            "tasks: {'a.b': {kind: general, cycles: 1}}\nflow: [a.b]\n",
            "tasks.a.b",
            "not a valid task name",
        ),
        (
            "tasks: {a: {kind: general, cycles: 1, sets: {'x-y': 1}}}\nflow: [a]\n",
            "tasks.a.sets.x-y",
            "not a valid variable name",
        ),
    ],
)
def test_parse_errors_name_the_place(body: str, where: str, what: str) -> None:
    with pytest.raises(UserError) as info:
        parse(body)
    err = info.value
    assert err.file == "w.yaml" and err.where == where, err.line()
    assert what in err.what


def test_flow_nesting_limit() -> None:
    flow: Any = ["a"]
    for _ in range(40):
        flow = [{"foreach": 1, "do": flow}]
    data = doc("tasks: {a: {kind: general, cycles: 1}}\nflow: []\n")
    data["flow"] = flow
    with pytest.raises(UserError, match="nested deeper than 32"):
        parse_workflow(data, "w.yaml")


# --- semantics, by running ------------------------------------------------------------------

N = 40  # instances per run


@pytest.mark.parametrize(
    "count,vars_,per_instance",
    [
        ("3", "{}", 3),
        ("k", "{k: 2}", 2),
        ("'k * 2 + 1'", "{k: 2}", 5),
        ("{dist: const, value: 4}", "{}", 4),
        ("{dist: choice, values: [6]}", "{}", 6),
        ("2.5", "{}", 3),  # rounded to the nearest integer
        ("2.4", "{}", 2),
        ("'k - 10'", "{k: 2}", 0),  # negative: no copies
        ("0", "{}", 0),
    ],
)
def test_foreach_count_forms(tmp_path: Path, count: str, vars_: str, per_instance: int) -> None:
    c = run(
        tmp_path,
        f"""\
        tasks:
          a: {{kind: general, cycles: 10}}
          b: {{kind: general, cycles: 10}}
          z: {{kind: general, cycles: 10}}
        flow:
          - a
          - foreach: {count}
            do: [b]
          - z
        """,
        count=N,
        vars_=vars_,
    )
    assert c == {"a": N, "b": per_instance * N, "z": N}


def test_foreach_random_count_mean(tmp_path: Path) -> None:
    n = 400
    c = run(
        tmp_path,
        """\
        tasks:
          a: {kind: general, cycles: 10}
          b: {kind: general, cycles: 10}
        flow: [a, {foreach: {dist: poisson, mean: 2}, do: [b]}]
        """,
        count=n,
    )
    assert abs(c["b"] - 2 * n) < 5 * math.sqrt(2 * n)


@pytest.mark.parametrize(
    "loop,vars_,per_instance",
    [
        ("{while: 'n < 3', do: [b]}", "{n: 0}", 3),
        ("{while: 'n < 0', do: [b]}", "{n: 0}", 0),
        ("{while: 'n * n < 50', do: [b]}", "{n: 0}", 8),
        ("{count: 4, do: [b]}", "{n: 0}", 4),
        ("{count: k, do: [b]}", "{n: 0, k: 5}", 5),
        ("{count: 'k - 3', do: [b]}", "{n: 0, k: 5}", 2),
        ("{count: {dist: const, value: 3}, do: [b]}", "{n: 0}", 3),
        ("{count: 1.4, do: [b]}", "{n: 0}", 1),
        ("{count: 0, do: [b]}", "{n: 0}", 0),
    ],
)
def test_loop_forms(tmp_path: Path, loop: str, vars_: str, per_instance: int) -> None:
    c = run(
        tmp_path,
        f"""\
        tasks:
          a: {{kind: general, cycles: 10}}
          b: {{kind: general, cycles: 10, sets: {{n: "n + 1"}}}}
          z: {{kind: general, cycles: 10}}
        flow:
          - a
          - loop: {loop}
          - z
        """,
        count=N,
        vars_=vars_,
    )
    assert c == {"a": N, "b": per_instance * N, "z": N}


def test_loop_iterations_share_the_enclosing_scope(tmp_path: Path) -> None:
    """What an iteration sets is seen by the next test and after the loop."""
    c = run(
        tmp_path,
        """\
        tasks:
          inc: {kind: general, cycles: 10, sets: {n: "n + 1"}}
          twice: {kind: general, cycles: 10, sets: {m: "m + 2"}}
          after3: {kind: general, cycles: 10}
          other: {kind: general, cycles: 10}
        flow:
          - loop: {while: "n < 3", do: [inc, twice]}
          - branch:
              - {when: "n == 3 and m == 6", do: [after3]}
              - {else: [other]}
        """,
        count=N,
        vars_="{n: 0, m: 0}",
    )
    assert c == {"inc": 3 * N, "twice": 3 * N, "after3": N, "other": 0}


def test_foreach_copies_see_parent_variables_and_keep_their_own(tmp_path: Path) -> None:
    c = run(
        tmp_path,
        """\
        tasks:
          start: {kind: general, cycles: 10, sets: {k: 5}}
          first: {kind: general, cycles: 10}
          inner: {kind: general, cycles: 10, sets: {x: "x + 100"}}
          seen: {kind: general, cycles: 10}
          leak: {kind: general, cycles: 10}
          kept: {kind: general, cycles: 10}
        flow:
          - start
          - foreach: 3
            do:
              - branch: [{when: "k == 5 and x == 0", do: [first]}]
              - inner
              - branch: [{when: "x == 100", do: [seen]}]
          - branch:
              - {when: "x == 0", do: [kept]}
              - {else: [leak]}
        """,
        count=N,
        vars_="{x: 0}",
    )
    # Every copy sees the parent's k and x == 0 (no copy sees another's x), its own x after
    # `inner`, and after the join the parent's x is unchanged.
    assert c == {"start": N, "first": 3 * N, "inner": 3 * N, "seen": 3 * N, "leak": 0, "kept": N}


def test_foreach_copy_loop_counters_are_per_copy(tmp_path: Path) -> None:
    c = run(
        tmp_path,
        """\
        tasks:
          a: {kind: general, cycles: 10}
          inc: {kind: general, cycles: 10, sets: {i: "i + 1"}}
          z: {kind: general, cycles: 10}
        flow:
          - a
          - foreach: 3
            do: [{loop: {while: "i < 2", do: [inc]}}]
          - branch: [{when: "i == 0", do: [z]}]
        """,
        count=N,
        vars_="{i: 0}",
    )
    assert c == {"a": N, "inc": 6 * N, "z": N}


def test_parallel_arms_see_parents_variables_and_keep_their_own(tmp_path: Path) -> None:
    c = run(
        tmp_path,
        """\
        tasks:
          start: {kind: general, cycles: 10, sets: {k: 7}}
          setter: {kind: general, cycles: 10, sets: {y: 1}}
          mine: {kind: general, cycles: 10}
          other: {kind: general, cycles: 10000}
          notmine: {kind: general, cycles: 10}
          leak: {kind: general, cycles: 10}
          join: {kind: general, cycles: 10}
        flow:
          - start
          - parallel:
              - [setter, {branch: [{when: "y == 1 and k == 7", do: [mine]}]}]
              - [other, {branch: [{when: "y == 1", do: [notmine]}]}]
          - branch: [{when: "y == 1", do: [leak]}, {else: [join]}]
        """,
        count=N,
        vars_="{y: 0}",
    )
    # `other` runs long, so `setter` has finished before it: still arm 2 cannot see y.
    assert c == {"start": N, "setter": N, "mine": N, "other": N, "notmine": 0, "leak": 0, "join": N}


def test_branch_cases_share_the_enclosing_scope(tmp_path: Path) -> None:
    c = run(
        tmp_path,
        """\
        tasks:
          a: {kind: general, cycles: 10}
          setz: {kind: general, cycles: 10, sets: {z: 7}}
          after: {kind: general, cycles: 10}
        flow:
          - a
          - branch: [{when: "1", do: [setz]}]
          - branch: [{when: "z == 7", do: [after]}]
        """,
        count=N,
        vars_="{z: 0}",
    )
    assert c == {"a": N, "setz": N, "after": N}


def test_branch_probabilities(tmp_path: Path) -> None:
    n = 1000
    c = run(
        tmp_path,
        """\
        tasks:
          a: {kind: general, cycles: 10}
          x: {kind: general, cycles: 10}
          y: {kind: general, cycles: 10}
          z: {kind: general, cycles: 10}
          w: {kind: general, cycles: 10}
        flow:
          - a
          - branch: [{p: 0.3, do: [x]}, {p: 0.2, do: [y]}, {else: [z]}]
          - branch: [{p: 0.1, do: [w]}]
        """,
        count=n,
    )
    assert c["x"] + c["y"] + c["z"] == n
    for name, p in (("x", 0.3), ("y", 0.2), ("z", 0.5), ("w", 0.1)):
        assert abs(c[name] - p * n) <= 5 * math.sqrt(n * p * (1 - p)), (name, c[name])


def test_branch_when_cases_in_order_and_phases(tmp_path: Path) -> None:
    """The first true case wins; phases override `vars` per instance range."""
    c = run(
        tmp_path,
        """\
        phases:
          - {count: 10, vars: {k: 2}}
          - {count: 15, vars: {k: 1}}
          - {count: 5}
        tasks:
          s: {kind: general, cycles: 10}
          big: {kind: general, cycles: 10}
          small: {kind: general, cycles: 10}
          none: {kind: general, cycles: 10}
        flow:
          - s
          - branch:
              - {when: "k > 1", do: [big]}
              - {when: "k > 0", do: [small]}
              - {else: [none]}
        """,
        count=30,
        vars_="{k: 0}",
    )
    assert c == {"s": 30, "big": 10, "small": 15, "none": 5}


def test_phase_overrides_a_variable_set_by_a_task(tmp_path: Path) -> None:
    c = run(
        tmp_path,
        """\
        phases:
          - {count: 20}
          - {count: 20, vars: {objects: {dist: const, value: 4}}}
        tasks:
          detect: {kind: general, cycles: 10, sets: {objects: 1}}
          recog: {kind: general, cycles: 10}
        flow: [detect, {foreach: objects, do: [recog]}]
        """,
        count=40,
    )
    assert c == {"detect": 40, "recog": 20 * 1 + 20 * 4}


def test_phases_can_be_cleared_with_set(tmp_path: Path) -> None:
    body = """\
        phases: [{count: 5}, {count: 5, vars: {k: 3}}]
        tasks:
          a: {kind: general, cycles: 10}
        flow: [{foreach: k, do: [a]}]
        """
    assert run(tmp_path, body, count=10, vars_="{k: 1}") == {"a": 5 + 15}
    c = run(tmp_path, body, count=10, vars_="{k: 1}", sets=("workflow.phases=[]",))
    assert c == {"a": 10}


def test_nested_loop_and_foreach(tmp_path: Path) -> None:
    c = run(
        tmp_path,
        """\
        tasks:
          a: {kind: general, cycles: 10}
          b: {kind: general, cycles: 10}
        flow:
          - loop:
              count: 2
              do: [a, {foreach: 3, do: [b, {parallel: [[b], [b]]}]}]
        """,
        count=N,
    )
    assert c == {"a": 2 * N, "b": 2 * 3 * 3 * N}


def test_cycles_rounded_to_nearest_non_negative_integer(tmp_path: Path) -> None:
    for cycles, work in (("1000.5", 1001), ("1000.4", 1000), ("'n - 5'", 0)):
        data = doc(
            f"tasks: {{a: {{kind: general, cycles: {cycles}}}}}\nflow: [a]\n",
            count=3,
            vars_="{n: 0}",
        )
        p = tmp_path / "w.yaml"
        p.write_text(yaml.safe_dump(data))
        sim = simulate(resolve_config(str(p), "octopus-chip", "static", 1))
        assert sim.instances_done == 3
        assert sim.acct.total_work == 3 * work, cycles


def test_runaway_loop_is_a_clear_error(tmp_path: Path) -> None:
    data = doc(
        "tasks: {a: {kind: general, cycles: 1}}\n"
        "flow: [{loop: {while: 'n >= 0', do: [a], max_iterations: 7}}]\n",
        vars_="{n: 0}",
    )
    p = tmp_path / "w.yaml"
    p.write_text(yaml.safe_dump(data))
    cfg = resolve_config(str(p), "octopus-chip", "static", 1)
    with pytest.raises(UserError) as info:
        simulate(cfg)
    assert info.value.where == "flow[0]"
    assert "7 iterations" in info.value.what and "max_iterations" in info.value.what


# --- variables read before any path can have set them ---------------------------------------

_SETS_X = "  a: {kind: general, cycles: 1, sets: {x: 5}}\n  b: {kind: general, cycles: 'x * 10'}\n"


@pytest.mark.parametrize(
    "flow,ok",
    [
        ("[a, b]", True),
        ("[b, a]", False),  # read before the only task that sets it
        ("[{foreach: 2, do: [a]}, b]", False),  # foreach copies keep what they set
        ("[{parallel: [[a], [a]]}, b]", False),  # so do parallel arms
        ("[{foreach: 2, do: [a, b]}]", True),  # ... but see it inside
        ("[{branch: [{p: 0.5, do: [a]}]}, b]", True),  # may be set: checked per instance
        ("[{loop: {count: 2, do: [a]}}, b]", True),  # a loop body shares the scope
        ("[{loop: {count: 2, do: [b, a]}}]", False),  # first iteration reads it unset
        ("[{branch: [{when: 'x > 0', do: [a]}]}, b]", False),  # the condition reads it
        ("[a, {loop: {while: 'x < 3', do: [b]}}]", True),
    ],
)
def test_variable_read_where_no_path_has_set_it(flow: str, ok: bool) -> None:
    body = f"tasks:\n{_SETS_X}flow: {flow}\n"
    if ok:
        parse(body)
    else:
        with pytest.raises(UserError, match="no path through the flow has set it"):
            parse(body)
