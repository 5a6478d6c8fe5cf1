"""The watchdog: a run that cannot progress ends with a message naming stuck work, never hangs."""

from __future__ import annotations

import pytest

from octosim.engine.sim import Simulation, SimulationStuck
from octosim.model.arch import parse_arch
from octosim.model.workflow import parse_workflow
from octosim.policies.base import Policy
from octosim.policies.static import StaticPolicy

WF = {
    "owg": 1, "name": "w",
    "arrivals": {"process": "batch", "count": 5},
    "tasks": {"a": {"kind": "general", "cycles": 100}, "b": {"kind": "general", "cycles": 100}},
    "flow": ["a", "b"],
}
ARCH = {"arch": 1, "name": "small", "cluster": {"tbus": 2}, "tbu": {"peas": 2}}


class NeverDispatch(StaticPolicy):
    """Binds TBUs like static but never starts anything."""

    name = "never-dispatch"

    def on_ready(self, run):  # type: ignore[no-untyped-def]
        pass

    def on_freed(self, tbu):  # type: ignore[no-untyped-def]
        pass


class BusyLoop(Policy):
    """Keeps a timer running forever and never starts work (a livelock)."""

    name = "busy-loop"

    def setup(self, sim):  # type: ignore[no-untyped-def]
        super().setup(sim)
        sim.call_at(0, self.tick)

    def tick(self) -> None:
        assert self.sim is not None
        self.sim.call_at(self.sim.now + 1, self.tick)

    def on_ready(self, run):  # type: ignore[no-untyped-def]
        pass


def _sim(policy: Policy) -> Simulation:
    return Simulation(parse_workflow(WF, "w.yaml"), parse_arch(ARCH, "a.yaml"), policy, seed=3)


def test_no_events_left_names_stuck_tasks_and_units() -> None:
    with pytest.raises(SimulationStuck) as info:
        _sim(NeverDispatch()).run()
    msg = info.value.what
    assert "no events left" in msg
    assert "5 of 5 instances unfinished" in msg
    assert "a: 4 waiting, 1 held by back-pressure" in msg  # 4 slots on its one TBU
    assert "TBUs: 0 busy" in msg


def test_livelock_is_stopped_by_event_budget() -> None:
    sim = _sim(BusyLoop())
    sim.watchdog_events = 200_000
    with pytest.raises(SimulationStuck) as info:
        sim.run()
    assert "events without progress" in info.value.what
    assert sim.events < 400_000


def test_progressing_run_is_not_stopped() -> None:
    sim = _sim(StaticPolicy())
    sim.watchdog_events = 1
    sim.run()
    assert sim.instances_done == 5


def test_time_beyond_2_62_cycles_is_a_user_error() -> None:
    """Absurd but individually valid values (here 10^15-cycle gaps between 10^4 arrivals) end
    with a clear error instead of overflowing the 64-bit latency statistics."""
    from octosim.errors import UserError

    wf = dict(WF, arrivals={"process": "periodic", "interarrival_cycles": 1e15, "count": 10_000})
    sim = Simulation(parse_workflow(wf, "w.yaml"), parse_arch(ARCH, "a.yaml"), StaticPolicy(),
                     seed=1)
    with pytest.raises(UserError, match="far out of range"):
        sim.run()
