"""Molmo2: ``Molmo2ForConditionalGeneration`` / ``Molmo2Model`` (dense language model).

- image feature: mean of the merged vision embeddings the language model receives (text
  hidden size). Molmo2 *adds* each pooled vision feature onto its ``<im_patch>`` placeholder's
  embedding; the tower's own output is per crop (a low-resolution view plus the
  high-resolution crops), pooled into tokens by the adapter through ``image_token_pooling``.
- vision tokens: the ``<im_patch>`` placeholders (``image_patch_id``; the config maps both
  ``image_token_id`` and ``video_token_id`` to it): ``rows x cols`` of the low-resolution view
  then of the high-resolution grid (``image_grids``). The ``<low_res_im_start>`` /
  ``<im_start>`` / ``<im_col>`` / ``<im_end>`` structure tokens are kept, so a reduced image
  keeps its row layout markers around fewer patch tokens. The kept tokens are evenly spaced over
  the image's tokens in sequence order (both views together when ``tokens_per_crop`` is unset).
- attention: ``Molmo2Model`` builds the 4-D mask itself, before the language model, from the
  2-D padding mask and ``mm_token_type_ids`` (one bidirectional block over every image token at
  prefill): the language model receives ``attention_mask`` ``[B, 1, L, L]`` (or ``None``).
  Removing vision tokens keeps its kept rows and columns (``fastctrl.model_hook.apply.gather_prepared_mask``).
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
- vision_saving: no: the vision tower encodes every crop; max_crops removes pooled vision
  tokens before the language model.
"""

from __future__ import annotations

from .base import Adapter, register


@register
class Molmo2Adapter(Adapter):
    family = "molmo2"
    description = "Molmo2ForConditionalGeneration / Molmo2Model"
    base_class = "Molmo2Model"
    renormalises = "none"
    vision_saving = (
        "no: the vision tower encodes every crop; max_crops removes pooled "
        "vision tokens before the language model"
    )
