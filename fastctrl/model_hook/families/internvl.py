"""InternVL around any text model: ``InternVLForConditionalGeneration`` / ``InternVLModel``
(InternViT vision tower, pixel-shuffle + MLP projector, Qwen2 / Qwen3 dense or MoE text
model, e.g. InternVL3 / InternVL3.5 and their MoE variants).

- image feature: the default ``"merged"`` pooling, the mean of the vision embeddings the
  language model receives (``inputs_embeds`` at the ``image_token_id`` (``<IMG_CONTEXT>``)
  positions); ``image_dim`` = the text hidden size.
- vision tokens: the ``<IMG_CONTEXT>`` placeholders, ``(image_size / patch)**2 *
  downsample_ratio**2`` per tile (CLS dropped, pixel shuffle); the processor's ``<img>`` /
  ``</img>`` markers around them are text. Tiles are flattened into ``pixel_values
  [n_tiles, 3, H, W]`` and not distinguished by the model, so tokens are removed like any
  other vision tokens.
- the language model is called with ``inputs_embeds``, ``attention_mask``, ``position_ids``,
  ``cache`` and the caller's kwargs: nothing extra to subset.
- routers / renormalisation: as for ``llava`` (generic discovery, the rule read from the
  routers found); a dense text model has none.
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
"""

from __future__ import annotations

from .base import register
from .llava import AnyTextModel


@register
class InternVLAdapter(AnyTextModel):
    family = "internvl"
    description = "InternVLForConditionalGeneration / InternVLModel with any text model"
    base_class = "InternVLModel"
    vision_saving = (
        "no: the vision tower encodes every tile (dynamic-resolution crops and "
        "the thumbnail); max_crops removes vision tokens before the language "
        "model"
    )
