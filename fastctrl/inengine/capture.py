"""Feature capture: what one top-level forward computes anyway, pooled into the controller's
inputs before the language model runs.

The vision tower's output is pooled per image by the family (:meth:`Adapter.pool_images`);
the token embedding's output is kept and averaged over the non-vision, non-padding positions
of each request. Features stay on the model's device; they are cast to float32 once, for the
decision engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .families.base import Adapter


@dataclass
class ForwardCapture:
    """What one top-level forward captured before the language model runs."""

    budget: np.ndarray | None
    """Validated float32 budget(s) of this forward ([1] or [B]), or None."""
    attention_mask: torch.Tensor | None
    image_feats: list[torch.Tensor] = field(default_factory=list)
    tokens_per_image: list[int] = field(default_factory=list)
    input_ids: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    controller_ran: bool = False
    controller_ms: float = 0.0
    t0: Any = None
    ctrl_events: tuple[Any, Any] | None = None

    def on_vision(self, adapter: Adapter, args: tuple[Any, ...], kwargs: dict[str, Any],
                  output: Any) -> None:
        feats, tokens = adapter.pool_images(args, kwargs, output)
        self.image_feats.append(feats.detach())
        self.tokens_per_image += tokens

    def on_embed(self, args: tuple[Any, ...], output: Any) -> None:
        if self.input_ids is not None or not args:
            return
        ids = args[0]
        if isinstance(ids, torch.Tensor) and ids.ndim == 2:
            self.input_ids, self.text_embeds = ids, output.detach()

    def features(self, adapter: Adapter, vis: torch.Tensor, am: torch.Tensor | None,
                 bsz: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled float32 ``[B, Di]`` image and ``[B, Dt]`` text features."""
        dev = vis.device
        image = torch.zeros(bsz, adapter.image_dim, device=dev)
        if self.image_feats:
            feats = torch.cat(self.image_feats).float().to(dev)
            rows = image_rows(vis, self.tokens_per_image)
            if rows is not None and len(rows) == feats.shape[0]:
                # a request with several images gets the mean of their features
                counts = torch.zeros(bsz, device=dev).index_add_(
                    0, rows, torch.ones(len(rows), device=dev))
                image = image.index_add_(0, rows, feats) / counts.clamp(min=1)[:, None]
            elif feats.shape[0] == bsz:
                image = feats
            else:
                raise ValueError(
                    f"fastctrl.hook: cannot assign {feats.shape[0]} images to {bsz} requests "
                    "(vision placeholder tokens do not match the vision tower's output)"
                )
        text = torch.zeros(bsz, adapter.text_dim, device=dev)
        if self.text_embeds is not None and \
                tuple(self.text_embeds.shape[:2]) == tuple(vis.shape):
            m = ~vis
            if am is not None:
                m = m & am.to(dev).bool()
            w = m.float()
            text = (self.text_embeds.float() * w[..., None]).sum(1) / \
                w.sum(1).clamp(min=1)[:, None]
        return image.contiguous(), text.contiguous()


def image_rows(vis: torch.Tensor, tokens_per_image: list[int]) -> torch.Tensor | None:
    """Row of each image: the row of its first vision token (images are in sequence order)."""
    if not tokens_per_image:
        return None
    pos = vis.nonzero()
    if sum(tokens_per_image) != pos.shape[0]:
        return None
    starts = np.concatenate([[0], np.cumsum(tokens_per_image)[:-1]]).astype(np.int64)
    return pos[torch.from_numpy(starts).to(pos.device), 0]
