"""The torch reference engine: eager fp32 evaluation of the Controller itself."""

from __future__ import annotations

import copy

import torch

from ..policy import Controller
from .base import Engine


class TorchEngine(Engine):
    """Eager fp32 reference. Holds a frozen eval-mode copy, so later training does not leak in."""

    kind = "torch"

    def __init__(self, controller: Controller, device: str | torch.device | None = None) -> None:
        super().__init__(
            controller.config.image_dim,
            controller.config.text_dim,
            controller.knob_names,
            torch.device(device) if device is not None else next(controller.parameters()).device,
            controller.config.task_types,
        )
        self.model = copy.deepcopy(controller).to(self.device, torch.float32).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.inference_mode()
    def decide_tensors(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        budget_ms: torch.Tensor,
        task: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = self.model(image.float(), text.float(), budget_ms, task)
        return torch.stack([logits[n].argmax(-1) for n in self.knob_names], dim=1)
