"""LLaVA with an OLMoE language model (a MolmoE-like VLM): ``LlavaForConditionalGeneration``
whose ``text_config.model_type`` is ``"olmoe"``, with any vision tower that returns a pooled
output (CLIP: the post-layernorm CLS token).

- image feature: the vision tower's ``pooler_output`` (CLIP CLS), one row per image, averaged
  over a request's images; ``image_dim = vision_config.hidden_size``.
- vision tokens: the ``image_token_id`` placeholders after the projector's ``masked_scatter``.
- routers: ``OlmoeTopKRouter.top_k`` (read at call time); experts: ``OlmoeExperts`` with the
  ``experts_implementation`` of the text config (cost proportional to tokens x top_k).
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Adapter, register


@register
class LlavaOlmoeAdapter(Adapter):
    family = "llava-olmoe"
    description = "LlavaForConditionalGeneration / LlavaModel with an OLMoE text model"
    base_class = "LlavaModel"
    text_model_types = ("olmoe",)
    image_feature = "vision_tower"

    @property
    def image_dim(self) -> int:
        return int(self.base.config.vision_config.hidden_size)

    def pool_images(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> tuple[torch.Tensor, list[int]]:
        pooled = output.pooler_output
        n_images, n_patches = output.last_hidden_state.shape[:2]
        # LLaVA's "default" strategy drops the CLS token before the projector.
        drop_cls = self.base.config.vision_feature_select_strategy == "default"
        per_image = n_patches - 1 if drop_cls else n_patches
        return pooled, [int(per_image)] * int(n_images)
