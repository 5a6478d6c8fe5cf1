"""Batched decode against the roofline: throughput of LLM decode steps on one TBU by batch size.

One TBU of ``octopus-chip`` (16 PEAs, the whole memory channel) serves decode steps of
``llm1b_decode`` (every step streams the ~1.1 GB of weights) in batches of B = 1, 2, 4, 8, 16,
32: all requests arrive at cycle 0, ``static`` with ``partition: {decode: 1}`` gives them one
TBU, each batch gets its 16 PEAs. The roofline is

    throughput(B) = min(peak compute, B x bandwidth / weight bytes per step)

with peak compute = 1 / (cycles of one step on 16 PEAs): below the ridge a batch is bound by
its one pass over the weights, above it by the sum of its steps' compute. The simulated
throughput (steps / makespan) must follow it within 5% (the makespan includes the TBU's first
context load and the first arrivals' wait, which is why it is not exact).

Usage::

    python bench/batching.py [OUT_DIR] [--bytes-per-cycle B]   # table, OUT_DIR/batching.png

OUT_DIR defaults to ``build/bench-batching`` (ignored by git); the figure needs matplotlib.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from octosim.engine.sim import Simulation
from octosim.experiments.config import resolve_config

BATCHES = (1, 2, 4, 8, 16, 32)
PASSES = 8  # batches per size: the first context load is amortised over them
# octopus-chip's 256 B/cycle makes even a batch-1 step compute-bound (a GEMV uses one row of
# the 16x16 array, and a batch computes the sum of its steps), so the curve would be flat; at
# 16 B/cycle (an LPDDR-class channel) the ridge, ~15 steps per pass, falls inside 1..32.
BYTES_PER_CYCLE = 16.0


def decode_workflow(batch: int, count: int) -> dict[str, Any]:
    """``count`` single decode steps arriving at once, batched by ``batch``."""
    return {
        "owg": 1, "name": f"decode-b{batch}",
        "arrivals": {"process": "batch", "count": count},
        "tasks": {"decode": {"kind": "ai", "model": "llm1b_decode", "peas": [16, 16],
                             # wait 1 cycle: the arrivals at cycle 0 all join before it starts
                             "batch": {"max": batch, "wait_cycles": 1}}},
        "flow": ["decode"],
    }


def measure(batch: int, passes: int = PASSES, arch: str = "octopus-chip",
            bytes_per_cycle: float | None = None) -> dict[str, float]:
    """Simulated and roofline decode throughput (steps per second) for one batch size, with
    the arch's memory bandwidth or ``bytes_per_cycle``."""
    count = batch * passes
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "decode.yaml"
        path.write_text(yaml.safe_dump(decode_workflow(batch, count)))
        cfg = resolve_config(str(path), arch, "static",
                             sets=["policy.partition={decode: 1}", "policy.buffer_slots=0"]
                             + ([f"arch.memory.bytes_per_cycle={bytes_per_cycle}"]
                                if bytes_per_cycle else []))
        wf, spec, policy = cfg.build()
        sim = Simulation(wf, spec, policy, seed=1).run()
    tt = sim.task_types[0]
    hz = spec.clock_ghz * 1e9
    step_cycles = math.ceil(tt.model_cycles / (1 + 15 * spec.tbu.split_efficiency))
    compute = hz / step_cycles
    memory = batch * hz * spec.memory.bytes_per_cycle / tt.streamed_bytes
    roof = min(compute, memory)
    simulated = count / (sim.now / hz)
    return {"batch": batch, "simulated": simulated, "roofline": roof, "compute": compute,
            "memory": memory, "error": simulated / roof - 1.0,
            "bound": "compute" if compute < memory else "memory"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="build/bench-batching")
    parser.add_argument("--bytes-per-cycle", type=float, default=BYTES_PER_CYCLE,
                        help="memory bandwidth (0: the arch's own, 256)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    bw = args.bytes_per_cycle or None
    rows = [measure(b, bytes_per_cycle=bw) for b in BATCHES]
    print(f"memory bandwidth: {bw or 'arch default'} B/cycle")
    print(f"{'batch':>5} {'simulated/s':>12} {'roofline/s':>11} {'error':>7}  bound")
    for r in rows:
        print(f"{r['batch']:>5} {r['simulated']:>12.2f} {r['roofline']:>11.2f} "
              f"{100 * r['error']:>6.2f}%  {r['bound']}")
    worst = max(abs(r["error"]) for r in rows)
    print(f"worst error {100 * worst:.2f}% (limit 5%)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure")
        return 0 if worst <= 0.05 else 1
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    bs = [r["batch"] for r in rows]
    ax.plot(bs, [min(r["compute"], r["memory"]) for r in rows], "k--", label="roofline")
    ax.plot(bs, [r["simulated"] for r in rows], "o-", label="octosim")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(bs, [str(b) for b in bs])
    ax.set_xlabel("batch size (decode steps per pass over the weights)")
    ax.set_ylabel("decode steps / s (one TBU)")
    ax.set_title(f"llm1b_decode on one TBU of octopus-chip, {bw or 256:g} B/cycle")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "batching.png", dpi=120)
    print(f"figure: {out / 'batching.png'}")
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
