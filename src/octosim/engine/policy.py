"""The policy interface, owned by the engine: one base class, parameters validated by
pydantic, hooks, and the queries policies share.

A policy decides which TBU runs each ready task run, with how many PEAs, which TB type each
TBU is bound to and when to rebind, and which cluster takes which instance. Policies live in
``octosim.policies`` (or any package, through the entry-point group ``octosim.policies``); the
engine never imports them, and a policy reaches the engine only through what is listed here.
The user-facing description of the same contract is the section "The policy interface" of
``docs/policies.md``.

**Hooks** (methods of :class:`Policy`; the engine calls them, each with O(1) context, so a
policy never needs to scan the chip; see each method's docstring for its contract):
``setup``, ``place_instance``, ``control_cycles``, ``on_ready`` (the only one a policy must
implement), ``on_complete``, ``on_freed``, ``on_bound``, ``on_fault``, ``on_decision``, and
``queued_runs`` (asked by the default ``on_fault``).

**Actions** (methods of :class:`~octosim.engine.sim.Simulation`, ``self.sim``; a request that
breaks their preconditions is a policy bug and raises ``RuntimeError``):

- ``start(run, tbu, k) -> end``: run ``run`` on ``k`` free PEAs of ``tbu``, which is alive,
  not reconfiguring and bound to the run's type.
- ``start_any(run, tbu, k) -> end``: the same on PEAs holding any context (those holding
  another one load the run's first; the TBU becomes bound to no single type).
- ``start_batch(runs, tbu, k, any_context=False) -> end``: start up to ``batch.max`` runs of
  one type as one batch, one pass over the weights for all (``engine/batching.py``).
- ``load_peas(tbu, task, peas) -> ready``: load a context into some free PEAs of a TBU bound
  to no single type, for good (a TBU shared by stages, each on its own PEAs; ``on_freed``
  follows when they are ready); runs start there with ``start_any(..., peas=)``.
- ``grow(run, extra) -> end``: give a running run ``extra`` more free PEAs of its TBU.
- ``bind(tbu, task) -> ready``: load a context into an idle TBU (``on_bound`` then
  ``on_freed`` follow when it is ready).
- ``unbind(tbu)``: leave an idle TBU without a context.
- ``prefetch(tbu, task) -> done``: fetch a context into ``tbu``'s shadow buffer while it
  works, so a later ``bind`` to ``task`` pays only the fixed cost.
- ``call_at(cycle, fn)``: call ``fn()`` at ``cycle`` (a policy timer, never in the past).
- ``flow_position(run) -> FlowPosition``: the rest of ``run``'s flow and its scope (what a CBU
  knows when the run starts).
- ``service_cycles(run, k)``, ``min_cycles(run, k)``: compute cycles of ``run`` on ``k``
  PEAs, without and with its weight-streaming floor.

**Read-only views** (attributes of the simulation; policies read them, never write them):
``chip`` (TBUs with ``bound``, ``reconfiguring``, ``loading``, ``alive``, ``free``, ``busy``,
``blocked``, ``n_peas``; ``cluster_tbus``, ``alive_clusters``, ``n_clusters``), ``task_types``
(``idx``, ``name``, ``kmin``, ``kmax``, ``context_bytes``, ``floor_cycles``...), ``arch``,
``now``, ``held_work`` (work held at producers by back-pressure, per type), ``cluster_alive``
(per cluster), ``wf`` and ``seed`` (for profiling), ``split_eff``, ``pea_ctx`` (the context
each PEA holds), ``faults`` (this run's runtime faults), and a run's fields (``tt``, ``inst``
with its home ``inst.cluster``, ``work``, ``tbu``, ``k``, ``peas``, ``end_at``, ``mem_end``,
``seq``...).

**Shared queries**: :meth:`Policy.rehome` and :meth:`Policy.rehome_queued` (re-homing work
whose cluster died, through :func:`rehome_instance`, the one place an instance's home changes
after arrival), and :class:`TBUTable`, the policy-side state of TBUs kept incrementally:
which type each TBU serves, how many serve each type per cluster, the TBUs that could change
type now, and the TBUs of a cluster bound to a type with enough free PEAs; and
:class:`Batcher`, the batch-forming rule every built-in policy follows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from octosim.errors import UserError
from octosim.model.loader import pydantic_error

if TYPE_CHECKING:
    from octosim.engine.sim import Instance, Simulation, TaskRun
    from octosim.hardware.chip import TBU

NONE = -1  # no type: a TBU serving nothing (dead, unbound or mixed), or not leaving


class PolicyParams(BaseModel):
    """Parameters every policy has. A baseline's every added cost is a parameter."""

    model_config = ConfigDict(extra="forbid")
    buffer_slots: int = Field(0, ge=0, le=1_000_000,
                              description="input slots per stage; 0 = unbounded")
    # Multi-cluster load balancing (policies/balancers.py). The defaults: a coefficient of
    # 1/(1 + the mesh's degree 4) makes the diffusion matrix non-negative and doubly
    # stochastic, so diffusion converges on any mesh (Cybenko 1989, Boillat 1990); on an 8x8
    # mesh its second eigenvalue is 1 - 0.2 * 2(1 - cos(pi/8)) = 0.970, an imbalance falling
    # e-fold in about 33 periods. A period of 100,000 cycles (0.1 ms at 1 GHz) is about one
    # mid-sized DNN run: work moves at the pace it drains, and it converges in ~3.3M cycles.
    balancer: Literal["none", "diffusion", "central"] = Field(
        "none", description="moving queued work between clusters: none, diffusion (mesh "
        "neighbours), central (idealised global view)")
    balance_period_cycles: int = Field(100_000, ge=1, le=10**12,
                                       description="how often a balancer moves work")
    diffusion_coefficient: float = Field(0.2, gt=0, le=0.25,
                                         description="fraction of a load difference moved")
    balance_memory_headroom: float = Field(
        0.6, ge=0, le=1, description="a balancer moves an instance that streams weights only "
        "to a cluster whose memory channel was booked less than this share of the time")


def rehome_instance(policy: Policy, inst: Instance) -> int:
    """Move ``inst`` to the cluster ``policy.place_instance`` chooses (its home died) and return
    that cluster. Meant as the one place an instance's home (``inst.cluster``) changes after
    its arrival: for the engine, when it creates, makes ready or re-executes a run whose home
    is dead, and for policies (through :meth:`Policy.rehome`), for the runs they held queued
    there."""
    cluster = policy.place_instance(inst)
    inst.cluster = cluster
    return cluster


class Policy:
    """Base class of all scheduling policies (see the module docstring for the whole
    interface)."""

    name: ClassVar[str] = "base"
    summary: ClassVar[str] = ""
    Params: ClassVar[type[PolicyParams]] = PolicyParams

    def __init__(self, params: PolicyParams | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.buffer_slots = self.params.buffer_slots
        self.sim: Simulation | None = None
        self.moved_runs = 0  # queued runs a balancer moved to another cluster
        self.moved_work_cycles = 0  # their work (PEA-cycles on one PEA)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, file: str = "policy") -> Policy:
        try:
            return cls(cls.Params.model_validate(raw or {}))
        except ValidationError as exc:
            raise pydantic_error(exc, file, prefix="policy") from None

    # --- hooks ------------------------------------------------------------------------------

    def setup(self, sim: Simulation) -> None:
        """Called once at cycle 0, before the first arrival: bind the initial TBUs. Overrides
        call ``super().setup(sim)`` first. A run with runtime faults is refused here (a
        :class:`UserError`) if the policy can neither handle them itself (``on_fault``) nor
        hand back the work it queued on a dead cluster (``queued_runs``): that work would
        wait forever."""
        self.sim = sim
        if sim.faults and not (self._overrides("on_fault") or self._overrides("queued_runs")):
            raise UserError(f"policy {self.name!r} cannot run with --fault: it implements "
                            "neither on_fault(tbu) nor queued_runs(cluster), so work it "
                            "queued where a unit died would wait forever", where="policy")

    def place_instance(self, inst: Instance) -> int:
        """The cluster where a new instance's runs queue (its home), also asked when its home
        died (see :func:`rehome_instance`). Its input lies at the I/O cluster it entered,
        ``inst.entry``, and crosses the NoC to wherever its first runs start. Must return a
        cluster in ``chip.alive_clusters``. Default: where it entered (work stays where it
        comes in unless a balancer moves it), or, if that died, round-robin over the live
        clusters by instance id."""
        assert self.sim is not None
        if self.sim.cluster_alive[inst.entry]:
            return inst.entry
        alive = self.sim.chip.alive_clusters
        return alive[inst.id % len(alive)]

    def control_cycles(self, cbs: int, run: TaskRun) -> int:
        """Latency before ``run`` can be dispatched, after ``cbs`` (>= 1) Control Blocks
        passed since its predecessor completed. Must not act on the chip. Default: 0."""
        return 0

    def on_ready(self, run: TaskRun) -> None:
        """``run`` can be dispatched now, on its home cluster ``run.inst.cluster``: start it
        (``sim.start``) or keep it queued until PEAs free up. Every run reaches the policy
        here exactly once per attempt (again after a fault aborted it). Required."""
        raise NotImplementedError

    def on_complete(self, run: TaskRun) -> None:
        """``run`` finished; its PEAs are free again (``on_freed`` follows at once) unless
        back-pressure keeps them blocked. Only called if a policy overrides it."""

    def on_freed(self, tbu: TBU) -> None:
        """Some PEAs of ``tbu`` became free (a run completed or unblocked), or it finished
        loading a context (after ``on_bound``). Start queued runs here."""

    def on_bound(self, tbu: TBU) -> None:
        """``tbu`` finished loading a context: ``tbu.bound`` is its new type; ``on_freed``
        follows at once."""

    def on_fault(self, tbu: TBU) -> None:
        """``tbu`` failed (``--fault``): it is dead (``alive`` false, no free PEAs, bound to
        nothing), and the runs in flight there come back through ``on_ready`` after this
        call. For a cluster fault, every TBU of the cluster is dead before the first call, one
        call per TBU. Policies drop it from their structures and may rebind others.

        Default: if no TBU of its cluster is left working, re-home the work queued there
        (:meth:`rehome_queued`, which asks :meth:`queued_runs`)."""
        assert self.sim is not None
        c = tbu.cluster
        if not any(t.alive for t in self.sim.chip.cluster_tbus[c]):
            self.rehome_queued(c)

    def on_decision(self, block: int, outcome: int) -> None:
        """The Control Block numbered ``block`` was decided, in simulated time, when the CBU
        takes it (what it sees before the work arrives): a foreach's number of copies, a
        branch's case index (-1: none taken), a loop's iterations when it ends. Only called if
        a policy overrides it (see :meth:`hook`)."""

    def queued_runs(self, cluster: int) -> list[TaskRun]:
        """Remove from the policy's queues, and return, every run it holds queued (handed to
        ``on_ready`` and not started) on ``cluster``, in the order they should be dispatched
        again. Asked by the default :meth:`on_fault` when the cluster died. Default: none."""
        return []

    def cluster_backlog(self, cluster: int) -> float:
        """Work queued on ``cluster`` (PEA-cycles), what a balancer levels. Default: none."""
        return 0.0

    def take_queued(self, cluster: int, work: float, limit: float,
                    movable: Sequence[bool] | None = None) -> list[TaskRun]:
        """Remove from ``cluster``'s queues, and return, about ``work`` PEA-cycles of queued
        runs for a balancer to move, never more than ``limit`` (the latest queued first; a run
        goes if at least half of it fits in ``work``), only of the task types ``movable``
        marks (by type index; None: any). Default: none (the policy does not balance)."""
        return []

    def hook(self, name: str) -> Any:
        """The bound hook ``name`` if this policy overrides the base's, else None (the engine
        skips hooks a policy does not use: ``on_decision``, ``on_complete``). A policy may
        override this to drop a hook it only needs in some configurations; the engine asks
        before ``setup``."""
        if not self._overrides(name):
            return None
        return getattr(self, name)

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(Policy, name)

    # --- shared queries ---------------------------------------------------------------------

    def rehome(self, run: TaskRun) -> int:
        """Re-home ``run``'s instance off its dead cluster (:func:`rehome_instance`); return
        the new home."""
        return rehome_instance(self, run.inst)

    def rehome_queued(self, cluster: int) -> None:
        """The work queued on ``cluster``, which died: each run :meth:`queued_runs` hands back
        is re-homed and dispatched again through ``on_ready``, in order."""
        for run in self.queued_runs(cluster):
            self.rehome(run)
            self.on_ready(run)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.params.model_dump()}


class TBUTable:
    """The policy-side state of TBUs, kept up to date at each change instead of scanned.

    The chip's TBUs hold what the engine knows (bound type, reconfiguring, free PEAs...); what
    only the policy knows lives here, keyed by TBU id: the type a TBU is *leaving for*
    (its drain target: it takes no new work and is rebound when it drains) and whether it is
    listed as having free PEAs. From those, kept incrementally:

    - :meth:`serves`: the type a TBU serves -- its drain target if leaving, the type it loads
      if reconfiguring, else the type it is bound to (:data:`NONE` if dead or unbound);
    - :attr:`counts` ``[c][t]``: how many working TBUs of cluster ``c`` serve type ``t``;
    - :attr:`settled` ``[c][t]``: the TBUs of cluster ``c`` bound to ``t``, not loading and
      not leaving -- those that could change type now -- by id;
    - :meth:`first_free`: the TBU of cluster ``c`` bound to ``t``, not leaving, with at least
      ``need[t]`` free PEAs (the last one listed), for a ready run of type ``t``.

    A policy using it routes every rebind through :meth:`bind` and :meth:`drain`, tells it what
    the engine changed (:meth:`bound` from ``on_bound``, :meth:`fault` from ``on_fault``), lists
    TBUs whose PEAs free up (:meth:`offer`, from ``on_freed``) and reports a start
    (:meth:`taken`). The lists it exposes are read-only for the policy.
    """

    __slots__ = ("sim", "need", "target", "serving", "_settled_in", "counts", "settled", "free",
                 "listed")

    def __init__(self, sim: Simulation, need: list[int]) -> None:
        chip = sim.chip
        nt = len(sim.task_types)
        nc = chip.n_clusters
        n = len(chip.tbus)
        self.sim = sim
        self.need = need  # PEAs a run of each type needs at least (to be listed as free)
        self.target = [NONE] * n  # the type each TBU is leaving for
        self.serving = [NONE] * n
        self._settled_in = [NONE] * n
        self.counts = [[0] * nt for _ in range(nc)]
        self.settled: list[list[dict[int, TBU]]] = [[{} for _ in range(nt)] for _ in range(nc)]
        self.free: list[list[list[TBU]]] = [[[] for _ in range(nt)] for _ in range(nc)]
        self.listed = bytearray(n)
        for tbu in chip.tbus:
            self._refresh(tbu)

    # --- queries ----------------------------------------------------------------------------

    def serves(self, tbu: TBU) -> int:
        """The type ``tbu`` serves (see the class docstring)."""
        return self.serving[tbu.id]

    def leaving_for(self, tbu: TBU) -> int:
        """The type ``tbu`` drains towards, or :data:`NONE`."""
        return self.target[tbu.id]

    def first_free(self, c: int, t: int) -> TBU | None:
        """A TBU of cluster ``c`` bound to ``t``, not leaving, with at least ``need[t]`` free
        PEAs: the one listed last; TBUs listed that no longer qualify are dropped."""
        lst = self.free[c][t]
        k = self.need[t]
        target = self.target
        while lst:
            tbu = lst[-1]
            if tbu.bound == t and target[tbu.id] < 0 and len(tbu.free) >= k:
                return tbu
            lst.pop()
            self.listed[tbu.id] = 0
        return None

    # --- changes ----------------------------------------------------------------------------

    def offer(self, tbu: TBU) -> None:
        """``tbu`` (bound, not loading, not leaving) has free PEAs: list it if it has enough."""
        t = tbu.bound
        if len(tbu.free) >= self.need[t] and not self.listed[tbu.id]:
            self.listed[tbu.id] = 1
            self.free[tbu.cluster][t].append(tbu)

    def taken(self, tbu: TBU) -> None:
        """A run started on ``tbu`` (found by :meth:`first_free`): unlist it if it has too few
        free PEAs left."""
        t = tbu.bound
        lst = self.free[tbu.cluster][t]
        if lst and lst[-1] is tbu and len(tbu.free) < self.need[t]:
            lst.pop()
            self.listed[tbu.id] = 0

    def bind(self, tbu: TBU, t: int) -> int:
        """Load type ``t``'s context into the idle ``tbu`` (``sim.bind``); it stops leaving.
        Return when it is ready."""
        self._unlist(tbu)
        self.target[tbu.id] = NONE
        assert self.sim is not None
        done = self.sim.bind(tbu, t)
        self._refresh(tbu)
        return done

    def drain(self, tbu: TBU, t: int) -> None:
        """``tbu`` leaves for type ``t``: it takes no new work, and the policy rebinds it
        (:meth:`bind`) when it has drained. It serves ``t`` from now on."""
        self._unlist(tbu)
        self.target[tbu.id] = t
        self._refresh(tbu)

    def stay(self, tbu: TBU) -> None:
        """``tbu`` stops leaving (its drain is called off): it serves the type it is bound to
        again and may take work (offer it if it has free PEAs)."""
        self.target[tbu.id] = NONE
        self._refresh(tbu)

    def bound(self, tbu: TBU) -> None:
        """The engine finished loading ``tbu``'s context (call from ``on_bound``)."""
        self._refresh(tbu)

    def fault(self, tbu: TBU) -> None:
        """``tbu`` died (call from ``on_fault``): it serves nothing and leaves for nothing."""
        self.target[tbu.id] = NONE
        self.listed[tbu.id] = 0
        self._refresh(tbu)

    def _unlist(self, tbu: TBU) -> None:
        if self.listed[tbu.id]:
            self.listed[tbu.id] = 0
            if tbu.bound >= 0:
                lst = self.free[tbu.cluster][tbu.bound]
                if tbu in lst:
                    lst.remove(tbu)

    def _refresh(self, tbu: TBU) -> None:
        tid = tbu.id
        c = tbu.cluster
        if not tbu.alive:
            serve = settle = NONE
        elif self.target[tid] >= 0:
            serve, settle = self.target[tid], NONE
        elif tbu.reconfiguring:
            serve, settle = tbu.loading, NONE
        else:
            serve = settle = tbu.bound if tbu.bound >= 0 else NONE
        old = self.serving[tid]
        if old != serve:
            if old >= 0:
                self.counts[c][old] -= 1
            if serve >= 0:
                self.counts[c][serve] += 1
            self.serving[tid] = serve
        old = self._settled_in[tid]
        if old != settle:
            if old >= 0:
                del self.settled[c][old][tid]
            if settle >= 0:
                self.settled[c][settle][tid] = tbu
            self._settled_in[tid] = settle


class Batcher:
    """When queued runs of a batching type (``batch.max`` > 1) start, and which together.

    The rule, the same for every built-in policy: the runs of one type queued on one cluster
    start, oldest first, as one batch of up to ``batch.max`` runs on a free TBU bound to the
    type, as soon as either ``batch.max`` of them wait or the oldest has waited
    ``batch.wait_cycles`` since it became ready; until then they wait for partners (a timer at
    the oldest one's deadline calls ``kick(cluster, type)``, with which the policy retries).
    For a type that streams weights the deadline is no earlier than the end of the memory
    channel's queued streams: a batch started sooner would only queue its pass behind them.
    ``wait_cycles: 0`` is greedy: a free TBU takes whatever is queued. Types with
    ``batch.max`` 1 never reach it (:attr:`on` is false for them).
    """

    __slots__ = ("sim", "kick", "max", "wait", "on", "streams", "armed")

    def __init__(self, sim: Simulation, kick: Callable[[int, int], None]) -> None:
        types = sim.task_types
        self.sim = sim
        self.kick = kick
        self.max = [tt.batch_max for tt in types]
        self.wait = [tt.batch_wait_cycles for tt in types]
        self.on = [m > 1 for m in self.max]
        self.streams = [tt.streamed_bytes > 0 for tt in types]
        self.armed: dict[tuple[int, int], int] = {}  # (cluster, type) -> pending timer's cycle

    def due(self, q: deque[TaskRun], c: int, t: int) -> bool:
        """May the runs of type ``t`` queued in ``q`` on cluster ``c`` start a batch now? If
        not, a timer is armed for when the oldest one stops waiting."""
        if len(q) >= self.max[t]:
            return True
        deadline = q[0].ready_at + self.wait[t]
        now = self.sim.now
        if self.streams[t]:
            # Memory first: while the channel still has weight streams queued, a batch started
            # now would only queue its pass behind them, so it keeps gathering partners until
            # the channel is about to run dry (fewer, fuller passes over the weights).
            backlog_end = self.sim.chip.memory_of[c].stream_free_at
            if backlog_end > deadline:
                deadline = backlog_end
        if now >= deadline:
            return True
        key = (c, t)
        if self.armed.get(key, -1) != deadline:
            self.armed[key] = deadline
            self.sim.call_at(deadline, lambda: self._fire(c, t, deadline))
        return False

    def dispatch(self, q: deque[TaskRun], c: int, t: int, table: TBUTable,
                 start: Callable[[TBU], None]) -> None:
        """Start the batches of type ``t`` queued in ``q`` on cluster ``c`` that are due, each
        with ``start(tbu)`` on the next TBU of ``table`` bound to it with PEAs free."""
        while q:
            tbu = table.first_free(c, t)
            if tbu is None or not self.due(q, c, t):
                return
            start(tbu)
            table.taken(tbu)

    def take(self, q: deque[TaskRun], t: int) -> list[TaskRun]:
        """Pop the next batch (oldest first, at most ``batch.max``) from ``q``."""
        n = min(len(q), self.max[t])
        return [q.popleft() for _ in range(n)]

    def _fire(self, c: int, t: int, deadline: int) -> None:
        if self.armed.get((c, t)) == deadline:
            del self.armed[(c, t)]
        self.kick(c, t)


def user_error_for_policy(msg: str) -> UserError:
    return UserError(msg, where="policy")
