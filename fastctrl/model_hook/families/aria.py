"""Aria: ``AriaForConditionalGeneration`` / ``AriaModel``.

- image feature: mean of the merged vision embeddings the language model receives (the
  projector's cross-attention queries, ``projector_patch_to_query_dict[n_patches]`` tokens per
  image, in the text hidden size), per request.
- vision tokens: the ``image_token_index`` (``<|img|>``) placeholders.
- routers: ``AriaTextTopKRouter.top_k`` (read at call time): experts are chosen on the raw
  logits and the weights are the softmax over the chosen logits only, i.e. always renormalised
  (no switch). Experts ``AriaExperts`` (cost proportional to tokens x top_k); every layer is
  MoE and also runs shared experts.
- positions are 1-D; there are no extra language-model inputs.
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
"""

from __future__ import annotations

from .base import Adapter, register


@register
class AriaAdapter(Adapter):
    family = "aria"
    description = "AriaForConditionalGeneration / AriaModel"
    base_class = "AriaModel"
    renormalises = "always"
