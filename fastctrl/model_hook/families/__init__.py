"""One small declaration per model family; importing this package registers every module in
it (a new family is one new file here, nothing else to edit)."""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    Adapter,
    UnsupportedModelError,
    find_adapter,
    register,
    registered_adapters,
    supported_families,
)

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod != "base":
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = [
    "Adapter",
    "UnsupportedModelError",
    "find_adapter",
    "register",
    "registered_adapters",
    "supported_families",
]
