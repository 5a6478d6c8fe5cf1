"""What a policy can do to the chip: start runs on PEAs, grow them, bind and unbind TBUs,
prefetch contexts. Each action checks the policy's request (a bad one is a policy bug, not a
user error), moves the PEAs, charges the memory channel and the NoC, and books the time.

:class:`ResourceActions` is a part of :class:`~octosim.engine.sim.Simulation` (a mixin, so the
hot path keeps plain attribute access); it uses the simulation's ``chip``, ``acct``,
``buffers``, ``loop`` and ``observers``.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

from octosim.engine.core import BOUND, COMPLETE, TIMER
from octosim.engine.entities import MAX_CYCLE, TaskRun, too_late
from octosim.engine.tasks import streamed_on_peas
from octosim.hardware.chip import MIXED, TBU, UNBOUND

if TYPE_CHECKING:
    from octosim.engine.accounting import Accounting
    from octosim.engine.backpressure import StageBuffers
    from octosim.engine.core import EventLoop
    from octosim.engine.entities import Observer
    from octosim.engine.policy import Policy
    from octosim.engine.tasks import TaskType
    from octosim.hardware.chip import Chip
    from octosim.model.arch import ArchSpec


class ResourceActions:
    """The actions of the policy interface on PEAs, TBUs, memory and NoC."""

    now: int
    arch: ArchSpec
    chip: Chip
    acct: Accounting
    buffers: StageBuffers
    loop: EventLoop
    observers: list[Observer]
    task_types: list[TaskType]
    split_eff: float
    pea_ctx: list[int]
    progress: int
    reconfigurations: int
    run_reconfigurations: int
    policy: Policy

    def service_cycles(self, run: TaskRun, k: int) -> int:
        """Compute cycles of ``run`` on ``k`` PEAs: speed-up 1 + (k-1)*split_efficiency."""
        work = run.work
        if k > 1:
            work = math.ceil(work / (1.0 + (k - 1) * self.split_eff))
        return work

    def min_cycles(self, run: TaskRun, k: int) -> int:
        """Service at full memory bandwidth: never below streaming the weights it must."""
        work = self.service_cycles(run, k)
        floor = run.tt.floor_cycles
        if floor and run.stream_scale != 1.0:
            floor = math.ceil(floor * run.stream_scale)
        return work if work >= floor else floor

    def compute_end(self, run: TaskRun) -> int:
        """When the running ``run``'s compute is done (its weight stream may end later: the
        PEAs then stall), from its service start, its PEAs and the work left at its last
        grant. A run in a batch computes as its batch does (its leader's figures)."""
        if run.batch is not None:
            run = run.batch[0]
        if run.work_left >= 0:
            rate = 1.0 + (run.k - 1) * self.split_eff
            done = run.rate_since + math.ceil(run.work_left / rate)
        else:
            done = run.svc_start + self.service_cycles(run, run.k)
        return done if done < run.end_at else run.end_at

    def fetch_context(self, nbytes: int, cluster: int) -> int:
        """Fetch a context of ``nbytes`` for ``cluster`` over its memory controller's channel
        from now; return when it arrives (the controller's NoC hops away). The fetch has
        priority: weight streams it overlaps are delayed, and so are the completions of the
        runs waiting for them."""
        chip = self.chip
        memory = chip.memory_of[cluster]
        done = memory.fetch(nbytes, self.now)
        if memory.delayed:
            self._delay_streams(memory.delayed)
        hops = chip.memory_hops[cluster]
        return done + hops * chip.mesh.hop_cycles if hops else done

    def _delay_streams(self, delayed: list[tuple[TaskRun, int, int]]) -> None:
        acct = self.acct
        loop = self.loop
        for run, old_mem, new_mem in delayed:
            if run.end_at < 0 or run.mem_end != old_mem:
                continue  # finished, or aborted by a fault (a later attempt streams anew)
            compute = self.compute_end(run)
            run.mem_end = new_mem
            old_end = run.end_at
            new_end = new_mem if new_mem > compute else compute
            if new_end == old_end:
                continue
            if new_end >= MAX_CYCLE:
                raise too_late(new_end)
            idx = run.tt.idx
            acct.task_service[idx] += new_end - old_end
            acct.task_stall[idx] += new_end - old_end
            acct.area_stall += run.k * (new_end - old_end)
            run.end_at = new_end  # the event at its old end is now superseded
            loop.seq += 1
            heapq.heappush(loop.heap, (new_end, COMPLETE, loop.seq, COMPLETE, run))
            if run.batch is not None:
                # The runs sharing its pass over the weights end with it.
                for other in run.batch[1:]:
                    if other.end_at != old_end:
                        continue
                    other.mem_end = new_mem
                    other.end_at = new_end
                    acct.task_service[idx] += new_end - old_end
                    acct.task_stall[idx] += new_end - old_end
                    loop.seq += 1
                    heapq.heappush(loop.heap, (new_end, COMPLETE, loop.seq, COMPLETE, other))

    def unbook(self, run: TaskRun, now: int, attempt: bool) -> None:
        """``run`` stops at ``now`` before its end (a fault, or the end of a run cut short by
        ``max_events``): its stall booked beyond ``now`` did not happen. With ``attempt``,
        its compute and stall leave the task statistics too (the attempt is not counted)."""
        acct = self.acct
        compute = self.compute_end(run)
        if run.end_at > compute:
            acct.area_stall -= run.k * (run.end_at - max(now, compute))
        if attempt:
            idx = run.tt.idx
            acct.task_compute[idx] -= compute - run.svc_start
            acct.task_stall[idx] -= run.end_at - compute

    def start(self, run: TaskRun, tbu: TBU, k: int) -> int:
        """Start ``run`` on ``k`` free PEAs of ``tbu``, which is bound to its type; return its
        completion cycle."""
        if tbu.bound != run.tt.idx or tbu.reconfiguring or not tbu.alive:
            raise RuntimeError(f"policy bug: {run} started on {tbu} not bound to its type")
        if k < 1 or k > len(tbu.free):
            raise RuntimeError(f"policy bug: {run} asks {k} PEAs, {tbu} has {len(tbu.free)} free")
        stream = run.tt.streamed_bytes
        if stream and run.stream_scale != 1.0:
            stream = round(stream * run.stream_scale)
        return self._launch(run, tbu, k, self.now, stream, run.work)

    def start_batch(self, runs: list[TaskRun], tbu: TBU, k: int, any_context: bool = False,
                    peas: list[int] | None = None) -> int:
        """Start ``runs`` (one type, at most its ``batch.max``, in dispatch order) as one batch
        on ``k`` free PEAs of ``tbu``: one pass over the weights for all of them (see
        :mod:`octosim.engine.batching`); with ``any_context``, on PEAs holding any context, as
        :meth:`start_any` (``peas``: on which). Return the batch's completion cycle (every
        run's)."""
        from octosim.engine.batching import start_batch

        return start_batch(self, runs, tbu, k, any_context, peas)

    def start_any(self, run: TaskRun, tbu: TBU, k: int, peas: list[int] | None = None
                  ) -> int:
        """Start ``run`` on ``k`` free PEAs of ``tbu`` whatever contexts they hold: PEAs whose
        last task was of another type first load this one's context (``fixed_cycles`` plus
        the context over the shared memory channel). The TBU is then *mixed*: bound to no
        single type. For policies that share PEAs indiscriminately. With ``peas`` (``k`` ids
        of free PEAs of ``tbu``), on those PEAs: a policy that keeps each type on its own PEAs
        of a shared TBU (:meth:`load_peas`) never reloads them."""
        if peas is not None:
            self._take_last(tbu, peas, k)
        ready = self._load_on_peas(run, tbu, k)
        stream = round(streamed_on_peas(run.tt, k, self.arch) * run.stream_scale)
        return self._launch(run, tbu, k, ready, stream, run.work)

    def _take_last(self, tbu: TBU, peas: list[int], k: int) -> None:
        """Move the free PEAs ``peas`` to the end of ``tbu.free``, where a start takes its
        ``k`` PEAs from."""
        free = tbu.free
        if len(peas) != k or len(set(peas)) != k or any(p not in free for p in peas):
            raise RuntimeError(f"policy bug: PEAs {peas} are not {k} free PEAs of {tbu}")
        chosen = set(peas)
        free[:] = [p for p in free if p not in chosen] + list(peas)

    def load_peas(self, tbu: TBU, task: int, peas: list[int]) -> int:
        """Load type ``task``'s context into the free PEAs ``peas`` of ``tbu``, for good: a TBU
        whose PEAs are split between types, each keeping its context resident in its own
        PEAs (a static mapping packing small stages into one TBU). Costs what :meth:`bind`
        does (``reconfig.fixed_cycles`` plus the context over the memory channel); the PEAs
        are taken until it is done, then free again (``on_freed`` follows). The TBU is
        *mixed* from now on; runs start there with :meth:`start_any` on their type's PEAs
        (``peas=``), with no further load. Return when the context is ready."""
        if not tbu.alive or tbu.reconfiguring or tbu.bound >= 0:
            raise RuntimeError(f"policy bug: loading PEAs of {tbu}, which is bound or down")
        free = tbu.free
        chosen = set(peas)
        if not peas or len(chosen) != len(peas) or any(p not in free for p in peas):
            raise RuntimeError(f"policy bug: PEAs {peas} are not free PEAs of {tbu}")
        now = self.now
        acct = self.acct
        acct.integrate(now)
        if tbu.bound == UNBOUND:
            acct.unbound_peas -= tbu.n_peas
            tbu.bound = MIXED
        free[:] = [p for p in free if p not in chosen]
        tbu.loading_peas += len(peas)
        acct.reconfig_peas += len(peas)
        done = (self.fetch_context(self.task_types[task].context_bytes, tbu.cluster)
                + self.arch.reconfig.fixed_cycles)
        ctx = self.pea_ctx
        for p in peas:
            ctx[p] = task
        self.reconfigurations += 1
        for ob in self.observers:
            ob.reconfigured(tbu, task, now, done)
        loaded = list(peas)

        def ready() -> None:
            if not tbu.alive:
                return  # died while loading (the fault took its PEAs off the books)
            acct.integrate(self.now)
            tbu.loading_peas -= len(loaded)
            acct.reconfig_peas -= len(loaded)
            tbu.free.extend(loaded)
            self.policy.on_freed(tbu)

        self.loop.schedule(done, TIMER, ready)
        return done

    def _load_on_peas(self, run: TaskRun, tbu: TBU, k: int) -> int:
        """:meth:`start_any`'s checks and context load on the ``k`` PEAs ``run`` takes;
        return when they hold its context."""
        if tbu.reconfiguring or not tbu.alive:
            raise RuntimeError(f"policy bug: {run} started on unavailable {tbu}")
        if k < 1 or k > len(tbu.free):
            raise RuntimeError(f"policy bug: {run} asks {k} PEAs, {tbu} has {len(tbu.free)} free")
        now = self.now
        acct = self.acct
        if tbu.bound != MIXED:
            acct.integrate(now)
            if tbu.bound == UNBOUND:
                acct.unbound_peas -= tbu.n_peas
            else:
                self.buffers.stage_tbus[tbu.bound] -= 1
            tbu.bound = MIXED
        tt = run.tt
        ctx = self.pea_ctx
        peas = tbu.free[-k:]
        ready = now
        if any(ctx[p] != tt.idx for p in peas):
            ready = (self.fetch_context(tt.context_bytes, tbu.cluster)
                     + self.arch.reconfig.fixed_cycles)
            for p in peas:
                ctx[p] = tt.idx
            self.reconfigurations += 1
            self.run_reconfigurations += 1
            acct.area_setup_reconfig += k * (ready - now)
            for ob in self.observers:
                ob.reconfigured(tbu, tt.idx, now, ready)
        return ready

    def _launch(self, run: TaskRun, tbu: TBU, k: int, setup_done: int, stream: int,
                work: int) -> int:
        """Put ``run`` on ``k`` PEAs: ``work`` cycles of compute on one PEA (its own, or a
        batch's) from ``setup_done`` (or its input's arrival), ``stream`` weight bytes."""
        now = self.now
        free = tbu.free
        if k == 1:
            run.peas = [free.pop()]
        else:
            run.peas = free[-k:]
            del free[-k:]
        tbu.busy += k
        tbu.running += 1
        acct = self.acct
        acct.busy_peas += k
        run.k = k
        run.tbu = tbu
        run.start_at = now
        t_in = setup_done
        src = run.src_cluster
        if src != tbu.cluster and src >= 0:
            t_in = self.chip.mesh.transfer(src, tbu.cluster, run.in_bytes, now)
            if t_in > setup_done:
                run.transfer_cycles = t_in - setup_done
                acct.area_setup_transfer += k * (t_in - setup_done)
            else:
                t_in = setup_done
        run.svc_start = t_in
        end = compute_end = t_in + (
            work if k == 1 else math.ceil(work / (1.0 + (k - 1) * self.split_eff)))
        idx = run.tt.idx
        if stream:
            # Weights stream over the shared memory channel while the PEAs compute.
            # (The controller's few hops of latency are left out: a stream is pipelined.)
            t_mem = self.chip.memory_of[tbu.cluster].stream(stream, t_in, run, now)
            run.mem_end = t_mem
            if t_mem > end:
                end = t_mem
                # Its PEAs wait for bytes once their compute is done: a memory stall.
                acct.area_stall += k * (end - compute_end)
                acct.task_stall[idx] += end - compute_end
        if end >= MAX_CYCLE:
            raise too_late(end)
        run.end_at = end
        acct.task_count[idx] += 1
        acct.task_wait[idx] += now - run.ready_at
        acct.task_service[idx] += end - now
        acct.task_compute[idx] += compute_end - t_in
        loop = self.loop
        loop.seq += 1
        heapq.heappush(loop.heap, (end, COMPLETE, loop.seq, COMPLETE, run))
        if self.observers:
            for ob in self.observers:
                ob.task_started(run, now)
        buffers = self.buffers
        buffers.occupancy[idx] -= 1  # its buffer slot is free for a waiting producer
        if buffers.slots and buffers.waiters[idx]:
            buffers.wake(idx)
        self.progress += 1
        return end

    def grow(self, run: TaskRun, extra: int) -> int:
        """Give a running ``run`` ``extra`` more free PEAs of its TBU; the rest of its compute
        speeds up accordingly (never ending before its weight streaming does). Return the
        (possibly earlier) completion cycle."""
        tbu = run.tbu
        assert tbu is not None
        if extra < 1 or extra > len(tbu.free) or run.end_at < 0:
            raise RuntimeError(f"policy bug: growing {run} by {extra} PEAs")
        if run.k + extra > run.tt.kmax or run.mem_end >= run.end_at or run.batch is not None:
            # At its widest, or waiting for memory: more PEAs cannot help; a batch keeps the
            # PEAs it started with.
            return run.end_at
        now = self.now
        eff = self.split_eff
        rate = 1.0 + (run.k - 1) * eff
        svc_start = run.svc_start
        # Work done so far at the current rate, since service began (or the last change).
        begin = max(svc_start, run.rate_since)
        left = run.work_left if run.work_left >= 0 else float(run.work)
        if now > begin:
            left -= rate * (now - begin)
        if left <= 0:
            return run.end_at
        compute_old = self.compute_end(run)
        stall_old = run.end_at - compute_old  # cycles its PEAs would wait for bytes
        k_old = run.k
        peas = tbu.free[-extra:]
        del tbu.free[-extra:]
        run.peas = run.peas + peas
        if run.grants is None:
            run.grants = []
        run.grants.append((now, peas))
        tbu.busy += extra
        acct = self.acct
        acct.busy_peas += extra
        run.busy_adjust -= extra * (now - run.start_at)  # held from now, not from its start
        if now < svc_start:
            acct.area_setup_transfer += extra * (svc_start - now)  # they wait for the input too
        run.k += extra
        run.work_left = left
        run.rate_since = max(now, svc_start)
        new_rate = 1.0 + (run.k - 1) * eff
        new_end = min(run.end_at, max(run.mem_end, run.rate_since + math.ceil(left / new_rate)))
        idx = run.tt.idx
        if new_end != run.end_at:
            acct.task_service[idx] += new_end - run.end_at
            run.end_at = new_end
            loop = self.loop
            loop.seq += 1
            heapq.heappush(loop.heap, (new_end, COMPLETE, loop.seq, COMPLETE, run))
        compute_new = self.compute_end(run)
        acct.task_compute[idx] += compute_new - compute_old
        acct.task_stall[idx] += (new_end - compute_new) - stall_old
        acct.area_stall += run.k * (new_end - compute_new) - k_old * stall_old
        for ob in self.observers:
            ob.task_grown(run, peas, now)
        return new_end

    def prefetch(self, tbu: TBU, task: int) -> int:
        """Start fetching ``task``'s context for ``tbu`` now, into a shadow buffer, while the
        TBU finishes its current work; a later :meth:`bind` to that type then only pays
        the fixed cost. Return when the fetch completes."""
        if tbu.prefetch_task == task:
            return tbu.prefetch_done
        done = self.fetch_context(self.task_types[task].context_bytes, tbu.cluster)
        tbu.prefetch_task = task
        tbu.prefetch_done = done
        return done

    def bind(self, tbu: TBU, task: int) -> int:
        """Load the context of task type ``task`` into an idle TBU; return when it is ready.

        Costs ``reconfig.fixed_cycles`` plus the context bytes over the memory channel
        (fetches from all TBUs share it, one after another)."""
        if tbu.busy or tbu.blocked or tbu.reconfiguring:
            raise RuntimeError(f"policy bug: rebinding {tbu} while it is busy")
        if not tbu.alive:
            raise RuntimeError(f"policy bug: binding dead {tbu}")
        if tbu.bound == task:
            return self.now
        now = self.now
        acct = self.acct
        acct.integrate(now)
        if tbu.bound == UNBOUND:
            acct.unbound_peas -= tbu.n_peas
        elif tbu.bound != MIXED:
            self.buffers.stage_tbus[tbu.bound] -= 1
        tbu.bound = UNBOUND
        tbu.reconfiguring = True
        tbu.loading = task
        acct.reconfig_peas += tbu.n_peas
        tt = self.task_types[task]
        if tbu.prefetch_task == task:
            done = max(now, tbu.prefetch_done) + self.arch.reconfig.fixed_cycles
        else:
            done = (self.fetch_context(tt.context_bytes, tbu.cluster)
                    + self.arch.reconfig.fixed_cycles)
        tbu.prefetch_task = UNBOUND
        self.reconfigurations += 1
        for ob in self.observers:
            ob.reconfigured(tbu, task, now, done)
        self.loop.schedule(done, BOUND, (tbu, task))
        return done

    def unbind(self, tbu: TBU) -> None:
        """Leave an idle TBU without a context (counted as ``unbound`` idle time)."""
        if tbu.busy or tbu.blocked or tbu.reconfiguring or tbu.bound == UNBOUND:
            return
        self.acct.integrate(self.now)
        if tbu.bound != MIXED:
            self.buffers.stage_tbus[tbu.bound] -= 1
        tbu.bound = UNBOUND
        self.acct.unbound_peas += tbu.n_peas
