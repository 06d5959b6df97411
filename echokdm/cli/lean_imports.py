"""MONAI without the optional libraries it imports for features echokdm does not use.

MONAI's package ``__init__`` imports every submodule, and with them optional libraries for features echokdm does
not use from MONAI: matplotlib (notebook plots; pyplot builds matplotlib's font cache in the command's private
cache folder, about a second on 2 cores), pandas (profiling tables), OpenCV (ultrasound confidence maps),
jsonschema (bundle configs) and scikit-learn (embedding metrics). While ``monai`` itself is imported in the
``echokdm`` executable, those look absent: MONAI's optional imports of them stay unresolved placeholders (its
``has_matplotlib`` flag is False), nothing else changes, and they import normally afterwards wherever echokdm
uses them.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

#: modules that look absent while MONAI's package initialises (unless already imported)
HIDDEN = ("matplotlib", "pandas", "cv2", "jsonschema", "sklearn")


class _LeanLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        hidden = [name for name in HIDDEN if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # "import name" raises ImportError
        try:
            self.loader.exec_module(module)
        finally:
            for name in hidden:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]


class LeanMonaiFinder(importlib.abc.MetaPathFinder):
    """Finds ``monai`` as usual and initialises it with :data:`HIDDEN` absent."""

    def find_spec(self, name, path, target=None):
        if name != "monai":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _LeanLoader(spec.loader)
        return spec


def install() -> None:
    """Initialise MONAI lean from now on in this process (nothing to do once it is imported)."""
    if "monai" not in sys.modules and not any(isinstance(f, LeanMonaiFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, LeanMonaiFinder())


__all__ = ["HIDDEN", "LeanMonaiFinder", "install"]
