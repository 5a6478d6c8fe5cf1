"""The regime map: where does Octopus beat the best baseline, and by how much?

The built-in suite answers "how fast on these ten workflows"; a reviewer also asks *under which
conditions* Dual Dynamicity pays. The regime map answers that on one parametric synthetic
workflow, moving one factor at a time from a middle base point and measuring Octopus's
makespan against every baseline at each value.

**The workflow** (generated as plain data by :func:`generate_workflow` and checked by the
normal loader, :func:`octosim.model.workflow.parse_workflow`; never code) is a
camera-and-text pipeline with four task types on ``octopus-chip``::

    pre (general)  ->  detect (yolov5s; sets objects, texts)
                   ->  foreach objects: recognize (resnet50)
                   ->  foreach texts:   ocr (crnn, 3 line windows)

with batch arrivals (every instance at cycle 0: a makespan study) and two phases of equal
size whose foreach means differ (phase A object-heavy, phase B text-heavy), so the mix of
types drifts during the run.

**The factors** (:data:`FACTORS`; base value in brackets):

1. ``exec_cv`` [0.5] -- execution-time variance: the coefficient of variation of every task's
   work. General tasks draw their cycles from a lognormal of that CV; AI tasks draw ``scale``
   (a multiplier of the model's compute, mean 1) from it, with ``weight_passes: 1`` so the
   weights are still read once per run. 0 = every run of a type is the same size.
2. ``count_spread`` [poisson] -- foreach count spread at a fixed mean (4 per phase-average):
   ``const`` (no spread), ``poisson``, ``uniform`` (0..2m), ``geometric`` (variance m(1+m),
   the negative-binomial with shape 1), ``bimodal`` (0 with 3/4, 4m with 1/4). Each point
   also reports the count's coefficient of variation at the mean (``count_cv``).
3. ``phase_contrast`` [2] -- the ratio of the per-phase means of each foreach count (objects
   are r times as many as texts in phase A and the reverse in phase B; the mean over both
   phases stays 4 each). 1 = a stationary mix.
4. ``reconfig_fixed_cycles`` [500, the arch default] -- ``arch.reconfig.fixed_cycles``, the
   fixed part of every context load (the context bytes over memory bandwidth come on top).
5. ``tbs_per_dnn`` [1] -- task granularity: ``detect``'s model split into k sequential Task
   Blocks ``detect_1..detect_k``, each 1/k of the compute and of the resident weights
   (``context_bytes``) and streaming 1/k of the rest; the last one sets the counts.
6. ``tbus_per_type`` [4] -- ``arch.cluster.tbus`` = this x 4 (the base workflow's four task
   types), with the PEAs per TBU unchanged (so the chip grows or shrinks).

Factors 1-3 and 5 change only the generated workflow, factors 4 and 6 only ``--set`` items on
the arch; nothing else moves between a point and the base point (tests check this).

**Measurement.** Each point runs ``octopus`` and every baseline (``static``, ``reactive``,
``indiscriminate``) on the same seeds (common random numbers: every policy sees the same
objects, texts and task sizes), each policy with the ``--set`` items the caller tuned for it
(``tuned_sets``; default: the policy's defaults). No baseline is weakened for the map: it
gets exactly the settings it gets everywhere else. Per baseline B, the speed-up is the mean
over seeds of makespan(B) / makespan(octopus); ``speedup_vs_best_baseline`` is the least of
those over the baselines (the best baseline is the one with the least speed-up), next to
each baseline's speed-up and ``min_over_seeds`` (the least per-seed ratio to the per-seed
best baseline). A point with a failed run reports ``error`` and no speed-up. Runs go through
the caller's runner (``Reproduction._run`` / :func:`run_many`), so one failure is kept to its
own point; identical runs shared by several factors (the base point) run once.

The paper reports 2.50x mean and 4.26x max over its baselines (:data:`PAPER`);
``bench/regimes.py`` draws each factor against those lines and looks for points >= 2.5x.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octosim.experiments.batch import RunResult, RunSpec
from octosim.experiments.config import dump_yaml

ARCH = "octopus-chip"
OCTOPUS = "octopus"
BASELINES = ("static", "reactive", "indiscriminate")
PAPER = {"mean": 2.50, "max": 4.26}

BASE_TYPES = 4  # task types of the base workflow: pre, detect, recognize, ocr
COUNT_MEAN = 4.0  # mean of each foreach count over both phases
PRE_CYCLES = 3_000_000  # general pre-processing, one PEA
OCR_LINES = 3  # CRNN windows per text region
TBU_SRAM_BYTES = 16 * 512 * 1024  # octopus-chip: 16 PEAs x 512 KiB
CONFIG_BYTES = 4096  # as engine.tasks: configuration on top of the weights

Runner = Callable[[list[RunSpec]], list[RunResult]]


@dataclass(frozen=True)
class Factor:
    name: str
    base: Any
    quick: tuple[Any, ...]
    full: tuple[Any, ...]
    long: tuple[Any, ...]
    what: str


FACTORS: dict[str, Factor] = {f.name: f for f in (
    Factor("exec_cv", 0.5, (0.0, 0.5, 2.0), (0.0, 0.25, 0.5, 1.0, 2.0),
           (0.0, 0.25, 0.5, 1.0, 2.0, 4.0), "CV of every task's work"),
    Factor("count_spread", "poisson", ("const", "poisson", "bimodal"),
           ("const", "poisson", "uniform", "geometric", "bimodal"),
           ("const", "poisson", "uniform", "geometric", "bimodal"),
           "distribution of the foreach counts at a fixed mean"),
    Factor("phase_contrast", 2.0, (1.0, 2.0, 8.0), (1.0, 2.0, 4.0, 8.0),
           (1.0, 2.0, 4.0, 8.0, 16.0), "ratio of per-phase means of each foreach count"),
    Factor("reconfig_fixed_cycles", 500, (0, 500, 5_000_000),
           (0, 500, 50_000, 500_000, 5_000_000),
           (0, 500, 5_000, 50_000, 500_000, 5_000_000, 50_000_000),
           "arch.reconfig.fixed_cycles"),
    Factor("tbs_per_dnn", 1, (1, 2, 8), (1, 2, 4, 8), (1, 2, 4, 8, 16),
           "Task Blocks the detector is split into"),
    Factor("tbus_per_type", 4, (1, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8, 16),
           "arch.cluster.tbus / 4 task types"),
)}
SPREADS = ("const", "poisson", "uniform", "geometric", "bimodal")


@dataclass(frozen=True)
class RegimePlan:
    """Which values of which factors, how many instances, which seeds."""

    factors: tuple[tuple[str, tuple[Any, ...]], ...]
    instances: int
    seeds: tuple[int, ...]


def make_regime_plan(level: str = "quick", seeds: tuple[int, ...] | None = None,
                     instances: int | None = None) -> RegimePlan:
    """``quick`` (3 values a factor, 48 instances, seed 1: the map in a few seconds), ``full``
    (every value, 120 instances, seeds 1-3) or ``long`` (more values, 200 instances, 5
    seeds)."""
    if level not in ("quick", "full", "long"):
        raise ValueError(f"unknown regime level {level!r}")
    default_n, default_seeds = {"quick": (48, (1,)), "full": (120, (1, 2, 3)),
                                "long": (200, (1, 2, 3, 4, 5))}[level]
    return RegimePlan(tuple((f.name, getattr(f, level)) for f in FACTORS.values()),
                      instances or default_n, seeds or default_seeds)


def base_point() -> dict[str, Any]:
    return {f.name: f.base for f in FACTORS.values()}


# --- the generated workflow ---------------------------------------------------------------


def count_dist(spread: str, mean: float) -> dict[str, Any]:
    """A foreach count distribution of the given mean and family."""
    m = round(mean, 6)
    if spread == "const":
        return {"dist": "const", "value": m}
    if spread == "poisson":
        return {"dist": "poisson", "mean": m}
    if spread == "uniform":
        return {"dist": "uniform", "low": 0, "high": round(2 * m, 6)}
    if spread == "geometric":
        return {"dist": "geometric", "p": round(1.0 / (1.0 + m), 6)}
    if spread == "bimodal":
        return {"dist": "choice", "values": [0, round(4 * m, 6)], "weights": [0.75, 0.25]}
    raise ValueError(f"unknown count spread {spread!r}; one of {', '.join(SPREADS)}")


def count_cv(spread: str, mean: float = COUNT_MEAN) -> float:
    """Coefficient of variation of :func:`count_dist` (before rounding to integers)."""
    var = {"const": 0.0, "poisson": mean, "uniform": (2 * mean) ** 2 / 12,
           "geometric": mean * (1 + mean), "bimodal": 3 * mean ** 2}[spread]
    return round(math.sqrt(var) / mean, 4)


def _work(cv: float, mean: float) -> Any:
    """A lognormal of mean ``mean`` and CV ``cv``, or the plain number when ``cv`` is 0."""
    if cv <= 0:
        return mean
    return {"dist": "lognormal", "mean": mean, "sd": round(cv * mean, 6)}


def _resident_weight_bytes(model: str) -> int:
    from octosim.hardware.zoo import get_model

    return min(get_model(model).weight_bytes(), TBU_SRAM_BYTES)


def generate_workflow(point: Mapping[str, Any], instances: int) -> dict[str, Any]:
    """The synthetic workflow at ``point`` (factor -> value; missing factors at their base),
    as the plain data a workflow YAML holds. Arch factors do not appear in it."""
    p = {**base_point(), **point}
    cv = float(p["exec_cv"])
    spread = str(p["count_spread"])
    contrast = float(p["phase_contrast"])
    k = int(p["tbs_per_dnn"])
    if cv < 0 or contrast < 1 or k < 1 or instances < 1:
        raise ValueError(f"bad regime point {dict(p)} / {instances} instances")
    hi = COUNT_MEAN * 2 * contrast / (1 + contrast)
    lo = COUNT_MEAN * 2 / (1 + contrast)
    counts = {"objects": count_dist(spread, COUNT_MEAN), "texts": count_dist(spread, COUNT_MEAN)}
    tasks: dict[str, dict[str, Any]] = {
        "pre": {"kind": "general", "cycles": _work(cv, PRE_CYCLES), "out_bytes": 602112},
    }
    detect_names = ["detect"] if k == 1 else [f"detect_{i}" for i in range(1, k + 1)]
    for i, name in enumerate(detect_names):
        t: dict[str, Any] = {"kind": "ai", "model": "yolov5s", "peas": [1, 16],
                             "out_bytes": 4096 if i == k - 1 else 65536}
        if k > 1:
            t["context_bytes"] = math.ceil(_resident_weight_bytes("yolov5s") / k) + CONFIG_BYTES
            t["weight_passes"] = round(1 / k, 6)
        if cv > 0 or k > 1:
            t["scale"] = _work(cv, round(1 / k, 6))
            t.setdefault("weight_passes", 1)
        if i == k - 1:
            t["sets"] = counts
        tasks[name] = t
    tasks["recognize"] = {"kind": "ai", "model": "resnet50", "peas": [1, 16], "out_bytes": 2048}
    tasks["ocr"] = {"kind": "ai", "model": "crnn", "peas": [1, 16], "out_bytes": 768,
                    "scale": _work(cv, OCR_LINES)}
    if cv > 0:
        tasks["recognize"]["scale"] = _work(cv, 1.0)
        tasks["recognize"]["weight_passes"] = 1
    tasks["ocr"]["weight_passes"] = 1
    half = instances // 2
    phases: list[dict[str, Any]] = [
        {"name": "object-heavy", "count": instances - half,
         "vars": {"objects": count_dist(spread, hi), "texts": count_dist(spread, lo)}},
        {"name": "text-heavy", "count": half,
         "vars": {"objects": count_dist(spread, lo), "texts": count_dist(spread, hi)}},
    ]
    phases = [ph for ph in phases if ph["count"] > 0]
    return {
        "owg": 1,
        "name": "regime",
        "description": "octosim regime map: synthetic camera-and-text pipeline",
        "arrivals": {"process": "batch", "count": instances},
        "phases": phases,
        "tasks": tasks,
        "flow": [*["pre", *detect_names],
                 {"foreach": "objects", "do": ["recognize"]},
                 {"foreach": "texts", "do": ["ocr"]}],
    }


def arch_sets(point: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``--set`` items the arch factors of ``point`` give."""
    p = {**base_point(), **point}
    tbus = int(round(float(p["tbus_per_type"]) * BASE_TYPES))
    return (f"arch.reconfig.fixed_cycles={int(p['reconfig_fixed_cycles'])}",
            f"arch.cluster.tbus={max(1, tbus)}")


def validate_workflow(data: dict[str, Any]) -> None:
    """Check generated data through the normal loader (raises UserError)."""
    from octosim.model.workflow import parse_workflow

    parse_workflow(data, "<regime workflow>")


def write_workflow(data: dict[str, Any], workdir: Path) -> str:
    """Write ``data`` as YAML under ``workdir``, named by its content; return the path."""
    text = dump_yaml(data)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = workdir / f"regime-{digest}.yaml"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


# --- the map ------------------------------------------------------------------------------


def point_specs(point: Mapping[str, Any], instances: int, seeds: tuple[int, ...],
                tuned_sets: Mapping[str, tuple[str, ...]], workdir: Path) -> list[RunSpec]:
    """Every policy on every seed at one point (the workflow written under ``workdir``)."""
    wf = write_workflow(generate_workflow(point, instances), workdir)
    arch = arch_sets(point)
    return [RunSpec(wf, ARCH, policy, seed, (*arch, *tuned_sets.get(policy, ())))
            for seed in seeds for policy in (OCTOPUS, *BASELINES)]


def point_entry(value: Any, factor: str, results: list[RunResult],
                 seeds: tuple[int, ...]) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": value}
    if factor == "count_spread":
        entry["count_cv"] = count_cv(str(value))
    errors = [r.error for r in results if r.error or r.summary is None]
    if errors:
        entry["speedup_vs_best_baseline"] = None
        entry["error"] = errors[0] or "no summary"
        return entry
    ms = {(r.spec.policy, r.spec.seed): r.summary["makespan_cycles"]  # type: ignore[index]
          for r in results}
    per_base = {b: statistics.fmean(ms[(b, s)] / ms[(OCTOPUS, s)] for s in seeds)
                for b in BASELINES}
    best = min(per_base, key=lambda b: per_base[b])
    entry["speedup_vs_best_baseline"] = round(per_base[best], 4)
    entry["best_baseline"] = best
    entry["speedup"] = {b: round(v, 4) for b, v in per_base.items()}
    entry["min_over_seeds"] = round(min(min(ms[(b, s)] for b in BASELINES) / ms[(OCTOPUS, s)]
                                        for s in seeds), 4)
    entry["makespan_cycles"] = {
        pol: round(statistics.fmean(ms[(pol, s)] for s in seeds))
        for pol in (OCTOPUS, *BASELINES)}
    return entry


def measure_points(points: Sequence[Mapping[str, Any]], instances: int, seeds: tuple[int, ...],
                   tuned_sets: Mapping[str, tuple[str, ...]] | None, runner: Runner,
                   workdir: Path | None = None) -> list[list[RunResult]]:
    """Run every policy and seed at each point in one call of ``runner`` (identical runs
    once); the results of each point, in order."""
    tuned = dict(tuned_sets or {})
    with tempfile.TemporaryDirectory(prefix="octosim-regimes-") as tmp:
        where = workdir if workdir is not None else Path(tmp)
        per_point = [point_specs(p, instances, seeds, tuned, where) for p in points]
        unique = list(dict.fromkeys(s for specs in per_point for s in specs))
        done = dict(zip(unique, runner(unique), strict=True))
    return [[done[s] for s in specs] for specs in per_point]


def regime_map(plan: RegimePlan, tuned_sets: Mapping[str, tuple[str, ...]] | None,
               runner: Runner, workdir: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{FACTOR: [{value, speedup_vs_best_baseline, best_baseline, speedup: {B: x},
    min_over_seeds, makespan_cycles}...]}``, each factor moved alone from the base point.

    ``tuned_sets`` gives each policy's ``--set`` items (default: none); ``runner`` runs a
    list of points (``Reproduction._run`` or :func:`run_many`), a failed run reported in its
    result rather than raised. ``workdir`` keeps the generated workflows (default: a
    temporary directory removed afterwards)."""
    labelled: list[tuple[str, Any]] = [(f, v) for f, values in plan.factors for v in values]
    points = [{f: v} for f, v in labelled]
    results = measure_points(points, plan.instances, plan.seeds, tuned_sets, runner, workdir)
    out: dict[str, list[dict[str, Any]]] = {f: [] for f, _ in plan.factors}
    for (f, v), res in zip(labelled, results, strict=True):
        out[f].append(point_entry(v, f, res, plan.seeds))
    return out


def regimes_at_least(regimes: Mapping[str, list[dict[str, Any]]],
                     threshold: float = PAPER["mean"]) -> list[dict[str, Any]]:
    """The points whose speed-up over the best baseline is at least ``threshold``."""
    return [{"factor": f, **e} for f, entries in regimes.items() for e in entries
            if e.get("speedup_vs_best_baseline") is not None
            and e["speedup_vs_best_baseline"] >= threshold]


def tuned_sets_from_report(report: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each policy's tuned ``--set`` items from a ``reproduce`` results.json: the
    ``tuning[POLICY].best`` knobs when present, else ``baseline_settings``."""
    tuned: dict[str, tuple[str, ...]] = {}
    for pol, row in (report.get("tuning") or {}).items():
        best = row.get("best") or {}
        tuned[pol] = tuple(f"policy.{k}={json.dumps(v) if not isinstance(v, str) else v}"
                           for k, v in best.items())
    for pol, sets in (report.get("baseline_settings") or {}).items():
        tuned.setdefault(pol, tuple(sets))
    return tuned
