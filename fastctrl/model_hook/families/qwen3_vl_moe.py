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

from .base import register
from .qwen_vl import DeepStack


@register
class Qwen3VLMoeAdapter(DeepStack):
    family = "qwen3-vl-moe"
    description = "Qwen3VLMoeForConditionalGeneration / Qwen3VLMoeModel"
    base_class = "Qwen3VLMoeModel"
    renormalises = "always"
