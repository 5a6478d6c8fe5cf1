"""The things a run simulates: workflow instances, task runs, faults, and the observer hooks
that report on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from octosim.errors import UserError

if TYPE_CHECKING:
    from octosim.engine.tasks import TaskType
    from octosim.engine.workload import WorkloadChunk
    from octosim.hardware.chip import TBU, Chip
    from octosim.model.workflow import Phase

MAX_CYCLE = 1 << 62  # about 146 years at 1 GHz: later than this, an input value is absurd


def too_late(at: float) -> UserError:
    """Simulated time ran past :data:`MAX_CYCLE`: some input is absurdly large."""
    return UserError(f"simulated time would pass cycle {MAX_CYCLE} (reached {at:.3g}): a "
                     "workflow or arch value (cycles, bytes, bandwidth) is far out of range")


class SimulationStuck(UserError):
    """The watchdog: work is outstanding but the run makes no progress."""


# The terms an instance's latency is split into along its critical path (DESIGN section 4), in
# the order of ``Instance.latency_terms``. For each run on the path, from its release (the
# completion of its critical predecessor, or its instance's arrival) to its completion:
#   admission_wait  released -> admitted into its stage's buffer (bounded buffers only)
#   queue_wait      ready (control latency passed) -> started on PEAs; with re-executions,
#                   also each aborted attempt's own ready -> start
#   transfer        started -> its input arrived over the NoC, beyond any context load of its own
#   control         admitted -> ready (the policy's control latency for the CBs passed)
#   service         the rest of start -> end: compute, memory stalls, a context load the run
#                   itself pays (start_any), and the time of attempts a fault aborted
LATENCY_TERMS = ("admission_wait", "queue_wait", "transfer", "control", "service")
NO_TERMS = (0, 0, 0, 0, 0)


class Instance:
    """One workflow instance (a request) travelling through the OWG."""

    __slots__ = ("id", "arrival", "entry", "cluster", "phase", "tasks_done", "done_at",
                 "latency_terms")

    def __init__(self, inst_id: int, arrival: int, phase: Phase | None) -> None:
        self.id = inst_id
        self.arrival = arrival
        self.entry = 0  # the I/O cluster where it entered (its input bytes lie there)
        self.cluster = 0  # where its runs queue (the policy places it; a balancer may move it)
        self.phase = phase
        self.tasks_done = 0  # task runs it has completed
        self.done_at = -1
        # Its latency along its critical path, term by term (see LATENCY_TERMS); set when done.
        self.latency_terms: tuple[int, int, int, int, int] = NO_TERMS

    def latency_breakdown(self) -> dict[str, int]:
        """Its latency (``done_at - arrival``) split along its critical path, by term."""
        return dict(zip(LATENCY_TERMS, self.latency_terms, strict=True))


class TaskRun:
    """One invocation of a Task Block for one instance: what a policy schedules.

    Its work and bytes come from the compiled workload; the rest is the engine's record of
    where and how it runs (policies read it, never write it)."""

    __slots__ = ("tt", "inst", "chunk", "node", "cbs", "work", "out_bytes", "ready_at",
                 "start_at", "end_at", "tbu", "peas", "k", "src_cluster", "seq", "reexec",
                 "svc_start", "work_left", "rate_since", "grants", "stream_scale", "mem_end",
                 "busy_adjust", "released_at", "admitted_at", "transfer_cycles", "crit_seq",
                 "path_terms", "lost", "batch", "in_bytes")

    def __init__(self, tt: TaskType, inst: Instance, chunk: WorkloadChunk, node: int, cbs: int,
                 work: int, out_bytes: int, src_cluster: int, seq: int, released_at: int = 0,
                 crit_seq: int = 0,
                 path_terms: tuple[int, int, int, int, int] = NO_TERMS,
                 in_bytes: int = 0) -> None:
        self.tt = tt
        self.inst = inst
        self.chunk = chunk  # the compiled workload chunk holding its node
        self.node = node  # its node in the chunk's dependency graph
        self.cbs = cbs  # Control Blocks passed since its predecessor completed
        self.work = work  # cycles on one PEA
        self.out_bytes = out_bytes
        self.ready_at = 0
        self.start_at = -1
        self.end_at = -1
        self.tbu: TBU | None = None
        self.peas: list[int] = []
        self.k = 0
        self.src_cluster = src_cluster  # where its input data lies
        self.in_bytes = in_bytes  # its input: the producer's output (a root's: the instance's)
        self.seq = seq
        self.reexec = 0
        self.svc_start = -1  # when service proper begins (after context load / input transfer)
        self.work_left = -1.0  # set once the run is grown
        self.rate_since = -1
        self.grants: list[tuple[int, list[int]]] | None = None  # PEAs added by grow()
        self.stream_scale = 1.0  # a model run's ``scale``: weights stream once per repetition
        self.mem_end = 0  # when its weight streaming over the memory channel completes
        self.busy_adjust = 0  # PEA-cycles to subtract from k x (end - start): later grants
        # Latency accounting (see LATENCY_TERMS).
        self.released_at = released_at  # its last predecessor completed (or its arrival)
        self.admitted_at = 0  # it got a slot in its stage's buffer
        self.transfer_cycles = 0  # its (last) attempt waited this long for input after setup
        self.crit_seq = crit_seq  # ``seq`` of the run whose completion released it; 0: arrival
        self.path_terms = path_terms  # terms along its critical path up to its release
        # Re-executed: [first ready_at, queue wait of aborted attempts, time from their start to
        # their fault] (the fault resets ready_at and start_at).
        self.lost: list[int] | None = None
        # The runs sharing its pass over the weights (engine/batching.py), itself first if it
        # leads them (holds the PEAs); None when it runs alone.
        self.batch: list[TaskRun] | None = None

    @property
    def identity(self) -> tuple[int, int, int]:
        """Which run this is, the same under every policy and architecture for one workflow
        and seed (common random numbers): its instance, the key of its place in the flow
        (instance and the foreach copies / loop iterations it belongs to) and its block."""
        ch = self.chunk
        return (self.inst.id, int(ch.frame_key[self.node]), int(ch.block[self.node]))

    def pea_cycles(self, now: int) -> int:
        """PEA-cycles it has held its PEAs for, from its start to ``now``."""
        return self.k * (now - self.start_at) + self.busy_adjust

    def __repr__(self) -> str:
        return f"TaskRun({self.tt.name}, inst={self.inst.id}, seq={self.seq})"


class Fault:
    """A runtime failure: ``tbu:ID@CYCLE`` or ``cluster:ID@CYCLE``."""

    __slots__ = ("kind", "unit", "cycle", "text")

    def __init__(self, kind: str, unit: int, cycle: int, text: str = "") -> None:
        self.kind, self.unit, self.cycle = kind, unit, cycle
        self.text = text or f"{kind}:{unit}@{cycle}"

    @classmethod
    def parse(cls, text: str) -> Fault:
        try:
            unit_part, _, cycle_s = text.partition("@")
            kind, _, unit_s = unit_part.partition(":")
            kind = kind.strip()
            if kind not in ("tbu", "cluster") or not cycle_s:
                raise ValueError
            unit, cycle = int(unit_s), int(float(cycle_s))
            if unit < 0 or cycle < 0:
                raise ValueError
        except ValueError:
            raise UserError(f"--fault {text!r}: expected tbu:ID@CYCLE or cluster:ID@CYCLE "
                            "(non-negative integers)") from None
        return cls(kind, unit, cycle, text)

    def check(self, chip: Chip) -> None:
        limit = len(chip.tbus) if self.kind == "tbu" else chip.n_clusters
        if self.unit >= limit:
            raise UserError(f"--fault {self.text}: no {self.kind} {self.unit} (the arch has "
                            f"{limit})")


class Observer:
    """Receives simulation events (metrics, traces, tests); override what you need."""

    def attached(self, sim: Any) -> None:
        """Called once, when the :class:`~octosim.engine.sim.Simulation` is built: an
        observer that needs the chip or the task types' names reads them here."""

    def task_started(self, run: TaskRun, now: int) -> None: ...

    def task_done(self, run: TaskRun, now: int) -> None: ...

    def instance_done(self, inst: Instance, now: int) -> None: ...

    def reconfigured(self, tbu: TBU, task: int, start: int, end: int) -> None: ...

    def task_grown(self, run: TaskRun, peas: list[int], now: int) -> None: ...

    def task_aborted(self, run: TaskRun, now: int) -> None:
        """``run`` was lost to a fault; it will be re-executed (started again)."""
