"""Qwen3-VL-MoE: ``Qwen3VLMoeForConditionalGeneration`` / ``Qwen3VLMoeModel``.

- image feature: mean of the vision tower's merged tokens (``pooler_output``, the tokens the
  language model sees), one row per image; ``image_dim = vision_config.out_hidden_size``.
- vision tokens: image and video placeholders. Removing vision tokens also subsets
  ``visual_pos_masks`` and every ``deepstack_visual_embeds`` entry, so DeepStack still adds
  each remaining token's features after decoder layers ``0..len(deepstack)-1``; the 3-D
  multimodal rotary positions of the kept tokens are gathered, not recomputed.
- DeepStack injection is indexed by layer position in the decoder loop; a skipped layer is an
  identity inside that loop, so injection after a skipped layer index still happens.
- routers: ``Qwen3VLMoeTextTopKRouter.top_k`` (read at call time); dense-MLP layers
  (``mlp_only_layers``) have no router and are unaffected by top_k.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Adapter, register


@register
class Qwen3VLMoeAdapter(Adapter):
    family = "qwen3-vl-moe"
    description = "Qwen3VLMoeForConditionalGeneration / Qwen3VLMoeModel"
    base_class = "Qwen3VLMoeModel"
    image_feature = "vision_tower"
    renormalises = "always"

    @property
    def image_dim(self) -> int:
        return int(self.base.config.vision_config.out_hidden_size)

    def pool_images(self, args: tuple[Any, ...], kwargs: dict[str, Any],
                    output: Any) -> tuple[torch.Tensor, list[int]]:
        grid_thw = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        merged = output.pooler_output  # [sum of tokens, out_hidden]: what the LM sees
        if grid_thw is None or grid_thw.shape[0] == 1:
            # one image: its tokens are all of them (no host read of grid_thw, one op)
            return merged.mean(0, keepdim=True), [int(merged.shape[0])]
        sizes = (grid_thw.prod(-1) // self.base.visual.spatial_merge_size**2).tolist()
        pooled = torch.stack([t.mean(0) for t in torch.split(merged, sizes)])
        return pooled, [int(s) for s in sizes]

    def select_extra(self, kwargs: dict[str, Any], keep_idx: torch.Tensor,
                     keep_mask: torch.Tensor) -> None:
        vis = kwargs.get("visual_pos_masks")
        if vis is None:
            return
        # deepstack rows are the visual positions in row-major order: keep the same subset.
        kept_visual = keep_mask[vis]
        kwargs["visual_pos_masks"] = vis.gather(1, keep_idx)
        embeds = kwargs.get("deepstack_visual_embeds")
        if embeds is not None:
            kwargs["deepstack_visual_embeds"] = [e[kept_visual] for e in embeds]
