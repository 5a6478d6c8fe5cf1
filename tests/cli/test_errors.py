"""Bad input through the real command line: exit 2, one line ``error: FILE: where: what``.

DESIGN section 6: unreadable files, YAML errors, unknown names, bad values and impossible
requests exit with status 2 and a single ``error: ...`` line on stderr, never a traceback
(exit 1 is reserved for bugs). Each case below names the file and the place it expects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from octosim.cli import main

RUN = ["--arch", "octopus-chip", "--policy", "static", "--json"]

# A small valid workflow; cases edit it.
GOOD = """\
owg: 1
name: tiny
arrivals: {process: batch, count: 4}
vars: {n: 0}
tasks:
  a: {kind: general, cycles: 1000}
  b: {kind: general, cycles: 500}
flow:
  - a
  - b
"""


def wf(tasks: str = "", flow: str = "", extra: str = "vars: {n: 0}\n", count: int = 4) -> str:
    """A workflow with the given ``tasks:`` and ``flow:`` bodies (indented two spaces)."""
    tasks = tasks or "a: {kind: general, cycles: 1000}\nb: {kind: general, cycles: 500}\n"
    flow = flow or "- a\n- b\n"
    return (
        f"owg: 1\nname: tiny\narrivals: {{process: batch, count: {count}}}\n{extra}"
        + "tasks:\n"
        + textwrap.indent(textwrap.dedent(tasks), "  ")
        + "flow:\n"
        + textwrap.indent(textwrap.dedent(flow), "  ")
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_user_error(
    rc: int, err: str, file: str | None = None, where: str | None = None, what: str | None = None
) -> str:
    """Exit 2, exactly one line starting ``error: ``, naming file, place and problem."""
    assert rc == 2, f"exit {rc}, stderr {err!r}"
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    line = err.rstrip("\n")
    assert line.startswith("error: "), line
    head = "error: "
    if file is not None:
        head += f"{file}: "
        assert line.startswith(head), f"{line!r} does not start with {head!r}"
    if where is not None:
        if file is not None:
            assert line.startswith(f"{head}{where}: "), f"{line!r}: place {where!r} not next"
        else:
            assert f"{where}: " in line, f"{line!r}: place {where!r} missing"
    if what is not None:
        assert what.lower() in line.lower(), f"{line!r}: {what!r} missing"
    return line


# --- files that cannot be read as YAML text ----------------------------------------------------


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nope.yaml")
    rc, _, err = cli(capsys, "validate", path)
    assert_user_error(rc, err, path, what="no such file")
    rc, _, err = cli(capsys, "run", path, *RUN)
    assert_user_error(rc, err, path, what="no such file")


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "dir.yaml"
    d.mkdir()
    rc, _, err = cli(capsys, "validate", str(d))
    assert_user_error(rc, err, str(d), what="directory")
    rc, _, err = cli(capsys, "run", str(d), *RUN)
    assert_user_error(rc, err, str(d), what="directory")


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"owg: 1\x00\nname: x\n"],
    ids=["png-header", "nul-byte"],
)
def test_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    p = tmp_path / "w.yaml"
    p.write_bytes(data)
    rc, _, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), what="not a text file")


def test_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "w.yaml"
    p.write_bytes(GOOD.replace("tiny", "caf\xe9").encode("latin-1"))
    rc, _, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), what="not UTF-8")


def test_yaml_syntax_error_names_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "w.yaml"
    p.write_text("owg: 1\nname: x\ntasks:\n  a: {kind: general\n  b: ]\n")
    rc, _, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), where="line 5, column 4", what="YAML error")


def test_yaml_alias_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # "Billion laughs": 9 levels of 9 aliases each is 9**9 = 387 million nodes if expanded.
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = name
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    rc, _, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), what="alias bomb")


def test_very_deep_nesting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "deep.yaml"
    p.write_text("[" * 10_000 + "]" * 10_000 + "\n")
    rc, _, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), where="line 1", what="nesting deeper")
    # Deep block mappings too, with the line where the limit is crossed.
    p.write_text("".join(" " * i + f"k{i}:\n" for i in range(300)))
    rc, _, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), what="nesting deeper")


@pytest.mark.parametrize(
    "text,where,what",
    [
        ("when: 2024-13-45\n", "line 1, column 7", "month must be in 1..12"),
        ("n: " + "9" * 5000 + "\n", "line 1, column 4", "too many digits"),
        ("n: !!int abc\n", "line 1, column 4", "cannot read this value"),
        ("!!python/object/apply:os.system ['true']\n", "line 1, column 1", "constructor"),
        ("? [a, b]\n: 1\n", "line 1, column 3", "unhashable"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1", "another document"),
    ],
    ids=["bad-date", "huge-int", "bad-int-tag", "python-tag", "list-key", "two-docs"],
)
def test_yaml_values_pyyaml_cannot_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, what: str
) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(text)
    rc, _, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), where=where, what=what)


@pytest.mark.parametrize(
    "text", ["- 1\n- 2\n", "just a string\n", "", "42\n"], ids=["list", "string", "empty", "number"]
)
def test_top_level_not_a_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(text)
    rc, _, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), what="neither a workflow")
    rc, _, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), what="expected a mapping")


# --- workflow files that are YAML but not a valid OWG -----------------------------------------

# (id, file text, where, what): checked by `octosim validate` and, where noted, `octosim run`.
WORKFLOW_CASES: list[tuple[str, str, str, str]] = [
    ("wrong-owg-version", GOOD.replace("owg: 1", "owg: 2"), "owg", "expected 'owg: 1'"),
    ("unknown-top-field", GOOD + "colour: blue\n", "colour", "unknown field"),
    (
        "missing-arrivals",
        GOOD.replace("arrivals: {process: batch, count: 4}\n", ""),
        "arrivals",
        "required field is missing",
    ),
    ("unknown-task-in-flow", wf(flow="- a\n- b\n- c\n"), "flow[2]", "unknown task 'c'"),
    (
        "unknown-task-nested",
        wf(flow="- a\n- foreach: 2\n  do: [b, zz]\n"),
        "flow[1].do[1]",
        "unknown task 'zz'",
    ),
    ("unused-task", wf(flow="- a\n"), "tasks.b", "never used"),
    (
        "unknown-variable",
        wf(tasks="a: {kind: general, cycles: '100 * objects'}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.cycles",
        "unknown variable 'objects'",
    ),
    (
        "unknown-variable-in-when",
        wf(flow="- a\n- branch:\n  - {when: 'speed > 3', do: [b]}\n"),
        "flow[1].branch[0].when",
        "unknown variable 'speed'",
    ),
    (
        "peas-not-a-list",
        wf(tasks="a: {kind: general, cycles: 1, peas: 'a lot'}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.peas",
        "valid tuple",
    ),
    (
        "peas-element-not-int",
        wf(tasks="a: {kind: general, cycles: 1, peas: [1, x]}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.peas[1]",
        "valid integer",
    ),
    (
        "peas-min-above-max",
        wf(tasks="a: {kind: general, cycles: 1, peas: [4, 2]}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.peas",
        "1 <= min <= max",
    ),
    (
        "negative-cycles",
        wf(tasks="a: {kind: general, cycles: -5}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.cycles",
        "must be >= 0",
    ),
    (
        "huge-cycles",
        wf(tasks="a: {kind: general, cycles: 1.0e+300}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.cycles",
        "larger than the maximum",
    ),
    (
        "negative-count",
        GOOD.replace("count: 4", "count: -3"),
        "arrivals.count",
        "greater than or equal to 1",
    ),
    ("count-not-int", GOOD.replace("count: 4", "count: many"), "arrivals.count", "valid integer"),
    (
        "unknown-kind",
        wf(tasks="a: {kind: magic, cycles: 1}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.kind",
        "'ai' or 'general'",
    ),
    (
        "p-above-one",
        wf(flow="- a\n- branch:\n  - {p: 1.5, do: [b]}\n"),
        "flow[1].branch[0].p",
        "[0, 1]",
    ),
    (
        "p-sum-above-one",
        wf(flow="- branch:\n  - {p: 0.6, do: [a]}\n  - {p: 0.6, do: [b]}\n"),
        "flow[0].branch[1].p",
        "add up to 1.2 > 1",
    ),
    (
        "case-after-else",
        wf(flow="- branch:\n  - {else: [a]}\n  - {p: 0.1, do: [b]}\n"),
        "flow[0].branch[1]",
        "no case may follow 'else'",
    ),
    ("foreach-without-do", wf(flow="- a\n- {foreach: 3}\n- b\n"), "flow[1]", "'do'"),
    (
        "loop-while-and-count",
        wf(flow="- a\n- loop: {while: 'n < 2', count: 3, do: [b]}\n"),
        "flow[1].loop",
        "exactly one of 'while' and 'count'",
    ),
    (
        "loop-bad-max-iterations",
        wf(flow="- a\n- loop: {count: 3, do: [b], max_iterations: 0}\n"),
        "flow[1].loop.max_iterations",
        "integer from 1",
    ),
    ("unknown-step", wf(flow="- a\n- {repeat: [b]}\n"), "flow[1]", "unknown step 'repeat'"),
    (
        "unknown-distribution",
        wf(tasks="a: {kind: general, cycles: {dist: zipf, s: 2}}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.cycles",
        "unknown distribution 'zipf'",
    ),
    (
        "distribution-missing-param",
        wf(
            tasks="a: {kind: general, cycles: {dist: normal, mean: 5}}\n"
            "b: {kind: general, cycles: 1}\n"
        ),
        "tasks.a.cycles",
        "normal needs sd",
    ),
    (
        "distribution-extra-param",
        wf(
            tasks="a: {kind: general, cycles: {dist: exponential, mean: 5, sd: 1}}\n"
            "b: {kind: general, cycles: 1}\n"
        ),
        "tasks.a.cycles",
        "exponential does not take sd",
    ),
    (
        "lognormal-mean-zero",
        wf(
            tasks="a: {kind: general, cycles: {dist: lognormal, mean: 0, sd: 1}}\n"
            "b: {kind: general, cycles: 1}\n"
        ),
        "tasks.a.cycles",
        "lognormal: mean must be > 0",
    ),
    (
        "lognormal-mean-negative",
        wf(
            tasks="a: {kind: general, cycles: 1}\nb: {kind: general, cycles: 1}\n",
            extra="vars: {x: {dist: lognormal, mean: -2, sd: 1}}\n",
        ),
        "vars.x",
        "lognormal: mean must be > 0",
    ),
    (
        "geometric-p-zero",
        wf(
            tasks="a: {kind: general, cycles: 1, sets: {k: {dist: geometric, p: 0}}}\n"
            "b: {kind: general, cycles: 1}\n"
        ),
        "tasks.a.sets.k",
        "p must be in (0, 1]",
    ),
    (
        "choice-length-mismatch",
        wf(
            tasks="a: {kind: general, cycles: {dist: choice, values: [1, 2], weights: [1]}}\n"
            "b: {kind: general, cycles: 1}\n"
        ),
        "tasks.a.cycles",
        "same length",
    ),
    (
        "dist-param-divides-by-zero",
        wf(
            tasks="a: {kind: general, cycles: {dist: normal, mean: '1/0', sd: 1}}\n"
            "b: {kind: general, cycles: 1}\n"
        ),
        "tasks.a.cycles",
        "division by zero",
    ),
    (
        "phases-do-not-add-up",
        GOOD.replace("count: 4}", "count: 10}\nphases:\n  - {count: 4}\n  - {count: 5}"),
        "phases",
        "add up to 9 but arrivals.count is 10",
    ),
    (
        "phase-overrides-unknown-variable",
        GOOD.replace("count: 4}", "count: 4}\nphases:\n  - {count: 4, vars: {zz: 1}}"),
        "phases[0].vars.zz",
        "no 'vars' or 'sets' defines",
    ),
    (
        "reserved-variable-name",
        GOOD.replace("vars: {n: 0}", "vars: {min: 0}"),
        "vars.min",
        "not a valid variable name",
    ),
    ("non-string-key", GOOD.replace("vars: {n: 0}", "vars: {1: 0}"), "vars.1", "valid string"),
    (
        "model-on-general-task",
        wf(tasks="a: {kind: general, model: resnet50}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a.model",
        "kind: ai",
    ),
    (
        "cycles-and-model",
        wf(tasks="a: {kind: ai, model: resnet50, cycles: 3}\nb: {kind: general, cycles: 1}\n"),
        "tasks.a",
        "not both",
    ),
    (
        "zero-interarrival",
        GOOD.replace("process: batch", "process: poisson"),
        "arrivals.interarrival_cycles",
        "must be > 0",
    ),
]


@pytest.mark.parametrize(
    "text,where,what", [c[1:] for c in WORKFLOW_CASES], ids=[c[0] for c in WORKFLOW_CASES]
)
def test_bad_workflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, what: str
) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(text)
    rc, out, err = cli(capsys, "validate", str(p))
    assert_user_error(rc, err, str(p), where=where, what=what)
    assert out == ""
    # `run` rejects it the same way, before simulating anything.
    rc, out, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), where=where, what=what)
    assert out == ""


def test_the_good_workflow_is_good(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cases above differ from a valid workflow only by the mistake they test."""
    p = tmp_path / "w.yaml"
    p.write_text(GOOD)
    rc, out, err = cli(capsys, "validate", str(p))
    assert (rc, err) == (0, "") and "ok" in out
    p.write_text(wf())
    rc, out, err = cli(capsys, "run", str(p), *RUN)
    assert (rc, err) == (0, "") and '"instances": 4' in out


# --- hostile expressions ----------------------------------------------------------------------

HOSTILE = [
    ("import", "__import__('os').system('touch {marker}')", "Attribute is not allowed"),
    ("import-call", "__import__('os')", "only these functions"),
    ("eval", "eval(\"__import__('os').system('touch {marker}')\")", "only these functions"),
    ("attribute", "().__class__", "Attribute is not allowed"),
    ("dunder-chain", "(1).__class__.__bases__[0].__subclasses__()", "Attribute is not allowed"),
    ("lambda", "(lambda: 1)()", "Lambda is not allowed"),
    ("bare-lambda", "lambda: 1", "Lambda is not allowed"),
    ("comprehension", "[x for x in (1, 2)]", "ListComp is not allowed"),
    ("generator", "sum(x for x in (1, 2))", "only these functions"),
    ("huge-power", "9**9**9**9", "larger than 64"),
    ("string-constant", "'abc'", "only numbers"),
    ("bytes-constant", "b'abc'", "only numbers"),
    ("f-string", "f'{1}'", "JoinedStr is not allowed"),
    ("subscript", "n[0]", "Subscript is not allowed"),
    ("walrus", "(y := 1)", "NamedExpr is not allowed"),
    ("shift", "1 << 4000", "LShift is not allowed"),
    ("huge-int-constant", "9" * 500, "too large"),
    ("keyword-arg", "round(n, ndigits=2)", "keyword arguments"),
    ("membership", "n in (1, 2)", "In is not allowed"),
    ("deep", "(" * 200 + "1" + ")" * 200, "nested too deeply"),
    ("syntax", "1 +* 2", "cannot parse"),
]


@pytest.mark.parametrize("expr,what", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_expression_rejected_never_executed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expr: str, what: str
) -> None:
    marker = tmp_path / "pwned"
    text = expr.replace("{marker}", str(marker))
    quoted = "'" + text.replace("'", "''") + "'"  # YAML single-quoted scalar
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(tasks=f"a: {{kind: general, cycles: {quoted}}}\nb: {{kind: general, cycles: 1}}\n")
    )
    for cmd in (["validate", str(p)], ["run", str(p), *RUN]):
        rc, out, err = cli(capsys, *cmd)
        assert_user_error(rc, err, str(p), where="tasks.a.cycles", what=what)
        assert out == ""
    assert not marker.exists(), "a hostile expression was executed"


def test_hostile_expression_in_control_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    cond = f"__import__('os').system('touch {marker}') == 0"
    p = tmp_path / "w.yaml"
    p.write_text(wf(flow=f'- a\n- loop:\n    while: "{cond}"\n    do: [b]\n'))
    rc, _, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), where="flow[1].loop.while", what="not allowed")
    assert not marker.exists()


# --- errors found when the run is built or while it runs ---------------------------------------


def test_peas_wider_than_a_tbu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(tasks="a: {kind: general, cycles: 1000, peas: [1, 32]}\nb: {kind: general, cycles: 1}\n")
    )
    rc, _, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), where="tasks.a.peas", what="wider than a TBU (16 PEAs")
    # validate checks what run checks, against --arch (default octopus-chip): the same line.
    rc, _, err2 = cli(capsys, "validate", str(p))
    assert (rc, err2) == (2, err)
    wide = tmp_path / "wide.yaml"
    wide.write_text("arch: 1\nname: wide\ntbu: {peas: 32}\n")
    rc, out, err = cli(capsys, "validate", str(p), "--arch", str(wide))
    assert rc == 0, err
    assert "fits" in out and "wide.yaml" in out


def _zoo() -> None:
    try:
        from octosim.hardware.zoo import get_model
    except ImportError as exc:  # pragma: no cover - the zoo is being written alongside
        pytest.skip(f"model zoo not importable yet: {exc}")
    get_model("resnet50")


def test_peas_wider_than_a_tbu_ai_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _zoo()
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(tasks="a: {kind: ai, model: resnet50, peas: [1, 32]}\nb: {kind: general, cycles: 1}\n")
    )
    rc, _, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), where="tasks.a.peas", what="wider than a TBU")


def test_unknown_model_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _zoo()
    p = tmp_path / "w.yaml"
    p.write_text(wf(tasks="a: {kind: ai, model: resnet5000}\nb: {kind: general, cycles: 1}\n"))
    rc, _, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), where="tasks.a.model", what="unknown model 'resnet5000'")


def test_runaway_loop_at_run_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(wf(flow="- a\n- loop: {while: '1 > 0', do: [b], max_iterations: 20}\n"))
    rc, out, err = cli(capsys, "validate", str(p))
    assert rc == 0, err
    rc, out, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), where="flow[1]", what="loop ran 20 iterations")
    assert out == ""


PARTITION = ["--set", "policy.partition={a: 1, b: 1}"]  # skips the static profiler


@pytest.mark.parametrize("extra", [PARTITION, []], ids=["run", "profile"])
def test_division_by_zero_at_run_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(tasks="a: {kind: general, cycles: 1000}\nb: {kind: general, cycles: '1000 / n'}\n")
    )
    rc, _, err = cli(capsys, "validate", str(p))
    assert rc == 0, err
    rc, out, err = cli(capsys, "run", str(p), *RUN, *extra)
    line = assert_user_error(rc, err, str(p), what="division by zero")
    assert out == ""
    assert f"{p}: tasks.b.cycles: " in line or not extra, line


def test_division_by_zero_while_profiling_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(tasks="a: {kind: general, cycles: 1000}\nb: {kind: general, cycles: '1000 / n'}\n")
    )
    rc, _, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), where="tasks.b.cycles", what="division by zero")


@pytest.mark.parametrize(
    "flow,where",
    [
        ("- a\n- branch: [{when: '1 / n > 0', do: [b]}]\n", "flow[1].branch"),
        ("- a\n- loop: {while: '1 / n > 0', do: [b]}\n", "flow[1].loop.while"),
        ("- a\n- loop: {count: '1 / n', do: [b]}\n", "flow[1].loop.count"),
        ("- a\n- foreach: '1 / n'\n  do: [b]\n", "flow[1].foreach"),
    ],
    ids=["branch-when", "loop-while", "loop-count", "foreach-count"],
)
def test_division_by_zero_in_control_blocks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flow: str, where: str
) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(wf(flow=flow))
    rc, _, err = cli(capsys, "run", str(p), *RUN)
    assert_user_error(rc, err, str(p), where=where, what="division by zero (instance ")


def test_variable_not_set_in_this_scope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `x` is set inside the foreach copies only; after the join it is not visible.
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(
            tasks="a: {kind: general, cycles: 1, sets: {x: 5}}\n"
            "b: {kind: general, cycles: 'x * 10'}\n",
            flow="- foreach: 2\n  do: [a]\n- b\n",
        )
    )
    rc, _, err = cli(capsys, "run", str(p), *RUN, *PARTITION)
    assert_user_error(rc, err, str(p), where="tasks.b.cycles",
                      what="no path through the flow has set it")
    rc, _, err = cli(capsys, "validate", str(p))  # found at load time, before any run
    assert_user_error(rc, err, str(p), where="tasks.b.cycles",
                      what="no path through the flow has set it")


def test_variable_set_on_one_branch_only_fails_at_run_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `x` may be set (when the branch is taken), so loading accepts it; an instance that
    # skips the branch then fails with the instance named.
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(
            tasks="a: {kind: general, cycles: 1, sets: {x: 5}}\n"
            "b: {kind: general, cycles: 'x * 10'}\n",
            flow="- branch: [{p: 0.5, do: [a]}]\n- b\n",
            count=20,
        )
    )
    rc, _, err = cli(capsys, "run", str(p), *RUN, *PARTITION)
    assert_user_error(rc, err, str(p), where="tasks.b.cycles", what="'x' is not set here")


def test_runtime_distribution_parameter_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(
            tasks="a: {kind: general, cycles: {dist: lognormal, mean: 'n - 5', sd: 1}}\n"
            "b: {kind: general, cycles: 1}\n"
        )
    )
    rc, _, err = cli(capsys, "run", str(p), *RUN, *PARTITION)
    assert_user_error(rc, err, str(p), where="tasks.a.cycles", what="mean must be > 0")


def test_runtime_value_too_large(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(
        wf(
            tasks="a: {kind: general, cycles: {dist: normal, mean: 0, sd: 1.0e+299}}\n"
            "b: {kind: general, cycles: '(n + 1) * 1.0e+299'}\n"
        )
    )
    rc, _, err = cli(capsys, "run", str(p), *RUN, *PARTITION)
    assert_user_error(rc, err, str(p), where="tasks.a.cycles", what="larger than the maximum")
    p.write_text(
        wf(
            tasks="a: {kind: general, cycles: 1}\n"
            "b: {kind: general, cycles: '(n + 1) * 1.0e+299'}\n"
        )
    )
    rc, _, err = cli(capsys, "run", str(p), *RUN, *PARTITION)
    assert_user_error(rc, err, str(p), where="tasks.b.cycles", what="larger than the maximum")


def test_foreach_count_too_large(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "w.yaml"
    p.write_text(wf(flow="- a\n- foreach: {dist: exponential, mean: 1.0e+300}\n  do: [b]\n"))
    rc, _, err = cli(capsys, "run", str(p), *RUN, *PARTITION)
    line = assert_user_error(rc, err, str(p), where="flow[1].foreach", what="larger than")
    assert len(line) < 200
    p.write_text(wf(flow="- a\n- foreach: 10000000\n  do: [b]\n"))
    rc, _, err = cli(capsys, "run", str(p), *RUN, *PARTITION)
    assert_user_error(rc, err, str(p), where="flow[1]", what="larger than 1000000")


# --- names, options and --set -----------------------------------------------------------------


@pytest.fixture
def good(tmp_path: Path) -> str:
    p = tmp_path / "w.yaml"
    p.write_text(wf())
    return str(p)


def test_unknown_policy(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "run", good, "--arch", "octopus-chip", "--policy", "bogus")
    assert_user_error(rc, err, where="policy", what="unknown policy 'bogus'")
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "policy=bogus")
    assert_user_error(rc, err, where="policy", what="unknown policy 'bogus'")


def test_unknown_policy_parameter(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "policy.bogus=1")
    assert_user_error(rc, err, where="policy.bogus", what="unknown field")


def test_bad_policy_parameter_value(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "policy.buffer_slots=-1")
    assert_user_error(rc, err, where="policy.buffer_slots", what="greater than or equal to 0")
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "policy.peas=many")
    line = assert_user_error(rc, err, where="policy.peas", what="'min' or 'max'")
    assert "literal[" not in line  # pydantic's union-member tag is not a place


def test_impossible_partition(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "policy.partition={a: 10, b: 10}")
    assert_user_error(rc, err, where="policy.partition", what="a cluster has 16")
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "policy.partition.zz=1")
    assert_user_error(rc, err, where="policy.partition.zz", what="unknown task 'zz'")


@pytest.mark.parametrize(
    "item,what",
    [
        ("policybogus", "expected KEY=VALUE"),
        ("=3", "not a dotted path"),
        ("arch..noc=3", "not a dotted path"),
        ("colour=blue", "must start with workflow., arch., policy."),
        ("arch.noc.hop_cycles.x=3", "arch.noc.hop_cycles is not a mapping"),
        ("policy=[1]", "expected a policy name"),
    ],
    ids=["no-equals", "empty-key", "empty-part", "bad-root", "into-scalar", "policy-list"],
)
def test_bad_set_syntax(
    good: str, capsys: pytest.CaptureFixture[str], item: str, what: str
) -> None:
    rc, out, err = cli(capsys, "run", good, *RUN, "--set", item)
    line = assert_user_error(rc, err, what=what)
    assert line.startswith("error: --set "), line
    assert out == ""


def test_set_value_not_yaml(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "policy.buffer_slots=[1, 2")
    assert_user_error(rc, err, "--set policy.buffer_slots", what="YAML error")
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "arch.noc={a: &x [*x]}")
    assert rc == 2 and err.startswith("error: --set arch.noc")


def test_set_value_rejected_says_it_came_from_set(
    good: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "arch.noc.hop_cycles=abc")
    line = assert_user_error(rc, err, where="noc.hop_cycles", what="valid integer")
    assert line.startswith("error: octopus-chip: noc.hop_cycles: ")  # by name, not install path
    assert "(set by --set arch.noc.hop_cycles)" in line
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "workflow.arrivals.count=0")
    line = assert_user_error(rc, err, good, where="arrivals.count", what="set by --set")
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "workflow.phases=[{count: 3}]")
    assert_user_error(rc, err, good, where="phases", what="add up to 3 but arrivals.count is 4")


@pytest.mark.parametrize(
    "args,what",
    [
        (["--seed", "-1"], "seed must be an integer from 0"),
        (["--set", "seed=-1"], "seed must be an integer from 0"),
        (["--set", "seed=1.5"], "got 1.5"),
        (["--set", "seed=abc"], "got 'abc'"),
        (["--seed", str(2**70)], "seed must be an integer from 0"),
        (["--seed", "abc"], "invalid int value"),
    ],
    ids=["negative", "set-negative", "set-float", "set-string", "huge", "not-a-number"],
)
def test_bad_seed(
    good: str, capsys: pytest.CaptureFixture[str], args: list[str], what: str
) -> None:
    rc, _, err = cli(capsys, "run", good, *RUN, *args)
    assert_user_error(rc, err, what=what)


def test_unknown_builtin_names(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "run", "street-camra", *RUN)
    line = assert_user_error(rc, err, what="unknown workflow 'street-camra'; built-in: ")
    assert "street-camera" in line
    rc, _, err = cli(capsys, "run", good, "--arch", "octopus-chipp", "--policy", "static")
    assert_user_error(rc, err, what="unknown arch 'octopus-chipp'; built-in:")
    rc, _, err = cli(capsys, "run", good, "--arch", "nope/arch.yaml", "--policy", "static")
    assert_user_error(rc, err, "nope/arch.yaml", what="no such file")


def test_workflow_given_as_arch(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "run", good, "--arch", good, "--policy", "static")
    assert_user_error(rc, err, good, where="arch", what="expected 'arch: 1'")


ARCH_CASES = [
    ("zero-rows", "grid: {rows: 0, cols: 1}\n", "grid.rows", "greater than or equal to 1"),
    ("zero-tbus", "cluster: {tbus: 0}\n", "cluster.tbus", "greater than or equal to 1"),
    (
        "zero-link-bandwidth",
        "noc: {link_bytes_per_cycle: 0}\n",
        "noc.link_bytes_per_cycle",
        "greater than or equal to 0.001",
    ),
    (
        "vanishing-memory-bandwidth",
        "memory: {bytes_per_cycle: 2.8e-144}\n",  # found by the arch fuzzer: an overflow
        "memory.bytes_per_cycle",
        "greater than or equal to 0.001",
    ),
    ("unknown-field", "colour: blue\n", "colour", "unknown field"),
    ("bad-dataflow", "pea: {dataflow: xy}\n", "pea.dataflow", "'os', 'ws' or 'is'"),
    (
        "too-big",
        "grid: {rows: 256, cols: 256}\ncluster: {tbus: 4096}\n",
        "grid",
        "more than this simulator supports",
    ),
    (
        "defect-out-of-range",
        "defects: {dead_tbus: [3, 99]}\n",
        "defects.dead_tbus[1]",
        "index 99 outside 0..15",
    ),
]


@pytest.mark.parametrize(
    "body,where,what", [c[1:] for c in ARCH_CASES], ids=[c[0] for c in ARCH_CASES]
)
def test_bad_arch(
    tmp_path: Path, good: str, capsys: pytest.CaptureFixture[str], body: str, where: str, what: str
) -> None:
    a = tmp_path / "arch.yaml"
    a.write_text("arch: 1\nname: broken\n" + body)
    rc, _, err = cli(capsys, "validate", str(a))
    assert_user_error(rc, err, str(a), where=where, what=what)
    rc, _, err = cli(capsys, "run", good, "--arch", str(a), "--policy", "static")
    assert_user_error(rc, err, str(a), where=where, what=what)


def test_arch_with_no_working_cluster(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    dead = "[" + ", ".join(str(i) for i in range(16)) + "]"
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", f"arch.defects.dead_tbus={dead}")
    assert_user_error(rc, err, where="defects", what="no working cluster")


def test_too_few_tbus_for_the_tasks(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "run", good, *RUN, "--set", "arch.cluster.tbus=1")
    assert_user_error(rc, err, what="1 working TBUs for 2 task types")


def test_argument_errors(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    for args, what in [
        ([], "required: command"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run"], "required: workflow"),
        (["validate"], "required: files"),
        (["list", "bogus"], "invalid choice: 'bogus'"),
        (["run", good, "--bogus"], "unrecognized arguments: --bogus"),
    ]:
        rc, _, err = cli(capsys, *args)
        assert_user_error(rc, err, what=what)


def test_unwritable_outputs(tmp_path: Path, good: str, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = cli(capsys, "run", good, "--out", str(blocker / "out"))
    assert_user_error(rc, err, str(blocker / "out"), what="cannot write results")
    rc, _, err = cli(capsys, "run", good, "--trace", str(tmp_path))
    assert_user_error(rc, err, str(tmp_path), what="cannot write trace")


def test_validate_stops_at_the_first_bad_file(
    tmp_path: Path, good: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.yaml")
    rc, out, err = cli(capsys, "validate", good, missing)
    assert_user_error(rc, err, missing, what="no such file")
    assert out.startswith(f"{good}: ok")


# --- the same through a real process: nothing but one line reaches stderr ---------------------


SUBPROCESS_CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("missing-file", lambda d: ["validate", str(d / "nope.yaml")], "no such file"),
    (
        "alias-bomb",
        lambda d: _write(
            d,
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(
                f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "validate",
        ),
        "alias bomb",
    ),
    (
        "deep-nesting",
        lambda d: _write(d, "[" * 10_000 + "]" * 10_000, "validate"),
        "nesting deeper",
    ),
    (
        "hostile-expression",
        lambda d: _write(
            d,
            wf(
                tasks="a: {kind: general, cycles: \"__import__('os').system("
                f"'touch {d / 'pwned'}')\"}}\nb: {{kind: general, cycles: 1}}\n"
            ),
            "run",
        ),
        "not allowed",
    ),
    (
        "runaway-loop",
        lambda d: _write(
            d, wf(flow="- a\n- loop: {while: '1 > 0', do: [b], max_iterations: 5}\n"), "run"
        ),
        "loop ran 5 iterations",
    ),
    (
        "huge-yaml-int",
        lambda d: _write(d, "n: " + "1" * 5000 + "\n", "validate"),
        "too many digits",
    ),
]


def _write(d: Path, text: str, cmd: str) -> list[str]:
    p = d / "w.yaml"
    p.write_text(text)
    return ["validate", str(p)] if cmd == "validate" else ["run", str(p), *RUN]


@pytest.mark.parametrize(
    "make,what", [c[1:] for c in SUBPROCESS_CASES], ids=[c[0] for c in SUBPROCESS_CASES]
)
def test_subprocess_no_traceback(
    tmp_path: Path, make: Callable[[Path], list[str]], what: str
) -> None:
    args = make(tmp_path)
    env = dict(os.environ, PYTHONFAULTHANDLER="", PYTHONWARNINGS="error")
    proc = subprocess.run(
        [sys.executable, "-m", "octosim.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert_user_error(proc.returncode, proc.stderr, what=what)
    assert proc.stdout == ""
    assert not (tmp_path / "pwned").exists()
