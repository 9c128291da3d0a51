"""LLaVA around any text model: ``LlavaForConditionalGeneration`` / ``LlavaModel`` whose text
model is MoE (Qwen3-MoE, Qwen2-MoE, Mixtral, DeepSeek-V3, GPT-OSS, ...) or dense. LLaVA with
an OLMoE text model is the more specific ``llava-olmoe`` family (tried first: it restricts
``text_model_types``).

- image feature: the default ``"merged"`` pooling, the mean of the projector's vision
  embeddings the language model receives (its ``inputs_embeds`` at the ``image_token_id``
  positions after ``masked_scatter``); ``image_dim`` = the text hidden size.
- vision tokens: the ``image_token_id`` (``image_token_index``) placeholders, one per kept
  patch of the vision tower's feature layer (``"default"`` strategy: the CLS token dropped).
- the language model (``AutoModel`` of the text config) is called with ``inputs_embeds``,
  ``attention_mask``, ``position_ids``, ``cache`` and the caller's kwargs only: no extra
  per-position input to subset when vision tokens are removed.
- routers: whatever the text model has, found by the generic rule (class name ending in
  ``Router`` with an int ``top_k`` read at call time: ``Qwen3MoeTopKRouter``,
  ``Qwen2MoeTopKRouter``, ``MixtralTopKRouter``, ``DeepseekV3TopkRouter``,
  ``GptOssTopKRouter``, ...); a dense text model has none. The renormalisation rule of the
  kept weights depends on the text model, so it is set per model (:func:`router_rule`).
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
"""

from __future__ import annotations

import logging

from torch import nn

from .base import Adapter, Renormalisation, register

log = logging.getLogger(__name__)

#: routers with no ``norm_topk_prob`` switch, by class name, and their fixed rule (read from
#: transformers 5.x sources): Mixtral divides the kept softmax probabilities by their sum;
#: GPT-OSS takes the softmax over the kept top-k logits only (so they always sum to 1)
FIXED_ROUTER_RULES: dict[str, Renormalisation] = {
    "MixtralTopKRouter": "always",
    "GptOssTopKRouter": "always",
}


def router_rule(routers: list[nn.Module], default: Renormalisation) -> Renormalisation:
    """The renormalisation rule of a text model's routers: ``"none"`` (dense),
    ``"attribute"`` (each has ``norm_topk_prob``: OLMoE, Qwen2/3-MoE, DeepSeek-V3), a known
    fixed rule (:data:`FIXED_ROUTER_RULES`), else ``default``."""
    if not routers:
        return "none"
    if all(hasattr(r, "norm_topk_prob") for r in routers):
        return "attribute"
    rules = {FIXED_ROUTER_RULES.get(type(r).__name__) for r in routers}
    if len(rules) == 1 and None not in rules:
        return rules.pop()
    log.debug(
        "routers %s: rule unknown, assuming %r",
        sorted({type(r).__name__ for r in routers}),
        default,
    )
    return default


class AnyTextModel(Adapter):
    """A VLM wrapper family generic over its text model (MoE or dense): the router rule is
    read from the routers found (an instance attribute shadowing the class default)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.renormalises = router_rule(self.routers, type(self).renormalises)


@register
class LlavaAdapter(AnyTextModel):
    family = "llava"
    description = "LlavaForConditionalGeneration / LlavaModel with any text model (MoE or dense)"
    base_class = "LlavaModel"
    vision_saving = (
        "no: the vision tower encodes every image in full; max_crops removes "
        "vision tokens before the language model"
    )
