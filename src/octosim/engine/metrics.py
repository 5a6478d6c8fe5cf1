"""Turning a finished simulation into the metrics of DESIGN section 4."""

from __future__ import annotations

from typing import Any

from octosim.engine.sim import LATENCY_TERMS, Simulation


def summarize(sim: Simulation) -> dict[str, Any]:
    """All metrics of one run, as plain JSON-able data."""
    makespan = sim.makespan
    acct = sim.acct
    total_area = sim.alive_peas * makespan - acct.area_dead  # PEA time of working PEAs
    # PEA time inside runs spent loading a context, waiting for input or waiting for weight
    # bytes after the compute is done is not computing (docs/engine.md, "Metrics").
    stalled = acct.area_stall
    busy = acct.area_busy - acct.area_setup_reconfig - acct.area_setup_transfer - stalled
    blocked, unbound = acct.area_blocked, acct.area_unbound
    reconf = acct.area_reconfig + acct.area_setup_reconfig
    transfer = acct.area_setup_transfer
    starved = max(0, total_area - busy - blocked - reconf - unbound - transfer - stalled)

    def frac(x: int) -> float:
        return round(x / total_area, 6) if total_area else 0.0

    tasks = {}
    for tt in sim.task_types:
        n = sim.task_count[tt.idx]
        tasks[tt.name] = {
            "count": n,
            "mean_wait_cycles": round(sim.task_wait[tt.idx] / n, 3) if n else 0.0,
            "mean_admission_wait_cycles": (
                round(sim.task_admission_wait[tt.idx] / n, 3) if n else 0.0),
            "mean_service_cycles": round(sim.task_service[tt.idx] / n, 3) if n else 0.0,
            # service = setup (context load, input transfer) + compute + stall
            "mean_compute_cycles": round(acct.task_compute[tt.idx] / n, 3) if n else 0.0,
            "mean_stall_cycles": round(acct.task_stall[tt.idx] / n, 3) if n else 0.0,
        }
    mesh = sim.chip.mesh
    link, link_busy = mesh.busiest_link()
    lb = sim.lower_bound
    clock_hz = sim.arch.clock_ghz * 1e9
    seconds = makespan / clock_hz if clock_hz else 0.0
    return {
        "workflow": sim.wf.name,
        "arch": sim.arch.name,
        "policy": sim.policy.name,
        "seed": sim.seed,
        "instances": sim.instances_done,
        "makespan_cycles": makespan,
        "makespan_seconds": seconds,
        "throughput_per_second": round(sim.instances_done / seconds, 6) if seconds else 0.0,
        "latency_cycles": sim.latencies.summary(),
        "latency_percentiles_exact": sim.latencies.is_exact,
        # Mean over instances of each term of latency along the critical path (they add up to
        # latency_cycles.mean, up to rounding).
        "latency_breakdown_cycles": {
            term: round(total / sim.instances_done, 3) if sim.instances_done else 0.0
            for term, total in zip(LATENCY_TERMS, sim.latency_terms_total, strict=True)},
        "pea_utilization": frac(busy),
        "pea_occupancy": frac(acct.area_busy),
        "idle": {"starved": frac(starved), "blocked": frac(blocked),
                 "reconfiguring": frac(reconf), "unbound": frac(unbound),
                 "memory_stalled": frac(stalled), "transfer": frac(transfer)},
        "tasks": tasks,
        "task_runs": sum(sim.task_count),
        "reconfigurations": sim.reconfigurations,
        "reexecutions": sim.reexecutions,
        "work_moved": {"runs": sim.policy.moved_runs,
                       "work_cycles": sim.policy.moved_work_cycles},
        "backpressure_spills": sim.backpressure_spills,
        "faults": [f.text for f in sim.faults],
        "noc": {
            "bytes": mesh.bytes_moved,
            "transfers": mesh.transfers,
            "busiest_link": list(link) if link else None,
            "busiest_link_utilization": round(link_busy / makespan, 6) if makespan else 0.0,
        },
        "memory_bytes": sim.chip.memory_bytes_moved,
        "control_messages": sim.control_messages,
        "lower_bound_cycles": lb,
        "bound_ratio": round(makespan / lb, 6) if lb else None,
        "events": sim.events,
        "wall_seconds": round(sim.wall_seconds, 6),
        "events_per_second": round(sim.events / sim.wall_seconds) if sim.wall_seconds else None,
    }
