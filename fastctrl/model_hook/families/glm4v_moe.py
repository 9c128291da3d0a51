"""GLM-4.5V: ``Glm4vMoeForConditionalGeneration`` / ``Glm4vMoeModel``.

- image feature: mean of the merged vision embeddings the language model receives (the vision
  tower's ``pooler_output`` after the patch merger, in the text hidden size), per request.
- vision tokens: the ``image_token_id`` placeholders only. GLM-4.1V/4.5V lay out video frames
  with the same ``<|image|>`` token (``get_placeholder_mask`` uses ``image_token_id`` for both;
  the processor expands ``<|video|>`` into ``<|begin_of_image|> <|image|>*n <|end_of_image|>``
  per frame), so ``video_token_id`` never reaches the model and is not a vision token here.
- positions: 3-D multimodal rotary positions (``[3, B, L]``, or ``[4, B, L]`` with the text row
  from ``generate``) are computed by the base model before the language model runs; the hook
  gathers the kept tokens' positions. ``mm_token_type_ids`` is only read by ``get_rope_index``
  (before the language model), so there is no extra language-model input to subset.
- routers: ``Glm4vMoeTextTopkRouter.top_k`` (sigmoid scores, group-limited choice with
  ``n_group`` / ``topk_group``, read at call time); the kept weights are renormalised by its
  ``norm_topk_prob`` switch (``"attribute"``) and then scaled by ``routed_scaling_factor``.
  Experts ``Glm4vMoeTextExperts`` (cost proportional to tokens x top_k); every MoE layer also
  runs a shared expert, and the first ``first_k_dense_replace`` layers are dense MLPs (no
  router, unaffected by top_k).
- decoder layers return the hidden states tensor, so a skipped layer is the identity.
"""

from __future__ import annotations

from .base import Adapter, register


@register
class Glm4vMoeAdapter(Adapter):
    family = "glm4v-moe"
    description = "Glm4vMoeForConditionalGeneration / Glm4vMoeModel (GLM-4.5V)"
    base_class = "Glm4vMoeModel"
    renormalises = "attribute"

    @property
    def vision_token_ids(self) -> tuple[int, ...]:
        return (int(self.base.config.image_token_id),)
