"""LLaVA-OneVision around any text model: ``LlavaOnevisionForConditionalGeneration`` /
``LlavaOnevisionModel`` (SigLIP vision tower, anyres image splitting, Qwen2 dense or any MoE
text model).

- image feature: the default ``"merged"`` pooling, the mean of the vision embeddings the
  language model receives (``inputs_embeds`` at the image / video placeholder positions);
  ``image_dim`` = the text hidden size.
- vision tokens: the ``image_token_id`` and ``video_token_id`` placeholders. An image is
  its base view (``(image_size / patch)**2`` tokens) followed by the anyres crops packed by
  ``pack_image_features``: the crop grid's feature map, unpadded to the image's aspect
  ratio, downscaled above ``vision_aspect_ratio`` (``anyres_max_N``) and with one
  ``image_newline`` token per row; a video frame is pooled 2x2 then one newline per video.
  Token removal treats all of them alike (the newline tokens are image tokens too).
- the language model is called with ``inputs_embeds``, ``attention_mask``, ``position_ids``,
  ``cache``, ``use_cache`` and the caller's kwargs: nothing extra to subset.
- routers / renormalisation: as for ``llava`` (generic discovery, the rule read from the
  routers found); a dense text model has none.
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
"""

from __future__ import annotations

from .base import register
from .llava import AnyTextModel


@register
class LlavaOnevisionAdapter(AnyTextModel):
    family = "llava-onevision"
    description = (
        "LlavaOnevisionForConditionalGeneration / LlavaOnevisionModel with any "
        "text model (MoE or dense)"
    )
    base_class = "LlavaOnevisionModel"
    vision_saving = (
        "no: the vision tower encodes the base view and every anyres crop; "
        "max_crops removes vision tokens before the language model"
    )
