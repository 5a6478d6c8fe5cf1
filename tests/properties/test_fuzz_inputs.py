"""Fuzzing the command line with bad input (see docs/testing.md).

Whatever the file holds -- arbitrary YAML-ish structures, or valid workflow/arch files with a
key dropped, a type changed, a value replaced, keys duplicated, the text truncated or random
bytes inserted -- ``octosim validate FILE`` and ``octosim run FILE --arch ideal --policy P
--json`` must return 0 or 2, never raise, never print a traceback, report an error as one
``error: ...`` line on stderr, and finish within ``TIME_LIMIT`` seconds.

Mutated values are kept small enough (integers up to ``MAX_RANDOM_INT``, at most
``MAX_MUTATIONS`` mutations, base workflows of at most 5 instances) that a *valid* mutant
runs in well under a second: a timeout means a hang, not a big request.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from octosim.cli import main
from octosim.model.loader import load_yaml_file
from octosim.workloads import resolve
from tests.strategies import budget, policy_names, workflows

TIME_LIMIT = 10.0  # seconds per CLI call
MAX_RANDOM_INT = 50
MAX_MUTATIONS = 2
FUZZ_EXAMPLES = 300  # per fuzzer, CI profile
DEEP_FUZZ_EXAMPLES = 3000

_TMP = tempfile.TemporaryDirectory(prefix="octosim-fuzz-")
_COUNTER = iter(range(10**9))


class CliTimeout(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # no signals: time it
        t0 = time.perf_counter()
        yield
        assert time.perf_counter() - t0 <= seconds, f"took more than {seconds} s"
        return

    def _alarm(signum: int, frame: Any) -> None:
        raise CliTimeout(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def write(content: str | bytes, suffix: str = ".yaml") -> str:
    path = Path(_TMP.name) / f"f{next(_COUNTER)}{suffix}"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return str(path)


# Known bugs, reported and reproduced by the strict-xfail tests at the end of this file. The
# fuzzers tolerate exactly these signatures so that the suite stays green; anything else
# fails. Delete an entry when its xfail test starts to XPASS (the bug is fixed).
KNOWN_CRASHES = [
    # (exception type, message regex, innermost octosim function)
]
KNOWN_BAD_REPORTS: list[re.Pattern[str]] = [
    # stderr of an exit-2 report that is not one line (none known at present)
]


def _known_crash(exc: BaseException) -> bool:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/octosim/" in f.filename]
    func = frames[-1].name if frames else ""
    return any(
        type(exc).__name__ == name and re.search(msg, str(exc)) and func == where
        for name, msg, where in KNOWN_CRASHES
    )


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Call ``octosim.cli.main(argv)`` in-process; check the bad-input contract. A known bug
    (see KNOWN_CRASHES / KNOWN_BAD_REPORTS) counts as exit 2."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with (
            time_limit(TIME_LIMIT),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            rc = main(argv)
    except Exception as exc:
        if _known_crash(exc):
            event(f"known bug: {type(exc).__name__}")
            return 2, out.getvalue(), err.getvalue()
        raise
    stdout, stderr = out.getvalue(), err.getvalue()
    assert rc in (0, 2), f"exit {rc} for {argv}: {stderr[-2000:]}"
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-2000:]
    if rc == 2:
        lines = stderr.strip().splitlines()
        if len(lines) != 1 and any(p.match(stderr) for p in KNOWN_BAD_REPORTS):
            event("known bug: report not one line")
            return rc, stdout, stderr
        assert len(lines) == 1 and lines[0].startswith("error: "), (
            f"bad-input report is not one 'error: ...' line: {stderr!r}"
        )
    else:
        assert stderr == "", stderr
    return rc, stdout, stderr


def check_run(
    wf_path: str, arch: str = "ideal", policy: str = "static", extra: list[str] | None = None
) -> int:
    rc, stdout, _ = run_cli(
        ["run", wf_path, "--arch", arch, "--policy", policy, "--json", *(extra or [])]
    )
    event(f"run exit {rc}")
    if rc == 0:
        result = json.loads(stdout)
        for key in (
            "workflow",
            "arch",
            "policy",
            "seed",
            "instances",
            "makespan_cycles",
            "latency_cycles",
            "pea_utilization",
            "idle",
            "tasks",
            "lower_bound_cycles",
            "events",
            "wall_seconds",
        ):
            assert key in result, f"run --json lacks {key!r}"
        assert result["makespan_cycles"] >= result["lower_bound_cycles"]
    return rc


def check_validate(path: str) -> int:
    rc, stdout, _ = run_cli(["validate", path])
    event(f"validate exit {rc}")
    if rc == 0:
        assert stdout.startswith(f"{path}: ok"), stdout
    return rc


# --- inputs -------------------------------------------------------------------------------------

FIELD_NAMES = [
    # workflow
    "owg",
    "name",
    "description",
    "arrivals",
    "process",
    "interarrival_cycles",
    "count",
    "input_bytes",
    "phases",
    "vars",
    "tasks",
    "flow",
    "kind",
    "cycles",
    "model",
    "scale",
    "peas",
    "context_bytes",
    "out_bytes",
    "sets",
    "foreach",
    "do",
    "loop",
    "while",
    "max_iterations",
    "branch",
    "p",
    "when",
    "else",
    "parallel",
    "dist",
    "mean",
    "sd",
    "low",
    "high",
    "value",
    "values",
    "weights",
    "samples",
    # arch
    "arch",
    "clock_ghz",
    "pea",
    "rows",
    "cols",
    "sram_kib",
    "dataflow",
    "tbu",
    "split_efficiency",
    "cluster",
    "tbus",
    "cbu_cycles",
    "grid",
    "noc",
    "hop_cycles",
    "link_bytes_per_cycle",
    "control_plane",
    "memory",
    "bytes_per_cycle",
    "reconfig",
    "fixed_cycles",
    "defects",
    "dead_tbus",
    "dead_peas",
    "dead_routers",
    "sources",
]
WORDS = [
    "poisson",
    "periodic",
    "batch",
    "general",
    "ai",
    "resnet50",
    "yolov5s",
    "nosuchmodel",
    "exponential",
    "uniform",
    "choice",
    "os",
    "ws",
    "is",
    "t0",
    "task-1",
    "min",
    "max",
    "ideal",
    "",
    " ",
    "\t",
    "é",
    "😀",
    "null",
    "~",
    "yes",
    "0x10",
    "1_000",
    ".inf",
]
EXPRESSIONS = [
    "objects * 2",
    "1/0",
    "1 % 0",
    "x +",
    "__import__('os')",
    "(((((1)))))",
    "1e400",
    "10**10**10",
    "9**9**9",
    "max()",
    "min(1)",
    "log(0)",
    "log(1, 1)",
    "sqrt(-1)",
    "a if b else c",
    "not",
    "lambda: 1",
    "[1, 2]",
    "'str'",
    "1 < 2 < 3",
    "n + 1",
    "n < 3",
    "ceil(1e308 * 10)",
    "floor(1e400 - 1e400)",
    "round(2.5)",
    "abs(-3) + exp(1)",
    "t0",
    "1000000000000000000 * 1000000000000000000",
    "-" * 200 + "1",
    "(" * 70 + "1" + ")" * 70,
    "1 +" * 300 + "1",
    "x.y",
    "x[0]",
    "f(x)",
    "True and False or 1",
    "2 ** 0.5",
    "(-8) ** 0.5",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX_RANDOM_INT, max_value=MAX_RANDOM_INT),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**20, 10**400]),
    st.floats(min_value=-100, max_value=100),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e300, -1e300, 1e16, 5e-324]),
    st.sampled_from(WORDS),
    st.sampled_from(EXPRESSIONS),
    st.sampled_from(FIELD_NAMES),
    st.text(max_size=20),
)
keys = st.one_of(
    st.sampled_from(FIELD_NAMES),
    st.text(max_size=8),
    st.integers(min_value=-3, max_value=3),
    st.booleans(),
    st.none(),
)
yaml_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _small_workflow(wf: dict[str, Any]) -> dict[str, Any]:
    wf = copy.deepcopy(wf)
    wf["arrivals"]["count"] = 6
    wf["phases"] = [
        {"name": "quiet", "count": 3},
        {"name": "rush", "count": 3, "vars": {"objects": {"dist": "poisson", "mean": 9}}},
    ]
    return wf


BUILTIN_WORKFLOWS = [_small_workflow(load_yaml_file(resolve("workflow", "street-camera")))]
BUILTIN_ARCHS = [load_yaml_file(resolve("arch", name)) for name in ("ideal", "octopus-chip")]
SMALL_WORKFLOW = {
    "owg": 1,
    "name": "small",
    "arrivals": {"process": "batch", "count": 3},
    "tasks": {"a": {"kind": "general", "cycles": 100}},
    "flow": ["a"],
}

base_workflows = st.one_of(
    st.sampled_from(BUILTIN_WORKFLOWS), workflows(max_count=5, allow_ai=True)
)
base_archs = st.sampled_from(BUILTIN_ARCHS)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (tuple of keys / indices) into a nested structure, the root excluded."""
    out = []
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return out
    for k, v in items:
        p = (*prefix, k)
        out.append(p)
        out += paths(v, p)
    return out


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for k in path[:-1]:
        data = data[k]
    return data


@st.composite
def mutated(draw: Any, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A valid document with 1 to MAX_MUTATIONS structural mutations."""
    doc = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(min_value=1, max_value=MAX_MUTATIONS))):
        ps = paths(doc)
        if not ps:
            break
        path = draw(st.sampled_from(ps))
        parent, key = _parent(doc, path), path[-1]
        op = draw(st.sampled_from(["drop", "retype", "scalar", "expression", "wrap", "tree"]))
        old = parent[key]
        if op == "drop":
            del parent[key]
        elif op == "retype":
            parent[key] = draw(
                st.sampled_from(
                    [
                        str(old),
                        [old],
                        {"value": old},
                        None,
                        True,
                        len(old) if isinstance(old, list | dict | str) else 1,
                    ]
                )
            )
        elif op == "scalar":
            parent[key] = draw(scalars)
        elif op == "expression":
            parent[key] = draw(st.sampled_from(EXPRESSIONS))
        elif op == "wrap":
            parent[key] = {draw(st.sampled_from(FIELD_NAMES)): old}
        else:
            parent[key] = draw(yaml_values)
    return doc


@st.composite
def text_mutated(draw: Any, base: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """The YAML text of a valid document, damaged: duplicated or dropped lines (duplicate
    keys), truncation at a random byte, random bytes inserted or overwritten."""
    raw = dump(draw(base)).encode()
    for _ in range(draw(st.integers(min_value=1, max_value=MAX_MUTATIONS))):
        op = draw(st.sampled_from(["dup_line", "drop_line", "truncate", "insert", "flip"]))
        lines = raw.split(b"\n")
        if op == "dup_line" and lines:
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            j = draw(st.integers(min_value=0, max_value=len(lines)))
            lines.insert(j, lines[i])
            raw = b"\n".join(lines)
        elif op == "drop_line" and lines:
            del lines[draw(st.integers(min_value=0, max_value=len(lines) - 1))]
            raw = b"\n".join(lines)
        elif op == "truncate":
            raw = raw[: draw(st.integers(min_value=0, max_value=len(raw)))]
        elif op == "insert":
            i = draw(st.integers(min_value=0, max_value=len(raw)))
            raw = raw[:i] + draw(st.binary(min_size=1, max_size=8)) + raw[i:]
        elif raw:
            i = draw(st.integers(min_value=0, max_value=len(raw) - 1))
            raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
    return raw


settings_ = budget(FUZZ_EXAMPLES, DEEP_FUZZ_EXAMPLES)
POLICIES = policy_names()


# --- fuzzers ------------------------------------------------------------------------------------


@settings_
@given(
    data=yaml_values, head=st.sampled_from([None, "owg", "arch"]), policy=st.sampled_from(POLICIES)
)
def test_fuzz_arbitrary_structures(data: Any, head: str | None, policy: str) -> None:
    """Arbitrary YAML structures, optionally under ``owg: 1`` / ``arch: 1`` to get past the
    first check."""
    if head is not None:
        data = {head: 1, **data} if isinstance(data, dict) else {head: 1, "flow": data}
    path = write(dump(data))
    check_validate(path)
    check_run(path, policy=policy)
    if head == "arch":
        check_run(write(dump(SMALL_WORKFLOW)), arch=path, policy=policy)


@settings_
@given(doc=mutated(base_workflows), policy=st.sampled_from(POLICIES))
def test_fuzz_mutated_workflows(doc: dict[str, Any], policy: str) -> None:
    path = write(dump(doc))
    check_validate(path)
    check_run(path, policy=policy)


@settings_
@given(doc=mutated(base_archs), policy=st.sampled_from(POLICIES))
def test_fuzz_mutated_archs(doc: dict[str, Any], policy: str) -> None:
    path = write(dump(doc))
    check_validate(path)
    check_run(write(dump(SMALL_WORKFLOW)), arch=path, policy=policy)


@settings_
@given(raw=text_mutated(st.one_of(base_workflows, base_archs)), policy=st.sampled_from(POLICIES))
def test_fuzz_damaged_text(raw: bytes, policy: str) -> None:
    path = write(raw)
    check_validate(path)
    if raw.lstrip().startswith(b"arch"):
        check_run(write(dump(SMALL_WORKFLOW)), arch=path, policy=policy)
    else:
        check_run(path, policy=policy)


set_keys = st.one_of(
    st.builds(
        lambda a, b: f"{a}.{b}",
        st.sampled_from(["workflow", "arch", "policy"]),
        st.sampled_from(
            FIELD_NAMES
            + [
                "arrivals.count",
                "noc.hop_cycles",
                "buffer_slots",
                "host_cycles",
                "partition.a",
                "partition",
                "peas",
                "x.y.z",
            ]
        ),
    ),
    st.sampled_from(["seed", "policy", "workflow", "arch", "", ".", "workflow.", "a=b"]),
    st.text(max_size=12),
)


@settings_
@given(
    sets=st.lists(
        st.tuples(
            set_keys, st.one_of(scalars.map(lambda v: dump(v).strip()), st.text(max_size=12))
        ),
        min_size=1,
        max_size=3,
    ),
    policy=st.sampled_from(POLICIES),
)
def test_fuzz_set_options(sets: list[tuple[str, str]], policy: str) -> None:
    """``--set KEY=VALUE`` with random paths and YAML values on a valid small workflow."""
    extra = []
    for key, value in sets:
        extra += ["--set", f"{key}={value.removesuffix('...').strip()}"]
    check_run(write(dump(SMALL_WORKFLOW)), policy=policy, extra=extra)


# --- regressions: bugs the fuzzers found, fixed ------------------------------------------------


@pytest.mark.parametrize("step", ["{1: x, b: y}", "{loop: {count: 1, do: [a], 1: x, z: y}}"])
def test_mixed_type_keys_are_a_user_error(step: str) -> None:
    path = write(
        "owg: 1\nname: m\narrivals: {process: batch, count: 1}\n"
        f"tasks: {{a: {{kind: general, cycles: 1}}}}\nflow: [a, {step}]\n"
    )
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["validate", path]) == 2
