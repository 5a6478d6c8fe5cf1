"""Resumable parameter sweeps: a SPEC's cartesian product, each point stored as it finishes.

A SPEC is YAML (DESIGN.md section 6)::

    base: {workflow: street-camera, arch: octopus-chip, policy: static, seed: 1,
           set: {workflow.arrivals.count: 50}}      # set: optional fixed --set items
    grid: {policy: [static, octopus], seed: [1, 2], arch.noc.hop_cycles: [1, 4]}

Grid keys are ``--set`` paths (``workflow.*``, ``arch.*``, ``policy.*``) or one of
``workflow``, ``arch``, ``policy``, ``seed``. Points are run through
:mod:`octosim.experiments.batch` (the same runner as ``compare``), on a local process pool or
on dask.distributed, and written by this (the parent) process alone into ``DIR/sweep.sqlite``,
one committed transaction per point, keyed by a hash of the point's resolved configuration and
the octosim version. So a sweep killed at any moment loses only the points in flight, and a
rerun skips every point stored with a summary. Failed points are stored with their error and
retried by the next rerun (a fix in a workflow file changes the key anyway; a retry of a
deterministic failure costs one short run).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from octosim import __version__
from octosim.errors import UserError
from octosim.experiments.batch import RunResult, RunSpec, default_workers, run_many, run_spec
from octosim.experiments.config import parse_set, resolve_config
from octosim.model.loader import load_yaml_file

STORE_NAME = "sweep.sqlite"
SPEC_KEYS = ("base", "grid")
BASE_KEYS = ("workflow", "arch", "policy", "seed", "set")
REF_KEYS = ("workflow", "arch", "policy", "seed")  # grid keys that are RunSpec fields
EXECUTORS = ("local", "dask")
MAX_POINTS = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,
    params TEXT NOT NULL,
    summary TEXT,
    error TEXT,
    version TEXT NOT NULL,
    wall_seconds REAL,
    finished_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Point:
    """One grid point: what the user swept (``params``), how it runs, and its store key."""

    key: str
    params: dict[str, Any]
    spec: RunSpec


@dataclass
class SweepSpec:
    file: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    points: list[Point] = field(default_factory=list)


@dataclass
class PointOutcome:
    point: Point
    summary: dict[str, Any] | None
    error: str | None
    wall_seconds: float | None


@dataclass
class SweepStats:
    out: str
    points: int
    skipped: int
    ran: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "store": str(Path(self.out) / STORE_NAME),
                "points": self.points, "skipped": self.skipped, "ran": self.ran,
                "failed": self.failed}


# --------------------------------------------------------------------------- the SPEC


def point_key(config: dict[str, Any], version: str = __version__) -> str:
    """sha256 of the resolved configuration (canonical JSON) and the octosim version."""
    blob = json.dumps({"config": config, "version": version}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _set_item(key: str, value: Any, file: str, where: str) -> str:
    """A ``--set`` item whose VALUE reads back (as YAML) exactly as ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    text = text.removesuffix("...").strip()
    item = f"{key}={text}"
    try:
        back = parse_set(item)[1]
    except UserError as exc:
        raise UserError(exc.what, file=file, where=where) from None
    if back != value:
        raise UserError(f"value {value!r} does not survive as a --set value", file=file,
                        where=where)
    return item


def _check_key(key: Any, file: str, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise UserError(f"expected a key such as policy.threshold, got {key!r}", file=file,
                        where=where)
    parts = key.split(".")
    if key in REF_KEYS:
        return key
    if "=" in key or key != key.strip():
        raise UserError(f"key {key!r}: a dotted path has no '=' and no surrounding spaces",
                        file=file, where=where)
    if any(not p for p in parts) or parts[0] not in ("workflow", "arch", "policy"):
        raise UserError(f"key {key!r}: expected workflow, arch, policy, seed or a dotted path "
                        "under workflow., arch. or policy.", file=file, where=where)
    return key


def _ref(value: Any, kind: str, spec_dir: Path, file: str, where: str) -> str:
    """A workflow/arch reference; a relative path is taken relative to the SPEC's folder."""
    if not isinstance(value, str) or not value:
        raise UserError(f"expected a built-in {kind} name or a YAML file, got {value!r}",
                        file=file, where=where)
    p = Path(value)
    if not p.is_absolute() and (spec_dir / p).is_file():
        return str(spec_dir / p)
    return value


def _check_seed(value: Any, file: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise UserError(f"seed must be an integer from 0 to {2**63 - 1}, got {value!r}",
                        file=file, where=where)
    return value


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a SPEC and resolve every point, so bad names fail before any run.

    Structure, names (workflows, archs, policies) and ``--set`` paths are checked here; a
    value that only the run rejects (say a negative latency) fails that point alone."""
    file = str(path)
    data = load_yaml_file(file)
    if not isinstance(data, dict):
        raise UserError("expected a mapping with base: and grid:", file=file)
    for k in data:
        if k not in SPEC_KEYS:
            raise UserError(f"unknown field {k!r}; expected {', '.join(SPEC_KEYS)}",
                            file=file, where=str(k))
    base = data.get("base")
    if not isinstance(base, dict):
        raise UserError("expected a mapping {workflow, arch, policy, seed}", file=file,
                        where="base")
    for k in base:
        if k not in BASE_KEYS:
            raise UserError(f"unknown field {k!r}; expected {', '.join(BASE_KEYS)}",
                            file=file, where=f"base.{k}")
    grid = data.get("grid", {})
    if grid is None:
        grid = {}
    if not isinstance(grid, dict):
        raise UserError("expected a mapping {KEY: [values]}", file=file, where="grid")
    spec_dir = Path(file).parent
    fixed_sets: list[str] = []
    base_sets = base.get("set") or {}
    if not isinstance(base_sets, dict):
        raise UserError("expected a mapping {KEY: VALUE}", file=file, where="base.set")
    for k, v in base_sets.items():
        where = f"base.set.{k}"
        key = _check_key(k, file, where)
        if key in REF_KEYS:
            raise UserError(f"give {key} as base.{key}, not under base.set", file=file,
                            where=where)
        fixed_sets.append(_set_item(key, v, file, where))
    if "workflow" not in base and "workflow" not in grid:
        raise UserError("a workflow is required (base.workflow or grid.workflow)", file=file,
                        where="base")
    n_points = 1
    for k, values in grid.items():
        where = f"grid.{k}"
        _check_key(k, file, where)
        if not isinstance(values, list) or not values:
            raise UserError("expected a non-empty list of values", file=file, where=where)
        n_points *= len(values)
        if n_points > MAX_POINTS:
            raise UserError(f"more than {MAX_POINTS:,} points", file=file, where="grid")
    grid_items: dict[str, list[tuple[Any, Any]]] = {}  # key -> [(shown value, item)]
    for k, values in grid.items():
        items: list[tuple[Any, Any]] = []
        for i, v in enumerate(values):
            where = f"grid.{k}[{i}]"
            if k in ("workflow", "arch"):
                items.append((v, _ref(v, k, spec_dir, file, where)))
            elif k == "policy":
                if not isinstance(v, str) or not v:
                    raise UserError(f"expected a policy name, got {v!r}", file=file,
                                    where=where)
                items.append((v, v))
            elif k == "seed":
                items.append((v, _check_seed(v, file, where)))
            else:
                items.append((v, _set_item(k, v, file, where)))
        grid_items[k] = items
    refs = {
        "workflow": base.get("workflow"),
        "arch": base.get("arch", "octopus-chip"),
        "policy": base.get("policy", "static"),
        "seed": base.get("seed", 1),
    }
    for k in ("workflow", "arch"):
        if refs[k] is not None or k not in grid:
            refs[k] = _ref(refs[k], k, spec_dir, file, f"base.{k}")
    if not isinstance(refs["policy"], str) or not refs["policy"]:
        raise UserError(f"expected a policy name, got {refs['policy']!r}", file=file,
                        where="base.policy")
    refs["seed"] = _check_seed(refs["seed"], file, "base.seed")
    shown_base = {k: base.get(k, refs[k]) for k in REF_KEYS}
    spec = SweepSpec(file, dict(base), {k: list(v) for k, v in grid.items()})
    keys = list(grid_items)
    seen: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*(grid_items[k] for k in keys)):
        run = dict(refs)
        params = dict(shown_base)
        sets = list(fixed_sets)
        for k, (shown, item) in zip(keys, combo, strict=True):
            params[k] = shown
            if k in REF_KEYS:
                run[k] = item
            else:
                sets.append(item)
        rs = RunSpec(str(run["workflow"]), str(run["arch"]), str(run["policy"]),
                     int(run["seed"]), tuple(sets))
        try:
            cfg = resolve_config(rs.workflow, rs.arch, rs.policy, rs.seed, list(rs.sets))
        except UserError as exc:
            shown_point = ", ".join(f"{k}={params[k]}" for k in keys) or "base"
            raise UserError(f"point {shown_point}: {exc.line().removeprefix('error: ')}",
                            file=file) from None
        key = point_key(cfg.to_dict())
        if key in seen:  # two grid values that resolve alike would be one stored point
            raise UserError(f"points {seen[key]} and {params} resolve to the same "
                            "configuration", file=file, where="grid")
        seen[key] = params
        spec.points.append(Point(key, params, rs))
    return spec


# --------------------------------------------------------------------------- the store


def store_path(out: str | Path) -> Path:
    return Path(out) / STORE_NAME


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=30.0)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: durable against process kills
    return con


def open_store(out: str | Path) -> sqlite3.Connection:
    """Create ``DIR/sweep.sqlite`` if needed (bad DIR -> UserError)."""
    path = store_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = _connect(path)
        con.execute(_SCHEMA)
        con.commit()
    except (OSError, sqlite3.Error) as exc:
        raise UserError(f"cannot open the sweep store: {exc}", file=str(out)) from None
    return con


def _done_keys(con: sqlite3.Connection) -> set[str]:
    return {k for (k,) in con.execute("SELECT key FROM points WHERE summary IS NOT NULL")}


def _write(con: sqlite3.Connection, out: PointOutcome) -> None:
    con.execute(
        "INSERT OR REPLACE INTO points (key, params, summary, error, version, wall_seconds, "
        "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (out.point.key, json.dumps(out.point.params),
         None if out.summary is None else json.dumps(out.summary), out.error, __version__,
         out.wall_seconds, time.time()))
    con.commit()


# --------------------------------------------------------------------------- executors


def _outcome(point: Point, res: RunResult) -> PointOutcome:
    wall = res.summary.get("wall_seconds") if res.summary else None
    return PointOutcome(point, res.summary, res.error, wall)


def _run_local(points: list[Point], workers: int,
               sink: Callable[[PointOutcome], None]) -> None:
    by_spec = {p.spec: p for p in points}  # RunSpec is frozen and hashable; keys are unique
    # run_many calls back in this process as each point finishes, so the store is written here.
    run_many([p.spec for p in points], workers,
             lambda res: sink(_outcome(by_spec[res.spec], res)))


def _run_dask(points: list[Point], workers: int, address: str | None,
              sink: Callable[[PointOutcome], None]) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - a declared dependency
        raise UserError("--executor dask needs dask[distributed] (pip install "
                        "'dask[distributed]')") from None
    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(Client(address, timeout="20s"))
            except (OSError, TimeoutError) as exc:
                raise UserError(f"cannot reach the dask scheduler: {exc}",
                                where=f"--address {address}") from None
        else:
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        slots = max(2, 2 * sum(client.nthreads().values()))
        todo = iter(points)
        futures = {}
        for p in itertools.islice(todo, slots):
            futures[client.submit(run_spec, p.spec, key=f"octosim-{p.key}", pure=False)] = p
        ac = as_completed(list(futures))
        for fut in ac:
            p = futures.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:  # the worker died or the task could not run
                res = RunResult(p.spec, None, f"bug: dask task failed: {exc!r}")
            sink(_outcome(p, res))
            nxt = next(todo, None)
            if nxt is not None:
                f = client.submit(run_spec, nxt.spec, key=f"octosim-{nxt.key}", pure=False)
                futures[f] = nxt
                ac.add(f)


# --------------------------------------------------------------------------- the sweep


def run_sweep(spec: SweepSpec | str | Path, out: str | Path, *, executor: str = "local",
              workers: int | None = None, address: str | None = None,
              on_start: Callable[[int, int], None] | None = None,
              on_point: Callable[[PointOutcome], None] | None = None) -> SweepStats:
    """Run the points of ``spec`` not yet stored with a summary; store each as it finishes.

    ``on_start(total, skipped)`` and ``on_point(outcome)`` (called after the point is
    committed) let a caller draw progress; nothing is printed here."""
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: expected at least 1")
    if address and executor != "dask":
        raise UserError("--address is for --executor dask")
    con = open_store(out)
    try:
        done = _done_keys(con)
        todo = [p for p in spec.points if p.key not in done]
        stats = SweepStats(str(out), len(spec.points), len(spec.points) - len(todo))
        if on_start:
            on_start(stats.points, stats.skipped)
        if not todo:
            return stats
        n = workers or default_workers()

        def sink(outcome: PointOutcome) -> None:
            _write(con, outcome)
            stats.ran += 1
            if outcome.error is not None:
                stats.failed += 1
            if on_point:
                on_point(outcome)

        if executor == "dask":
            _run_dask(todo, n, address, sink)
        else:
            _run_local(todo, n, sink)
        return stats
    finally:
        con.close()


# --------------------------------------------------------------------------- results

ROW_METRICS = ("instances", "makespan_cycles", "lower_bound_cycles", "bound_ratio",
               "throughput_per_second", "pea_utilization", "pea_occupancy",
               "reconfigurations", "events")


def _flat_row(params: dict[str, Any], summary: dict[str, Any] | None,
              error: str | None, wall: float | None, key: str, version: str,
              finished_at: float) -> dict[str, Any]:
    row: dict[str, Any] = dict(params)
    s = summary or {}
    for m in ROW_METRICS:
        row[m] = s.get(m)
    lat = s.get("latency_cycles") or {}
    for q in ("mean", "p50", "p95", "p99", "max"):
        row[f"latency_{q}_cycles"] = lat.get(q)
    idle = s.get("idle") or {}
    for name in ("starved", "blocked", "reconfiguring", "unbound", "memory_stalled",
                 "transfer"):
        row[f"idle_{name}"] = idle.get(name)
    row["wall_seconds"] = wall
    row["error"] = error
    row["key"] = key
    row["version"] = version
    row["finished_at"] = finished_at
    return row


def load_rows(out: str | Path) -> list[dict[str, Any]]:
    """One flat row per stored point (failed ones too, with ``error`` set and metrics None):
    its params, then metrics, in the order the points finished. Not a sweep -> UserError."""
    path = store_path(out)
    if not Path(out).is_dir():
        raise UserError("no such directory", file=str(out))
    if not path.is_file():
        raise UserError(f"not a sweep directory (no {STORE_NAME})", file=str(out))
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            cur = con.execute("SELECT key, params, summary, error, version, wall_seconds, "
                              "finished_at FROM points ORDER BY finished_at, key")
            raw = cur.fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise UserError(f"not a sweep store: {exc}", file=str(path)) from None
    rows = []
    for key, params, summary, error, version, wall, finished in raw:
        rows.append(_flat_row(json.loads(params), json.loads(summary) if summary else None,
                              error, wall, key, version, finished))
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV with the union of the rows' columns (first-seen order); nested values as JSON."""
    import csv
    import io

    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if r.get(c) is None else
                    json.dumps(r[c]) if isinstance(r.get(c), dict | list) else r[c]
                    for c in cols])
    return buf.getvalue()
