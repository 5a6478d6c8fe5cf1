"""The policy interface, owned by the engine: one base class, parameters validated by
pydantic, and hooks.

A policy decides which TBU runs each ready task run, with how many PEAs, which TB type each
TBU is bound to and when to rebind, and which cluster takes which instance. It acts only
through :class:`~octosim.engine.sim.Simulation`'s API (``start``, ``start_any``, ``grow``,
``bind``, ``unbind``, ``prefetch``, ``call_at``). Hooks are called with O(1) context so a
policy never needs to scan the chip. Policies live in ``octosim.policies`` (or any package,
through the entry-point group ``octosim.policies``); the engine never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from octosim.errors import UserError
from octosim.model.loader import pydantic_error

if TYPE_CHECKING:
    from octosim.engine.sim import Instance, Simulation, TaskRun
    from octosim.hardware.chip import TBU


class PolicyParams(BaseModel):
    """Parameters every policy has. A baseline's every added cost is a parameter."""

    model_config = ConfigDict(extra="forbid")
    buffer_slots: int = Field(0, ge=0, le=1_000_000,
                              description="input slots per stage; 0 = unbounded")


class Policy:
    """Base class of all scheduling policies."""

    name: ClassVar[str] = "base"
    summary: ClassVar[str] = ""
    Params: ClassVar[type[PolicyParams]] = PolicyParams

    def __init__(self, params: PolicyParams | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.buffer_slots = self.params.buffer_slots
        self.sim: Simulation | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, file: str = "policy") -> Policy:
        try:
            return cls(cls.Params.model_validate(raw or {}))
        except ValidationError as exc:
            raise pydantic_error(exc, file, prefix="policy") from None

    # --- hooks ------------------------------------------------------------------------------

    def setup(self, sim: Simulation) -> None:
        """Called once at cycle 0, before the first arrival: bind the initial TBUs."""
        self.sim = sim

    def place_instance(self, inst: Instance) -> int:
        """The cluster where a new instance starts (its input lands there)."""
        assert self.sim is not None
        alive = self.sim.chip.alive_clusters
        return alive[inst.id % len(alive)]

    def control_cycles(self, cbs: int, run: TaskRun) -> int:
        """Latency before ``run`` can be dispatched, after ``cbs`` Control Blocks."""
        return 0

    def on_ready(self, run: TaskRun) -> None:
        """``run`` can be dispatched now."""
        raise NotImplementedError

    def on_complete(self, run: TaskRun) -> None:
        """``run`` finished (its PEAs may still be blocked by back-pressure)."""

    def on_freed(self, tbu: TBU) -> None:
        """Some PEAs of ``tbu`` became free, or it finished (re)binding."""

    def on_bound(self, tbu: TBU) -> None:
        """``tbu`` finished loading a context."""

    def on_fault(self, tbu: TBU) -> None:
        """``tbu`` failed (``--fault``): it is dead, its runs will come back through
        ``on_ready``. Policies drop it from their structures and may rebind others."""

    def on_decision(self, block: int, outcome: int) -> None:
        """The Control Block numbered ``block`` was decided, in simulated time, when the CBU
        takes it (what it sees before the work arrives): a foreach's number of copies, a
        branch's case index (-1: none taken), a loop's iterations when it ends. Only called if
        a policy overrides it."""

    def hook(self, name: str) -> Any:
        """The bound hook ``name`` if this policy overrides the base's, else None (the engine
        skips hooks a policy does not use)."""
        if getattr(type(self), name) is getattr(Policy, name):
            return None
        return getattr(self, name)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.params.model_dump()}


def user_error_for_policy(msg: str) -> UserError:
    return UserError(msg, where="policy")
