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
  (``fastctrl.model_hook.apply.gather_prepared_mask``), so kept image tokens still attend bidirectionally
  within their image and padding stays masked; position ids are the kept original positions.
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
- vision_saving: no: the vision tower encodes every patch; max_crops removes pooled vision
  tokens before the language model.
"""

from __future__ import annotations

from .base import Adapter, register


@register
class Gemma3Adapter(Adapter):
    family = "gemma3"
    description = "Gemma3ForConditionalGeneration / Gemma3Model"
    base_class = "Gemma3Model"
    renormalises = "none"
    vision_saving = (
        "no: the vision tower encodes every patch; max_crops removes pooled "
        "vision tokens before the language model"
    )

    @property
    def tokens_per_image(self) -> int:
        """Language-model vision tokens of one image (``config.mm_tokens_per_image``)."""
        return int(self.base.config.mm_tokens_per_image)
