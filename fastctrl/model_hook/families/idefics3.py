"""Idefics3 and SmolVLM: ``Idefics3ForConditionalGeneration`` / ``Idefics3Model`` and
``SmolVLMForConditionalGeneration`` / ``SmolVLMModel`` (dense Llama-style text model
``text_model``, SigLIP vision encoder ``vision_model`` run once per tile, pixel-shuffle
connector).

These families split an image into a grid of crops plus one global tile, each encoded
separately, so ``max_crops`` cuts the vision encoder's work: the hook decides in the top-level
forward's pre-hook, before any tile is encoded, and the forward then runs on only the kept
crops (every global tile is kept) and their prompt spans (:mod:`fastctrl.model_hook.crops`).

- decision features, available before the vision encoder: image = each image's global tile
  average-pooled to 4x4 per channel (48 values, masked by ``pixel_attention_mask``) and its
  number of crops, averaged over a request's images (``image_dim = 49``); text = the mean
  token embedding of the attended, non-image-token prompt positions (the generic text
  feature; the tile markers count as text);
- crops kept per image: ``ceil(n_crops * max_crops / top)`` evenly spaced in raster order
  (the grid top keeps all, so the full config is the unmodified model); with
  ``tokens_per_crop`` given, ``min(n_crops, max_crops)``;
- dense text model: no ``top_k``; ``num_active_blocks`` as for every family.
"""

from __future__ import annotations

from ..crops import TileSpec
from .base import Adapter, register


class _TileSplitting(Adapter):
    """Shared by Idefics3 and SmolVLM: the same layout, different transformers classes."""

    vision_tower_attr = "vision_model"
    language_model_attr = "text_model"
    renormalises = "none"
    vision_saving = (
        "yes: crops beyond max_crops are dropped before the vision encoder "
        "(decided from the global tiles' pixels and the text), so the encoder "
        "runs on kept crops + global tiles only"
    )
    #: the global tile is pooled to ``POOL_GRID x POOL_GRID`` per channel for the feature
    POOL_GRID = 4

    @property
    def tile_spec(self) -> TileSpec:
        """What :mod:`..crops` needs (read by the hook via ``getattr``: a family capability)."""
        spec = getattr(self, "_tile_spec", None)
        if spec is None:
            cfg = self.base.config
            vc = cfg.vision_config
            per_tile = int(getattr(self.base, "image_seq_len", 0)) or int(
                (vc.image_size // vc.patch_size) ** 2 // cfg.scale_factor**2
            )
            pad = getattr(cfg.text_config, "pad_token_id", None)
            spec = self._tile_spec = TileSpec(
                image_token_id=int(cfg.image_token_id),
                tokens_per_tile=per_tile,
                pad_token_id=int(pad) if isinstance(pad, int) and pad >= 0 else 0,
                pool_grid=self.POOL_GRID,
                channels=int(getattr(vc, "num_channels", 3)),
            )
        return spec

    @property
    def image_dim(self) -> int:
        return self.tile_spec.feature_dim


@register
class Idefics3Adapter(_TileSplitting):
    family = "idefics3"
    description = "Idefics3ForConditionalGeneration / Idefics3Model (image splitting)"
    base_class = "Idefics3Model"


@register
class SmolVLMAdapter(_TileSplitting):
    family = "smolvlm"
    description = "SmolVLMForConditionalGeneration / SmolVLMModel (image splitting)"
    base_class = "SmolVLMModel"
