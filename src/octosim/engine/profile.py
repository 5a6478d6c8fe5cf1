"""Untimed profiling of a workflow: expected runs and work of each TB type per instance.

This is what a compiler would measure on representative inputs before deployment. It draws
from its own seed stream (so a profile is not an oracle of the run it plans for) and samples
instances across the whole arrival range, so every phase is represented in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass

from octosim.engine.flow import FlowRunner, Frame
from octosim.engine.sim import Instance
from octosim.engine.tasks import TaskType
from octosim.model.rng import KeyedRandom
from octosim.model.workflow import TaskNode, Workflow

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
    counts = [0] * len(task_types)
    work = [0.0] * len(task_types)
    pending: list[tuple[Frame, TaskNode]] = []

    def on_task(frame: Frame, node: TaskNode) -> None:
        tt = task_types[node.task.index]
        w, scale = runner.sample_work(tt, frame, node.block)
        counts[tt.idx] += 1
        work[tt.idx] += max(w, tt.floor_cycles * scale)
        pending.append((frame, node))

    runner = FlowRunner(wf, rnd, on_task, lambda inst, frame: None)
    n = max(1, min(instances, wf.count))
    for j in range(n):
        inst_id = (j * wf.count) // n
        runner.start_instance(Instance(inst_id, 0, wf.phase_of(inst_id)))
        while pending:
            frame, node = pending.pop()
            runner.task_done(frame, node.task, node, 0)
    return {
        tt.idx: TaskProfile(counts[tt.idx] / n,
                            work[tt.idx] / counts[tt.idx] if counts[tt.idx] else 0.0)
        for tt in task_types
    }
