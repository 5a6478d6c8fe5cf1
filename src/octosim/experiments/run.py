"""Running one configuration and writing its results."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from octosim.engine.metrics import summarize
from octosim.engine.sim import Fault, Observer, Simulation
from octosim.errors import UserError
from octosim.experiments.config import RunConfig, dump_yaml


def simulate(cfg: RunConfig, observers: list[Observer] | None = None) -> Simulation:
    sim = prepare(cfg, observers)
    try:
        return sim.run()
    except UserError as exc:
        raise cfg.locate(exc) from None


def prepare(cfg: RunConfig, observers: list[Observer] | None = None) -> Simulation:
    """Everything a run checks before it samples any instance: the workflow, the arch, the
    policy and its parameters, the task types against the chip (models, PEA ranges), defects
    and faults. ``octosim validate`` runs this, so it accepts no file ``run`` rejects for its
    structure; a value only some sampled instance hits (a division by zero) shows at run time."""
    wf, arch, policy = cfg.build()
    faults = [Fault.parse(f) for f in cfg.faults]
    try:
        return Simulation(wf, arch, policy, seed=cfg.seed, observers=observers, faults=faults)
    except UserError as exc:
        raise cfg.locate(exc) from None


# Percentiles of end-to-end latency kept in every summary (``latency_cdf_cycles``), enough to
# draw a run's latency CDF in a report without keeping every instance's latency.
CDF_PERCENTS = (0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9, 100)


def run_config(cfg: RunConfig, observers: list[Observer] | None = None) -> dict[str, Any]:
    sim = simulate(cfg, observers)
    summary = summarize(sim)
    values = sim.latencies.percentiles(list(CDF_PERCENTS))
    summary["latency_cdf_cycles"] = {"percent": list(CDF_PERCENTS),
                                     "cycles": [round(v, 3) for v in values]}
    return summary


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run(out_dir: str, cfg: RunConfig, summary: dict[str, Any]) -> None:
    out = Path(out_dir)
    try:
        write_atomic(out / "config.yaml", dump_yaml(cfg.to_dict()))
        write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write results: {exc.strerror or exc}", file=out_dir) from None


def write_compare(out_dir: str, doc: dict[str, Any]) -> None:
    """``compare --out DIR``: ``results.json`` with the comparison (as ``compare --json``) and
    every run's full summary under ``runs``, what ``octosim report DIR`` draws from."""
    try:
        write_atomic(Path(out_dir) / "results.json", json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write results: {exc.strerror or exc}", file=out_dir) from None
