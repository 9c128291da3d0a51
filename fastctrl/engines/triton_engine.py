"""The Triton engine: one fused kernel launch per ``decide()`` (``fastctrl.kernels``).

Runs on CUDA tensors, or on CPU under ``TRITON_INTERPRET=1`` (Triton's interpreter, for tests).
Weights are exported (standardisation folded) and packed into one device buffer at construction,
so ``decide()`` does no weight work: validate, (copy inputs to the engine device if needed),
launch once.
"""

from __future__ import annotations

from typing import Any

import torch

from ..policy import Controller
from .base import Engine, EngineUnavailableError, check_inputs
from .spec import export_weights


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
        super().__init__(controller.config.image_dim, controller.config.text_dim,
                         controller.knob_names)
        fc = _import_kernel_module()
        interpret = fc.interpret_mode()
        if device is None:
            device = "cpu" if interpret else "cuda"
        self.device = torch.device(device)
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
    def decide(self, image_feat: Any, lang_feat: Any, budget_ms: Any) -> Any:
        x = check_inputs(image_feat, lang_feat, budget_ms, self.image_dim, self.text_dim)
        if x.is_torch:
            img, txt, b = x.image, x.text, x.budget
        else:
            img, txt, b = (torch.from_numpy(a) for a in (x.image, x.text, x.budget))
        out_device = img.device
        # The kernel reads fp32/fp16/bf16 directly; float64 (and numpy float64) is narrowed here.
        if img.dtype == torch.float64:
            img = img.float()
        if txt.dtype == torch.float64:
            txt = txt.float()
        # Inputs already on the engine device (the fast path) are not copied.
        img, txt, b = (t.to(self.device).contiguous() for t in (img, txt, b))
        idx = self._fc.fused_controller(img, txt, b, self.packed)
        return idx.to(out_device) if x.is_torch else idx.cpu().numpy()
