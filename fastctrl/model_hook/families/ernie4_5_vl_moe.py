"""ERNIE-4.5-VL-MoE: ``Ernie4_5_VLMoeForConditionalGeneration`` / ``Ernie4_5_VLMoeModel``.

- image feature: mean of the merged vision embeddings the language model receives (the
  resampler's output, in the text hidden size), per request.
- vision tokens: the ``image_token_id`` and ``video_token_id`` placeholders.
- extras: the language model takes ``moe_mm_token_type_ids`` ``[B, L]`` (1/2 at image/video
  tokens *and* their start/end tokens), which sends each token to the text or the vision
  experts; removing vision tokens gathers it at the kept positions. 3-D multimodal rotary
  positions (``[3, B, L]``) are computed by the base model before the language model runs and
  gathered by the hook; ``mm_token_type_ids`` is only read by ``get_rope_index``.
- routers: modality-isolated MoE: every sparse layer has TWO routers
  (``text_moe.gate`` and ``vision_moe.gate``, both ``Ernie4_5_VLMoeMoeTopKRouter``, each reading
  ``top_k`` at call time), each over its own experts (``Ernie4_5_VLMoeMoeExperts``, cost
  proportional to its tokens x top_k), plus shared experts. The text router sees the text
  tokens, the vision router the vision tokens, so one forward computes tokens x top_k
  token-expert pairs per sparse layer, not per router. The ``top_k`` knob sets both.
- renormalisation: always (kept softmax weights divided by their sum, clamped at
  ``moe_norm_min``).
- layer 0 (``mlp_layer_types``) is dense: no router, unaffected by top_k.
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Adapter, register


@register
class Ernie4_5_VLMoeAdapter(Adapter):
    family = "ernie4_5-vl-moe"
    description = "Ernie4_5_VLMoeForConditionalGeneration / Ernie4_5_VLMoeModel"
    base_class = "Ernie4_5_VLMoeModel"
    renormalises = "always"

    def select_extra(
        self, kwargs: dict[str, Any], keep_idx: torch.Tensor, keep_mask: torch.Tensor
    ) -> None:
        types = kwargs.get("moe_mm_token_type_ids")
        if (
            isinstance(types, torch.Tensor)
            and types.ndim == 2
            and types.shape[1] == keep_mask.shape[1]
        ):
            kwargs["moe_mm_token_type_ids"] = types.gather(1, keep_idx.to(types.device))
