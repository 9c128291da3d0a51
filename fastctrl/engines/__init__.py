"""Decision engines behind one call: ``make_engine(controller, kind)``.

- ``torch``: the eager fp32 reference (the spec).
- ``triton``: one fused kernel launch per call (CUDA; CPU only under ``TRITON_INTERPRET=1``).
- ``int8``: the C++ engine in ``fastctrl._C`` (runtime CPU dispatch: scalar / AVX2 /
  AVX-512 VNNI / AMX).
- ``auto``: on a CUDA ``device``, ``triton`` (else ``torch`` on that device); otherwise
  ``int8`` when the extension is built, else ``torch``.
"""

from __future__ import annotations

import logging
import typing
from typing import Literal

import torch

from ..policy import Controller
from ..policy.export import EngineWeights, export_weights
from .base import Engine, EngineUnavailableError, check_inputs
from .torch_engine import TorchEngine

log = logging.getLogger(__name__)

EngineKind = Literal["auto", "torch", "triton", "int8"]
ENGINE_KINDS: tuple[str, ...] = typing.get_args(EngineKind)


def make_engine(controller: Controller, kind: EngineKind = "auto", **kwargs) -> Engine:
    """Build a decision engine for ``controller``.

    ``kind`` is one of ``auto``, ``torch``, ``triton``, ``int8``. Asking for an engine that cannot
    run here raises :class:`EngineUnavailableError` saying why. ``auto`` with
    ``device=<a CUDA device>`` (the hook passes the model's) picks the Triton engine there, so
    the features never leave the GPU, falling back to the torch reference on that device;
    otherwise it picks the fastest available CPU engine (int8) and falls back to torch.
    """
    if not isinstance(controller, Controller):
        raise TypeError(
            f"controller must be a fastctrl.Controller, got {type(controller).__name__}"
        )
    if kind not in ENGINE_KINDS:
        raise ValueError(f"engine kind must be one of {ENGINE_KINDS}, got {kind!r}")
    if kind == "torch":
        return TorchEngine(controller, **kwargs)
    if kind == "triton":
        from .triton_engine import TritonEngine

        return TritonEngine(controller, **kwargs)
    if kind == "int8":
        from .int8_engine import Int8Engine

        return Int8Engine(controller, **kwargs)
    # auto
    device = kwargs.pop("device", None)
    if device is not None and torch.device(device).type == "cuda":
        if controller.config.arch == "mlp":
            try:
                from .triton_engine import TritonEngine

                return TritonEngine(controller, device=device)
            except EngineUnavailableError as e:
                log.info("auto engine: triton unavailable on %s (%s); using torch", device, e)
        return TorchEngine(controller, device=device)
    if controller.config.arch == "mlp":
        try:
            from .int8_engine import Int8Engine

            return Int8Engine(controller, **kwargs)
        except EngineUnavailableError as e:
            log.info("auto engine: int8 unavailable (%s); using the torch reference", e)
    return TorchEngine(controller)


__all__ = [
    "ENGINE_KINDS",
    "Engine",
    "EngineKind",
    "EngineUnavailableError",
    "EngineWeights",
    "TorchEngine",
    "check_inputs",
    "export_weights",
    "make_engine",
]
