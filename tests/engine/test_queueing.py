"""The engine against queueing theory, on the zero-overhead ``ideal`` arch.

With ``host_cycles=0``, ``buffer_slots=0`` (unbounded FIFO queues), one-PEA TBUs and an explicit
``static`` partition, a task type with ``n`` TBUs is exactly an ``n``-server FIFO queue, so its
mean wait (ready to start, ``tasks[...].mean_wait_cycles``) must match the classical results.
Service means are 10,000 cycles so that rounding service times to integer cycles changes nothing
that matters (it adds 1/12 cycle^2 to the variance of a service time).

Notation: arrival rate ``lam`` (1 / mean interarrival), service rate ``mu`` (1 / mean service),
``c`` servers, offered load ``a = lam / mu`` and utilisation ``rho = a / c``.

* **M/M/1** -- ``Wq = rho / (mu - lam)``; the sojourn time is exponential with rate
  ``mu - lam``, so its p-quantile is ``-ln(1 - p) / (mu - lam)``.
* **M/M/c** (Erlang C) -- the probability that an arrival waits is
  ``C(c, a) = (a^c / c!) / (1 - rho) / (sum_{k<c} a^k / k! + (a^c / c!) / (1 - rho))`` and
  ``Wq = C(c, a) / (c mu - lam)``.
* **M/D/1** (Pollaczek-Khinchine) -- ``Wq = lam E[S^2] / (2 (1 - rho))``, which for a constant
  service ``S`` is ``rho S / (2 (1 - rho))``; half the M/M/1 wait.
* **Jackson tandem** -- M/M/1 stages in series, with a Bernoulli(p) split before the last one,
  are independent M/M/1 queues in steady state (Burke's theorem), so the mean end-to-end latency
  is ``sum_i p_i / (mu_i - p_i lam)`` where ``p_i`` is the fraction of instances visiting stage i.
* **Little's law** -- ``L = lam W``: the time-average number of instances in the system equals
  the arrival rate times the mean latency, whatever the workflow and the scheduling discipline.

How many customers (statistical error)
--------------------------------------
Successive waits are strongly correlated, so the variance of the sample mean of ``n`` waits is
``sigma_inf^2 / n`` with an *asymptotic variance* ``sigma_inf^2`` much larger than the variance
of one wait. For M/M/1 (Daley 1968; Whitt 1989, "Planning queueing simulations"), with
``mu = 1``::

    sigma_inf^2 = rho (2 + 5 rho - 4 rho^2 + rho^3) / (1 - rho)^4

so the *relative* asymptotic variance ``sigma_inf^2 / Wq^2`` is 29 at ``rho = 0.5`` and 123.5 at
``rho = 0.8``. For M/D/1 at rho = 0.7 and M/M/4 at rho = 0.7 the same quantity, estimated by batch
means over 4 million customers of an independent Lindley / Kiefer-Wolfowitz recursion, is about
35 and 120. The relative standard error of the mean wait over ``n`` customers is then
``sqrt(R / n)``; the sample sizes below keep it at or under 1 % (the 3 % tolerance is >= 3
standard errors, >= 4 for the lighter cases):

===============  ======  ==========  ==============
queue            R       customers   relative s.e.
===============  ======  ==========  ==============
M/M/1 rho=0.5    29      600,000     0.70 %
M/M/1 rho=0.8    123.5   1,200,000   1.01 %
M/M/4 rho=0.7    ~120    1,200,000   ~1.0 %
M/D/1 rho=0.7    ~35     600,000     ~0.76 %
===============  ======  ==========  ==============

The 200,000 customers one might guess are *not* enough at rho = 0.8 (2.5 % s.e.). Each run starts
empty; the resulting bias on the mean is of order (relaxation time / n), below 0.1 % here.
Runs use fixed seeds, so the tests are deterministic; the messages give the deviation in
standard errors (z), from the formula above for M/M/1, else from the spread across seeds (a rough
estimate with so few seeds). Each test has its own seeds: draws are keyed by (seed, instance,
block), so tests sharing seeds would reuse the same uniforms and their errors would be
correlated. The engine does ~70k customers per wall second on an idle core, so the heaviest
tests take ~17 s (marked ``slow``; they still run by default; deselect with ``-m "not slow"``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from octosim.engine.metrics import summarize
from octosim.engine.sim import Instance, Observer, Simulation
from octosim.experiments.config import resolve_config
from octosim.experiments.run import simulate

FIXTURES = Path(__file__).parent / "fixtures"
SERVICE = 10_000  # mean service cycles of the single-queue fixtures
TOLERANCE = 0.03


# --- theory ---------------------------------------------------------------------------------


def mm1_wait(lam: float, mu: float) -> float:
    """M/M/1 mean wait in queue: ``rho / (mu - lam)``."""
    return (lam / mu) / (mu - lam)


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load ``a = lam / mu`` (Erlang C)."""
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def mmc_wait(lam: float, mu: float, c: int) -> float:
    """M/M/c mean wait in queue: ``C(c, a) / (c mu - lam)``."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def pk_wait(lam: float, mean_s: float, second_moment_s: float) -> float:
    """M/G/1 mean wait (Pollaczek-Khinchine): ``lam E[S^2] / (2 (1 - rho))``."""
    rho = lam * mean_s
    return lam * second_moment_s / (2 * (1 - rho))


def mm1_asymptotic_rel_var(rho: float) -> float:
    """Relative asymptotic variance of the M/M/1 mean wait: sigma_inf^2 / Wq^2 (Daley 1968)."""
    sigma2 = rho * (2 + 5 * rho - 4 * rho**2 + rho**3) / (1 - rho) ** 4
    return sigma2 / (rho / (1 - rho)) ** 2


def test_theory_formulas_agree() -> None:
    """The formulas are consistent: M/M/c with c=1 and P-K with E[S^2] = 2/mu^2 give M/M/1."""
    lam, mu = 0.8, 1.0
    assert erlang_c(1, lam / mu) == pytest.approx(lam / mu)
    assert mmc_wait(lam, mu, 1) == pytest.approx(mm1_wait(lam, mu))
    assert pk_wait(lam, 1 / mu, 2 / mu**2) == pytest.approx(mm1_wait(lam, mu))
    # Textbook value: M/M/2 with a = 1 has C = 1/3.
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)


# --- running --------------------------------------------------------------------------------


class Latencies(Observer):
    """Records each instance's arrival and completion cycles (independently of the engine's
    own latency statistics, which the tests compare against)."""

    def __init__(self) -> None:
        self.arrival: list[int] = []
        self.done: list[int] = []

    def instance_done(self, inst: Instance, now: int) -> None:
        self.arrival.append(inst.arrival)
        self.done.append(now)

    def latencies(self) -> np.ndarray:
        return np.array(self.done, dtype=np.int64) - np.array(self.arrival, dtype=np.int64)


def run_queue(
    fixture: str,
    *,
    interarrival: float,
    count: int,
    seed: int,
    partition: dict[str, int],
    peas_per_tbu: int = 1,
) -> tuple[Simulation, Latencies]:
    """Run a fixture on ``ideal`` with ``static``, zero overheads and unbounded FIFO queues."""
    part = "{" + ", ".join(f"{k}: {v}" for k, v in partition.items()) + "}"
    cfg = resolve_config(
        str(FIXTURES / fixture),
        "ideal",
        "static",
        seed=seed,
        sets=[
            f"policy.partition={part}",
            "policy.buffer_slots=0",
            "policy.host_cycles=0",
            f"arch.cluster.tbus={sum(partition.values())}",
            f"arch.tbu.peas={peas_per_tbu}",
            f"workflow.arrivals.interarrival_cycles={interarrival}",
            f"workflow.arrivals.count={count}",
        ],
    )
    obs = Latencies()
    sim = simulate(cfg, [obs])
    assert sim.instances_done == count == len(obs.done)
    return sim, obs


def pooled_wait(
    fixture: str, *, interarrival: float, count: int, seeds: list[int], peas_per_tbu: int = 1
) -> tuple[float, float, list[tuple[Simulation, Latencies]]]:
    """Mean wait of task ``serve`` pooled over seeds, and its standard error across seeds."""
    runs = [
        run_queue(
            fixture,
            interarrival=interarrival,
            count=count,
            seed=s,
            partition={"serve": 1},
            peas_per_tbu=peas_per_tbu,
        )
        for s in seeds
    ]
    sims = [sim for sim, _ in runs]
    per_seed = np.array([s.task_wait[0] / s.task_count[0] for s in sims])
    total = sum(s.task_wait[0] for s in sims) / sum(s.task_count[0] for s in sims)
    se = float(per_seed.std(ddof=1) / math.sqrt(len(seeds))) if len(seeds) > 1 else math.nan
    return total, se, runs


def check(
    name: str,
    simulated: float,
    theory: float,
    se: float = math.nan,
    tol: float = TOLERANCE,
    se_kind: str = "across-seed",
) -> None:
    """Assert ``simulated`` is within ``tol`` (relative) of ``theory``; print the deviation in
    standard errors ``se`` (absolute, same unit as ``theory``) when one is given."""
    rel = simulated / theory - 1
    msg = f"{name}: simulated {simulated:.1f} vs theory {theory:.1f} cycles ({rel:+.2%}"
    if se > 0:
        msg += f"; {se_kind} s.e. {se / theory:.2%}, z = {rel * theory / se:+.2f}"
    msg += ")"
    print(msg)
    assert abs(rel) <= tol, msg


# --- single queues ----------------------------------------------------------------------------


def test_mm1_rho_05() -> None:
    rho, seeds, count = 0.5, [101, 102, 103, 104], 150_000
    lam, mu = rho / SERVICE, 1 / SERVICE
    assert math.sqrt(mm1_asymptotic_rel_var(rho) / (len(seeds) * count)) < 0.0075
    wait, se, runs = pooled_wait("mm1.yaml", interarrival=1 / lam, count=count, seeds=seeds)
    se_theory = mm1_wait(lam, mu) * math.sqrt(mm1_asymptotic_rel_var(rho) / (len(seeds) * count))
    check("M/M/1 rho=0.5 Wq", wait, mm1_wait(lam, mu), se_theory, se_kind="theoretical")
    print(f"  (across-seed s.e. {se / mm1_wait(lam, mu):.2%})")
    # The sojourn time is Exp(mu - lam): check its median and 95th percentile too, and that
    # latency = wait + service for a one-task workflow.
    lat = np.concatenate([obs.latencies() for _, obs in runs])
    for p in (0.50, 0.95):
        check(
            f"M/M/1 rho=0.5 sojourn p{round(p * 100)}",
            float(np.quantile(lat, p)),
            -math.log(1 - p) / (mu - lam),
        )
    for sim, obs in runs:
        assert int(obs.latencies().sum()) == sim.task_wait[0] + sim.task_service[0]


@pytest.mark.slow
def test_mm1_rho_08() -> None:
    rho, seeds, count = 0.8, list(range(201, 207)), 200_000
    lam, mu = rho / SERVICE, 1 / SERVICE
    assert math.sqrt(mm1_asymptotic_rel_var(rho) / (len(seeds) * count)) < 0.0102
    wait, se, _ = pooled_wait("mm1.yaml", interarrival=1 / lam, count=count, seeds=seeds)
    se_theory = mm1_wait(lam, mu) * math.sqrt(mm1_asymptotic_rel_var(rho) / (len(seeds) * count))
    check("M/M/1 rho=0.8 Wq", wait, mm1_wait(lam, mu), se_theory, se_kind="theoretical")
    print(f"  (across-seed s.e. {se / mm1_wait(lam, mu):.2%})")


@pytest.mark.slow
def test_mmc_erlang_c() -> None:
    """Four one-PEA servers in one TBU sharing a FIFO queue (each run takes 1 PEA)."""
    c, rho, seeds, count = 4, 0.7, list(range(301, 307)), 200_000
    mu = 1 / SERVICE
    lam = rho * c * mu
    wait, se, runs = pooled_wait(
        "mm1.yaml", interarrival=1 / lam, count=count, seeds=seeds, peas_per_tbu=c
    )
    check("M/M/4 rho=0.7 Wq", wait, mmc_wait(lam, mu, c), se)
    # The servers are really 4: the fraction of busy PEA time is rho.
    busy = [summarize(sim)["pea_utilization"] for sim, _ in runs]
    assert abs(float(np.mean(busy)) / rho - 1) < 0.01, busy


@pytest.mark.slow
def test_mm3_bounded_buffer_admission_wait_completes_the_wait() -> None:
    """M/M/3 (lam = 1/1000, exponential service of mean 2,100 cycles, rho = 0.7) under
    ``static`` with its *default* bounded buffer (4 slots for the one TBU of 3 PEAs): a run
    that finds the buffer full waits for a slot (admission wait), then in the queue. Neither
    alone is the M/M/c wait, their sum is: mean admission wait + mean queue wait + mean service
    = mean latency (exactly here: one task, no control or transfer), and the total wait is
    Erlang C's. Six seeds of 100,000 customers: the across-seed spread at 100,000 gives a
    relative asymptotic variance of ~130 (as M/M/4 above), so a relative s.e. of ~1.5 % here:
    the 3 % tolerance is ~2 s.e. (the cost is ~3 s per seed)."""
    c, lam, mean_s, seeds, count = 3, 1 / 1000, 2100, list(range(701, 707)), 100_000
    cfg_sets = [
        "policy.partition={serve: 1}",
        "arch.cluster.tbus=1",
        f"arch.tbu.peas={c}",
        f"workflow.arrivals.interarrival_cycles={1 / lam}",
        f"workflow.arrivals.count={count}",
        f"workflow.tasks.serve.cycles={{dist: exponential, mean: {mean_s}}}",
    ]
    waits, queue_waits = [], []
    for seed in seeds:
        obs = Latencies()
        sim = simulate(resolve_config(str(FIXTURES / "mm1.yaml"), "ideal", "static", seed=seed,
                                      sets=cfg_sets), [obs])
        s = summarize(sim)
        assert sim.policy.buffer_slots == 4  # the default: bounded
        t = s["tasks"]["serve"]
        wait = t["mean_admission_wait_cycles"] + t["mean_wait_cycles"]
        latency = float(obs.latencies().mean())
        assert abs((wait + t["mean_service_cycles"]) / latency - 1) < 0.005
        assert int(obs.latencies().sum()) == (
            sim.task_admission_wait[0] + sim.task_wait[0] + sim.task_service[0])
        assert s["latency_breakdown_cycles"]["admission_wait"] == t["mean_admission_wait_cycles"]
        waits.append(wait)
        queue_waits.append(t["mean_wait_cycles"])
    se = float(np.std(waits, ddof=1) / math.sqrt(len(seeds)))
    theory = mmc_wait(lam, 1 / mean_s, c)
    check("M/M/3 rho=0.7, buffer_slots=4: admission + queue wait", float(np.mean(waits)), theory,
          se)
    assert float(np.mean(queue_waits)) < 0.85 * theory  # the queue wait alone falls short


def test_md1_pollaczek_khinchine() -> None:
    rho, seeds, count = 0.7, [401, 402, 403, 404], 150_000
    lam = rho / SERVICE
    wait, se, runs = pooled_wait("md1.yaml", interarrival=1 / lam, count=count, seeds=seeds)
    check("M/D/1 rho=0.7 Wq", wait, pk_wait(lam, SERVICE, SERVICE**2), se)
    assert all(sim.task_service[0] == SERVICE * sim.task_count[0] for sim, _ in runs)


# --- networks ---------------------------------------------------------------------------------


def test_jackson_tandem_latency() -> None:
    """Mean latency of a tandem of M/M/1 stages with a Bernoulli split: sum of M/M/1 sojourns."""
    interarrival, seeds, count = 20_000, list(range(501, 507)), 40_000
    lam = 1 / interarrival
    stages = [(1.0, 10_000), (1.0, 12_000), (0.3, 30_000)]  # (visit probability, mean service)
    theory = sum(p / (1 / s - p * lam) for p, s in stages)
    runs = [
        run_queue(
            "tandem.yaml",
            interarrival=interarrival,
            count=count,
            seed=seed,
            partition={"first": 1, "second": 1, "third": 1},
        )
        for seed in seeds
    ]
    per_seed = np.array([obs.latencies().mean() for _, obs in runs])
    mean = float(per_seed.mean())  # equal counts per seed
    se = float(per_seed.std(ddof=1) / math.sqrt(len(seeds)))
    check("Jackson tandem latency", mean, theory, se)
    sims = [sim for sim, _ in runs]
    visits = sum(s.task_count[2] for s in sims) / sum(s.task_count[0] for s in sims)
    assert abs(visits - 0.3) < 0.005, visits


def time_average_in_system(arrival: np.ndarray, done: np.ndarray, t0: float, t1: float) -> float:
    """(1 / (t1 - t0)) * integral over [t0, t1] of N(t), N = arrived and not yet done."""
    # Each instance contributes the length of [arrival, done) that falls inside [t0, t1].
    overlap = np.clip(np.minimum(done, t1) - np.maximum(arrival, t0), 0, None)
    return float(overlap.sum()) / (t1 - t0)


def test_littles_law_multistage() -> None:
    """L = lam W on a workflow with a foreach join, a loop and a branch.

    Over the whole run (empty at 0 and at the end) Little's law is an identity of the sample
    path: integral N(t) dt = sum of latencies; this checks the engine's bookkeeping (latencies it
    reports, instances it completes, arrival times). Over a steady-state window [10 %, 90 %] of
    the arrival horizon it is a real check: the time-average number in system L, computed from
    the arrival and completion times, must equal (arrivals in the window / window length) times
    the mean latency of the instances arriving in it, up to edge effects of order W / window.
    """
    interarrival, count = 20_000, 40_000
    sim, obs = run_queue(
        "little.yaml",
        interarrival=interarrival,
        count=count,
        seed=601,
        partition={"decode": 1, "detect": 2, "recognize": 3, "refine": 1, "alarm": 1},
    )
    arrival = np.array(obs.arrival, dtype=np.int64)
    done = np.array(obs.done, dtype=np.int64)
    lat = done - arrival
    assert len(np.unique(arrival)) > count * 0.999  # instances are distinct, arrivals spread
    # The latency statistics the engine reports agree with the observed done - arrival.
    summary = summarize(sim)
    assert summary["instances"] == count
    assert summary["latency_cycles"]["mean"] == pytest.approx(lat.mean(), abs=1e-3)
    assert summary["latency_cycles"]["max"] == lat.max()
    assert summary["latency_cycles"]["p50"] == pytest.approx(np.percentile(lat, 50), abs=1e-3)
    assert done.max() == sim.makespan == summary["makespan_cycles"]
    # Whole run: exact identity.
    horizon = float(sim.makespan)
    L = time_average_in_system(arrival, done, 0.0, horizon)
    assert abs(L / (count / horizon * lat.mean()) - 1) < 1e-9
    # Steady-state window.
    t0, t1 = 0.1 * arrival.max(), 0.9 * arrival.max()
    inside = (arrival >= t0) & (arrival < t1)
    lam_hat = inside.sum() / (t1 - t0)
    w_hat = float((done - arrival)[inside].mean())
    L = time_average_in_system(arrival, done, t0, t1)
    print(f"Little: L={L:.4f}  lam*W={lam_hat * w_hat:.4f}  W={w_hat:.0f}")
    assert abs(L / (lam_hat * w_hat) - 1) < 0.01
    # The arrival process has the configured rate (32,000 arrivals: s.e. 0.56 %).
    assert lam_hat * interarrival == pytest.approx(1.0, rel=0.03)
    assert sum(sim.task_count) > 2 * count  # the foreach and the loop really ran
