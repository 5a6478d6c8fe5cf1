"""The scaling study (issue 11, item 5): throughput and parallel efficiency against grid size.

One place for the study, used by ``octosim reproduce`` (its quick or full form, under the
report's ``"scaling"`` key) and by ``python -m bench.wafer scaling`` (any grids and counts).

Octopus with the ``diffusion`` balancer on ``octopus-wafer`` cut to grids of N clusters
(``ScalingPlan.grids``, square numbers: 1, 4, 16, 64), batch arrivals, phases off, the
instances growing with the grid (``per_cluster`` x N, so every grid has the same work per
cluster), and memory two ways:

``scaled``
    a controller of :data:`CONTROLLER_BYTES_PER_CYCLE` on every cluster (bandwidth grows with
    the grid: the question is whether the scheduling and the NoC scale);
``fixed``
    the one-cluster chip's total bandwidth, the same :data:`CONTROLLER_BYTES_PER_CYCLE`,
    shared by the edge controllers (bandwidth held: the question is how soon memory caps it).

On one cluster both forms are the same chip. Throughput is instances per 10^9 cycles
(instances / makespan); parallel efficiency at N is throughput(N) / (N x throughput(1)), so it
is 1.0 on one cluster by construction. ``geomean_parallel_efficiency`` is the geomean over the
workflows of each (memory, N); a workflow whose run failed at N is left out there and its
failure reported. The target (issue 11) is >= 0.8 to 64 clusters with memory scaled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from octosim.errors import UserError
from octosim.experiments.batch import RunResult, RunSpec
from octosim.hardware.chip import edge_clusters

ARCH = "octopus-wafer"
CONTROLLER_BYTES_PER_CYCLE = 256  # octopus-chip's one controller (an HBM2 stack's order)
MEMORY = ("scaled", "fixed")
TARGET = "parallel efficiency >= 0.8 to 64 clusters, memory scaled"
# reproduce --quick adds 10 workflows x 2 memory forms x (1 + 4 + 16) clusters x 20 instances
# per cluster: 16.7 s of its 46 s on one worker (measured); the full form 50 per cluster to 64.
QUICK = (1, 4, 16)
FULL = (1, 4, 16, 64)
QUICK_PER_CLUSTER = 20
FULL_PER_CLUSTER = 50

Runner = Callable[[list[RunSpec]], list[RunResult]]


@dataclass(frozen=True)
class ScalingPlan:
    grids: tuple[int, ...]  # clusters per grid, each a square number
    per_cluster: int  # instances per cluster (a grid of N runs per_cluster x N)
    seed: int = 1
    policy: str = "octopus"
    balancer: str = "diffusion"


def make_scaling_plan(quick: bool) -> ScalingPlan:
    """The plan ``reproduce`` uses (``--quick`` or not)."""
    if quick:
        return ScalingPlan(QUICK, QUICK_PER_CLUSTER)
    return ScalingPlan(FULL, FULL_PER_CLUSTER)


def square_grid(clusters: int) -> tuple[int, int]:
    """Rows and columns of a square grid of ``clusters``."""
    side = math.isqrt(clusters) if clusters > 0 else 0
    if side < 1 or side * side != clusters:
        raise UserError(f"{clusters} is not a square number of clusters", where="grids")
    return side, side


def memory_sets(rows: int, cols: int, memory: str) -> tuple[str, ...]:
    """``--set`` items of one memory form on a rows x cols grid."""
    if memory == "scaled":
        return ("arch.memory.controllers=per_cluster",
                f"arch.memory.bytes_per_cycle={CONTROLLER_BYTES_PER_CYCLE}")
    if memory == "fixed":
        # The engine's own edge sites (where ``controllers: edge`` puts them), not a copy.
        share = CONTROLLER_BYTES_PER_CYCLE / len(edge_clusters(rows, cols))
        return ("arch.memory.controllers=edge", f"arch.memory.bytes_per_cycle={share!r}")
    raise UserError(f"unknown memory form {memory!r} (scaled, fixed)", where="memory")


def scaling_specs(plan: ScalingPlan, workflows: Sequence[str],
                  extra_sets: tuple[str, ...] = ()) -> list[RunSpec]:
    """Every run of the study; ``extra_sets`` (e.g. the policy's tuned knobs) go on each."""
    for n in plan.grids:
        square_grid(n)
    specs = []
    for wf in workflows:
        for n in plan.grids:
            rows, cols = square_grid(n)
            common = (f"workflow.arrivals.count={plan.per_cluster * n}", "workflow.phases=[]",
                      "workflow.arrivals.process=batch", f"arch.grid.rows={rows}",
                      f"arch.grid.cols={cols}", *extra_sets,
                      f"policy.balancer={plan.balancer}")
            for mem in MEMORY:
                specs.append(RunSpec(wf, ARCH, plan.policy, plan.seed,
                                     (*common, *memory_sets(rows, cols, mem)),
                                     (("scaling", n), ("memory", mem))))
    return specs


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def scaling_table(plan: ScalingPlan, results: Sequence[RunResult],
                  extra_sets: tuple[str, ...] = ()) -> dict[str, Any]:
    """The study's JSON from its runs (keys are strings, so it reads back from JSON equal)."""
    runs: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    failures = []
    for res in results:
        n, mem = res.spec.tag("scaling"), res.spec.tag("memory")
        if res.summary is None:
            failures.append({"workflow": res.spec.workflow, "clusters": n, "memory": mem,
                             "error": res.error})
            continue
        runs.setdefault((res.spec.workflow, mem), {})[n] = res.summary
    table = []
    for (wf, mem), by_n in sorted(runs.items()):
        one = by_n.get(1)
        thr_one = one["instances"] / one["makespan_cycles"] * 1e9 if one else None
        for n in sorted(by_n):
            s = by_n[n]
            thr = s["instances"] / s["makespan_cycles"] * 1e9
            table.append({"workflow": wf, "memory": mem, "clusters": n,
                          "instances": s["instances"], "makespan_cycles": s["makespan_cycles"],
                          "throughput_per_gcycle": round(thr, 3),
                          "parallel_efficiency": round(thr / (n * thr_one), 4)
                          if thr_one else None,
                          "moved_runs": (s.get("work_moved") or {}).get("runs", 0)})
    efficiency: dict[str, dict[str, float | None]] = {}
    throughput: dict[str, dict[str, float | None]] = {}
    for mem in MEMORY:
        for n in plan.grids:
            at = [r for r in table if r["memory"] == mem and r["clusters"] == n]
            eff = [r["parallel_efficiency"] for r in at if r["parallel_efficiency"]]
            thr = [r["throughput_per_gcycle"] for r in at if r["throughput_per_gcycle"]]
            efficiency.setdefault(mem, {})[str(n)] = round(_geomean(eff), 4) if eff else None
            throughput.setdefault(mem, {})[str(n)] = round(_geomean(thr), 3) if thr else None
    return {"arch": ARCH, "policy": plan.policy, "balancer": plan.balancer,
            "policy_sets": list(extra_sets), "grids": list(plan.grids),
            "per_cluster": plan.per_cluster, "seed": plan.seed,
            "controller_bytes_per_cycle": CONTROLLER_BYTES_PER_CYCLE, "table": table,
            "geomean_throughput_per_gcycle": throughput,
            "geomean_parallel_efficiency": efficiency, "failures": failures,
            "target": TARGET}


def scaling_study(plan: ScalingPlan, workflows: Sequence[str], run: Runner,
                  extra_sets: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the study through ``run`` (``Reproduction._run`` or :func:`run_many`; a failed run
    is reported in its result, not raised) and tabulate it."""
    return scaling_table(plan, run(scaling_specs(plan, workflows, extra_sets)), extra_sets)


def summary_rows(study: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The study's headline table, one row per (memory, grid): what the HTML and markdown
    reports show (one layout for both)."""
    header = ["memory", "clusters", "instances", "geomean throughput / Gcycle",
              "geomean parallel efficiency"]
    rows = []
    for mem in MEMORY:
        for n in study["grids"]:
            rows.append([mem, n, study["per_cluster"] * n,
                         study["geomean_throughput_per_gcycle"][mem][str(n)],
                         study["geomean_parallel_efficiency"][mem][str(n)]])
    return header, rows


def workflow_rows(study: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Parallel efficiency per workflow: a column per (memory, grid)."""
    cols = [(mem, n) for mem in MEMORY for n in study["grids"]]
    eff = {(r["workflow"], r["memory"], r["clusters"]): r["parallel_efficiency"]
           for r in study["table"]}
    workflows = sorted({r["workflow"] for r in study["table"]})
    return (["workflow", *(f"{mem} {n}" for mem, n in cols)],
            [[wf, *(eff.get((wf, mem, n)) for mem, n in cols)] for wf in workflows])
