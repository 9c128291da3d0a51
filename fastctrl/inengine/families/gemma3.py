"""Gemma 3: ``Gemma3ForConditionalGeneration`` / ``Gemma3Model`` (dense language model).

- image feature: mean of the merged vision embeddings the language model receives (the
  projector's ``mm_tokens_per_image`` tokens per image, text hidden size). The SigLIP tower of
  Gemma 3 has no pooling head (``vision_use_head=False``: its ``pooler_output`` is ``None``), so
  the tower's output is not pooled.
- vision tokens: the ``image_token_id`` (``<image_soft_token>``) placeholders,
  ``mm_tokens_per_image`` per image; ``<start_of_image>`` / ``<end_of_image>`` are kept.
- attention: ``Gemma3Model`` builds the language model's masks itself, before calling it, from
  the 2-D padding mask and ``token_type_ids`` (bidirectional attention inside each image block,
  causal elsewhere; sliding-window layers AND a window): the language model receives
  ``attention_mask`` as a dict ``{"full_attention": [B, 1, L, L], "sliding_attention": ...}``,
  not ``token_type_ids``. Removing vision tokens keeps the kept rows and columns of each mask
  (:meth:`Gemma3Adapter.select_extra`), so kept image tokens still attend bidirectionally
  within their image and padding stays masked; position ids are the kept original positions.
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
- vision_saving: no: the vision tower encodes every patch; max_crops removes pooled vision
  tokens before the language model.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Adapter, register


def gather_mask(mask: Any, keep_idx: torch.Tensor, seq: int) -> Any:
    """Keep the rows and columns ``keep_idx [B, L']`` of a prepared ``[B, H, seq, seq]`` mask
    (or each mask of a dict of them); ``None``, 2-D masks and masks already over the kept
    positions are returned as they are."""
    if isinstance(mask, dict):
        return {k: gather_mask(v, keep_idx, seq) for k, v in mask.items()}
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4 or mask.shape[-2:] != (seq, seq):
        return mask
    b, h, lq, lk = mask.shape
    kept = keep_idx.shape[1]
    idx = keep_idx.to(mask.device)[:, None, :]
    rows = mask.gather(2, idx[..., None].expand(b, h, kept, lk))
    return rows.gather(3, idx[:, :, None, :].expand(b, h, kept, kept))


@register
class Gemma3Adapter(Adapter):
    family = "gemma3"
    description = "Gemma3ForConditionalGeneration / Gemma3Model"
    base_class = "Gemma3Model"
    renormalises = "none"
    vision_saving = "no: the vision tower encodes every patch; max_crops removes pooled " \
                    "vision tokens before the language model"

    @property
    def tokens_per_image(self) -> int:
        """Language-model vision tokens of one image (``config.mm_tokens_per_image``)."""
        return int(self.base.config.mm_tokens_per_image)

    def select_extra(self, kwargs: dict[str, Any], keep_idx: torch.Tensor,
                     keep_mask: torch.Tensor) -> None:
        kwargs["attention_mask"] = gather_mask(kwargs.get("attention_mask"), keep_idx,
                                               int(keep_mask.shape[1]))
