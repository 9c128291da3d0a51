"""Tiny recursive controller and the double-integrator / LQR benchmark.

An exactly solvable problem (finite-horizon LQR on a double integrator) on which the training
stack must learn the known optimum. Modules: :mod:`.system` (dynamics and cost), :mod:`.lqr`
(Riccati oracle), :mod:`.data` and :mod:`.generate` (datasets), :mod:`.model`
(:class:`RecursiveRefiner`, :class:`TinyRecursiveControl`), :mod:`.train`, :mod:`.evaluate`,
:mod:`.compare`, :mod:`.export` (ONNX) and :mod:`.pipeline` (all of it in one command, also
``python -m fastctrl.control``).
"""

from __future__ import annotations

from .model import MODEL_SIZES, RecursiveRefiner, TinyRecursiveControl, TRCConfig
from .system import DoubleIntegrator

__all__ = ["MODEL_SIZES", "DoubleIntegrator", "RecursiveRefiner", "TRCConfig",
           "TinyRecursiveControl"]
