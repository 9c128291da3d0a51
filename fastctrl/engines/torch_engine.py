"""The torch reference engine: eager fp32 evaluation of the Controller itself."""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..policy import Controller
from .base import Engine, check_inputs


class TorchEngine(Engine):
    """Eager fp32 reference. Holds a frozen eval-mode copy, so later training does not leak in."""

    kind = "torch"

    def __init__(self, controller: Controller, device: str | torch.device | None = None) -> None:
        super().__init__(controller.config.image_dim, controller.config.text_dim,
                         controller.knob_names)
        self.device = torch.device(device) if device is not None else \
            next(controller.parameters()).device
        self.model = copy.deepcopy(controller).to(self.device, torch.float32).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.inference_mode()
    def decide(self, image_feat: Any, lang_feat: Any, budget_ms: Any) -> Any:
        x = check_inputs(image_feat, lang_feat, budget_ms, self.image_dim, self.text_dim)
        if x.is_torch:
            img, txt, b = x.image, x.text, x.budget
        else:
            img, txt, b = (torch.from_numpy(a) for a in (x.image, x.text, x.budget))
        out_device = img.device
        logits = self.model(img.to(self.device, torch.float32), txt.to(self.device, torch.float32),
                            b.to(self.device))
        idx = torch.stack([logits[n].argmax(-1) for n in self.knob_names], dim=1)
        return idx.to(out_device) if x.is_torch else idx.cpu().numpy()
