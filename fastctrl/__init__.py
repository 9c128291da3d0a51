"""fastctrl: per-request latency-budget controllers for vision-language models."""

from __future__ import annotations

from .engines import Engine, EngineUnavailableError, make_engine
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
    "Knob",
    "__version__",
    "make_engine",
]
