"""Package attributes imported from their submodules on first use (PEP 562).

A package whose ``__init__`` imported every submodule would make ``import echokdm.predict`` load torch and the
models; with :func:`lazy_exports` checking an input first loads neither.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str], namespace: dict[str, Any]) -> tuple[Callable, Callable]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        exports: exported name -> submodule that defines it (imported when the name is first used).
        namespace: the package's ``globals()``; a name once imported is kept there.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
