"""The Triton engine: one fused kernel launch per ``decide()`` (``fastctrl.kernels``).

Runs on CUDA tensors, or on CPU under ``TRITON_INTERPRET=1`` (Triton's interpreter, for tests).
Weights are exported (standardisation folded) and packed into one device buffer at construction,
so ``decide()`` does no weight work: validate, (copy inputs to the engine device if needed),
launch once.

CUDA graphs: ``decide()`` on CUDA tensors with a number (or a same-device tensor) budget is
capturable: while a graph is captured the input checks read only metadata (the finiteness
reduction and its one sync are skipped, the budget becomes a device fill), the output is one
``torch.empty`` of a static shape and the kernel is one launch; nothing depends on the data.
Call it once before capturing (Triton compiles on the first call). Not verified on a GPU yet
(none in the session that wrote this); ``bench/bench_triton.py`` captures it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..policy import Controller
from ..policy.export import export_weights
from .base import Engine, EngineUnavailableError


def _import_kernel_module() -> Any:
    try:
        import triton  # noqa: F401  (fail here, with a clear reason, before the kernel module)
    except ImportError as e:
        raise EngineUnavailableError(
            f"the triton engine needs the 'triton' package ({e}); install fastctrl[triton]"
        ) from e
    from ..kernels import fused_controller

    return fused_controller


class TritonEngine(Engine):
    """Fused Triton kernel. ``device``: ``cuda`` (default) or ``cpu`` under TRITON_INTERPRET=1."""

    kind = "triton"

    def __init__(self, controller: Controller, device: str | torch.device | None = None) -> None:
        fc = _import_kernel_module()
        interpret = fc.interpret_mode()
        if device is None:
            device = "cpu" if interpret else "cuda"
        super().__init__(controller, torch.device(device))
        if self.device.type == "cpu" and not interpret:
            raise EngineUnavailableError(
                "the triton engine runs on CPU only in Triton's interpreter: set "
                "TRITON_INTERPRET=1 (or use a CUDA device)"
            )
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailableError(
                "the triton engine needs a CUDA GPU (torch.cuda.is_available() is False); "
                "on CPU set TRITON_INTERPRET=1 to run it in Triton's interpreter"
            )
        if self.device.type not in ("cpu", "cuda"):
            raise EngineUnavailableError(
                f"the triton engine runs on cuda (or cpu when interpreted), got {self.device}"
            )
        if interpret and self.device.type != "cpu":
            raise EngineUnavailableError(
                f"TRITON_INTERPRET=1 runs kernels on the CPU; got device {self.device}"
            )
        self._fc = fc
        self.packed = fc.pack_weights(export_weights(controller), self.device)

    @torch.inference_mode()
    def decide_tensors(
        self, image: Tensor, text: Tensor, budget_ms: Tensor, task: Tensor | None = None
    ) -> Tensor:
        # The kernel reads fp32/fp16/bf16 directly; float64 is narrowed here.
        if image.dtype == torch.float64:
            image = image.float()
        if text.dtype == torch.float64:
            text = text.float()
        idx = self._fc.fused_controller(
            image.contiguous(),
            self.with_task(text, task).contiguous(),
            budget_ms.contiguous(),
            self.packed,
        )
        return self.guarded(idx, budget_ms, task)
