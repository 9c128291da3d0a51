"""In-engine control: ``fastctrl.hook(model, controller, budget_ms=...)`` runs a controller
inside a transformers VLM's own forward.

- :mod:`.handle`: :func:`hook` and :class:`HookHandle` (public API: budgets, ``pin``,
  ``remove``, stats), and what one hooked forward does;
- :mod:`.capture`: pooling the features the forward computes anyway;
- :mod:`.apply`: applying a config (vision tokens kept, router ``top_k``, blocks run);
- :mod:`.decode`: the decision held through ``generate()``'s decode steps;
- :mod:`.stats`: live counters; :mod:`.families`: one declaration per model family
  (:func:`supported_families`); :mod:`.tiny`: tiny random-weight models for tests and demos.

(The package is ``model_hook`` so that ``fastctrl.hook`` stays the function.)
"""

from __future__ import annotations

from .families import Adapter, UnsupportedModelError, find_adapter, supported_families
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
