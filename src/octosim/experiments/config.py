"""A run's resolved configuration: workflow, arch, policy and seed as plain data.

``--set KEY=VALUE`` edits it by dotted path before validation (``arch.noc.hop_cycles=0``,
``policy.partition.detect=4``, ``workflow.phases=[]``), so a resolved configuration is
everything needed to repeat a run, and its hash identifies it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from octosim.errors import UserError
from octosim.model.arch import ArchSpec, parse_arch
from octosim.model.loader import load_yaml_file, parse_yaml_text
from octosim.model.workflow import Workflow, parse_workflow
from octosim.policies.base import Policy
from octosim.policies.registry import get_policy
from octosim.workloads import resolve

MAX_SEED = 2**63 - 1


@dataclass
class RunConfig:
    workflow: dict[str, Any]
    workflow_file: str
    arch: dict[str, Any]
    arch_file: str
    policy: dict[str, Any]  # {"name": ..., params...}
    seed: int
    sets: list[str] = field(default_factory=list)  # dotted keys given by --set (for messages)
    faults: tuple[str, ...] = ()  # --fault items, checked by Fault.parse

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"workflow": self.workflow, "arch": self.arch,
                             "policy": self.policy, "seed": self.seed}
        if self.faults:
            d["faults"] = list(self.faults)
        return d

    def key(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def build(self) -> tuple[Workflow, ArchSpec, Policy]:
        try:
            wf = parse_workflow(self.workflow, self.workflow_file)
        except UserError as exc:
            raise self._blame_set(exc, "workflow") from None
        try:
            arch = parse_arch(self.arch, self.arch_file)
        except UserError as exc:
            raise self._blame_set(exc, "arch") from None
        params = {k: v for k, v in self.policy.items() if k != "name"}
        policy = get_policy(str(self.policy["name"])).from_dict(params)
        return wf, arch, policy

    def _blame_set(self, exc: UserError, section: str) -> UserError:
        """Say so when the bad value came from ``--set`` rather than from the file."""
        where = f"{section}.{exc.where}" if exc.where else section
        for key in reversed(self.sets):
            if (where == key or where.startswith((key + ".", key + "["))
                    or key.startswith(where + ".")):
                return UserError(f"{exc.what} (set by --set {key})", file=exc.file,
                                 where=exc.where)
        return exc


def parse_set(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected KEY=VALUE")
    key, _, text = item.partition("=")
    key = key.strip()
    try:
        value = parse_yaml_text(text, f"--set {key}") if text.strip() else None
    except UserError as exc:
        raise UserError(f"--set {key}: {exc.what}") from None
    return key, value


def apply_set(cfg: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise UserError(f"--set {key!r}: not a dotted path")
    if parts[0] not in ("workflow", "arch", "policy", "seed"):
        raise UserError(f"--set {key}: the path must start with workflow., arch., policy. or "
                        "be seed")
    if parts == ["seed"]:
        cfg["seed"] = value
        return
    if parts == ["policy"]:
        if not isinstance(value, str):
            raise UserError(f"--set policy: expected a policy name, got {value!r}")
        cfg["policy"] = {"name": value}
        return
    node = cfg
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise UserError(f"--set {key}: {where} is not a mapping")
        node = nxt
    node[parts[-1]] = value


def scale_phases(wf: Any) -> None:
    """``--set workflow.arrivals.count=N`` without ``workflow.phases``: the phases keep their
    proportions (DESIGN.md section 5), their counts rounded by largest remainder so they add up
    to N; a phase rounded to no instance is left out. Anything malformed is left for the
    workflow's own validation to report."""
    if not isinstance(wf, dict):
        return
    arrivals, phases = wf.get("arrivals"), wf.get("phases")
    if not isinstance(arrivals, dict) or not isinstance(phases, list) or not phases:
        return
    count = arrivals.get("count")
    counts = [ph.get("count") if isinstance(ph, dict) else None for ph in phases]
    if (isinstance(count, bool) or not isinstance(count, int) or count < 1
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                       for c in counts)):
        return
    total = sum(counts)  # type: ignore[arg-type]
    if total <= 0 or total == count:
        return
    shares = [c * count / total for c in counts]  # type: ignore[operator]
    new = [int(x) for x in shares]
    order = sorted(range(len(shares)), key=lambda i: (new[i] - shares[i], i))
    for i in order[: count - sum(new)]:
        new[i] += 1
    wf["phases"] = [{**ph, "count": n} for ph, n in zip(phases, new, strict=True) if n > 0]


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}",
                        where="seed")
    return seed


@functools.lru_cache(maxsize=64)
def _load_stamped(path: str, mtime_ns: int, size: int) -> Any:
    return load_yaml_file(path)


def _load_cached(path: Path) -> Any:
    """A workflow/arch file parsed once per version of it: a sweep resolves thousands of
    points from the same two files, and YAML parsing was 90% of resolving one. Callers
    deep-copy what they edit (the cached value is never changed)."""
    try:
        st = path.stat()
    except OSError:
        return load_yaml_file(path)  # reports the problem in the usual way
    return _load_stamped(str(path), st.st_mtime_ns, st.st_size)


def _source(kind: str, ref: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Any, str]:
    """The raw document of a workflow or arch given by built-in name, path or as data, and the
    file name its messages use (``<workflow>`` for data)."""
    if isinstance(ref, Mapping):
        return copy.deepcopy(dict(ref)), f"<{kind}>"
    path = resolve(kind, os.fspath(ref))
    raw = _load_cached(path)
    if not isinstance(raw, dict):
        return raw, str(path)
    raw = copy.deepcopy(raw)
    if kind == "workflow":
        _anchor_model_files(raw, path.parent)
    return raw, str(path)


def _anchor_model_files(wf: dict[str, Any], base: Path) -> None:
    """``model: {onnx: FILE}`` relative to the workflow file becomes absolute, so that the
    resolved configuration (``run --out DIR/config.yaml``) names the same file wherever it is
    read from."""
    tasks = wf.get("tasks")
    if not isinstance(tasks, dict):
        return
    for task in tasks.values():
        model = task.get("model") if isinstance(task, dict) else None
        if not isinstance(model, dict):
            continue
        ref = model.get("onnx")
        if isinstance(ref, str) and ref and not Path(ref).expanduser().is_absolute():
            model["onnx"] = str((base / ref).absolute())


def resolve_config(workflow: str | os.PathLike[str] | Mapping[str, Any],
                   arch: str | os.PathLike[str] | Mapping[str, Any], policy: str,
                   seed: int = 1, sets: list[str] | None = None,
                   faults: list[str] | None = None,
                   values: Sequence[tuple[str, Any]] = ()) -> RunConfig:
    """The configuration of one run. ``workflow`` and ``arch`` are built-in names, paths, or
    documents as data (the Python API); ``sets`` are ``--set KEY=VALUE`` items (VALUE YAML
    text) and ``values`` the same as ``(KEY, value)`` pairs already parsed, applied after
    them."""
    wf_raw, wf_file = _source("workflow", workflow)
    arch_raw, arch_file = _source("arch", arch)
    cfg: dict[str, Any] = {"workflow": wf_raw, "arch": arch_raw, "policy": {"name": policy},
                           "seed": seed}
    get_policy(policy)
    keys: list[str] = []
    for k, v in [*(parse_set(item) for item in sets or []), *values]:
        if k.startswith("workflow.") and not isinstance(cfg["workflow"], dict):
            raise UserError("not a workflow mapping", file=wf_file)
        if k.startswith("arch.") and not isinstance(cfg["arch"], dict):
            raise UserError("not an arch mapping", file=arch_file)
        apply_set(cfg, k, v)
        keys.append(k)
    if "workflow.arrivals.count" in keys and not any(
            k == "workflow.phases" or k.startswith("workflow.phases.") for k in keys):
        scale_phases(cfg["workflow"])
    from octosim.engine.sim import Fault

    for f in faults or []:
        Fault.parse(f)  # a malformed fault is reported before anything runs
    return RunConfig(cfg["workflow"], wf_file, cfg["arch"], arch_file, cfg["policy"],
                     check_seed(cfg["seed"]), sets=keys, faults=tuple(faults or ()))


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
