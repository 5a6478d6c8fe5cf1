"""An independent SimPy model of a small workflow, to cross-check octosim.

The workflow (the same as ``bench/reference_workflow.yaml``)::

    detect (lognormal time)            sets objects ~ Poisson(objects_mean)
    foreach objects: recognize          each recognition its own job; join when all are done
    branch p=review_p: review           else nothing

Each stage has its own pool of PEAs -- a ``simpy.Resource`` whose capacity is the pool size --
served first come, first served; instances arrive as a Poisson process. A job holds one PEA for
its whole service time. Service times are rounded to whole cycles, as octosim does.

With the default parameters the offered load per PEA is:

* detect:    12,000 / 10,000 / 2 PEAs = 0.60
* recognize: 3 x 20,000 / 10,000 / 9 PEAs = 0.667 (the bottleneck pool)
* review:    0.3 x 15,000 / 10,000 / 1 PEA = 0.45

The model is written from the workflow's description only: it does not import octosim, and it
draws its own random numbers from a seeded ``numpy.random.Generator`` (all draws for a run are
made up front, vectorised, so SimPy's event loop is what gets timed). :func:`octosim_run` --
kept apart from the model and importing octosim lazily -- runs the same workflow in octosim with
the same parameters, so callers compare like with like.

Usage::

    python bench/reference_simpy.py --instances 20000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import simpy

HERE = Path(__file__).resolve().parent
WORKFLOW = HERE / "reference_workflow.yaml"

DEFAULT_PARAMS: dict[str, Any] = {
    "interarrival": 10_000.0,  # mean cycles between instance arrivals (Poisson process)
    "detect_mean": 12_000.0,  # detect: lognormal, mean and sd of the time itself (cycles)
    "detect_sd": 8_000.0,
    "objects_mean": 3.0,  # objects per instance: Poisson
    "recognize_mean": 20_000.0,  # recognize: exponential (cycles)
    "review_p": 0.3,  # probability that an instance is reviewed
    "review_mean": 15_000.0,  # review: exponential (cycles)
    "pools": {"detect": 2, "recognize": 9, "review": 1},  # PEAs per stage
}


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    p = dict(DEFAULT_PARAMS)
    p.update(params or {})
    p["pools"] = {**DEFAULT_PARAMS["pools"], **(params or {}).get("pools", {})}
    return p


def _lognormal(rng: np.random.Generator, mean: float, sd: float, size: int) -> np.ndarray:
    """Lognormal with the given mean and sd of the variable itself:
    sigma^2 = ln(1 + (sd/mean)^2), mu = ln(mean) - sigma^2 / 2."""
    sigma2 = np.log1p((sd / mean) ** 2)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), size)


def draw_workload(n: int, seed: int, p: dict[str, Any]) -> tuple[list[Any], ...]:
    """All random numbers of a run, drawn up front with numpy: arrival cycles, detect times,
    objects per instance, recognition times (in order of use), review flags, review times.
    Service times are rounded to whole cycles, as octosim does."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(p["interarrival"], n)
    gaps[0] = 0.0  # the first instance arrives at cycle 0
    arrivals = np.rint(np.cumsum(gaps)).astype(np.int64).tolist()
    detect_t = np.rint(_lognormal(rng, p["detect_mean"], p["detect_sd"], n)).tolist()
    objects = rng.poisson(p["objects_mean"], n)
    recog_t = np.rint(rng.exponential(p["recognize_mean"], int(objects.sum()))).tolist()
    reviewed = (rng.random(n) < p["review_p"]).tolist()
    review_t = np.rint(rng.exponential(p["review_mean"], n)).tolist()
    return arrivals, detect_t, objects.tolist(), recog_t, reviewed, review_t


def run_simpy(n_instances: int, seed: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Simulate ``n_instances`` workflow instances; return latencies, completions and timing.

    Returns ``{"latencies": [cycles per instance, in completion order], "completions":
    {stage: jobs done}, "task_runs": total jobs, "makespan_cycles", "wall_seconds",
    "cpu_seconds", "draw_seconds"}``. ``wall_seconds`` covers drawing the random numbers (up
    front, with numpy; also reported alone as ``draw_seconds``), building the model and running
    SimPy's loop -- like octosim's ``wall_seconds``, which includes its own random draws.
    """
    p = _params(params)
    n = int(n_instances)
    cpu0 = time.process_time()
    t_draw = time.perf_counter()
    arrivals, detect_t, objects_l, recog_t, reviewed, review_t = draw_workload(n, seed, p)
    draw_seconds = time.perf_counter() - t_draw

    wall0 = time.perf_counter()
    env = simpy.Environment()
    pools = p["pools"]
    detect = simpy.Resource(env, capacity=pools["detect"])
    recognize = simpy.Resource(env, capacity=pools["recognize"])
    review = simpy.Resource(env, capacity=pools["review"])
    latencies: list[float] = []
    done = {"detect": 0, "recognize": 0, "review": 0}
    recog_iter = iter(recog_t)

    def job(pool: simpy.Resource, service: float, stage: str):  # noqa: ANN202
        with pool.request() as req:
            yield req
            yield env.timeout(service)
        done[stage] += 1

    def instance(i: int):  # noqa: ANN202
        t0 = env.now
        yield from job(detect, detect_t[i], "detect")
        k = objects_l[i]
        if k:
            # foreach: every recognition is its own job; the join waits for all of them.
            yield env.all_of(
                [env.process(job(recognize, next(recog_iter), "recognize")) for _ in range(k)]
            )
        if reviewed[i]:
            yield from job(review, review_t[i], "review")
        latencies.append(env.now - t0)

    def source():  # noqa: ANN202
        for i in range(n):
            wait = arrivals[i] - env.now
            if wait > 0:
                yield env.timeout(wait)
            env.process(instance(i))

    env.process(source())
    env.run()
    wall = time.perf_counter() - wall0 + draw_seconds
    cpu = time.process_time() - cpu0
    assert len(latencies) == n
    return {
        "latencies": latencies,
        "completions": done,
        "task_runs": sum(done.values()),
        "makespan_cycles": env.now,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "draw_seconds": draw_seconds,
    }


# --- the same workflow in octosim (not part of the independent model) ------------------------


def octosim_sets(n_instances: int, params: dict[str, Any] | None = None) -> list[str]:
    """``--set`` overrides that run ``reference_workflow.yaml`` on ``ideal`` with ``static``
    exactly as the SimPy model: one-PEA TBUs, one TBU per pool PEA, no control latency,
    unbounded FIFO queues, and the workflow parameters of ``params``."""
    p = _params(params)
    pools = p["pools"]
    return [
        f"policy.partition={{detect: {pools['detect']}, recognize: {pools['recognize']}, "
        f"review: {pools['review']}}}",
        "policy.buffer_slots=0",
        "policy.host_cycles=0",
        "arch.tbu.peas=1",
        f"arch.cluster.tbus={sum(pools.values())}",
        f"workflow.arrivals.count={int(n_instances)}",
        f"workflow.arrivals.interarrival_cycles={p['interarrival']}",
        f"workflow.tasks.detect.cycles={{dist: lognormal, mean: {p['detect_mean']}, "
        f"sd: {p['detect_sd']}}}",
        f"workflow.tasks.detect.sets={{objects: {{dist: poisson, mean: {p['objects_mean']}}}}}",
        f"workflow.tasks.recognize.cycles={{dist: exponential, mean: {p['recognize_mean']}}}",
        f"workflow.tasks.review.cycles={{dist: exponential, mean: {p['review_mean']}}}",
        "workflow.flow=[detect, {foreach: objects, do: [recognize]}, "
        f"{{branch: [{{p: {p['review_p']}, do: [review]}}, {{else: []}}]}}]",
    ]


def octosim_run(
    n_instances: int, seed: int, params: dict[str, Any] | None = None, latencies: bool = True
) -> dict[str, Any]:
    """Run the workflow in octosim; same result keys as :func:`run_simpy`, plus ``events``.
    ``wall_seconds`` is octosim's own ``sim.wall_seconds`` (the event loop).

    Latencies are recorded by an observer (arrival and completion cycle of each instance)."""
    from octosim.engine.sim import Observer
    from octosim.experiments.config import resolve_config
    from octosim.experiments.run import simulate

    class _Lat(Observer):
        def __init__(self) -> None:
            self.lat: list[int] = []

        def instance_done(self, inst: Any, now: int) -> None:
            self.lat.append(now - inst.arrival)

    cfg = resolve_config(
        str(WORKFLOW), "ideal", "static", seed=seed, sets=octosim_sets(n_instances, params)
    )
    obs = _Lat()
    cpu0 = time.process_time()
    sim = simulate(cfg, [obs] if latencies else [])
    cpu = time.process_time() - cpu0
    names = [tt.name for tt in sim.task_types]
    return {
        "latencies": obs.lat,
        "completions": dict(zip(names, sim.task_count, strict=True)),
        "task_runs": sum(sim.task_count),
        "makespan_cycles": sim.makespan,
        "wall_seconds": sim.wall_seconds,
        "cpu_seconds": cpu,  # process CPU time of building and running the simulation
        "events": sim.events,
        "instances": sim.instances_done,
    }


def summary(latencies: list[float]) -> dict[str, float]:
    a = np.asarray(latencies, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"mean": float(a.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--octosim", action="store_true", help="also run octosim on the same input")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    r = run_simpy(args.instances, args.seed)
    out["simpy"] = {
        "latency": summary(r["latencies"]),
        "completions": r["completions"],
        "wall_seconds": round(r["wall_seconds"], 3),
    }
    if args.octosim:
        o = octosim_run(args.instances, args.seed)
        out["octosim"] = {
            "latency": summary(o["latencies"]),
            "completions": o["completions"],
            "wall_seconds": round(o["wall_seconds"], 3),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
