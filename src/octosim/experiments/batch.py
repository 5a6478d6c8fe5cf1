"""Running many configurations in worker processes, each failure kept to its own point.

A point is a :class:`RunSpec` (references and ``--set`` items: plain data, cheap to send to a
worker). A point that fails reports its error; the others go on. Results can be appended as
JSON lines as they finish, so a crash or an interrupt loses only the points in flight.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from octosim.errors import UserError


@dataclass(frozen=True)
class RunSpec:
    workflow: str
    arch: str
    policy: str
    seed: int = 1
    sets: tuple[str, ...] = ()
    tags: tuple[tuple[str, Any], ...] = field(default=())

    def tag(self, key: str, default: Any = None) -> Any:
        return dict(self.tags).get(key, default)


@dataclass
class RunResult:
    spec: RunSpec
    summary: dict[str, Any] | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"spec": asdict(self.spec), "summary": self.summary, "error": self.error}


def run_spec(spec: RunSpec) -> RunResult:
    """Run one point; bad input becomes an error string, a bug a traceback string."""
    from octosim.experiments.config import resolve_config
    from octosim.experiments.run import run_config

    try:
        cfg = resolve_config(spec.workflow, spec.arch, spec.policy, spec.seed, list(spec.sets))
        return RunResult(spec, run_config(cfg))
    except UserError as exc:
        return RunResult(spec, None, exc.line())
    except Exception:  # a bug in one point must not lose the others
        return RunResult(spec, None, "bug: " + traceback.format_exc(limit=8))


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def run_many(specs: Iterable[RunSpec], workers: int | None = None,
             on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Run points in ``workers`` processes (1: in this process); results in input order."""
    specs = list(specs)
    workers = workers or default_workers()
    results: list[RunResult | None] = [None] * len(specs)
    if workers <= 1 or len(specs) <= 1:
        for i, spec in enumerate(specs):
            results[i] = run_spec(spec)
            if on_result:
                on_result(results[i])  # type: ignore[arg-type]
        return [r for r in results if r is not None]
    for i, res in _pool(specs, workers):
        results[i] = res
        if on_result:
            on_result(res)
    return [r for r in results if r is not None]


def _pool(specs: list[RunSpec], workers: int) -> Iterator[tuple[int, RunResult]]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: dict[Future[RunResult], int] = {}
        it = iter(enumerate(specs))
        for i, spec in it:
            pending[pool.submit(run_spec, spec)] = i
            if len(pending) >= workers * 2:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:  # the worker process itself died
                    res = RunResult(specs[i], None, f"bug: worker failed: {exc!r}")
                yield i, res
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(run_spec, nxt[1])] = nxt[0]


class JsonLines:
    """Append-only log of finished points (flushed per line)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("a")

    def __call__(self, res: RunResult) -> None:
        self.fh.write(json.dumps(res.to_json()) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()
