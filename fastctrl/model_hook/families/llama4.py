"""Llama 4: ``Llama4ForConditionalGeneration``.

- structure: there is no ``.model`` base model: the top-level model holds ``vision_model``,
  ``multi_modal_projector`` and ``language_model`` (a ``Llama4ForCausalLM``, whose ``.model``
  holds the decoder layers) itself, so the base model is the model itself.
- image feature: mean of the merged vision embeddings the language model receives (pixel-shuffled
  vision tokens through the projector, in the text hidden size), per request.
- vision tokens: the ``image_token_index`` placeholders (``<|patch|>``; the ``<|image_start|>``,
  ``<|image|>``, tile separator and ``<|image_end|>`` tokens are text).
- routers: ``Llama4Router`` (an ``nn.Linear``) reads ``top_k`` at call time: it keeps the top_k
  logits and applies a sigmoid to them (the others score 0): the weights are never renormalised.
- experts: ``Llama4TextExperts`` runs EVERY expert on EVERY token (a dense ``bmm`` over
  ``hidden_states.repeat(num_experts)``, scaled by the router scores), so top_k changes the
  output but not the compute (``topk_saves_compute = False``); a shared expert always runs.
  Released checkpoints use ``num_experts_per_tok = 1``, so their top_k grid is just ``[1]``.
- positions are 1-D and gathered for the kept tokens. Two things in the model count KV-cache
  slots rather than positions, so after vision tokens are removed they see the kept tokens'
  indices: the chunk boundaries of ``chunked_attention`` layers (``attention_chunk_size``, 8192)
  and the NoPE layers' attention temperature (``floor((i + 1) / floor_scale)``, ``floor_scale``
  8192); both only differ from the unmodified model on prompts longer than 8192 tokens.
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
"""

from __future__ import annotations

from .base import Adapter, register


@register
class Llama4Adapter(Adapter):
    family = "llama4"
    description = "Llama4ForConditionalGeneration (vision_model + language_model, no .model)"
    # the generic lookup accepts the model itself when it is a ``base_class``
    base_class = "Llama4ForConditionalGeneration"
    renormalises = "never"
    topk_saves_compute = False
