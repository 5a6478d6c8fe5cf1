"""Batched decode against the roofline: throughput of LLM decode steps on one TBU by batch size.

One TBU of ``octopus-chip`` (16 PEAs, the whole memory channel) serves decode steps of
``llm1b_decode`` (every step streams the ~1.03 GB of weights) in batches of B = 1, 2, 4, 8,
16, 32: all requests arrive at cycle 0, ``static`` with ``partition: {decode: 1}`` gives them
one TBU, each batch gets its 16 PEAs. The roofline is

    throughput(B) = min(compute roof(B), B x bandwidth / weight bytes per step)

where the compute roof is B / (cycles of a batch of B steps on 16 PEAs), the batch's cycles
coming from the systolic model with the batch as extra operand rows
(``get_model("llm1b_decode").batched(B)``, hardware/systolic.py): a batch-1 step is a GEMV on
one row of the 16x16 output-stationary array, a batch of B <= 16 steps a GEMM on B rows at
almost the same cycles (only attention against each step's own KV cache grows with B), so
the compute roof grows ~B-fold up to B = 16 and then steps down (B = 17..32 needs two row
folds). At the chip's own 256 B/cycle every B here is compute-bound (one step's 1.03 GB take
4.0M cycles to stream, its GEMVs 4.6M cycles on 16 PEAs); ``--bytes-per-cycle 16`` (an
LPDDR-class channel) makes every B memory-bound. The simulated throughput (steps / makespan)
must follow the roofline within 5% (the makespan includes the TBU's first context load, which
is why it is not exact).

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
from octosim.hardware.zoo import get_model

BATCHES = (1, 2, 4, 8, 16, 32)
PASSES = 8  # batches per size: the first context load is amortised over them


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
    # The compute roof from the systolic model itself (not from the engine's task type), so a
    # wrong batched cost in the engine shows as a miss.
    pea = spec.pea
    batch_cycles = get_model("llm1b_decode").batched(batch).cycles_on(pea.rows, pea.cols,
                                                                       pea.dataflow)
    batch_cycles_16 = math.ceil(batch_cycles / (1 + 15 * spec.tbu.split_efficiency))
    compute = batch * hz / batch_cycles_16
    memory = batch * hz * spec.memory.bytes_per_cycle / tt.streamed_bytes
    roof = min(compute, memory)
    simulated = count / (sim.now / hz)
    return {"batch": batch, "simulated": simulated, "roofline": roof, "compute": compute,
            "batch_cycles": batch_cycles_16,
            "memory": memory, "error": simulated / roof - 1.0,
            "bound": "compute" if compute < memory else "memory"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="build/bench-batching")
    parser.add_argument("--bytes-per-cycle", type=float, default=0.0,
                        help="memory bandwidth (default 0: the arch's own, 256)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    bw = args.bytes_per_cycle or None
    rows = [measure(b, bytes_per_cycle=bw) for b in BATCHES]
    print(f"memory bandwidth: {bw or 'arch default (256)'} B/cycle")
    print("roofline = min(compute roof, memory roof); compute roof = B / cycles of a batch of "
          "B steps on 16 PEAs (systolic model, llm1b_decode.batched(B)); memory roof = "
          "B x bandwidth / weight bytes per step")
    print(f"{'batch':>5} {'batch cycles':>13} {'compute/s':>10} {'memory/s':>9} "
          f"{'simulated/s':>12} {'roofline/s':>11} {'error':>7}  bound")
    for r in rows:
        print(f"{r['batch']:>5} {r['batch_cycles']:>13,} {r['compute']:>10.2f} "
              f"{r['memory']:>9.2f} {r['simulated']:>12.2f} {r['roofline']:>11.2f} "
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
    ax.plot(bs, [r["compute"] for r in rows], ":", color="grey", label="compute roof (systolic)")
    ax.plot(bs, [r["memory"] for r in rows], "-.", color="grey", label="memory roof")
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
