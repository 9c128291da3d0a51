"""``fastctrl.hook(model, controller, budget_ms=...)``: run a controller inside a VLM's forward.

See :mod:`fastctrl.hook.handle` for what happens in a hooked forward, and
:mod:`fastctrl.hook.adapters` for the supported model families.
"""

from __future__ import annotations

from .adapters import Adapter, UnsupportedModelError, find_adapter, supported_families
from .handle import HookHandle, HookStats, hook

__all__ = [
    "Adapter",
    "HookHandle",
    "HookStats",
    "UnsupportedModelError",
    "find_adapter",
    "hook",
    "supported_families",
]
