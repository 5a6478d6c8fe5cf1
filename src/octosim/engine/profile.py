"""Untimed profiling of a workflow: expected runs and work of each TB type per instance.

This is what a compiler would measure on representative inputs before deployment. It draws
from its own seed stream (so a profile is not an oracle of the run it plans for) and samples
instances across the whole arrival range, so every phase is represented in proportion. It
reads the compiled workload of those instances: the same draws the engine would see for that
seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from octosim.engine.tasks import TaskType
from octosim.engine.workload import WorkloadCompiler
from octosim.model.rng import KeyedRandom
from octosim.model.workflow import Workflow

PROFILE_SEED_OFFSET = 0x5EED_0F_7A5C


@dataclass
class TaskProfile:
    runs_per_instance: float
    mean_work_cycles: float  # on one PEA

    @property
    def work_per_instance(self) -> float:
        return self.runs_per_instance * self.mean_work_cycles


def profile_workflow(wf: Workflow, task_types: list[TaskType], seed: int,
                     instances: int = 256) -> dict[int, TaskProfile]:
    rnd = KeyedRandom(seed + PROFILE_SEED_OFFSET)
    n = max(1, min(instances, wf.count))
    ids = [(j * wf.count) // n for j in range(n)]
    compiler = WorkloadCompiler(wf, task_types, rnd, 1.0)
    counts = [0] * len(task_types)
    work = [0.0] * len(task_types)
    floor = [tt.floor_cycles for tt in task_types]
    for ch in compiler.compile_instances(np.array(ids)):
        # Summed instance by instance, as the runs were reached in each.
        for node in np.argsort(np.array(ch.inst), kind="stable").tolist():
            kind = ch.kind[node]
            if kind < 0:
                continue
            counts[kind] += 1
            work[kind] += max(ch.work[node], floor[kind] * ch.scale[node])
    return {
        tt.idx: TaskProfile(counts[tt.idx] / n,
                            work[tt.idx] / counts[tt.idx] if counts[tt.idx] else 0.0)
        for tt in task_types
    }
