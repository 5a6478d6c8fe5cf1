"""Orchestrated Workflow Graph (``owg: 1``): validated, then compiled for the engine.

Structure is checked by pydantic; values (numbers, distributions, expressions) and the flow
are compiled by hand so that every error names its exact place (``flow[3].foreach``).
The compiled flow is a tree of nodes, each with a stable ``block`` number (pre-order): random
draws are keyed by it, so they do not depend on the order events are processed.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from octosim.errors import UserError
from octosim.model.dists import Const, Value, compile_value
from octosim.model.expr import Expression, compile_expression
from octosim.model.loader import pydantic_error, require_mapping

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RESERVED = {"min", "max", "abs", "ceil", "floor", "round", "sqrt", "log", "log2", "exp",
             "true", "false", "True", "False", "and", "or", "not", "if", "else"}
MAX_TASKS = 1000
MAX_BLOCKS = 10_000
MAX_FLOW_DEPTH = 32
# Largest value each role may take, so that sums of cycles stay far inside 64-bit integers
# (latencies are recorded as int64) and a typo like 1e300 is an error, not a crash.
MAX_CYCLES = 1e15  # about 12 days at 1 GHz, for one task run
MAX_SCALE = 1e6  # multiplies a model's cycles (tokens, tiles...)
MAX_BYTES = 1e15
MAX_COUNT = 1e9  # foreach and loop counts (the engine has its own, smaller, limits)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArrivalsModel(_Strict):
    process: Literal["poisson", "periodic", "batch"]
    interarrival_cycles: float = Field(default=0.0, ge=0, le=1e15, allow_inf_nan=False)
    count: int = Field(ge=1, le=100_000_000)
    input_bytes: int = Field(default=0, ge=0, le=1 << 40)


class PhaseModel(_Strict):
    count: int = Field(ge=1, le=100_000_000)
    name: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)


class BatchModel(_Strict):
    """``batch: {max: N, wait_cycles: W}``: up to N ready runs of the task on one TBU share one
    pass over its weights; a run waits at most W cycles for partners."""

    max: int = Field(default=1, ge=1, le=4096)
    wait_cycles: int = Field(default=0, ge=0, le=10**12)


class TaskModel(_Strict):
    kind: Literal["ai", "general"]
    cycles: Any = None
    model: Any = None  # a zoo name or FILE.csv (str), or {onnx: FILE}: checked by _model_ref
    scale: Any = None
    weight_passes: Any = None
    peas: tuple[int, int] | None = None
    context_bytes: int | None = Field(default=None, ge=0, le=1 << 40)
    out_bytes: Any = 0
    sets: dict[str, Any] = Field(default_factory=dict)
    batch: BatchModel = Field(default_factory=BatchModel)
    description: str | None = None


class WorkflowModel(_Strict):
    owg: Literal[1]
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None
    arrivals: ArrivalsModel
    phases: list[PhaseModel] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)
    tasks: dict[str, TaskModel] = Field(min_length=1)
    flow: list[Any] = Field(min_length=1)
    # Task runs one instance may expand to (nested foreach and loops): beyond it a run ends
    # with an error naming the block instead of exhausting memory.
    max_runs_per_instance: int = Field(default=2_000_000, ge=1, le=100_000_000)


# --- compiled form --------------------------------------------------------------------------


@dataclass(eq=False)
class TaskDef:
    """One Task Block type. ``cycles`` is the work on one PEA (general tasks), ``scale``
    multiplies a model's cycles (e.g. tokens for an LLM step)."""

    name: str
    kind: str
    index: int
    cycles: Value | None
    model: str | None
    scale: Value | None
    peas: tuple[int, int] | None
    context_bytes: int | None
    out_bytes: Value
    sets: dict[str, Value]
    # Passes over the streamed weights per run (None: ``scale`` passes, one per unit).
    weight_passes: Value | None = None
    # Batched execution (``batch``): at most ``batch_max`` runs share one pass over the
    # weights; a run waits at most ``batch_wait_cycles`` for partners. 1 = no batching.
    batch_max: int = 1
    batch_wait_cycles: int = 0


class Node:
    __slots__ = ("block", "where")
    block: int
    where: str


class TaskNode(Node):
    __slots__ = ("task",)

    def __init__(self, block: int, where: str, task: TaskDef) -> None:
        self.block, self.where, self.task = block, where, task


class ForeachNode(Node):
    __slots__ = ("count", "body")

    def __init__(self, block: int, where: str, count: Value, body: list[Node]) -> None:
        self.block, self.where, self.count, self.body = block, where, count, body


class LoopNode(Node):
    __slots__ = ("cond", "count", "body", "max_iterations")

    def __init__(self, block: int, where: str, cond: Expression | None, count: Value | None,
                 body: list[Node], max_iterations: int) -> None:
        self.block, self.where = block, where
        self.cond, self.count, self.body, self.max_iterations = cond, count, body, max_iterations


@dataclass(eq=False)
class Case:
    kind: str  # "when" | "p" | "else"
    cond: Expression | None
    p: float
    body: list[Node]


class BranchNode(Node):
    __slots__ = ("cases",)

    def __init__(self, block: int, where: str, cases: list[Case]) -> None:
        self.block, self.where, self.cases = block, where, cases


class ParallelNode(Node):
    __slots__ = ("arms",)

    def __init__(self, block: int, where: str, arms: list[list[Node]]) -> None:
        self.block, self.where, self.arms = block, where, arms


@dataclass(eq=False)
class Phase:
    start: int
    count: int
    name: str
    overrides: dict[str, Value]


@dataclass(eq=False)
class Workflow:
    name: str
    file: str
    description: str
    arrival_process: str
    interarrival_cycles: float
    count: int
    input_bytes: int
    vars: dict[str, Value]
    tasks: dict[str, TaskDef]
    flow: list[Node]
    phases: list[Phase]
    n_blocks: int
    stage_order: dict[str, int] = field(default_factory=dict)
    max_runs_per_instance: int = 2_000_000
    _phase_starts: list[int] = field(default_factory=list)

    def phase_of(self, instance: int) -> Phase | None:
        if not self.phases:
            return None
        return self.phases[bisect_right(self._phase_starts, instance) - 1]

    def task_list(self) -> list[TaskDef]:
        return sorted(self.tasks.values(), key=lambda t: t.index)


def _value(raw: Any, file: str, where: str, limit: float | None = None) -> Value:
    try:
        v = compile_value(raw)
    except UserError as exc:
        raise exc.within(file=file, where=where) from None
    if limit is not None:
        if isinstance(v, Const) and v.value > limit:
            raise UserError(f"{v.value:g} is larger than the maximum {limit:g}", file=file,
                            where=where)
        v.limit = limit
    return v


def _check_name(name: Any, file: str, where: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(name, str) or not pattern.match(name) or name in _RESERVED:
        raise UserError(f"{name!r} is not a valid {what} name", file=file, where=where)
    return name


class _FlowCompiler:
    def __init__(self, file: str, tasks: dict[str, TaskDef]) -> None:
        self.file = file
        self.tasks = tasks
        self.n_blocks = 0
        self.names: list[tuple[str, frozenset[str]]] = []  # (where, names used)
        self.first_use: dict[str, int] = {}

    def err(self, where: str, what: str) -> UserError:
        return UserError(what, file=self.file, where=where)

    def seq(self, raw: Any, where: str, depth: int) -> list[Node]:
        if depth > MAX_FLOW_DEPTH:
            raise self.err(where, f"flow nested deeper than {MAX_FLOW_DEPTH} levels")
        if not isinstance(raw, list):
            raise self.err(where, f"expected a list of steps, got {type(raw).__name__}")
        return [self.step(item, f"{where}[{i}]", depth) for i, item in enumerate(raw)]

    def _block(self, where: str) -> int:
        b = self.n_blocks
        self.n_blocks += 1
        if self.n_blocks > MAX_BLOCKS:
            raise self.err(where, f"more than {MAX_BLOCKS} blocks in the flow")
        return b

    def _val(self, raw: Any, where: str, limit: float | None = None) -> Value:
        v = _value(raw, self.file, where, limit)
        self.names.append((where, v.names))
        return v

    def _expr(self, raw: Any, where: str) -> Expression:
        if isinstance(raw, bool):
            raw = "1" if raw else "0"
        if isinstance(raw, int | float):
            raw = repr(raw)
        try:
            e = compile_expression(raw)
        except UserError as exc:
            raise exc.within(file=self.file, where=where) from None
        self.names.append((where, e.names))
        return e

    def step(self, raw: Any, where: str, depth: int) -> Node:
        if isinstance(raw, str):
            task = self.tasks.get(raw)
            if task is None:
                known = ", ".join(sorted(self.tasks))
                raise self.err(where, f"unknown task {raw!r} (tasks: {known})")
            block = self._block(where)
            self.first_use.setdefault(raw, block)
            return TaskNode(block, where, task)
        if not isinstance(raw, Mapping) or not raw:
            raise self.err(where, "a step is a task name or one of foreach, loop, branch, parallel")
        keys = set(raw)
        if "foreach" in keys:
            extra = keys - {"foreach", "do"}
            if extra or "do" not in keys:
                raise self.err(where, "foreach takes exactly 'foreach' and 'do'")
            block = self._block(where)
            count = self._val(raw["foreach"], f"{where}.foreach", MAX_COUNT)
            body = self.seq(raw["do"], f"{where}.do", depth + 1)
            return ForeachNode(block, where, count, body)
        if "loop" in keys:
            if keys != {"loop"} or not isinstance(raw["loop"], Mapping):
                raise self.err(where, "loop takes a mapping: {while: EXPR | count: N, do: [...]}")
            spec = raw["loop"]
            lw = f"{where}.loop"
            extra = set(spec) - {"while", "count", "do", "max_iterations"}
            if extra:
                raise self.err(lw, f"unknown field {sorted(map(str, extra))[0]!r}")
            if ("while" in spec) == ("count" in spec):
                raise self.err(lw, "give exactly one of 'while' and 'count'")
            if "do" not in spec:
                raise self.err(lw, "'do' is missing")
            mi = spec.get("max_iterations", 10000)
            if isinstance(mi, bool) or not isinstance(mi, int) or not 1 <= mi <= 10_000_000:
                raise self.err(f"{lw}.max_iterations", "must be an integer from 1 to 10000000")
            block = self._block(where)
            cond = self._expr(spec["while"], f"{lw}.while") if "while" in spec else None
            loop_count = (self._val(spec["count"], f"{lw}.count", MAX_COUNT) if "count" in spec
                          else None)
            body = self.seq(spec["do"], f"{lw}.do", depth + 1)
            return LoopNode(block, where, cond, loop_count, body, mi)
        if "branch" in keys:
            if keys != {"branch"}:
                raise self.err(where, "branch takes only a list of cases")
            return self.branch(raw["branch"], where, depth)
        if "parallel" in keys:
            if keys != {"parallel"}:
                raise self.err(where, "parallel takes only a list of arms")
            arms_raw = raw["parallel"]
            pw = f"{where}.parallel"
            if not isinstance(arms_raw, list) or len(arms_raw) < 1:
                raise self.err(pw, "expected a non-empty list of arms (each a list of steps)")
            block = self._block(where)
            arms = [self.seq(a, f"{pw}[{i}]", depth + 1) for i, a in enumerate(arms_raw)]
            return ParallelNode(block, where, arms)
        raise self.err(where, f"unknown step {sorted(map(str, keys))[0]!r}; expected a task name, "
                       "foreach, loop, branch or parallel")

    def branch(self, raw: Any, step_where: str, depth: int) -> BranchNode:
        # The node is placed at its step (``flow[3]``, like foreach and loop nodes); its cases
        # at ``flow[3].branch[i]``.
        where = f"{step_where}.branch"
        if not isinstance(raw, list) or not raw:
            raise self.err(where, "expected a non-empty list of cases")
        block = self._block(where)
        cases: list[Case] = []
        total_p = 0.0
        seen_else = False
        for i, c in enumerate(raw):
            cw = f"{where}[{i}]"
            if not isinstance(c, Mapping):
                raise self.err(cw, "a case is {p: P, do: [...]}, {when: EXPR, do: [...]} or "
                               "{else: [...]}")
            if seen_else:
                raise self.err(cw, "no case may follow 'else'")
            if "else" in c:
                if set(c) != {"else"}:
                    raise self.err(cw, "'else' takes only its list of steps")
                body = self.seq(c["else"] if c["else"] is not None else [], f"{cw}.else",
                                depth + 1)
                cases.append(Case("else", None, 0.0, body))
                seen_else = True
                continue
            if "do" not in c:
                raise self.err(cw, "'do' is missing")
            if "p" in c and set(c) == {"p", "do"}:
                p = c["p"]
                if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                    raise self.err(f"{cw}.p", f"probability must be a number in [0, 1], got {p!r}")
                total_p += p
                if total_p > 1 + 1e-9:
                    raise self.err(f"{cw}.p", f"branch probabilities add up to {total_p:g} > 1")
                cases.append(Case("p", None, float(p), self.seq(c["do"], f"{cw}.do", depth + 1)))
            elif "when" in c and set(c) == {"when", "do"}:
                cond = self._expr(c["when"], f"{cw}.when")
                cases.append(Case("when", cond, 0.0, self.seq(c["do"], f"{cw}.do", depth + 1)))
            else:
                raise self.err(cw, "a case has either 'p' or 'when', and 'do'")
        return BranchNode(block, step_where, cases)


ONNX_PREFIX = "onnx:"  # the zoo's get_model reads "onnx:PATH" as an ONNX file


def _model_ref(model: Any, file: str, where: str) -> str | None:
    """A task's ``model`` as the zoo's ``get_model`` takes it: a name or ``FILE.csv`` as given,
    ``{onnx: FILE}`` as ``onnx:PATH`` (see :func:`_onnx_ref`)."""
    if model is None or (isinstance(model, str) and model):
        return model
    if (isinstance(model, Mapping) and set(model) == {"onnx"} and isinstance(model["onnx"], str)
            and model["onnx"]):
        return _onnx_ref(model["onnx"], file, f"{where}.onnx")
    raise UserError(f"expected a model name (octosim list models), a SCALE-Sim topology "
                    f"FILE.csv or {{onnx: FILE.onnx}}, got {model!r}", file=file, where=where)


def _onnx_ref(path: str, file: str, where: str) -> str:
    """``model: {onnx: PATH}`` as a model reference for the zoo, PATH made relative to the
    workflow file's directory (a workflow given as data: the current directory)."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        base = Path(file).parent if Path(file).is_file() else Path()
        p = base / p
    if not p.is_file():
        raise UserError(f"no such ONNX file: {p}", file=file, where=where)
    return ONNX_PREFIX + str(p)


def parse_workflow(data: Any, file: str) -> Workflow:
    """Validate and compile a parsed ``owg: 1`` document."""
    raw = require_mapping(data, file, "a workflow with owg: 1")
    if raw.get("owg") != 1:
        raise UserError("not a workflow file: expected 'owg: 1'", file=file, where="owg")
    try:
        model = WorkflowModel.model_validate(raw)
    except ValidationError as exc:
        raise pydantic_error(exc, file) from None
    if len(model.tasks) > MAX_TASKS:
        raise UserError(f"more than {MAX_TASKS} tasks", file=file, where="tasks")

    uses: list[tuple[str, frozenset[str]]] = []
    defined: set[str] = set()
    vars_: dict[str, Value] = {}
    for name, spec in model.vars.items():
        _check_name(name, file, f"vars.{name}", _VAR, "variable")
        vars_[name] = _value(spec, file, f"vars.{name}")
        uses.append((f"vars.{name}", vars_[name].names))
        defined.add(name)

    tasks: dict[str, TaskDef] = {}
    for i, (name, t) in enumerate(model.tasks.items()):
        w = f"tasks.{name}"
        _check_name(name, file, w, _NAME, "task")
        if t.model is None and t.cycles is None:
            raise UserError("give 'cycles' or 'model'", file=file, where=w)
        if t.model is not None and t.cycles is not None:
            raise UserError("give 'cycles' or 'model', not both (use 'scale' to vary a model's "
                            "cycles)", file=file, where=w)
        if t.kind == "general" and t.model is not None:
            raise UserError("a general task gives 'cycles'; 'model' is for kind: ai",
                            file=file, where=f"{w}.model")
        if t.scale is not None and t.model is None:
            raise UserError("'scale' applies to a model's cycles", file=file, where=f"{w}.scale")
        if t.weight_passes is not None and t.model is None:
            raise UserError("'weight_passes' applies to a model's weights", file=file,
                            where=f"{w}.weight_passes")
        if t.peas is not None:
            lo, hi = t.peas
            if lo < 1 or hi < lo:
                raise UserError(f"peas [min, max] needs 1 <= min <= max, got [{lo}, {hi}]",
                                file=file, where=f"{w}.peas")
        sets: dict[str, Value] = {}
        for var, spec in t.sets.items():
            _check_name(var, file, f"{w}.sets.{var}", _VAR, "variable")
            sets[var] = _value(spec, file, f"{w}.sets.{var}")
            uses.append((f"{w}.sets.{var}", sets[var].names))
            defined.add(var)
        cycles = (_value(t.cycles, file, f"{w}.cycles", MAX_CYCLES) if t.cycles is not None
                  else None)
        scale = _value(t.scale, file, f"{w}.scale", MAX_SCALE) if t.scale is not None else None
        out_bytes = _value(t.out_bytes, file, f"{w}.out_bytes", MAX_BYTES)
        passes = (_value(t.weight_passes, file, f"{w}.weight_passes", MAX_SCALE)
                  if t.weight_passes is not None else None)
        for what, v in (("cycles", cycles), ("scale", scale), ("out_bytes", out_bytes),
                        ("weight_passes", passes)):
            if v is not None:
                uses.append((f"{w}.{what}", v.names))
                if isinstance(v, Const) and v.value < 0:
                    raise UserError("must be >= 0", file=file, where=f"{w}.{what}")
        if t.batch.max > 1 and t.model is None:
            raise UserError("'batch' shares a pass over a model's weights: it needs 'model'",
                            file=file, where=f"{w}.batch")
        model_ref = _model_ref(t.model, file, f"{w}.model")
        tasks[name] = TaskDef(name, t.kind, i, cycles, model_ref, scale, t.peas, t.context_bytes,
                              out_bytes, sets, weight_passes=passes,
                              batch_max=t.batch.max, batch_wait_cycles=t.batch.wait_cycles)

    fc = _FlowCompiler(file, tasks)
    flow = fc.seq(model.flow, "flow", 0)
    uses.extend(fc.names)

    phases: list[Phase] = []
    start = 0
    for i, ph in enumerate(model.phases):
        overrides: dict[str, Value] = {}
        for var, spec in ph.vars.items():
            pw = f"phases[{i}].vars.{var}"
            if var not in defined:
                raise UserError(f"phase overrides {var!r}, which no 'vars' or 'sets' defines",
                                file=file, where=pw)
            overrides[var] = _value(spec, file, pw)
            uses.append((pw, overrides[var].names))
        phases.append(Phase(start, ph.count, ph.name or f"phase{i}", overrides))
        start += ph.count
    if phases and start != model.arrivals.count:
        raise UserError(f"phase counts add up to {start} but arrivals.count is "
                        f"{model.arrivals.count} (set both, or workflow.phases=[])",
                        file=file, where="phases")

    for where, names in uses:
        unknown = sorted(names - defined)
        if unknown:
            raise UserError(f"unknown variable {unknown[0]!r} (defined: "
                            f"{', '.join(sorted(defined)) or 'none'})", file=file, where=where)

    _check_set_before_use(flow, frozenset(vars_), file)

    unused = [n for n in tasks if n not in fc.first_use]
    if unused:
        raise UserError(f"task {unused[0]!r} is never used in the flow", file=file,
                        where=f"tasks.{unused[0]}")
    if model.arrivals.process != "batch" and model.arrivals.interarrival_cycles <= 0:
        raise UserError("must be > 0 for poisson and periodic arrivals", file=file,
                        where="arrivals.interarrival_cycles")

    order = {name: rank for rank, name in
             enumerate(sorted(fc.first_use, key=lambda n: fc.first_use[n]))}
    wf = Workflow(
        name=model.name, file=file, description=model.description or "",
        arrival_process=model.arrivals.process,
        interarrival_cycles=model.arrivals.interarrival_cycles,
        count=model.arrivals.count, input_bytes=model.arrivals.input_bytes,
        vars=vars_, tasks=tasks, flow=flow, phases=phases, n_blocks=fc.n_blocks,
        stage_order=order,
        max_runs_per_instance=model.max_runs_per_instance,
    )
    wf._phase_starts = [p.start for p in phases]
    return wf


def _check_set_before_use(nodes: list[Node], defined: frozenset[str], file: str) -> frozenset[str]:
    """Reject a variable read where no path through the flow can have set it yet (it would
    fail on every instance that gets there). ``defined`` holds the variables that may be set
    on entry; the result, those that may be set after ``nodes``. foreach copies and parallel
    arms work on copies of the scope, so what they set stays inside; a branch or a loop body
    shares its parent's scope."""

    def need(names: frozenset[str], have: frozenset[str], where: str, at: str) -> None:
        missing = sorted(names - have)
        if missing:
            raise UserError(f"variable {missing[0]!r} is read {at}, where no path through the "
                            "flow has set it yet", file=file, where=where)

    have = defined
    for node in nodes:
        if isinstance(node, TaskNode):
            t = node.task
            at = f"when {t.name} starts at {node.where}"
            for name, value in (("cycles", t.cycles), ("scale", t.scale),
                                ("out_bytes", t.out_bytes), ("weight_passes", t.weight_passes)):
                if value is not None:
                    need(value.names, have, f"tasks.{t.name}.{name}", at)
            for var, value in t.sets.items():
                need(value.names, have, f"tasks.{t.name}.sets.{var}",
                     f"when {t.name} completes at {node.where}")
                have = have | {var}
        elif isinstance(node, ForeachNode):
            need(node.count.names, have, f"{node.where}.foreach", "by the foreach count")
            _check_set_before_use(node.body, have, file)
        elif isinstance(node, ParallelNode):
            for arm in node.arms:
                _check_set_before_use(arm, have, file)
        elif isinstance(node, BranchNode):
            out = have
            for case in node.cases:
                if case.cond is not None:
                    need(case.cond.names, have, f"{node.where}.branch", "by a branch condition")
                out = out | _check_set_before_use(case.body, have, file)
            have = out
        elif isinstance(node, LoopNode):
            if node.count is not None:
                need(node.count.names, have, f"{node.where}.loop.count", "by the loop count")
            if node.cond is not None:
                need(node.cond.names, have, f"{node.where}.loop.while", "by the loop condition")
            have = have | _check_set_before_use(node.body, have, file)
    return have
