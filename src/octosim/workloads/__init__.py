"""Built-in workflows and architectures, shipped as YAML package data."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from octosim.errors import UserError

_KINDS = {"workflow": "workflows", "arch": "archs"}


def builtin_dir(kind: str) -> Path:
    return Path(str(files("octosim.workloads") / _KINDS[kind]))


def builtin_names(kind: str) -> list[str]:
    return sorted(p.stem for p in builtin_dir(kind).glob("*.yaml"))


def resolve(kind: str, ref: str) -> Path:
    """A built-in name or a path to a file."""
    p = Path(ref)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in ref or "\\" in ref:
        if not p.exists():
            raise UserError("no such file", file=ref)
        return p
    candidate = builtin_dir(kind) / f"{ref}.yaml"
    if candidate.exists():
        return candidate
    raise UserError(f"unknown {kind} {ref!r}; built-in: {', '.join(builtin_names(kind))} "
                    "(or give a path to a YAML file)", file=ref)


def label(kind: str, path: Path) -> str:
    """How error messages name a file: a built-in by its name (``octopus-chip``), not by where
    the package happens to be installed; any other file by its path as given."""
    try:
        if path.resolve().parent == builtin_dir(kind).resolve() and path.suffix == ".yaml":
            return path.stem
    except OSError:
        pass
    return str(path)
