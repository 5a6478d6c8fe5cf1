"""How fast is octosim? Task completions per wall second against SimPy, events/s, memory.

1. **octosim vs SimPy.** The workflow of ``bench/reference_simpy.py`` (detect -> Poisson fan-out
   of recognitions -> review with p = 0.3, each stage its own FIFO pool of PEAs) is simulated
   by octosim (``reference_workflow.yaml`` on ``ideal`` with ``static``) and by the independent
   SimPy model, with the same number of instances. The rate is task runs completed per wall
   second of the simulation itself: octosim's ``sim.wall_seconds`` (the event loop, including
   its keyed random draws) and SimPy's model build + event loop + its (vectorised, up-front)
   random draws. Each side is timed ``--repeats`` times and the best run is kept, as usual for
   benchmarks (the minimum is the least disturbed by other load on the machine). The target is
   ``octosim / SimPy >= 3``.
2. **Scale.** octosim on the same workflow with 100,000 instances, in a fresh subprocess: events
   per wall second (and per CPU second), task runs per second, and memory: the resident size
   before the run (the interpreter, numpy, pydantic, octosim), the peak resident set size during
   the run (``VmHWM`` after resetting it through ``/proc/self/clear_refs``, so that the import
   peak does not hide the run; else ``ru_maxrss``; ``peak_is_run_only`` says which) and their
   difference. Without ``--quick``, a second subprocess also gives the peak of Python
   allocations during the run (``tracemalloc``; that run is slower, so it is not used for the
   rates) and a 1,000,000-instance run shows how memory grows with the run length.

Wall-clock rates suffer when other processes share the CPUs; the comparison therefore also
reports rates per second of process CPU time (``ratio_by_cpu_time``), which load affects less.

Usage::

    python bench/speed.py --quick          # < 60 s
    python bench/speed.py                  # more repeats, plus the 1M-instance run
    python bench/speed.py --instances 50000 --repeats 5

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import reference_simpy as ref  # noqa: E402

TARGET_RATIO = 3.0


def _rss_mib() -> float:
    """Current resident set size (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so that it measures the run only, not the
    imports before it (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    """Peak resident set size: VmHWM from /proc (honours a reset), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(n_instances: int, seed: int, use_tracemalloc: bool) -> dict[str, Any]:
    """Run octosim once in this (fresh) process and measure it."""
    from octosim.experiments.config import resolve_config
    from octosim.experiments.run import simulate

    cfg = resolve_config(
        str(ref.WORKFLOW), "ideal", "static", seed=seed, sets=ref.octosim_sets(n_instances)
    )
    cfg.build()  # import and validate everything before measuring the baseline
    baseline = _rss_mib()
    peak_reset = _reset_peak_rss()
    if use_tracemalloc:
        import tracemalloc

        tracemalloc.start()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    sim = simulate(cfg)
    cpu = time.process_time() - cpu0
    end_to_end = time.perf_counter() - t0
    out: dict[str, Any] = {
        "instances": sim.instances_done,
        "task_runs": sum(sim.task_count),
        "events": sim.events,
        "wall_seconds": round(sim.wall_seconds, 3),
        "end_to_end_seconds": round(end_to_end, 3),
        "cpu_seconds": round(cpu, 3),
    }
    if use_tracemalloc:
        import tracemalloc

        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["tracemalloc_peak_mib"] = round(peak / 2**20, 2)
    else:
        peak_rss = _peak_rss_mib()
        out.update(
            {
                "events_per_second": round(sim.events / sim.wall_seconds),
                "events_per_cpu_second": round(sim.events / cpu),
                "task_runs_per_second": round(sum(sim.task_count) / sim.wall_seconds),
                "baseline_rss_mib": round(baseline, 1),
                "peak_rss_mib": round(peak_rss, 1),
                "rss_growth_mib": round(peak_rss - baseline, 1),
                "peak_is_run_only": peak_reset,
            }
        )
    return out


def run_child(n_instances: int, seed: int, use_tracemalloc: bool = False) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(n_instances),
        "--seed",
        str(seed),
    ]
    if use_tracemalloc:
        cmd.append("--tracemalloc")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def compare(n_instances: int, repeats: int, seed: int) -> dict[str, Any]:
    """Best-of-``repeats`` task runs per wall second of octosim and of SimPy."""
    best: dict[str, dict[str, Any]] = {}
    for r in range(repeats):
        # Alternate which goes first, so slow drifts of the machine hit both alike.
        order = ("octosim", "simpy") if r % 2 == 0 else ("simpy", "octosim")
        for name in order:
            if name == "octosim":
                res = ref.octosim_run(n_instances, seed + r, latencies=False)
            else:
                res = ref.run_simpy(n_instances, seed + r)
            rate = res["task_runs"] / res["wall_seconds"]
            b = best.setdefault(
                name, {"task_runs_per_second": 0.0, "task_runs_per_cpu_second": 0.0}
            )
            if rate > b["task_runs_per_second"]:
                b.update(
                    {
                        "task_runs": res["task_runs"],
                        "wall_seconds": round(res["wall_seconds"], 4),
                        "task_runs_per_second": round(rate),
                    }
                )
                if "events" in res:
                    b["events"] = res["events"]
                    b["events_per_second"] = round(res["events"] / res["wall_seconds"])
            b["task_runs_per_cpu_second"] = max(
                b["task_runs_per_cpu_second"], round(res["task_runs"] / res["cpu_seconds"])
            )
    o, s = best["octosim"], best["simpy"]
    ratio = o["task_runs_per_second"] / s["task_runs_per_second"]
    return {
        "instances": n_instances,
        "repeats": repeats,
        "octosim": o,
        "simpy": s,
        "ratio_octosim_over_simpy": round(ratio, 3),
        "ratio_by_cpu_time": round(
            o["task_runs_per_cpu_second"] / s["task_runs_per_cpu_second"], 3
        ),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }


def workload_only(n_instances: int, seed: int) -> dict[str, Any]:
    """octosim's workload compiler alone on the same workflow and instances: every
    instance's runs, draws and dependencies, with no engine, policy or metrics."""
    from octosim.engine.tasks import build_task_types
    from octosim.engine.workload import WorkloadCompiler
    from octosim.experiments.config import resolve_config
    from octosim.model.rng import KeyedRandom

    cfg = resolve_config(
        str(ref.WORKFLOW), "ideal", "static", seed=seed, sets=ref.octosim_sets(n_instances)
    )
    wf, arch, _ = cfg.build()
    types = build_task_types(wf, arch)
    t0 = time.perf_counter()
    compiler = WorkloadCompiler(wf, types, KeyedRandom(seed), arch.tbu.split_efficiency)
    runs = sum(sum(1 for k in ch.kind if k >= 0) for ch in compiler.chunks())
    wall = time.perf_counter() - t0
    return {
        "task_runs": runs,
        "wall_seconds": round(wall, 4),
        "task_runs_per_second": round(runs / wall),
    }


def policy_share(n_instances: int, seed: int) -> float:
    """The share of a run's time spent in the policy's own code, from a cProfile run (each
    function's own time). The profiler slows every Python call alike, so the share, not
    its times, is what it is good for."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    ref.octosim_run(n_instances, seed, latencies=False)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values()) or 1.0
    policy = sum(v[2] for (path, _, _), v in stats.items() if "/octosim/policies/" in path)
    return policy / total


def decomposition(n_instances: int, repeats: int, seed: int, simpy_rate: float,
                  octosim_rate: float) -> dict[str, Any]:
    """Where the time goes, as rates relative to the SimPy model of the same run: a
    hand-written ``heapq`` loop of this one workflow (``minimal_loop.py``: the floor of plain
    Python, no generality); octosim's workload compiler alone (generation); and the shares
    of octosim's run in generation (compiler time over run time), policy (its own code, by
    cProfile) and the engine core (the rest: loop, resources, accounting, buffers), each
    with the rate octosim would reach over SimPy if that part cost nothing."""
    import minimal_loop

    best_min = best_wl = 0.0
    for r in range(repeats):
        res = minimal_loop.run_minimal(n_instances, seed + r)
        best_min = max(best_min, res["task_runs"] / res["wall_seconds"])
        best_wl = max(best_wl, workload_only(n_instances, seed + r)["task_runs_per_second"])
    generation = octosim_rate / best_wl
    policy = policy_share(n_instances, seed) * (1.0 - generation)
    shares = {"generation": generation, "policy": policy, "core": 1.0 - generation - policy}
    return {
        "minimal_loop_task_runs_per_second": round(best_min),
        "minimal_loop_over_simpy": round(best_min / simpy_rate, 2),
        "octosim_generation_only_task_runs_per_second": round(best_wl),
        "octosim_generation_only_over_simpy": round(best_wl / simpy_rate, 2),
        "octosim_time_shares": {k: round(v, 3) for k, v in shares.items()},
        "octosim_over_simpy_without": {
            part: round(octosim_rate / max(1e-9, 1.0 - share) / simpy_rate, 2)
            for part, share in shares.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, no 1M run (< 60 s)")
    ap.add_argument(
        "--instances",
        type=int,
        default=20_000,
        help="instances per run of the octosim/SimPy comparison",
    )
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per simulator")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.seed, args.tracemalloc)))
        return
    t0 = time.perf_counter()
    repeats = args.repeats or (2 if args.quick else 5)
    out: dict[str, Any] = {
        "workflow": str(ref.WORKFLOW.relative_to(HERE.parent)),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "compare": compare(args.instances, repeats, args.seed),
    }
    out["decomposition"] = decomposition(
        args.instances, repeats, args.seed, out["compare"]["simpy"]["task_runs_per_second"],
        out["compare"]["octosim"]["task_runs_per_second"],
    )
    out["scale_100k"] = run_child(100_000, args.seed)
    if not args.quick:
        traced = run_child(100_000, args.seed, True)
        out["scale_100k"]["tracemalloc_peak_mib"] = traced["tracemalloc_peak_mib"]
        out["scale_1m"] = run_child(1_000_000, args.seed)
    out["bench_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
