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
    wf, arch, policy = cfg.build()
    faults = [Fault.parse(f) for f in cfg.faults]
    try:
        sim = Simulation(wf, arch, policy, seed=cfg.seed, observers=observers, faults=faults)
    except UserError as exc:
        if exc.file is None and (exc.where or "").startswith("defects"):
            # The arch's defects leave too little to run on: the arch file is to blame.
            raise cfg._blame_set(exc, "arch").within(file=cfg.arch_file) from None
        raise
    return sim.run()


def run_config(cfg: RunConfig, observers: list[Observer] | None = None) -> dict[str, Any]:
    return summarize(simulate(cfg, observers))


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
