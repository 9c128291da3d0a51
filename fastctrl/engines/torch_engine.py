"""The torch reference engine: eager fp32 evaluation of the Controller itself."""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from ..policy import Controller
from .base import Engine


class TorchEngine(Engine):
    """Eager fp32 reference. Holds a frozen eval-mode copy, so later training does not leak in."""

    kind = "torch"

    def __init__(self, controller: Controller, device: str | torch.device | None = None) -> None:
        super().__init__(
            controller,
            torch.device(device) if device is not None else next(controller.parameters()).device,
        )
        self.model = copy.deepcopy(controller).to(self.device, torch.float32).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.inference_mode()
    def decide_tensors(
        self, image: Tensor, text: Tensor, budget_ms: Tensor, task: Tensor | None = None
    ) -> Tensor:
        logits = self.model(image.float(), text.float(), budget_ms, task)
        idx = torch.stack([logits[n].argmax(-1) for n in self.knob_names], dim=1)
        return self.guarded(idx, budget_ms, task)
