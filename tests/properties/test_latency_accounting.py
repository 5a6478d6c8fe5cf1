"""Property tests: every instance's latency is exactly the sum, along its critical path, of
admission wait, queue wait, transfer, control latency and service (DESIGN section 4; the terms
are defined at :data:`octosim.engine.entities.LATENCY_TERMS`).

An observer records what each run's attempts did, from the hooks (start, abort and completion
cycles) and from the run's timestamps (released, admitted, ready). For every finished instance
the test rebuilds its critical path -- from the run whose completion ended it, back through
each run's ``crit_seq`` (the predecessor whose completion released it) to the arrival -- and
checks that: each run was released exactly when its critical predecessor completed (the first
at the arrival); each term is non-negative; their sum is ``done - arrival``; the engine's own
``Instance.latency_terms`` are the rebuilt ones; and ``run --json`` reports their means and the
per-task admission wait. Every policy, bounded and unbounded buffers, with and without a
runtime fault (an aborted attempt's ready-to-start counts as queue wait and its start-to-fault
as service; the run's admission and control latency count once).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from octosim.engine.entities import LATENCY_TERMS
from octosim.engine.metrics import summarize
from octosim.engine.sim import Instance, Observer, Simulation, TaskRun
from octosim.experiments.config import resolve_config
from octosim.experiments.run import simulate
from tests.strategies import budget, min_working_tbus, policy_names, run_config, scenarios

POLICIES = policy_names()
PER_POLICY = max(10, 60 // len(POLICIES))
settings_ = budget(PER_POLICY, 50 * PER_POLICY)
per_policy = pytest.mark.parametrize("policy", POLICIES)


class PathRecorder(Observer):
    """Per run (by ``seq``): its attempts, release and admission; per instance: the run that
    ended it and the engine's latency terms."""

    def __init__(self) -> None:
        self.runs: dict[int, dict[str, Any]] = {}
        self.last_done: TaskRun | None = None
        self.instances: list[tuple[Instance, int, int | None, tuple[int, ...]]] = []

    def task_started(self, run: TaskRun, now: int) -> None:
        rec = self.runs.get(run.seq)
        if rec is None:
            rec = self.runs[run.seq] = {
                "task": run.tt.idx, "inst": run.inst.id, "released": run.released_at,
                "admitted": run.admitted_at, "crit": run.crit_seq, "cbs": run.cbs,
                "attempts": [],  # [ready, start, end or fault cycle]
            }
        assert run.tbu is not None
        rec["attempts"].append([run.ready_at, now, None, run.tbu.id])

    def task_aborted(self, run: TaskRun, now: int) -> None:
        self.runs[run.seq]["attempts"][-1][2] = now

    def task_done(self, run: TaskRun, now: int) -> None:
        rec = self.runs[run.seq]
        rec["attempts"][-1][2] = now
        rec["done"] = now
        rec["transfer"] = run.transfer_cycles
        rec["setup"] = run.svc_start - rec["attempts"][-1][1]  # context load and/or transfer
        self.last_done = run

    def instance_done(self, inst: Instance, now: int) -> None:
        last = None
        if inst.tasks_done:  # else its flow ran no task: it ended at its arrival
            assert self.last_done is not None and self.last_done.inst is inst
            last = self.last_done.seq
        self.instances.append((inst, now, last, inst.latency_terms))


def rebuild(rec: PathRecorder, inst: Instance, done: int, last: int | None) -> list[int]:
    """The instance's latency terms (LATENCY_TERMS order) rebuilt from the record."""
    terms = dict.fromkeys(LATENCY_TERMS, 0)
    end, seq = done, last
    while seq:
        r = rec.runs[seq]
        assert r["inst"] == inst.id, "a critical predecessor of another instance"
        assert r["done"] == end, "the critical path has a gap or an overlap"
        atts = r["attempts"]
        assert r["released"] <= r["admitted"] <= atts[0][0], "admitted after ready"
        terms["admission_wait"] += r["admitted"] - r["released"]
        terms["control"] += atts[0][0] - r["admitted"]
        for i, (ready, start, stop, _) in enumerate(atts):
            if i:  # a re-execution is ready again at the fault that aborted the last attempt
                assert ready == atts[i - 1][2]
            assert ready <= start <= stop
            terms["queue_wait"] += start - ready
            terms["service"] += stop - start
        assert 0 <= r["transfer"] <= r["setup"]
        terms["transfer"] += r["transfer"]
        terms["service"] -= r["transfer"]
        if not r["cbs"]:
            assert atts[0][0] == r["admitted"], "control latency without a Control Block"
        end, seq = r["released"], r["crit"]
    assert end == inst.arrival, "the critical path does not start at the arrival"
    return [terms[t] for t in LATENCY_TERMS]


def check_identity(sim: Simulation, rec: PathRecorder, bounded: bool) -> list[int]:
    """Check the identity instance by instance; return the terms summed over instances."""
    assert len(rec.instances) == sim.instances_done == sim.wf.count
    totals = [0] * len(LATENCY_TERMS)
    for inst, done, last, engine_terms in rec.instances:
        terms = rebuild(rec, inst, done, last)
        assert all(x >= 0 for x in terms), (inst.id, terms)
        assert sum(terms) == done - inst.arrival, (inst.id, terms, done - inst.arrival)
        assert list(engine_terms) == terms, (inst.id, engine_terms, terms)
        assert inst.latency_breakdown() == dict(zip(LATENCY_TERMS, terms, strict=True))
        totals = [a + b for a, b in zip(totals, terms, strict=True)]
    assert totals == sim.latency_terms_total
    s = summarize(sim)
    n = sim.instances_done
    assert s["latency_breakdown_cycles"] == {
        t: round(x / n, 3) for t, x in zip(LATENCY_TERMS, totals, strict=True)}
    assert abs(sum(s["latency_breakdown_cycles"].values()) - s["latency_cycles"]["mean"]) < 0.01
    # Per task type: the admission wait of every run, on or off a critical path.
    adm: dict[int, int] = defaultdict(int)
    for r in rec.runs.values():
        adm[r["task"]] += r["admitted"] - r["released"]
    for tt in sim.task_types:
        row = s["tasks"][tt.name]
        n_runs = sim.task_count[tt.idx]
        assert row["mean_admission_wait_cycles"] == (
            round(adm[tt.idx] / n_runs, 3) if n_runs else 0.0)
    if not bounded:
        assert all(r["admitted"] == r["released"] for r in rec.runs.values())
    return totals


def _events(totals: list[int]) -> None:
    """Which terms the example exercised (``--hypothesis-show-statistics``)."""
    for term, total in zip(LATENCY_TERMS, totals, strict=True):
        if total:
            event(f"{term} > 0 on a critical path")


def _scenario(data: st.DataObject, policy: str) -> tuple[dict[str, Any], bool]:
    sc = data.draw(scenarios(policy), label="scenario")
    slots = data.draw(st.sampled_from([0, 1, 2, 4]), label="buffer_slots")
    sc["policy"]["buffer_slots"] = slots
    return sc, slots > 0


@per_policy
@settings_
@given(data=st.data())
def test_latency_is_the_sum_of_its_terms_along_the_critical_path(
    policy: str, data: st.DataObject
) -> None:
    sc, bounded = _scenario(data, policy)
    rec = PathRecorder()
    healthy = simulate(run_config(**sc), observers=[rec])
    _events(check_identity(healthy, rec, bounded))
    # Again with a TBU dying at some cycle, where a spare working TBU exists in every cluster
    # (else a type may be left without a home).
    arch = sc["arch"]
    if min_working_tbus(arch) <= len(sc["workflow"]["tasks"]) or "partition" in sc["policy"]:
        return
    # Kill the TBU of a run of the healthy run while it is in flight there (the faulty run is
    # the same up to the fault), so that the fault aborts work.
    spans = [(a[1], a[2], a[3]) for r in rec.runs.values() for a in r["attempts"] if a[2] > a[1]]
    if not spans:
        return
    start, end, victim = data.draw(st.sampled_from(spans), "victim run")
    at = data.draw(st.integers(min_value=start, max_value=end - 1), "cycle")
    cfg = run_config(**sc)
    cfg.faults = (f"tbu:{victim}@{at}",)
    rec = PathRecorder()
    sim = simulate(cfg, observers=[rec])
    _events(check_identity(sim, rec, bounded))
    event("re-executed runs" if sim.reexecutions else "fault aborted nothing")


def test_noc_transfer_on_a_critical_path_counts_as_transfer() -> None:
    """Runs that take PEAs on another cluster wait for their input over the NoC: that wait is
    the transfer term (random scenarios rarely put one on a critical path)."""
    cfg = resolve_config("document-ocr", "octopus-4c", "indiscriminate", 1,
                         ["policy.spread=true", "workflow.arrivals.count=30", "workflow.phases=[]"])
    rec = PathRecorder()
    sim = simulate(cfg, observers=[rec])
    terms = dict(zip(LATENCY_TERMS, check_identity(sim, rec, bounded=False), strict=True))
    assert terms["transfer"] > 0 and terms["control"] > 0, terms
