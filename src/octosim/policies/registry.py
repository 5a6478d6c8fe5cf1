"""Registry of policies, found the same way whether built in or third-party.

Built-in policies are the modules of the :mod:`octosim.policies` package (every module but
``base``, ``registry`` and private ``_*`` ones); third-party ones are the entry points of the
group ``octosim.policies``, each naming a :class:`Policy` subclass (``fifo = pkg.mod:Fifo``) or
a module whose ``@register`` classes register themselves. A new policy is one file: a module
here, or a module plus an entry point in its own distribution. Both are loaded by
:func:`_load_source`, and :func:`register` checks every class as it is registered.

Lookups load as little as they can: a built-in name never loads a plug-in, and another name
loads only the entry point of that name, so a broken plug-in breaks only what uses it (and
``octosim list policies``, which loads them all). A plug-in that fails to load, is not a valid
policy or takes a name already registered is a :class:`UserError` that names it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from octosim.errors import UserError
from octosim.policies.base import Policy, PolicyParams

GROUP = "octosim.policies"
PACKAGE = "octosim.policies"
NOT_POLICIES = frozenset({"base", "registry"})
# A name is typed on the command line and in ``--policies A,B`` and ``POLICY:KEY=VALUE``.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_REGISTRY: dict[str, type[Policy]] = {}
_BUILTINS_LOADED = False
_PLUGINS_LOADED: set[str] = set()  # entry-point names already loaded
_ALL_PLUGINS_LOADED = False


class InvalidPolicy(TypeError):
    """A class that cannot be registered as a policy."""


class PolicyNameTaken(ValueError):
    """A policy's name is already registered to another class."""


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_builtin(cls: type) -> bool:
    return cls.__module__.startswith(PACKAGE + ".")


def check_policy_class(cls: object) -> type[Policy]:
    """``cls`` if it is a policy class that can run, else :class:`InvalidPolicy` saying why."""
    if not (isinstance(cls, type) and issubclass(cls, Policy)) or cls is Policy:
        raise InvalidPolicy(f"{cls!r} is not a subclass of octosim.policies.base.Policy")
    where = _origin(cls)
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidPolicy(f"{where} has no name (set the class attribute name = '...')")
    if not NAME.fullmatch(name):
        raise InvalidPolicy(f"{where}: name {name!r} must be letters, digits, '_', '.' or "
                            "'-', starting with a letter or digit")
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, PolicyParams)):
        raise InvalidPolicy(f"{where}: Params must be a pydantic model subclassing "
                            "octosim.policies.base.PolicyParams")
    if cls.on_ready is Policy.on_ready:
        raise InvalidPolicy(f"{where} does not implement on_ready(run): it could never start "
                            "work")
    return cls


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make a policy available by its ``name``.

    Raises :class:`InvalidPolicy` (a :class:`TypeError`) if ``cls`` cannot be a policy (see
    :func:`check_policy_class`) and :class:`PolicyNameTaken` (a :class:`ValueError`) if
    another class already has its name."""
    check_policy_class(cls)
    other = _REGISTRY.get(cls.name)
    if other is not None and other is not cls:
        kind = "built-in policy" if _is_builtin(other) else "policy"
        raise PolicyNameTaken(f"policy name {cls.name!r} of {_origin(cls)} is already taken "
                              f"by the {kind} {_origin(other)}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_source(label: str, load: Callable[[], object], plugin: bool) -> object:
    """Import one source of policies: a module, or an entry point naming a module or a class;
    return what was loaded.

    Its ``@register`` classes register themselves on import; a class an entry point names is
    registered here. For a plug-in, any failure is a :class:`UserError` naming ``label`` and
    leaves the registry as it was; a built-in that fails is a bug and propagates."""
    before = dict(_REGISTRY)
    try:
        obj = load()
        if not isinstance(obj, ModuleType):
            register(check_policy_class(obj))
    except Exception as exc:
        _restore(before)
        if not plugin:
            raise
        what = str(exc) if isinstance(exc, InvalidPolicy | PolicyNameTaken) else (
            f"cannot be loaded: {type(exc).__name__}: {exc}")
        raise UserError(what, where=label) from None
    return obj


def _same(value: object) -> object:
    return value


def _restore(state: dict[str, type[Policy]]) -> None:
    _REGISTRY.clear()
    _REGISTRY.update(state)


def _builtin_modules() -> list[str]:
    """The modules of the policies package that hold policies (found, not imported)."""
    package = importlib.import_module(PACKAGE)
    names = []
    for info in pkgutil.iter_modules(package.__path__, PACKAGE + "."):
        short = info.name.rpartition(".")[2]
        if short not in NOT_POLICIES and not short.startswith("_"):
            names.append(info.name)
    return names


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    for name in _builtin_modules():
        _load_source(name, partial(importlib.import_module, name), plugin=False)
    _BUILTINS_LOADED = True


def _plugin_label(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    source = f"{ep.value}, from {dist.name} {dist.version}" if dist is not None else ep.value
    return f"policy plug-in {ep.name!r} ({source})"


def _load_plugin(ep: EntryPoint) -> None:
    """Load one entry point; it must provide the policy of its own name."""
    if ep.name in _PLUGINS_LOADED:
        return
    label = _plugin_label(ep)
    taken = _REGISTRY.get(ep.name)
    if taken is not None and _is_builtin(taken):
        raise UserError(f"its name clashes with the built-in policy {ep.name!r} "
                        f"({_origin(taken)}): rename the plug-in's policy", where=label)
    before = dict(_REGISTRY)
    obj = _load_source(label, ep.load, plugin=True)
    if isinstance(obj, ModuleType):
        if ep.name not in _REGISTRY:
            # Already imported before (its decorators ran then): register its class again.
            for value in vars(obj).values():
                if (isinstance(value, type) and issubclass(value, Policy)
                        and value.__module__ == obj.__name__
                        and value.__dict__.get("name") == ep.name):
                    _load_source(label, partial(_same, value), plugin=True)
                    break
        if ep.name not in _REGISTRY:
            _restore(before)
            raise UserError(f"module {obj.__name__} registers no policy named {ep.name!r} "
                            "(the entry point's name must be the policy's name)", where=label)
    elif isinstance(obj, type) and getattr(obj, "name", None) != ep.name:
        _restore(before)
        raise UserError(f"{_origin(obj)} is named {getattr(obj, 'name', None)!r}: the entry "
                        "point's name must be the policy's name", where=label)
    _PLUGINS_LOADED.add(ep.name)


def _plugin_entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=GROUP), key=lambda ep: ep.name)


def _load_plugins(only: str | None = None) -> None:
    global _ALL_PLUGINS_LOADED
    if _ALL_PLUGINS_LOADED:
        return
    seen: dict[str, EntryPoint] = {}
    for ep in _plugin_entry_points():
        if only is not None and ep.name != only:
            continue
        first = seen.setdefault(ep.name, ep)
        if first is not ep and first.value != ep.value:
            raise UserError(f"two plug-ins provide it: {ep.value} and {first.value}",
                            where=f"policy plug-in {ep.name!r}")
        _load_plugin(ep)
    if only is None:
        _ALL_PLUGINS_LOADED = True


def refresh() -> None:
    """Forget what was found so far: the next lookup looks for modules and entry points again
    (for a policy module or a distribution added, or removed, while the process runs)."""
    global _BUILTINS_LOADED, _ALL_PLUGINS_LOADED
    keep = set(_builtin_modules())
    for name, cls in list(_REGISTRY.items()):
        if cls.__module__ not in keep:
            del _REGISTRY[name]
    _BUILTINS_LOADED = False
    _PLUGINS_LOADED.clear()
    _ALL_PLUGINS_LOADED = False


def policies() -> dict[str, type[Policy]]:
    """Every policy, built-in and plug-in, by name."""
    _load_builtins()
    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


def get_policy(name: str) -> type[Policy]:
    _load_builtins()
    if name not in _REGISTRY:
        _load_plugins(only=name)
    if name not in _REGISTRY:
        _load_plugins()  # a plug-in module may register policies besides its own name
    if name not in _REGISTRY:
        known = sorted(set(_REGISTRY) | {ep.name for ep in _plugin_entry_points()})
        raise UserError(f"unknown policy {name!r}; known: {', '.join(known)}", where="policy")
    return _REGISTRY[name]


def make_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    return get_policy(name).from_dict(params)
