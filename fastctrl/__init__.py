"""fastctrl: per-request latency-budget controllers for vision-language models.

- :class:`ActionSpace` / :class:`Config`: the knobs (max_crops, top_k, num_active_blocks).
- :class:`Controller`: pooled image + text features + encoded budget -> one choice per knob.
- :func:`make_engine`: decisions through the torch reference, the fused Triton kernel or the
  INT8 C++ engine.
- :func:`hook`: run a controller inside a transformers VLM's forward.
- The stages of the offline flow, each a subpackage with its CLI (``python -m fastctrl.<stage>``):
  ``fastctrl.profile`` (profile tables and their sources) -> ``fastctrl.env`` (the bandit,
  reward, baselines, metrics on the table) -> ``fastctrl.train`` (five methods) ->
  ``fastctrl.compare`` (the E5 experiment); ``fastctrl.model_hook`` holds the hook;
  ``fastctrl.recursive_control``: the double-integrator / LQR benchmark.
"""

from __future__ import annotations

from .engines import Engine, EngineUnavailableError, make_engine
from .model_hook import HookHandle, HookStats, hook
from .policy import Controller, ControllerConfig
from .space import ActionSpace, Config, Knob

__version__ = "0.1.0"

__all__ = [
    "ActionSpace",
    "Config",
    "Controller",
    "ControllerConfig",
    "Engine",
    "EngineUnavailableError",
    "HookHandle",
    "HookStats",
    "Knob",
    "__version__",
    "hook",
    "make_engine",
]
