"""Hypothesis strategies for octosim: random valid workflows (``owg: 1``), small archs
(``arch: 1``), policy parameters for every registered policy, and whole run configurations.

Importable by any test as ``from tests.strategies import ...``.

Settings profiles are registered here (not in a conftest) and chosen by the environment
variable ``OCTOSIM_HYPOTHESIS_PROFILE``: ``ci`` (default, small budget) or ``deep``. They are
registered under namespaced names (``octosim-ci``, ``octosim-deep``) and applied per test
through :func:`budget`, so importing this module never changes the settings of other
hypothesis tests in the session.

Generated workflows are valid *and* run to completion: every variable an expression reads is
defined in ``vars`` (so it is set from the instance's arrival on), a ``while`` loop only tests
the counter ``n`` that a task in its body increments (``sets: {n: "n + 1"}``), no phase
overrides ``n``, and fan-out is kept small (counts <= 3 or small distributions, nesting
depth <= 3), so a run of up to 30 instances takes milliseconds.
"""

from __future__ import annotations

import copy
import os
import typing
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# --- settings profiles ------------------------------------------------------------------------

PROFILE_ENV = "OCTOSIM_HYPOTHESIS_PROFILE"
PROFILES = ("ci", "deep")
EXAMPLES_ENV = "OCTOSIM_HYPOTHESIS_EXAMPLES"  # optional: examples per test, overriding both

settings.register_profile(
    "octosim-ci",
    deadline=None,
    max_examples=50,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
settings.register_profile(
    "octosim-deep",
    parent=settings.get_profile("octosim-ci"),
    max_examples=1000,
)


def profile_name() -> str:
    """The active profile: ``ci`` (default) or ``deep``, from ``OCTOSIM_HYPOTHESIS_PROFILE``."""
    name = os.environ.get(PROFILE_ENV, "ci").strip().lower() or "ci"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def budget(ci: int, deep: int | None = None) -> settings:
    """Settings for one test: ``ci`` examples in the CI profile, ``deep`` (default 20x) in the
    deep profile, or ``OCTOSIM_HYPOTHESIS_EXAMPLES`` if set; no deadline (simulation time
    varies with the drawn workflow)."""
    name = profile_name()
    n = ci if name == "ci" else (deep if deep is not None else 20 * ci)
    override = os.environ.get(EXAMPLES_ENV, "").strip()
    if override:
        n = int(override)
    return settings(parent=settings.get_profile(f"octosim-{name}"), max_examples=n)


# --- values -----------------------------------------------------------------------------------

LOOP_VAR = "n"  # the counter a while loop tests; only the incrementer task sets it
# c, s and o once shared the engine's draw keys for a task's cycles, scale and out_bytes
# (see test_invariants.py::test_sets_of_variable_c_draws_its_own_stream); keep them here.
USER_VARS = ("v0", "objects", "x_1", "c", "s", "o")
AI_MODELS = ("mobilenet_v2", "resnet50", "crnn")

small_ints = st.integers(min_value=0, max_value=3)


def small_count_dist() -> st.SearchStrategy[dict[str, Any]]:
    """A distribution with small non-negative integer values (variables, counts)."""
    return st.one_of(
        st.builds(lambda m: {"dist": "poisson", "mean": m}, st.sampled_from([0, 0.5, 1, 1.5, 2])),
        st.builds(
            lambda vs: {"dist": "choice", "values": vs},
            st.lists(small_ints, min_size=1, max_size=4),
        ),
        st.builds(
            lambda vs: {"dist": "choice", "values": vs, "weights": [1 + i for i in range(len(vs))]},
            st.lists(small_ints, min_size=1, max_size=4),
        ),
        st.builds(lambda v: {"dist": "const", "value": v}, small_ints),
        st.builds(lambda p: {"dist": "geometric", "p": p}, st.sampled_from([0.7, 1.0])),
    )


def cycles_dist() -> st.SearchStrategy[dict[str, Any]]:
    """A distribution of task cycles (may give negative draws: rounded to 0 by the engine)."""
    mean = st.integers(min_value=0, max_value=5000)
    pos = st.integers(min_value=1, max_value=5000)
    return st.one_of(
        st.builds(lambda v: {"dist": "const", "value": v}, mean),
        st.builds(
            lambda a, b: {"dist": "uniform", "low": min(a, b), "high": max(a, b)}, mean, mean
        ),
        st.builds(lambda m: {"dist": "exponential", "mean": m}, mean),
        st.builds(lambda m, s: {"dist": "normal", "mean": m, "sd": s}, mean, mean),
        st.builds(lambda m, s: {"dist": "lognormal", "mean": m, "sd": s}, pos, mean),
        st.builds(lambda m: {"dist": "poisson", "mean": m}, mean),
        st.builds(lambda p: {"dist": "geometric", "p": p}, st.sampled_from([0.01, 0.1, 1.0])),
        st.builds(
            lambda vs: {"dist": "choice", "values": vs}, st.lists(mean, min_size=1, max_size=4)
        ),
        st.builds(
            lambda vs: {"dist": "empirical", "samples": vs}, st.lists(mean, min_size=1, max_size=5)
        ),
    )


def cycles_value(var_names: list[str]) -> st.SearchStrategy[Any]:
    """Task cycles: a number, a distribution or an expression over defined variables."""
    options: list[st.SearchStrategy[Any]] = [
        st.integers(min_value=0, max_value=5000),
        st.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False),
        cycles_dist(),
    ]
    if var_names:
        options.append(
            st.builds(
                lambda a, b, v, form: form.format(a=a, b=b, v=v),
                st.integers(min_value=0, max_value=3000),
                st.integers(min_value=0, max_value=500),
                st.sampled_from(var_names),
                st.sampled_from(
                    [
                        "{a} + {b} * {v}",
                        "max({a} - {b} * {v}, 0)",
                        "{a} if {v} > 1 else {b}",
                        "({a} + {v}) * 2",
                    ]
                ),
            )
        )
    return st.one_of(options)


def count_value(var_names: list[str]) -> st.SearchStrategy[Any]:
    """A foreach or loop count: a small number, a variable, a small distribution or an
    expression; expected fan-out stays small."""
    options: list[st.SearchStrategy[Any]] = [small_ints, small_count_dist()]
    if var_names:
        options.append(st.sampled_from(var_names))
        options.append(st.builds(lambda v: f"min({v}, 2) + 1", st.sampled_from(var_names)))
    return st.one_of(options)


def condition(var_names: list[str]) -> st.SearchStrategy[str]:
    consts = st.sampled_from(["1", "0", "true", "1 > 2"])
    if not var_names:
        return consts
    return st.one_of(
        consts,
        st.builds(
            lambda v, op, k: f"{v} {op} {k}",
            st.sampled_from(var_names),
            st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
            small_ints,
        ),
        st.builds(
            lambda a, b: f"{a} + {b} >= 2 and not {a} == 3",
            st.sampled_from(var_names),
            st.sampled_from(var_names),
        ),
    )


# --- workflows ----------------------------------------------------------------------------------


class _FlowGen:
    """Draws a flow over given tasks; ``incrementer`` is the task that sets ``n: n + 1``."""

    def __init__(
        self,
        draw: Any,
        tasks: list[str],
        var_names: list[str],
        incrementer: str | None,
        max_depth: int,
    ) -> None:
        self.draw = draw
        self.tasks = tasks
        self.vars = var_names
        self.incrementer = incrementer
        self.max_depth = max_depth

    def steps(self, depth: int, min_size: int = 0, max_size: int = 3) -> list[Any]:
        n = self.draw(st.integers(min_value=min_size, max_value=max_size))
        return [self.step(depth) for _ in range(n)]

    def step(self, depth: int) -> Any:
        draw = self.draw
        kinds = ["task"]
        if depth < self.max_depth:
            kinds += ["foreach", "loop", "branch", "parallel"]
        kind = draw(st.sampled_from(kinds))
        if kind == "task":
            return draw(st.sampled_from(self.tasks))
        if kind == "foreach":
            return {"foreach": draw(count_value(self.vars)), "do": self.steps(depth + 1)}
        if kind == "parallel":
            arms = draw(st.integers(min_value=1, max_value=3))
            return {"parallel": [self.steps(depth + 1) for _ in range(arms)]}
        if kind == "loop":
            if self.incrementer is not None and draw(st.booleans()):
                body = self.steps(depth + 1, max_size=2)
                pos = draw(st.integers(min_value=0, max_value=len(body)))
                body.insert(pos, self.incrementer)  # top level of the body: runs every trip
                spec: dict[str, Any] = {"while": f"{LOOP_VAR} < {draw(small_ints)}", "do": body}
            else:
                spec = {"count": draw(count_value(self.vars)), "do": self.steps(depth + 1)}
            if draw(st.booleans()):
                spec["max_iterations"] = draw(st.integers(min_value=100, max_value=10000))
            return {"loop": spec}
        return {"branch": self.cases(depth)}

    def cases(self, depth: int) -> list[dict[str, Any]]:
        draw = self.draw
        out: list[dict[str, Any]] = []
        left = 20  # probabilities in twentieths so their sum is exact
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            if draw(st.booleans()):
                p = draw(st.integers(min_value=0, max_value=left))
                left -= p
                out.append({"p": p / 20, "do": self.steps(depth + 1)})
            else:
                out.append({"when": draw(condition(self.vars)), "do": self.steps(depth + 1)})
        if not out or draw(st.booleans()):
            body = self.steps(depth + 1)
            out.append({"else": body if body or draw(st.booleans()) else None})
        return out


@st.composite
def workflows(
    draw: Any,
    max_peas: int = 4,
    n_tasks: int | None = None,
    max_depth: int = 3,
    max_count: int = 30,
    allow_ai: bool = False,
    var_names: tuple[str, ...] = USER_VARS,
) -> dict[str, Any]:
    """A valid ``owg: 1`` workflow dict with 1-6 general tasks whose ``peas`` fit a TBU of
    ``max_peas`` PEAs, up to ``max_count`` instances. With ``allow_ai`` some tasks are
    ``kind: ai`` (a zoo model, optionally scaled): their work then depends on the arch."""
    if n_tasks is None:
        n_tasks = draw(st.integers(min_value=1, max_value=6))
    names = [f"t{i}" if i % 2 == 0 else f"task-{i}" for i in range(n_tasks)]
    user_vars = list(var_names[: draw(st.integers(min_value=0, max_value=len(var_names)))])
    use_while = draw(st.booleans())
    wf_vars: dict[str, Any] = {}
    for v in user_vars:
        wf_vars[v] = draw(st.one_of(small_count_dist(), small_ints))
    if use_while:
        wf_vars[LOOP_VAR] = 0
    readable = user_vars + ([LOOP_VAR] if use_while else [])
    incrementer = draw(st.sampled_from(names)) if use_while else None

    tasks: dict[str, Any] = {}
    for name in names:
        if allow_ai and draw(st.integers(min_value=0, max_value=3)) == 0:
            t: dict[str, Any] = {"kind": "ai", "model": draw(st.sampled_from(AI_MODELS))}
            # Scaled down (a model runs 1e7-1e9 cycles on a small PEA) to keep runs short.
            t["scale"] = draw(
                st.one_of(
                    st.sampled_from([0, 0.0001, 0.001]),
                    st.builds(
                        lambda m: {"dist": "uniform", "low": 0, "high": m},
                        st.sampled_from([0.0001, 0.001]),
                    ),
                    *(
                        [st.builds(lambda v: f"0.0005 * {v}", st.sampled_from(readable))]
                        if readable
                        else []
                    ),
                )
            )
            if draw(st.booleans()):
                t["context_bytes"] = draw(st.integers(min_value=0, max_value=1 << 20))
        else:
            t = {"kind": "general", "cycles": draw(cycles_value(readable))}
        if draw(st.booleans()):
            lo = draw(st.integers(min_value=1, max_value=max_peas))
            hi = draw(st.integers(min_value=lo, max_value=max_peas))
            t["peas"] = [lo, hi]
        if draw(st.booleans()):
            t["out_bytes"] = draw(st.integers(min_value=0, max_value=4096))
        sets: dict[str, Any] = {}
        if user_vars and draw(st.booleans()):
            for v in draw(st.lists(st.sampled_from(user_vars), max_size=2, unique=True)):
                sets[v] = draw(small_count_dist())
        if name == incrementer:
            sets[LOOP_VAR] = f"{LOOP_VAR} + 1"
        if sets:
            t["sets"] = sets
        tasks[name] = t

    gen = _FlowGen(draw, names, readable, incrementer, max_depth)
    flow = gen.steps(0, min_size=1, max_size=4)
    # Every task must be used somewhere: add the unused ones at the top level.
    used = set(_flow_tasks(flow))
    for name in names:
        if name not in used:
            flow.insert(draw(st.integers(min_value=0, max_value=len(flow))), name)

    process = draw(st.sampled_from(["poisson", "periodic", "batch"]))
    count = draw(st.integers(min_value=1, max_value=max_count))
    arrivals: dict[str, Any] = {"process": process, "count": count}
    if process != "batch":
        arrivals["interarrival_cycles"] = draw(
            st.one_of(
                st.integers(min_value=1, max_value=20000),
                st.floats(min_value=0.5, max_value=20000, allow_nan=False),
            )
        )
    if draw(st.booleans()):
        arrivals["input_bytes"] = draw(st.integers(min_value=0, max_value=4096))

    wf: dict[str, Any] = {
        "owg": 1,
        "name": draw(st.sampled_from(["gen", "random-wf", "w_1"])),
        "arrivals": arrivals,
    }
    if draw(st.booleans()):
        wf["phases"] = _phases(draw, count, user_vars)
    if wf_vars or draw(st.booleans()):
        wf["vars"] = wf_vars
    wf["tasks"] = tasks
    wf["flow"] = flow
    return wf


def _phases(draw: Any, count: int, user_vars: list[str]) -> list[dict[str, Any]]:
    parts = draw(st.integers(min_value=1, max_value=min(3, count)))
    cuts = (
        sorted(
            draw(
                st.lists(
                    st.integers(min_value=1, max_value=count - 1),
                    min_size=parts - 1,
                    max_size=parts - 1,
                    unique=True,
                )
            )
        )
        if parts > 1
        else []
    )
    bounds = [0, *cuts, count]
    phases = []
    for i in range(len(bounds) - 1):
        ph: dict[str, Any] = {"count": bounds[i + 1] - bounds[i]}
        if draw(st.booleans()):
            ph["name"] = f"phase-{i}"
        if user_vars and draw(st.booleans()):
            ph["vars"] = {
                v: draw(small_count_dist())
                for v in draw(
                    st.lists(st.sampled_from(user_vars), min_size=1, max_size=2, unique=True)
                )
            }
        phases.append(ph)
    return phases


def _flow_tasks(steps: Any) -> list[str]:
    """Task names mentioned anywhere in a flow (list of steps)."""
    out: list[str] = []
    if isinstance(steps, str):
        return [steps]
    if isinstance(steps, list):
        for s in steps:
            out += _flow_tasks(s)
    elif isinstance(steps, dict):
        for key, val in steps.items():
            if key in ("do", "else", "parallel", "branch"):
                out += _flow_tasks(val)
            elif key == "loop":
                out += _flow_tasks(val.get("do", []))
    return out


def task_peas(wf: dict[str, Any]) -> int:
    """The widest ``peas`` max any task of ``wf`` asks for (1 if none)."""
    return max([t["peas"][1] for t in wf["tasks"].values() if "peas" in t] or [1])


# --- archs ------------------------------------------------------------------------------------


@st.composite
def archs(
    draw: Any,
    min_tbus: int = 1,
    min_peas: int = 1,
    max_grid: int = 2,
    max_tbus: int = 8,
    max_peas: int = 4,
    defects: bool = False,
) -> dict[str, Any]:
    """A small valid ``arch: 1`` dict: 1-2 x 1-2 clusters, ``min_tbus``-8 TBUs per cluster,
    ``min_peas``-4 PEAs per TBU, random small costs including 0.

    With ``defects``, some manufacturing defects, never so many that a working cluster has
    fewer than ``min_tbus`` working TBUs or a working TBU fewer than ``min_peas`` PEAs; at
    least one cluster keeps working."""
    min_tbus = max(1, min_tbus)
    min_peas = max(1, min_peas)
    zero_or = lambda hi: st.one_of(st.just(0), st.integers(min_value=0, max_value=hi))  # noqa: E731
    rows = draw(st.integers(min_value=1, max_value=max_grid))
    cols = draw(st.integers(min_value=1, max_value=max_grid))
    tbus = draw(st.integers(min_value=min_tbus, max_value=max(min_tbus, max_tbus)))
    peas = draw(st.integers(min_value=min_peas, max_value=max(min_peas, max_peas)))
    arch: dict[str, Any] = {
        "arch": 1,
        "name": draw(st.sampled_from(["gen-arch", "tiny"])),
        "clock_ghz": draw(st.sampled_from([0.5, 1.0, 2.0])),
        "pea": {
            "rows": draw(st.sampled_from([1, 4, 16])),
            "cols": draw(st.sampled_from([1, 4, 16])),
            "sram_kib": draw(st.sampled_from([0, 64, 512])),
            "dataflow": draw(st.sampled_from(["os", "ws", "is"])),
        },
        "tbu": {"peas": peas, "split_efficiency": draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))},
        "cluster": {"tbus": tbus, "cbu_cycles": draw(zero_or(50))},
        "grid": {"rows": rows, "cols": cols},
        "noc": {
            "hop_cycles": draw(zero_or(10)),
            "link_bytes_per_cycle": draw(st.sampled_from([1, 8.5, 64, 1e9])),
        },
        "control_plane": {"hop_cycles": draw(zero_or(5))},
        "memory": {"bytes_per_cycle": draw(st.sampled_from([1, 64, 256.0, 1e12]))},
        "reconfig": {"fixed_cycles": draw(zero_or(1000))},
    }
    if defects and draw(st.booleans()):
        n_clusters = rows * cols
        dead_routers = draw(
            st.lists(
                st.integers(min_value=0, max_value=n_clusters - 1),
                max_size=n_clusters - 1,
                unique=True,
            )
        )
        dead_tbus: list[int] = []
        dead_peas: list[int] = []
        for c in range(n_clusters):
            locals_ = draw(
                st.lists(
                    st.integers(min_value=0, max_value=tbus - 1),
                    max_size=tbus - min_tbus,
                    unique=True,
                )
            )
            dead_tbus += [c * tbus + t for t in locals_]
        for tid in range(n_clusters * tbus):
            if tid not in dead_tbus and peas > min_peas and draw(st.integers(0, 3)) == 0:
                js = draw(
                    st.lists(
                        st.integers(min_value=0, max_value=peas - 1),
                        min_size=1,
                        max_size=peas - min_peas,
                        unique=True,
                    )
                )
                dead_peas += [tid * peas + j for j in js]
        arch["defects"] = {
            "dead_tbus": sorted(dead_tbus),
            "dead_peas": sorted(dead_peas),
            "dead_routers": sorted(dead_routers),
        }
    # Where work enters and where memory sits (on grids up to 2x2 every cluster is an edge
    # one, so only an explicit list of I/O clusters puts all work in one corner).
    from octosim.hardware.defects import cut_off_clusters

    routers = set(arch.get("defects", {}).get("dead_routers", []))
    off = routers | cut_off_clusters(rows, cols, routers)
    live = [c for c in range(rows * cols) if c not in off]
    io = draw(st.sampled_from(["default", "uniform", "one"]))
    if io == "uniform":
        arch["io"] = {"placement": "uniform"}
    elif io == "one":
        arch["io"] = {"placement": [draw(st.sampled_from(live))]}
    if draw(st.booleans()):
        arch["memory"]["controllers"] = draw(st.sampled_from(["edge", "per_cluster"]))
    return arch


def min_working_tbus(arch: dict[str, Any]) -> int:
    """The fewest working TBUs of any working cluster (what a per-cluster partition may use)."""
    tbus = arch["cluster"]["tbus"]
    n_clusters = arch["grid"]["rows"] * arch["grid"]["cols"]
    d = arch.get("defects", {})
    dead, routers = set(d.get("dead_tbus", [])), set(d.get("dead_routers", []))
    return min(
        sum(1 for t in range(c * tbus, (c + 1) * tbus) if t not in dead)
        for c in range(n_clusters)
        if c not in routers
    )


def pea_ids(arch: dict[str, Any], tbu: int) -> list[int]:
    """The working PEA ids of global TBU ``tbu`` (PEA ids are ``tbu * peas + j``)."""
    per = arch["tbu"]["peas"]
    dead = set(arch.get("defects", {}).get("dead_peas", []))
    return [p for p in range(tbu * per, (tbu + 1) * per) if p not in dead]


# --- policies -----------------------------------------------------------------------------------

# Values worth trying for parameters a policy may have (DESIGN section 3). Others keep their
# default, except Literal and bool parameters, which are drawn from their values.
# Values a parameter model rejects are dropped (``peas`` is "min"/"max"/int for one policy,
# an int for another). Periods stay >= 1000 cycles so that timers do not dominate a run.
PARAM_CHOICES: dict[str, list[Any]] = {
    "buffer_slots": [0, 1, 4],
    "host_cycles": [0, 100],
    "peas": ["min", "max", 0, 1, 2],
    "balancer": ["none", "diffusion", "central"],
    # Not shorter: a balancer checks every period while work queues and moves, so a
    # 1,000-cycle period over a run stretched to 1e9 cycles by 10M-cycle context loads is a
    # million checks (the cost of a run grows with simulated time / period, by design).
    "balance_period_cycles": [20_000, 100_000],
    "diffusion_coefficient": [0.1, 0.25],
    "threshold": [0.1, 0.5, 1.0],
    "window_cycles": [0, 5000, 50_000],
    "check_cycles": [1000, 10_000],
    "rebalance_cycles": [1000, 20_000],
    "max_moves": [1, 4],
    "hysteresis": [0.0, 0.25, 2.0],
    "lookahead": [1, 4],
    "forecast_weight": [0.0, 0.5, 2.0],
}


def policy_names() -> list[str]:
    """Every registered policy (built-ins and plug-ins): new ones are covered automatically."""
    from octosim.policies.registry import policies

    return sorted(policies())


def _param_values(name: str, field: Any) -> list[Any] | None:
    if name in PARAM_CHOICES:
        return PARAM_CHOICES[name]
    ann = field.annotation
    if ann is bool:
        return [False, True]
    if typing.get_origin(ann) is typing.Literal:
        return list(typing.get_args(ann))
    return None


def param_grid(policy: str) -> dict[str, list[Any]]:
    """The parameters of ``policy`` that the tests vary, with the values tried."""
    from octosim.policies.registry import get_policy

    params = get_policy(policy).Params
    out = {}
    for name, field in params.model_fields.items():
        values = [v for v in _param_values(name, field) or [] if _accepts(params, name, v)]
        if values:
            out[name] = values
    return out


def _accepts(params: Any, name: str, value: Any) -> bool:
    """Whether the policy's parameter model takes ``value`` for ``name`` on its own."""
    try:
        params.model_validate({name: value})
    except Exception:
        return False
    return True


@st.composite
def policy_configs(draw: Any, policy: str | None = None) -> dict[str, Any]:
    """``{"name": POLICY, **params}``; each varied parameter is set or left at its default."""
    name = policy if policy is not None else draw(st.sampled_from(policy_names()))
    cfg: dict[str, Any] = {"name": name}
    for pname, values in param_grid(name).items():
        if draw(st.booleans()):
            cfg[pname] = draw(st.sampled_from(values))
    return cfg


seeds = st.integers(min_value=0, max_value=2**63 - 1)


# --- whole runs -----------------------------------------------------------------------------------


@st.composite
def scenarios(
    draw: Any,
    policy: str | None = None,
    max_count: int = 30,
    allow_ai: bool = True,
    defects: bool = True,
) -> dict[str, Any]:
    """A matching workflow, arch, policy config and seed (the keyword arguments of
    :func:`run_config`). A policy with a ``partition`` parameter sometimes gets an explicit,
    valid one."""
    tbu_peas = draw(st.integers(min_value=1, max_value=4))
    wf = draw(workflows(max_peas=tbu_peas, max_count=max_count, allow_ai=allow_ai))
    # kind: ai tasks without peas may take the whole TBU: a dead PEA would make it too narrow.
    need = tbu_peas if any(t["kind"] == "ai" for t in wf["tasks"].values()) else task_peas(wf)
    arch = draw(archs(min_tbus=len(wf["tasks"]), min_peas=need, max_peas=tbu_peas, defects=defects))
    pol = draw(policy_configs(policy))
    if "partition" in _fields(pol["name"]) and draw(st.integers(0, 3)) == 0:
        pol["partition"] = _partition(draw, list(wf["tasks"]), min_working_tbus(arch))
    return {"workflow": wf, "arch": arch, "policy": pol, "seed": draw(seeds)}


def _fields(policy: str) -> dict[str, Any]:
    from octosim.policies.registry import get_policy

    return dict(get_policy(policy).Params.model_fields)


def _partition(draw: Any, tasks: list[str], tbus: int) -> dict[str, int]:
    """TBUs per task type: each at least 1, in total at most ``tbus``."""
    part = dict.fromkeys(tasks, 1)
    for _ in range(draw(st.integers(min_value=0, max_value=tbus - len(tasks)))):
        part[draw(st.sampled_from(tasks))] += 1
    return part


def run_config(
    workflow: dict[str, Any], arch: dict[str, Any] | str, policy: dict[str, Any], seed: int
) -> Any:
    """A :class:`~octosim.experiments.config.RunConfig` of generated data (deep-copied).
    ``arch`` may be a built-in name."""
    from octosim.experiments.config import RunConfig

    if isinstance(arch, str):
        from octosim.model.loader import load_yaml_file
        from octosim.workloads import resolve

        arch = load_yaml_file(resolve("arch", arch))
    return RunConfig(
        workflow=copy.deepcopy(workflow),
        workflow_file="<gen>",
        arch=copy.deepcopy(arch),
        arch_file="<gen>",
        policy=dict(policy),
        seed=seed,
    )
