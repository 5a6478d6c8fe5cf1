"""octosim: Orchestrated AI Workflows on scale-out spatial architectures.

``octosim.simulate(...)`` (see :mod:`octosim.api`) is loaded on first use, so that importing
the package (every CLI call does) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["SimResult", "UserError", "__version__", "simulate", "sweep_results"]

if TYPE_CHECKING:
    from octosim.api import SimResult, simulate, sweep_results
    from octosim.errors import UserError

_LAZY = {"simulate": "octosim.api", "SimResult": "octosim.api", "sweep_results": "octosim.api",
         "UserError": "octosim.errors"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'octosim' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
