"""Reported compute utilisation against an independent hand count (issue 9's must-show).

For each LLM workflow at full size under Octopus, an Observer counts PEA-cycles of compute and
of memory stall from task events alone (``tests.engine.test_memory.ComputeCount``); the
report's ``pea_utilization`` and ``idle.memory_stalled`` must match it.

    python -m bench.utilization_handcount [WORKFLOW ...]
"""

from __future__ import annotations

import json
import sys

from tests.engine.test_memory import ComputeCount, Simulation, resolve_config, summarize


def main(workflows: list[str]) -> None:
    for name in workflows:
        cfg = resolve_config(name, "octopus-chip", "octopus", 1, [])
        wf, arch, pol = cfg.build()
        count = ComputeCount(arch.tbu.split_efficiency)
        sim = Simulation(wf, arch, pol, seed=cfg.seed, observers=[count]).run()
        s = summarize(sim)
        available = sim.alive_peas * sim.makespan
        hand = count.compute / available
        print(json.dumps({
            "workflow": name, "reported_utilization": s["pea_utilization"],
            "hand_count_utilization": round(hand, 6),
            "relative_error": abs(s["pea_utilization"] - hand) / hand,
            "reported_memory_stalled": s["idle"]["memory_stalled"],
            "hand_count_memory_stalled": round(count.stall / available, 6),
            "pea_occupancy": s["pea_occupancy"]}))


if __name__ == "__main__":
    main(sys.argv[1:] or ["rag-agent", "voice-assistant"])
