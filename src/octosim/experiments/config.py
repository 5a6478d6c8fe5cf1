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
from octosim.workloads import label, resolve

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
    # The run config file (a run directory's config.yaml) this came from, if any: messages
    # then name it and the section (``workflow.tasks.a``), not the embedded documents.
    source: str | None = None

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
            raise self._in_source(self._blame_set(exc, "workflow"), "workflow") from None
        try:
            arch = parse_arch(self.arch, self.arch_file)
        except UserError as exc:
            raise self._in_source(self._blame_set(exc, "arch"), "arch") from None
        params = {k: v for k, v in self.policy.items() if k != "name"}
        try:
            policy = get_policy(str(self.policy["name"])).from_dict(params, file="")
        except UserError as exc:
            raise self.locate(exc) from None
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

    def _in_source(self, exc: UserError, section: str) -> UserError:
        if not self.source or exc.file != self.source:
            return exc
        return UserError(exc.what, file=self.source,
                         where=f"{section}.{exc.where}" if exc.where else section)

    def locate(self, exc: UserError) -> UserError:
        """Give an error that names no file the input it came from (DESIGN section 6:
        ``error: FILE: where: what``): a policy parameter names the ``--set`` item or the run
        config that gave it, or ``--policy``; a defect names the arch."""
        if exc.file or exc.what.startswith("--"):  # already names its file or its option
            return exc
        where = exc.where or ""
        if where == "policy" or where.startswith(("policy.", "policy[")):
            for key in reversed(self.sets):
                if where == key or where.startswith((key + ".", key + "[")):
                    rest = where[len(key) + 1:] or None
                    return UserError(exc.what, file=f"--set {key}", where=rest)
            if self.source:
                return UserError(exc.what, file=self.source, where=where)
            return UserError(exc.what, file="--policy", where=where)
        if where == "defects" or where.startswith("defects."):
            return self._in_source(self._blame_set(exc.within(file=self.arch_file), "arch"),
                                   "arch")
        # A request the combination cannot meet (too few TBUs for the task types, say): name
        # the combination.
        whole = self.source or (f"{self.workflow_file} on {self.arch_file} under "
                                f"{self.policy.get('name')}")
        return UserError(exc.what, file=whole, where=exc.where)


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
        get_policy_named(value, "--set policy")
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
        return raw, label(kind, path)
    raw = copy.deepcopy(raw)
    if kind == "workflow":
        _anchor_model_files(raw, path.parent)
    return raw, label(kind, path)


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


def split_policy_key(key: str) -> tuple[str | None, str]:
    """``octopus:policy.pcs`` -> ``("octopus", "policy.pcs")``: a ``--set`` for one policy only
    (DESIGN section 6, for ``compare``); a plain key -> ``(None, key)``."""
    head, colon, rest = key.partition(":")
    if not colon:
        return None, key
    if not head.strip() or not rest.strip():
        raise UserError("expected POLICY:KEY=VALUE, e.g. octopus:policy.pcs=false",
                        file=f"--set {key}")
    get_policy_named(head.strip(), f"--set {key}")
    return head.strip(), rest.strip()


def set_policies(sets: list[str] | None) -> dict[str, str]:
    """The policies named by ``POLICY:KEY=VALUE`` items (checked to be registered), each with
    the first such key, for messages."""
    names: dict[str, str] = {}
    for item in sets or []:
        if "=" in item:
            key = item.partition("=")[0].strip()
            pol, _ = split_policy_key(key)
            if pol is not None:
                names.setdefault(pol, key)
    return names


def get_policy_named(name: str, source: str) -> type[Policy]:
    """The registered policy ``name``; an unknown one is reported as coming from ``source``
    (``--policy``, ``--set policy``, a run config) rather than from nowhere."""
    try:
        return get_policy(name)
    except UserError as exc:
        if exc.file:
            raise
        where = None if exc.where in (None, "policy") else exc.where  # a plug-in's is kept
        if where is None and not source.startswith("--"):
            where = "policy"
        raise UserError(exc.what, file=source, where=where) from None


def resolve_config(workflow: str | os.PathLike[str] | Mapping[str, Any],
                   arch: str | os.PathLike[str] | Mapping[str, Any], policy: str,
                   seed: int = 1, sets: list[str] | None = None,
                   faults: list[str] | None = None,
                   values: Sequence[tuple[str, Any]] = ()) -> RunConfig:
    """The configuration of one run. ``workflow`` and ``arch`` are built-in names, paths, or
    documents as data (the Python API); ``sets`` are ``--set KEY=VALUE`` items (VALUE YAML
    text; ``POLICY:KEY=VALUE`` items apply only when ``policy`` is POLICY) and ``values`` the
    same as ``(KEY, value)`` pairs already parsed, applied after them."""
    wf_raw, wf_file = _source("workflow", workflow)
    arch_raw, arch_file = _source("arch", arch)
    cfg: dict[str, Any] = {"workflow": wf_raw, "arch": arch_raw, "policy": {"name": policy},
                           "seed": seed}
    get_policy_named(policy, "--policy")
    return _edit(cfg, wf_file, arch_file, sets, faults, None, values)


def _edit(cfg: dict[str, Any], wf_file: str, arch_file: str, sets: list[str] | None,
          faults: list[str] | None, source: str | None,
          values: Sequence[tuple[str, Any]] = ()) -> RunConfig:
    keys: list[str] = []
    for item_key, v in [*(parse_set(item) for item in sets or []), *values]:
        pol, k = split_policy_key(item_key)
        if pol is not None and pol != cfg["policy"].get("name"):
            continue
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

    all_faults = [*cfg.get("faults", []), *(faults or [])]
    for f in all_faults:
        Fault.parse(f)  # a malformed fault is reported before anything runs
    try:
        seed = check_seed(cfg["seed"])
    except UserError as exc:
        raise UserError(exc.what, file=source or ("--set seed" if "seed" in keys else "--seed")
                        ) from None
    return RunConfig(cfg["workflow"], wf_file, cfg["arch"], arch_file, cfg["policy"], seed,
                     sets=keys, faults=tuple(all_faults), source=source)


RUN_CONFIG_KEYS = ("workflow", "arch", "policy", "seed", "faults")


def is_run_config(data: Any) -> bool:
    """A run directory's ``config.yaml`` (workflow, arch, policy, seed), not a workflow."""
    return isinstance(data, dict) and "workflow" in data and "owg" not in data


def load_run_config(path: str, seed: int | None = None, sets: list[str] | None = None,
                    faults: list[str] | None = None) -> RunConfig:
    """Read the ``config.yaml`` that ``run --out DIR`` wrote, so ``octosim run DIR/config.yaml``
    repeats that run exactly (DESIGN section 6); ``--seed``, ``--set`` and ``--fault`` may
    still edit it."""
    data = load_yaml_file(path)
    if not is_run_config(data):
        raise UserError("not a run config: expected workflow, arch, policy and seed", file=path)
    for key in data:
        if key not in RUN_CONFIG_KEYS:
            raise UserError(f"unknown field; a run config has {', '.join(RUN_CONFIG_KEYS)}",
                            file=path, where=str(key))
    for key in ("workflow", "arch", "policy", "seed"):
        if key not in data:
            raise UserError("missing", file=path, where=key)
    for key in ("workflow", "arch"):
        if not isinstance(data[key], dict):
            raise UserError(f"expected a mapping, got {type(data[key]).__name__}", file=path,
                            where=key)
    pol = data["policy"]
    if isinstance(pol, str):
        pol = {"name": pol}
    if not isinstance(pol, dict) or not isinstance(pol.get("name"), str):
        raise UserError("expected a mapping with a policy name", file=path, where="policy")
    get_policy_named(pol["name"], path)
    run_faults = data.get("faults", [])
    if not isinstance(run_faults, list) or not all(isinstance(f, str) for f in run_faults):
        raise UserError("expected a list of faults (UNIT:ID@CYCLE)", file=path, where="faults")
    cfg: dict[str, Any] = {"workflow": copy.deepcopy(data["workflow"]),
                           "arch": copy.deepcopy(data["arch"]), "policy": dict(pol),
                           "seed": data["seed"] if seed is None else seed,
                           "faults": run_faults}
    return _edit(cfg, path, path, sets, faults, path)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
