"""Dense Qwen-VL: Qwen3-VL (``Qwen3VLForConditionalGeneration`` / ``Qwen3VLModel``) and
Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration`` / ``Qwen2_5_VLModel``).

- image feature: mean of the vision tower's merged tokens (``pooler_output``, the tokens the
  language model sees, in sequence order: Qwen2.5-VL's tower already undoes its window-attention
  permutation), one row per image; ``image_dim = vision_config.out_hidden_size``.
- vision tokens: image and video placeholders; the 3-D multimodal rotary positions of the kept
  tokens are gathered, not recomputed.
- Qwen3-VL only: DeepStack, exactly as in Qwen3-VL-MoE. Removing vision tokens also subsets
  ``visual_pos_masks`` and every ``deepstack_visual_embeds`` entry, so DeepStack still adds
  each remaining token's features after decoder layers ``0..len(deepstack)-1``; injection is
  indexed by layer position in the decoder loop, so it still happens after a skipped layer.
- Qwen2.5-VL: the language model gets no per-position input besides embeddings, mask and
  positions (its optional sliding-window layers build their mask inside the language model).
- dense language models: no routers, so no ``top_k`` knob; decoder layers return the hidden
  states tensor, so a skipped layer is the identity.
- vision_saving: no: the vision tower encodes every patch; max_crops removes merged vision
  tokens before the language model.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Adapter, register


class QwenVLTower(Adapter):
    """Shared by the Qwen-VL families (dense and MoE): pool the tower's merged tokens per
    image."""

    image_feature = "vision_tower"
    renormalises = "none"
    vision_saving = (
        "no: the vision tower encodes every patch; max_crops removes merged "
        "vision tokens before the language model"
    )

    @property
    def image_dim(self) -> int:
        return int(self.base.config.vision_config.out_hidden_size)

    def pool_images(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> tuple[torch.Tensor, list[int]]:
        grid_thw = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        merged = output.pooler_output  # [sum of tokens, out_hidden]: what the LM sees
        if grid_thw is None or grid_thw.shape[0] == 1:
            return merged.mean(0, keepdim=True), [int(merged.shape[0])]
        sizes = (grid_thw.prod(-1) // self.base.visual.spatial_merge_size**2).tolist()
        pooled = torch.stack([t.mean(0) for t in torch.split(merged, sizes)])
        return pooled, [int(s) for s in sizes]


class DeepStack(QwenVLTower):
    """Qwen3-VL's DeepStack inputs follow removed vision tokens."""

    def select_extra(
        self, kwargs: dict[str, Any], keep_idx: torch.Tensor, keep_mask: torch.Tensor
    ) -> None:
        vis = kwargs.get("visual_pos_masks")
        if vis is None:
            return
        # deepstack rows are the visual positions in row-major order: keep the same subset.
        kept_visual = keep_mask[vis]
        kwargs["visual_pos_masks"] = vis.gather(1, keep_idx)
        embeds = kwargs.get("deepstack_visual_embeds")
        if embeds is not None:
            kwargs["deepstack_visual_embeds"] = [e[kept_visual] for e in embeds]


@register
class Qwen3VLAdapter(DeepStack):
    family = "qwen3-vl"
    description = "Qwen3VLForConditionalGeneration / Qwen3VLModel (dense)"
    base_class = "Qwen3VLModel"


@register
class Qwen25VLAdapter(QwenVLTower):
    family = "qwen2.5-vl"
    description = "Qwen2_5_VLForConditionalGeneration / Qwen2_5_VLModel"
    base_class = "Qwen2_5_VLModel"
