"""Task Block types as the engine sees them: PEA range, work per invocation, context size."""

from __future__ import annotations

import math

from octosim.errors import UserError
from octosim.model.arch import ArchSpec
from octosim.model.dists import Const, Value, round_count
from octosim.model.workflow import TaskDef, Workflow

CONFIG_BYTES = 4096  # PEA configuration that every context carries besides weights


class TaskType:
    """Static facts of one TB type on one architecture."""

    __slots__ = ("idx", "name", "kind", "kmin", "kmax", "cycles", "model_cycles", "scale",
                 "floor_cycles", "streamed_bytes", "weight_bytes",
                 "context_bytes", "out_bytes", "sets", "rank", "tdef",
                 "mean_work_hint", "cycles_fast", "cycles_upper", "out_fixed", "plain_cp",
                 "weight_passes", "context_ready_cycles",
                 "batch_max", "batch_wait_cycles", "bound_streamed_bytes", "batch_cycles",
                 "bound_work_ratio", "batch_work_ratio", "memory_bytes_per_cycle")

    def __init__(self, tdef: TaskDef, arch: ArchSpec, rank: int, file: str) -> None:
        self.idx = tdef.index
        self.name = tdef.name
        self.kind = tdef.kind
        self.tdef = tdef
        self.rank = rank  # stage order: first appearance in the flow
        self.cycles: Value | None = tdef.cycles
        self.scale: Value | None = tdef.scale
        # Passes over the streamed weights per run; None: one per unit of ``scale``.
        self.weight_passes: Value | None = tdef.weight_passes
        self.out_bytes: Value = tdef.out_bytes
        self.sets = tdef.sets
        self.model_cycles = 0
        self.floor_cycles = 0  # streaming the weights a bound TBU cannot hold, at full bandwidth
        self.memory_bytes_per_cycle = arch.memory.bytes_per_cycle
        self.streamed_bytes = 0  # weights streamed from memory by every run on a bound TBU
        self.weight_bytes = 0
        # Batched execution: up to batch_max runs on one TBU share one pass over the weights
        # (engine/batching.py); a run waits at most batch_wait_cycles for partners.
        self.batch_max = tdef.batch_max
        self.batch_wait_cycles = tdef.batch_wait_cycles
        self.bound_streamed_bytes = 0.0
        # batch_cycles[b - 1]: compute cycles of a batch of b runs on one PEA, from the systolic
        # model with the batch as extra operand rows (ModelSpec.batched); [model_cycles] when
        # the type does not batch.
        self.batch_cycles: list[int] = []
        # Least compute per run of a batch (over b = 1 .. batch_max), and that of a full batch,
        # relative to a single run: <= 1, exactly 1.0 when the type does not batch.
        self.bound_work_ratio = 1.0
        self.batch_work_ratio = 1.0
        tbu_peas = arch.tbu.peas
        where = f"tasks.{tdef.name}"
        if tdef.peas is not None:
            self.kmin, self.kmax = tdef.peas
            if self.kmax > tbu_peas:
                raise UserError(f"peas max {self.kmax} is wider than a TBU ({tbu_peas} PEAs "
                                f"in arch {arch.name})", file=file, where=f"{where}.peas")
        else:
            self.kmin, self.kmax = 1, (tbu_peas if tdef.kind == "ai" else 1)
        weights = 0
        if tdef.model is not None:
            from octosim.hardware.zoo import get_model

            try:
                spec = get_model(tdef.model)
            except UserError as exc:
                raise exc.within(file=file, where=f"{where}.model") from None
            self.model_cycles = spec.cycles_on(arch.pea.rows, arch.pea.cols, arch.pea.dataflow)
            self.batch_cycles = [self.model_cycles]
            if self.batch_max > 1 and self.model_cycles:
                self.batch_cycles = spec.batched_cycles_on(
                    self.batch_max, arch.pea.rows, arch.pea.cols, arch.pea.dataflow)
                per_run = [c / (b * self.model_cycles)
                           for b, c in enumerate(self.batch_cycles, start=1)]
                self.bound_work_ratio = min(per_run)
                self.batch_work_ratio = per_run[-1]
            weights = spec.weight_bytes()
            self.weight_bytes = weights
            tbu_sram = arch.pea.sram_kib * 1024 * tbu_peas
            resident = 0 if spec.streams_weights else min(weights, tbu_sram)
            # Weights that do not stay in the TBU's SRAM stream from memory on every run,
            # sharing the memory channel with everything else.
            self.streamed_bytes = weights - resident
            self.floor_cycles = math.ceil(self.streamed_bytes / arch.memory.bytes_per_cycle)
            weights = resident
        # What a run must stream at least, for the lower bound: a batch of batch_max runs
        # streams the weights once for all of them.
        self.bound_streamed_bytes = self.streamed_bytes / self.batch_max
        if tdef.context_bytes is not None:
            self.context_bytes = tdef.context_bytes
        else:
            self.context_bytes = weights + CONFIG_BYTES
        # No run of this type can compute before this cycle under any policy: every TBU and
        # PEA starts without a context, and a load is the fixed cost after a fetch of the
        # context over the memory channel, which cannot start before cycle 0.
        self.context_ready_cycles = (arch.reconfig.fixed_cycles
                                     + math.ceil(self.context_bytes / arch.memory.bytes_per_cycle))
        self.mean_work_hint = None
        if self.cycles is not None:
            self.mean_work_hint = self.cycles.mean_hint()
        # Hot-path shortcuts (the engine falls back to the general code when they are None).
        self.cycles_fast = self.cycles.fast_sampler() if self.cycles is not None else None
        self.cycles_upper = self.cycles.upper() if self.cycles is not None else 0.0
        # out_bytes when it is a constant (else None: drawn per run).
        self.out_fixed: int | None = None
        if isinstance(self.out_bytes, Const):
            self.out_fixed = round_count(self.out_bytes.value)
        # A run's critical-path service is its work (one PEA at most, no weight streaming).
        self.plain_cp = self.kmax == 1 and not self.floor_cycles


def streamed_on_peas(tt: TaskType, k: int, arch: ArchSpec) -> int:
    """Weights a run streams when only its own ``k`` PEAs hold its context (no bound TBU)."""
    if not tt.weight_bytes:
        return 0
    return max(tt.streamed_bytes, tt.weight_bytes - k * arch.pea.sram_kib * 1024)


def build_task_types(wf: Workflow, arch: ArchSpec) -> list[TaskType]:
    return [TaskType(t, arch, wf.stage_order[t.name], wf.file) for t in wf.task_list()]
