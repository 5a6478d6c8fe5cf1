"""``static``: the traditional spatial architecture baseline.

At compile time TBUs are partitioned among TB types in proportion to profiled demand (the
allocation minimises the largest demand per TBU), or as given by ``partition``. Each run gets a
fixed number of PEAs; queues are FIFO; Control Blocks run coupled, through a host round trip of
``host_cycles`` each; stages have ``buffer_slots`` input slots with back-pressure (0 =
unbounded), so a slow stage blocks its producers (Contagious PEA Idleness). On several clusters
each cluster gets the same partition and instances are spread round-robin.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from octosim.engine.policy import Batcher, TBUTable
from octosim.engine.profile import profile_workflow
from octosim.errors import UserError
from octosim.hardware.chip import TBU
from octosim.policies.balancers import make_balancer, take_latest
from octosim.policies.base import Policy, PolicyParams
from octosim.policies.registry import register

if TYPE_CHECKING:
    from octosim.engine.sim import Simulation, TaskRun
    from octosim.engine.tasks import TaskType


class StaticParams(PolicyParams):
    buffer_slots: int = Field(4, ge=0, le=1_000_000,
                              description="input slots per stage; 0 = unbounded")
    host_cycles: int = Field(2000, ge=0, le=10**9,
                             description="coupled-control round trip per Control Block")
    partition: dict[str, int] | None = Field(
        None, description="TBUs per cluster for some TB types; the other types share the "
                          "rest by profile")
    granularity: Literal["tbu", "pea"] = Field(
        "tbu", description="partition unit: whole TBUs per type, or PEAs (small stages share "
                           "a TBU, each on its own PEAs)")
    # A default only: `octosim reproduce` tunes it with the other knobs (experiments/tuning.py);
    # the winner is in docs/results/results.md.
    peas: Literal["min", "max"] | int = Field(
        "max", description="PEAs per run: the task's min, its max, or a number (clamped)")
    profile_instances: int = Field(256, ge=1, le=100_000)


Packing = list[list[tuple[int, int]]]  # per TBU: (type, PEAs) for each type placed there


def pack_slots(k: list[int], m: list[int], caps: list[int]) -> Packing | None:
    """Place ``m[i]`` runs of ``k[i]`` PEAs of each type ``i`` into TBUs of ``caps`` PEAs
    (largest first), as a spatial compiler maps stages: a type takes whole TBUs while it has
    a TBU's worth of runs left, and the rest of its runs go to TBUs with room left (shared
    with other types; bigger runs placed first). None if they do not fit."""
    n_bins = len(caps)
    room = list(caps)
    empty = [True] * n_bins
    bins: Packing = [[] for _ in range(n_bins)]
    for i in sorted(range(len(k)), key=lambda i: (-k[i], i)):
        left, ki = m[i], k[i]
        for b in range(n_bins):
            per = caps[b] // ki
            if empty[b] and per and left >= per:
                bins[b].append((i, per * ki))
                room[b] -= per * ki
                empty[b] = False
                left -= per
        for b in sorted(range(n_bins), key=lambda b: (empty[b], b)):
            if not left:
                break
            fit = min(left, room[b] // ki)
            if fit:
                bins[b].append((i, fit * ki))
                room[b] -= fit * ki
                empty[b] = False
                left -= fit
        if left:
            return None
    # Leftover PEAs of a TBU go to the type placed there that needs them most (largest k
    # first: they cannot take another run, but a TBU's PEAs all belong to some stage).
    for b in range(n_bins):
        if bins[b] and room[b]:
            j = max(range(len(bins[b])), key=lambda j: (bins[b][j][1], -j))
            t, peas = bins[b][j]
            bins[b][j] = (t, peas + room[b])
    return bins


def allocate_peas(demand: list[float], k: list[int], caps: list[int]) -> Packing | None:
    """Run slots of ``k[i]`` PEAs per type, one each, then one more at a time to the type
    with the largest demand per PEA that still fits (:func:`pack_slots`): the PEA
    partition that minimises the largest load. None if one run of each does not fit."""
    m = [1] * len(k)
    best = pack_slots(k, m, caps)
    if best is None:
        return None
    while True:
        order = sorted(range(len(k)), key=lambda i: (-demand[i] / (m[i] * k[i]), i))
        for i in order:
            m[i] += 1
            packed = pack_slots(k, m, caps)
            if packed is not None:
                best = packed
                break
            m[i] -= 1
        else:
            return best


def allocate_tbus(demand: list[float], n_tbus: int) -> list[int]:
    """Give each type one TBU, then each next TBU to the type with the largest demand per TBU
    (the allocation that minimises the maximum load; ties to the lower index)."""
    n = len(demand)
    alloc = [1] * n
    for _ in range(n_tbus - n):
        best = max(range(n), key=lambda i: (demand[i] / alloc[i], -i))
        alloc[best] += 1
    return alloc


@register
class StaticPolicy(Policy):
    name = "static"
    summary = "compile-time TBU partition, fixed PEAs, FIFO, coupled control, bounded buffers"
    Params = StaticParams
    params: StaticParams
    _demand: list[float] | None = None

    def pea_grant(self, tt: TaskType) -> int:
        p = self.params.peas
        k = tt.kmin if p == "min" else tt.kmax if p == "max" else int(p)
        return max(tt.kmin, min(tt.kmax, k))

    def named_partition(self, sim: Simulation, n_tbus: int) -> dict[int, int]:
        """``partition``'s TBUs per type index (checked), for the types it names; the types
        it leaves out share the rest by profile."""
        part = self.params.partition or {}
        by_name = {tt.name: tt.idx for tt in sim.task_types}
        named: dict[int, int] = {}
        for name, count in part.items():
            if name not in by_name:
                raise UserError(f"unknown task {name!r}", where=f"policy.partition.{name}")
            if count < 1:
                raise UserError("each task needs at least 1 TBU",
                                where=f"policy.partition.{name}")
            named[by_name[name]] = count
        if sum(named.values()) > n_tbus:
            raise UserError(f"partition uses {sum(named.values())} TBUs but a cluster has "
                            f"{n_tbus}", where="policy.partition")
        return named

    def demand(self, sim: Simulation) -> list[float]:
        """Profiled PEA-time per instance of each type at its grant (computed once)."""
        if self._demand is not None:
            return self._demand
        types = sim.task_types
        prof = profile_workflow(sim.wf, types, sim.seed, self.params.profile_instances)
        demand = []
        for tt in types:
            p = prof[tt.idx]
            k = self.k[tt.idx]
            # A full batch streams the weights once for batch.max runs, and computes its
            # batched model (batch_work_ratio of batch.max single runs' compute).
            floor = tt.floor_cycles if tt.batch_max == 1 else tt.floor_cycles / tt.batch_max
            work = p.mean_work_cycles * tt.batch_work_ratio
            svc = max(work / (1 + (k - 1) * sim.split_eff), floor)
            demand.append(p.runs_per_instance * svc * k)
        self._demand = demand
        return demand

    def partition_counts(self, sim: Simulation, n_tbus: int) -> list[int]:
        """Whole TBUs per type for a cluster of ``n_tbus``: ``partition``'s for the types it
        names, the rest split by profiled demand (:func:`allocate_tbus`)."""
        types = sim.task_types
        named = self.named_partition(sim, n_tbus)
        missing = [tt.idx for tt in types if tt.idx not in named]
        if not missing:
            return [named[tt.idx] for tt in types]
        left = n_tbus - sum(named.values())
        if left < len(missing):
            raise UserError(f"partition leaves {left} TBUs for {len(missing)} other task "
                            f"types (each needs one)", where="policy.partition")
        demand = self.demand(sim)
        if not named:
            return allocate_tbus(demand, n_tbus)
        alloc = allocate_tbus([demand[i] for i in missing], left)
        counts = [named.get(tt.idx, 0) for tt in types]
        for i, n in zip(missing, alloc, strict=True):
            counts[i] = n
        return counts

    def pea_packing(self, sim: Simulation, caps: list[int]) -> tuple[list[int], Packing]:
        """For a cluster whose usable TBUs have ``caps`` PEAs (largest first): the whole TBUs
        ``partition`` names per type, then the PEAs of the TBUs left for the other types
        (:func:`allocate_peas`), as a packing of those TBUs."""
        types = sim.task_types
        named = self.named_partition(sim, len(caps))
        counts = [named.get(tt.idx, 0) for tt in types]
        missing = [tt.idx for tt in types if tt.idx not in named]
        rest = caps[sum(counts):]
        if not missing:
            return counts, []
        demand = self.demand(sim)
        packed = allocate_peas([demand[i] for i in missing], [self.k[i] for i in missing], rest)
        if packed is None:
            need = sum(self.k[i] for i in missing)
            raise UserError(f"one run of each task type needs {need} PEAs on {len(rest)} "
                            f"TBUs of {rest[0] if rest else 0} PEAs: they do not fit",
                            where="policy.partition" if named else "policy.granularity")
        return counts, [[(missing[t], n) for t, n in b] for b in packed]

    def setup(self, sim: Simulation) -> None:
        super().setup(sim)
        types = sim.task_types
        n = len(types)
        self.k = [self.pea_grant(tt) for tt in types]
        self._demand = None
        self.pea_mode = self.params.granularity == "pea"
        if self.pea_mode:
            # A run's PEAs lie in one TBU.
            per_tbu = sim.arch.tbu.peas
            self.k = [max(tt.kmin, min(k, per_tbu)) for tt, k in zip(types, self.k, strict=True)]
        # Pea granularity: the TBUs of each type's PEAs in shared TBUs, per cluster; the
        # type each PEA of a shared TBU belongs to; the types sharing each shared TBU.
        self.slices: list[list[list[TBU]]] = [[[] for _ in range(n)]
                                              for _ in range(sim.chip.n_clusters)]
        self.owner = [-1] * len(sim.pea_ctx)
        self.sharing: dict[int, list[int]] = {}
        self.slice_peas: dict[tuple[int, int], int] = {}  # (shared TBU id, type) -> PEAs
        self.shared_peas: dict[int, list[int]] = {}  # shared TBU id -> its working PEAs
        self.pea_partition: list[list[int]] = []
        self.queues: list[list[deque[TaskRun]]] = []
        self.queued_work: list[list[int]] = [[0] * n for _ in range(sim.chip.n_clusters)]
        # Which type each TBU serves or leaves for, and the TBUs with a run's PEAs free.
        self.tbus = TBUTable(sim, self.k)
        self.batcher = Batcher(sim, self._dispatch)
        self.balancer = make_balancer(self, sim)
        self.any_batch = any(self.batcher.on)
        self.partition: list[list[int]] = []
        for _ in range(sim.chip.n_clusters):
            self.queues.append([deque() for _ in range(n)])
        if self.pea_mode:
            self._setup_peas(sim)
            return
        by_size: dict[int, list[int]] = {}
        for c in sim.chip.alive_clusters:
            alive = [t for t in sim.chip.cluster_tbus[c] if t.alive]
            if len(alive) < n:
                raise UserError(f"static needs one TBU per task type: cluster {c} has "
                                f"{len(alive)} working TBUs for {n} task types")
            usable = [t for t in alive if t.n_peas >= 1]
            if len(alive) not in by_size:
                by_size[len(alive)] = self.partition_counts(sim, len(alive))
            counts = by_size[len(alive)]
            # Larger TBUs (fewer dead PEAs) first, to the most demanding types.
            usable.sort(key=lambda t: (-t.n_peas, t.id))
            self._bind_whole(sim, iter(usable), counts)
            self.partition.append(counts)

    def _bind_whole(self, sim: Simulation, it: Iterator[TBU], counts: list[int]) -> list[int]:
        """Bind the next ``counts[idx]`` TBUs of ``it`` to each type ``idx`` (each must hold a
        run's PEAs); return the PEAs each type got."""
        peas = [0] * len(counts)
        for idx, count in enumerate(counts):
            for _ in range(count):
                tbu = next(it)
                if tbu.n_peas < self.k[idx]:
                    raise UserError(f"TBU {tbu.id} has {tbu.n_peas} working PEAs, fewer "
                                    f"than the {self.k[idx]} that "
                                    f"{sim.task_types[idx].name} needs")
                self.tbus.bind(tbu, idx)
                peas[idx] += tbu.n_peas
        return peas

    def _setup_peas(self, sim: Simulation) -> None:
        """Pea granularity: each cluster's TBUs packed by :meth:`pea_packing`. A TBU holding
        one type is bound to it whole; a TBU shared by several loads each type's context
        into its own PEAs once (``sim.load_peas``), and they keep it."""
        n = len(sim.task_types)
        by_caps: dict[tuple[int, ...], tuple[list[int], Packing]] = {}
        for c in sim.chip.alive_clusters:
            usable = [t for t in sim.chip.cluster_tbus[c] if t.alive and t.n_peas >= 1]
            usable.sort(key=lambda t: (-t.n_peas, t.id))
            caps = tuple(t.n_peas for t in usable)
            if caps not in by_caps:
                by_caps[caps] = self.pea_packing(sim, list(caps))
            counts, packing = by_caps[caps]
            it = iter(usable)
            peas = self._bind_whole(sim, it, counts)
            whole = [0] * n
            for b in packing:
                tbu = next(it)
                if len(b) == 1:
                    self.tbus.bind(tbu, b[0][0])
                    peas[b[0][0]] += tbu.n_peas
                    whole[b[0][0]] += 1
                    continue
                free = list(tbu.free)
                self.sharing[tbu.id] = [t for t, _ in b]
                self.shared_peas[tbu.id] = list(free)
                for t, count in b:
                    mine, free = free[:count], free[count:]
                    for p in mine:
                        self.owner[p] = t
                    sim.load_peas(tbu, t, mine)
                    self.slice_peas[(tbu.id, t)] = count
                    self.slices[c][t].append(tbu)
                    peas[t] += count
            self.partition.append([counts[i] + whole[i] for i in range(n)])
            self.pea_partition.append(peas)

    def _slice_peas(self, c: int, idx: int) -> tuple[TBU, list[int]] | None:
        """A shared TBU of cluster ``c`` with a run's worth of type ``idx``'s PEAs free, and
        those PEAs."""
        k = self.k[idx]
        owner = self.owner
        for tbu in self.slices[c][idx]:
            if not tbu.alive:
                continue
            mine = [p for p in tbu.free if owner[p] == idx]
            if len(mine) >= k:
                return tbu, mine[-k:]
        return None

    def _lend_slice(self, c: int, idx: int) -> bool:
        """Type ``idx`` lost every TBU and PEA of cluster ``c`` to a fault: give it a run's
        worth of the PEAs another type holds on a live shared TBU, from the type that keeps
        the most PEAs after it (and at least a run's worth of its own). Its runs load their
        context on them when they start there (``start_any``), as any shared PEA whose last
        run was of another type. Return whether it found some."""
        sim = self.sim
        assert sim is not None
        k = self.k[idx]
        owner = self.owner
        held = [0] * len(self.k)  # PEAs each type holds in the cluster, whole TBUs included
        for t in sim.chip.cluster_tbus[c]:
            if not t.alive:
                continue
            if t.bound >= 0:
                held[t.bound] += t.n_peas
            elif t.id in self.sharing:
                for p in self.shared_peas[t.id]:
                    if owner[p] >= 0:
                        held[owner[p]] += 1
        best: tuple[int, TBU, int] | None = None
        # A run's worth if some type can spare it, else fewer PEAs per run, down to the
        # task's minimum (its runs then take what was lent: a hypothesis case stuck with a
        # 3-PEA run type and no type holding 3 PEAs on one shared TBU).
        for size in range(k, sim.task_types[idx].kmin - 1, -1):
            for tbu_id, types in self.sharing.items():
                tbu = sim.chip.tbus[tbu_id]
                if not tbu.alive or tbu.cluster != c:
                    continue
                for j in types:
                    mine = sum(1 for p in self.shared_peas[tbu_id] if owner[p] == j)
                    left = held[j] - size
                    if j != idx and mine >= size and left >= self.k[j] and (
                            best is None or left > best[0]):
                        best = (left, tbu, j)
            if best is not None:
                k = self.k[idx] = size
                break
        if best is None:
            return False
        _, tbu, j = best
        lent = [p for p in self.shared_peas[tbu.id] if owner[p] == j]
        lent = ([p for p in lent if p in tbu.free] + [p for p in lent if p not in tbu.free])[:k]
        for p in lent:
            owner[p] = idx
        self.slice_peas[(tbu.id, j)] -= k
        self.slice_peas[(tbu.id, idx)] = self.slice_peas.get((tbu.id, idx), 0) + k
        if idx not in self.sharing[tbu.id]:
            self.sharing[tbu.id].append(idx)
        if tbu not in self.slices[c][idx]:
            self.slices[c][idx].append(tbu)
        self._serve_shared(tbu)
        return True

    def _serve_shared(self, tbu: TBU) -> None:
        """PEAs of the shared ``tbu`` freed: start what its types have queued on their own
        PEAs."""
        sim = self.sim
        assert sim is not None
        c = tbu.cluster
        owner = self.owner
        for idx in self.sharing[tbu.id]:
            q = self.queues[c][idx]
            k = self.k[idx]
            batching = self.any_batch and self.batcher.on[idx]
            while q:
                mine = [p for p in tbu.free if owner[p] == idx]
                if len(mine) < k:
                    break
                if batching:
                    if not self.batcher.due(q, c, idx):
                        break
                    self._start_batch(tbu, q, idx, mine[-k:])
                else:
                    run = q.popleft()
                    self.queued_work[c][idx] -= run.work
                    sim.start_any(run, tbu, k, mine[-k:])

    def control_cycles(self, cbs: int, run: TaskRun) -> int:
        return cbs * self.params.host_cycles

    def on_ready(self, run: TaskRun) -> None:
        sim = self.sim
        assert sim is not None
        idx = run.tt.idx
        c = run.inst.cluster
        if self.any_batch and self.batcher.on[idx]:
            self.queues[c][idx].append(run)
            self.queued_work[c][idx] += run.work
            self._dispatch(c, idx)
            if self.queues[c][idx]:
                self.balancer.queued(c)
            return
        tbu = self.tbus.first_free(c, idx)
        if tbu is not None:
            sim.start(run, tbu, self.k[idx])
            self.tbus.taken(tbu)
            return
        if self.slices[c][idx]:
            found = self._slice_peas(c, idx)
            if found is not None:
                sim.start_any(run, found[0], self.k[idx], found[1])
                return
        self.queues[c][idx].append(run)
        self.queued_work[c][idx] += run.work
        self.balancer.queued(c)

    def on_bound(self, tbu: TBU) -> None:
        self.tbus.bound(tbu)

    def on_freed(self, tbu: TBU) -> None:
        idx = tbu.bound
        if idx < 0 or tbu.reconfiguring:
            if tbu.id in self.sharing and tbu.alive:
                self._serve_shared(tbu)
            return
        if self.tbus.leaving_for(tbu) >= 0:  # draining for a rebind
            self.drained(tbu)
            return
        sim = self.sim
        assert sim is not None
        k = self.k[idx]
        q = self.queues[tbu.cluster][idx]
        free = tbu.free
        if self.any_batch and self.batcher.on[idx]:
            while q and len(free) >= k and self.batcher.due(q, tbu.cluster, idx):
                self._start_batch(tbu, q, idx)
            self.tbus.offer(tbu)
            return
        while q and len(free) >= k:
            run = q.popleft()
            self.queued_work[tbu.cluster][idx] -= run.work
            sim.start(run, tbu, k)
        self.tbus.offer(tbu)

    def _dispatch(self, c: int, idx: int) -> None:
        """Start the batches of type ``idx`` queued on cluster ``c`` that are due
        (:class:`~octosim.engine.policy.Batcher`) on free TBUs bound to it."""
        q = self.queues[c][idx]
        self.batcher.dispatch(q, c, idx, self.tbus, lambda tbu: self._start_batch(tbu, q, idx))
        if self.slices[c][idx]:
            while q:
                found = self._slice_peas(c, idx)
                if found is None or not self.batcher.due(q, c, idx):
                    return
                self._start_batch(found[0], q, idx, found[1])

    def _start_batch(self, tbu: TBU, q: deque[TaskRun], idx: int,
                     peas: list[int] | None = None) -> None:
        """Start the next batch of ``q`` on ``tbu``: on its bound PEAs, or on ``peas``, type
        ``idx``'s own PEAs of a shared TBU."""
        assert self.sim is not None
        runs = self.batcher.take(q, idx)
        for r in runs:
            self.queued_work[tbu.cluster][idx] -= r.work
        if peas is None:
            self.sim.start_batch(runs, tbu, self.k[idx])
        else:
            self.sim.start_batch(runs, tbu, self.k[idx], True, peas)

    def drained(self, tbu: TBU) -> None:
        """A TBU leaving for another type (:meth:`TBUTable.drain`) freed PEAs: once it holds
        no work, load the new context."""
        if tbu.busy or tbu.blocked:
            return
        self.tbus.bind(tbu, self.tbus.leaving_for(tbu))

    def cluster_backlog(self, cluster: int) -> float:
        return float(sum(self.queued_work[cluster]))

    def take_queued(self, cluster: int, work: float, limit: float,
                    movable: Sequence[bool] | None = None) -> list[TaskRun]:
        return take_latest(self.queues[cluster], self.queued_work[cluster], work,
                           lambda run: run.work, limit, movable)

    def queued_runs(self, cluster: int) -> list[TaskRun]:
        runs = []
        for q in self.queues[cluster]:
            while q:
                run = q.popleft()
                self.queued_work[cluster][run.tt.idx] -= run.work
                runs.append(run)
        return runs

    def on_fault(self, tbu: TBU) -> None:
        """A TBU died. If its type has no TBU left in the cluster, the TBU of the best
        provided type that drains first is rebound to it (a static mapping is recompiled
        around the fault); if the whole cluster died, its queued runs move to others."""
        sim = self.sim
        assert sim is not None
        c = tbu.cluster
        self.tbus.fault(tbu)
        alive = [t for t in sim.chip.cluster_tbus[c] if t.alive]
        if not alive:
            self.rehome_queued(c)
            return
        counts = list(self.tbus.counts[c])
        leaving = self.tbus.target
        for idx, n in enumerate(counts):
            if n or any(t.alive for t in self.slices[c][idx]):
                continue
            donor = max(range(len(counts)), key=lambda i: (counts[i], -i))
            if counts[donor] < 2:
                # Too few whole TBUs to spare one: PEAs of a shared TBU, if any type can spare
                # a run's worth there (else work waits for none).
                self._lend_slice(c, idx)
                continue
            cands = [t for t in alive if leaving[t.id] < 0 and (
                t.bound == donor or (t.reconfiguring and t.loading == donor))]
            if not cands:
                self._lend_slice(c, idx)
                continue
            pick = min(cands, key=lambda t: (t.busy + t.blocked, t.id))
            self.tbus.drain(pick, idx)
            counts[donor] -= 1
            counts[idx] += 1
            if pick.busy == 0 and pick.blocked == 0 and not pick.reconfiguring:
                self.drained(pick)  # else when it drains, or when its context has loaded
