"""Registry of policies: built-ins plus third-party ones from the entry-point group
``octosim.policies`` (each entry point names a :class:`Policy` subclass)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from octosim.errors import UserError
from octosim.policies.base import Policy

_REGISTRY: dict[str, type[Policy]] = {}
_LOADED_ENTRY_POINTS = False


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make a policy available by its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"policy {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    from octosim.policies import indiscriminate, octopus, reactive, static  # noqa: F401


def _load_entry_points() -> None:
    global _LOADED_ENTRY_POINTS
    if _LOADED_ENTRY_POINTS:
        return
    _LOADED_ENTRY_POINTS = True
    for ep in entry_points(group="octosim.policies"):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must not break the simulator
            raise UserError(f"cannot load policy plug-in {ep.name!r}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise UserError(f"plug-in {ep.name!r} is not a Policy subclass")
        _REGISTRY.setdefault(cls.name, cls)


def policies() -> dict[str, type[Policy]]:
    _load_builtins()
    _load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def get_policy(name: str) -> type[Policy]:
    table = policies()
    if name not in table:
        raise UserError(f"unknown policy {name!r}; known: {', '.join(table)}", where="policy")
    return table[name]


def make_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    return get_policy(name).from_dict(params)
