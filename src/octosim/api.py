"""The Python API, for notebooks and scripts: one call runs what ``octosim run`` runs.

``simulate`` goes through the same configuration path as the command line
(:func:`octosim.experiments.config.resolve_config`): a result here has exactly the summary of
``octosim run --json`` with the same arguments and ``--set`` items.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from octosim.experiments.config import RunConfig, resolve_config

if TYPE_CHECKING:
    import pandas

__all__ = ["SimResult", "flatten_overrides", "simulate", "sweep_results"]

Source = str | os.PathLike[str] | Mapping[str, Any]


@dataclass(frozen=True)
class SimResult:
    """One run: its summary (the dict ``octosim run --json`` prints) and its configuration."""

    summary: dict[str, Any]
    config: RunConfig

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    @property
    def makespan_cycles(self) -> int:
        return int(self.summary["makespan_cycles"])

    @property
    def lower_bound_cycles(self) -> int:
        return int(self.summary["lower_bound_cycles"])

    @property
    def instances(self) -> int:
        return int(self.summary["instances"])

    @property
    def pea_utilization(self) -> float:
        return float(self.summary["pea_utilization"])

    @property
    def latency_cycles(self) -> dict[str, float]:
        return dict(self.summary["latency_cycles"])

    @property
    def idle(self) -> dict[str, float]:
        return dict(self.summary["idle"])

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return {name: dict(t) for name, t in self.summary["tasks"].items()}

    def to_pandas(self, table: Literal["run", "tasks"] = "run") -> pandas.DataFrame:
        """The summary as a DataFrame.

        ``"run"`` (default): one row, every scalar of the summary a column, nested ones by
        dotted name (``latency_cycles.p99``, ``idle.starved``); the per-task table is left out.
        Rows of many runs concatenate (``pandas.concat``) into a sweep's table.
        ``"tasks"``: one row per task type (index ``task``: ``count``, ``mean_wait_cycles``,
        ``mean_service_cycles``...), with the run's ``workflow``, ``arch``, ``policy`` and
        ``seed`` as columns so that tables of several runs concatenate too.
        """
        import pandas as pd

        if table == "run":
            row: dict[str, Any] = {}
            _flatten_into(row, "", {k: v for k, v in self.summary.items() if k != "tasks"})
            return pd.DataFrame([row])
        if table == "tasks":
            ident = {k: self.summary.get(k) for k in ("workflow", "arch", "policy", "seed")}
            rows = [{"task": name, **ident, **t} for name, t in self.summary["tasks"].items()]
            return pd.DataFrame(rows).set_index("task")
        raise ValueError(f"table must be 'run' or 'tasks', got {table!r}")

    def __repr__(self) -> str:
        s = self.summary
        return (f"SimResult({s['workflow']} on {s['arch']} under {s['policy']}, seed "
                f"{s['seed']}: makespan {s['makespan_cycles']:,} cycles, "
                f"{s['instances']} instances)")


def _flatten_into(out: dict[str, Any], prefix: str, value: Any) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten_into(out, f"{prefix}.{k}" if prefix else str(k), v)
    else:
        out[prefix] = value


def flatten_overrides(*overrides: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` pairs for ``--set``-style editing, from mappings whose keys are
    dotted paths (``"policy.threshold"``) or sections with nested mappings
    (``{"policy": {"threshold": 0.3}}``), or both. A non-empty mapping value is merged leaf by
    leaf (it edits the keys it names and keeps the others); lists, scalars and ``{}`` replace
    what is there."""
    out: dict[str, Any] = {}
    for mapping in overrides:
        for key, value in mapping.items():
            _flatten_into(out, str(key), value)
    return list(out.items())


def simulate(workflow: Source, arch: Source = "octopus-chip", policy: str = "static",
             seed: int = 1, *, overrides: Mapping[str, Any] | None = None,
             faults: Sequence[str] = (), **sets: Any) -> SimResult:
    """Run one workflow on one arch under one policy, as ``octosim run`` does.

    ``workflow`` and ``arch``: a built-in name (``octosim list``), a path to a YAML file, or
    the document itself as a dict (a relative ``model: {onnx: ...}`` path in a dict resolves
    against the current directory). ``overrides`` and keyword arguments edit the
    configuration like ``--set``, with Python values instead of YAML text:
    ``simulate("street-camera", policy="reactive", **{"policy.threshold": 0.3})`` or
    ``overrides={"arch": {"noc": {"hop_cycles": 0}}}`` (see :func:`flatten_overrides`);
    ``workflow.arrivals.count`` scales the phases as on the command line. ``faults`` are
    ``--fault`` items (``"tbu:3@200000"``). Bad input raises
    :class:`~octosim.errors.UserError`.
    """
    from octosim.experiments.run import run_config

    values = flatten_overrides(overrides or {}, sets)
    cfg = resolve_config(workflow, arch, policy, seed, faults=list(faults), values=values)
    return SimResult(run_config(cfg), cfg)


def sweep_results(out: str | os.PathLike[str]) -> pandas.DataFrame:
    """A sweep directory's stored points as a DataFrame, one row per point (what
    ``octosim results DIR --json`` lists: its parameters, then its metrics; a failed point has
    ``error`` set and no metrics)."""
    import pandas

    from octosim.experiments.sweep import load_rows

    return pandas.DataFrame(load_rows(os.fspath(out)))
