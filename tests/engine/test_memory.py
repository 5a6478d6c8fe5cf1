"""The memory channel conserves bytes, and the PEA time a run spends waiting for them is a
memory stall, not compute.

Conservation is checked as a schedule-feasibility condition: a transfer of ``n`` bytes released
at ``r`` (a fetch's request, a stream's start) and complete at ``c`` moves all its bytes within
``[r, c]``, so for every interval ``[a, b]`` the transfers released at or after ``a`` and
complete by ``b`` carry at most ``bandwidth x (b - a)`` bytes. The bug this guards against: a
fetch pushed the stream queue back but not a stream already reserved, so 2,000 bytes arrived
by cycle 1,000 on a 1 B/cycle channel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from octosim.engine.metrics import summarize
from octosim.engine.sim import Observer, Simulation, TaskRun
from octosim.experiments.config import resolve_config
from octosim.hardware.chip import MemoryChannel
from tests.strategies import budget, run_config, scenarios

Transfer = tuple[int, int, int]  # (bytes, released, complete)


def over_delivery(transfers: list[Transfer], bytes_per_cycle: float) -> tuple[int, int] | None:
    """An interval ``[a, b]`` in which the transfers wholly inside it carry more bytes than
    the channel can, or None. (Only intervals from a release to a completion need checking.)"""
    if not transfers:
        return None
    arr = np.array(transfers, dtype=np.float64)
    for a in np.unique(arr[:, 1]):
        inside = arr[arr[:, 1] >= a]
        order = np.argsort(inside[:, 2], kind="stable")
        ends = inside[order, 2]
        moved = np.cumsum(inside[order, 0])
        # Several transfers completing at one cycle count together: take the last of each.
        last = np.r_[ends[1:] != ends[:-1], True]
        excess = moved[last] - bytes_per_cycle * (ends[last] - a)
        if excess.max() > 1e-6:
            return int(a), int(ends[last][int(excess.argmax())])
    return None


class RecordingChannel(MemoryChannel):
    """A memory channel that remembers every transfer and where it finally completes."""

    __slots__ = ("log", "final")

    def __init__(self, bytes_per_cycle: float) -> None:
        super().__init__(bytes_per_cycle)
        self.log: list[list[int]] = []  # [bytes, released, complete]
        self.final: dict[int, list[int]] = {}  # token id -> its stream's log entry

    def fetch(self, nbytes: int, now: int) -> int:
        done = super().fetch(nbytes, now)
        if nbytes > 0:
            self.log.append([nbytes, now, done])
        for token, old, new in self.delayed:
            entry = self.final[id(token)]
            assert entry[2] == old, "a delayed stream must be the one reserved last for it"
            entry[2] = new
        return done

    def stream(self, nbytes: int, start: int, token: Any = None, now: int = 0) -> int:
        done = super().stream(nbytes, start, token, now)
        if nbytes > 0:
            entry = [nbytes, start, done]
            self.log.append(entry)
            self.final[id(token)] = entry
        return done


def transfers(ch: RecordingChannel) -> list[Transfer]:
    return [(n, r, c) for n, r, c in ch.log]


def test_a_fetch_delays_a_stream_already_in_flight() -> None:
    ch = RecordingChannel(1.0)
    token = object()
    assert ch.stream(1000, 0, token, 0) == 1000
    assert ch.fetch(1000, 0) == 1000  # the context keeps priority
    assert ch.delayed == [(token, 1000, 2000)]  # so the stream ends later, not over-delivered
    assert over_delivery(transfers(ch), 1.0) is None
    assert ch.stream(500, 0, object(), 0) == 2500  # FIFO behind the delayed stream
    assert ch.bytes_moved == 2500 and ch.busy_cycles == 2500


def test_a_fetch_leaves_a_later_stream_and_a_finished_one_alone() -> None:
    ch = MemoryChannel(2.0)
    ch.stream(100, 0, "a", 0)  # [0, 50)
    ch.stream(100, 500, "b", 0)  # [500, 550)
    assert ch.fetch(200, 60) == 160
    assert ch.delayed == []
    assert ch.fetch(100, 520) == 570  # overlaps b: b's last 30 cycles resume at 570
    assert ch.delayed == [("b", 550, 600)]


ops = st.lists(
    st.tuples(st.sampled_from(["fetch", "stream"]), st.integers(0, 400), st.integers(0, 300),
              st.integers(1, 3000)),
    min_size=1, max_size=25)


@budget(100, 2000)
@given(ops=ops, bytes_per_cycle=st.sampled_from([1.0, 2.0, 2.5, 7.0]))
def test_channel_never_delivers_more_than_its_bandwidth(
        ops: list[tuple[str, int, int, int]], bytes_per_cycle: float) -> None:
    ch = RecordingChannel(bytes_per_cycle)
    now = 0
    fetch_free = 0
    for i, (kind, dt, lead, nbytes) in enumerate(ops):
        now += dt
        if kind == "fetch":
            done = ch.fetch(nbytes, now)
            # Priority: a fetch waits for earlier fetches only, never for streams.
            fetch_free = max(now, fetch_free) + math.ceil(nbytes / bytes_per_cycle)
            assert done == fetch_free
        else:
            ch.stream(nbytes, now + lead, i, now)
    assert over_delivery(transfers(ch), bytes_per_cycle) is None
    assert ch.bytes_moved == sum(n for n, _, _ in ch.log)
    assert ch.busy_cycles == sum(math.ceil(n / bytes_per_cycle) for n, _, _ in ch.log)


class StreamCheck(Observer):
    """A run ends no earlier than its weight stream, and at least its compute after service
    starts."""

    def __init__(self, memory_of: list[RecordingChannel]) -> None:
        self.memory_of = memory_of  # the channel serving each cluster
        self.checked = 0

    def task_done(self, run: TaskRun, now: int) -> None:
        if run.k == 0:
            return  # a batch member that holds no PEAs streams nothing (its leader does)
        assert run.tbu is not None
        entry = self.memory_of[run.tbu.cluster].final.get(id(run))
        if entry is not None and run.mem_end:
            assert run.mem_end == entry[2] <= now, (run, run.mem_end, entry, now)
            self.checked += 1


def simulate_recorded(cfg: Any) -> tuple[Simulation, list[RecordingChannel], StreamCheck,
                                         float]:
    """Run ``cfg`` with recording memory channels (one per controller) and a
    :class:`StreamCheck` on them; return the simulation, the channels, the check and one
    channel's bandwidth."""
    wf, arch, pol = cfg.build()
    sim = Simulation(wf, arch, pol, seed=cfg.seed)
    bandwidth = arch.memory.bytes_per_cycle
    chip = sim.chip
    channels = [RecordingChannel(bandwidth) for _ in chip.memories]
    by_old = {id(m): c for m, c in zip(chip.memories, channels, strict=True)}
    chip.memory_of = [by_old[id(m)] for m in chip.memory_of]
    chip.memories = list(channels)
    chip.memory = channels[0]
    check = StreamCheck(chip.memory_of)  # type: ignore[arg-type]
    sim.observers.append(check)
    sim.run()
    return sim, channels, check, bandwidth


@pytest.mark.parametrize("policy", ["octopus", "indiscriminate"])
@budget(15, 300)
@given(data=st.data())
def test_whole_runs_conserve_memory_bytes(policy: str, data: st.DataObject) -> None:
    sc = data.draw(scenarios(policy, max_count=12), label="scenario")
    sim, channels, _, bandwidth = simulate_recorded(run_config(**sc))
    for ch in channels:
        assert over_delivery(transfers(ch), bandwidth) is None
    s = summarize(sim)
    parts = [s["pea_utilization"], *s["idle"].values()]
    assert all(p >= 0 for p in parts)
    if sim.makespan:
        assert sum(parts) == pytest.approx(1.0, abs=1e-5)
    assert s["pea_utilization"] <= s["pea_occupancy"] + 1e-6


def test_whole_run_with_fetches_over_streams_conserves_bytes() -> None:
    """A built-in LLM workflow under Octopus: rebinding fetches land on top of decode streams."""
    cfg = resolve_config("rag-agent", "octopus-chip", "octopus", 1,
                         ["workflow.arrivals.count=6", "workflow.phases=[]"])
    _, (ch,), check, bandwidth = simulate_recorded(cfg)
    assert check.checked > 0
    assert any(n for n, r, c in ch.log)
    assert over_delivery(transfers(ch), bandwidth) is None


# --- utilisation counts compute only -------------------------------------------------------------


class ComputeCount(Observer):
    """Hand count of PEA-cycles of compute and of memory stall, from task events alone: a run's
    compute starts when its service does (``svc_start``), proceeds at rate 1 + (k-1) x split
    efficiency on its k PEAs (PEAs granted later join from their grant), and is done when its
    work is; from then to its completion its PEAs wait for bytes."""

    def __init__(self, split_eff: float) -> None:
        self.eff = split_eff
        self.grants: dict[int, list[tuple[int, int]]] = {}
        self.compute = 0
        self.stall = 0

    def task_started(self, run: TaskRun, now: int) -> None:
        self.grants[id(run)] = [(now, run.k)]

    def task_grown(self, run: TaskRun, peas: list[int], now: int) -> None:
        self.grants[id(run)].append((now, len(peas)))

    def task_done(self, run: TaskRun, now: int) -> None:
        grants = self.grants.pop(id(run))
        s0 = run.svc_start
        k = 0
        left = float(run.work)
        if run.batch is not None and run.batch[0] is run:
            # A batch's leader computes the batched model as many passes as its longest member.
            tt = run.tt
            longest = max(r.work for r in run.batch)
            left = float(round(longest * tt.batch_cycles[len(run.batch) - 1] / tt.model_cycles))
        t = s0
        for g, n in grants:
            if g > t:
                left -= (1.0 + (k - 1) * self.eff) * (g - t)
                t = g
            k += n
        done = min(now, t + math.ceil(left / (1.0 + (k - 1) * self.eff))) if left > 0 else t
        for g, n in grants:
            self.compute += n * max(0, done - max(g, s0))
        self.stall += k * (now - done)


@pytest.mark.parametrize("workflow", ["rag-agent", "voice-assistant"])
def test_utilization_is_compute_by_hand_count(workflow: str) -> None:
    cfg = resolve_config(workflow, "octopus-chip", "octopus", 1, ["workflow.arrivals.count=40",
                                                                   "workflow.phases=[]"])
    wf, arch, pol = cfg.build()
    count = ComputeCount(arch.tbu.split_efficiency)
    sim = Simulation(wf, arch, pol, seed=cfg.seed, observers=[count]).run()
    s = summarize(sim)
    available = sim.alive_peas * sim.makespan
    assert count.stall > 0  # these workflows wait on weight streams
    assert s["pea_utilization"] == pytest.approx(count.compute / available, rel=0.01)
    assert s["idle"]["memory_stalled"] == pytest.approx(count.stall / available, rel=0.01)
    assert s["pea_occupancy"] >= s["pea_utilization"] + s["idle"]["memory_stalled"] - 1e-5
    for t in s["tasks"].values():
        if t["count"]:
            assert t["mean_compute_cycles"] + t["mean_stall_cycles"] <= (
                t["mean_service_cycles"] + 1e-3)
