"""Tiny VLM wrappers around MoE and dense text models: LLaVA, LLaVA-OneVision and InternVL.

One registered model per pairing (``llava-olmoe`` is :mod:`.base_families`'):

- ``llava-{qwen3-moe,qwen2-moe,mixtral,deepseek-v3,gpt-oss}``: CLIP vision tower (patch 8:
  a 32x32 image is 4x4 patches + CLS; the ``"default"`` strategy drops the CLS, so 16
  vision tokens); ``BOS IMAGE*16 text``, ``pixel_values [B, 3, 32, 32]``.
- ``llava-onevision-{qwen2-moe,qwen2}``: SigLIP vision tower (patch 8), anyres with one
  32x32 grid pinpoint: every image is its base view plus one 32x32 crop
  (``pixel_values [B, 2, 3, 32, 32]``, ``image_sizes [B, 2] = (32, 32)``: images are resized
  to 32x32 first), which ``pack_image_features`` turns into 16 base tokens + 4 rows x (4 +
  1 newline) = 36 tokens; ``BOS IMAGE*36 text``.
- ``internvl-{qwen3-moe,qwen3}``: InternViT vision tower (patch 4: 8x8 patches + CLS, CLS
  dropped, pixel shuffle 0.5 into 16 tokens), one tile per image;
  ``BOS VSTART IMAGE*16 VEND text`` (``<img> <IMG_CONTEXT>*16 </img>``),
  ``pixel_values [B, 3, 32, 32]``.

Text models: :mod:`.text_models`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from . import TinySpec, register_tiny
from .base_families import llava_config, llava_inputs
from .common import (
    IMAGE,
    VIDEO,
    as_chw,
    bracketed_image,
    grid_crops,
    image_text_ids,
    is_instance_of,
    one_view_inputs,
)
from .configs import MoeSize, build_seeded, vit_fields
from .text_models import text_model_config

SIZE = 32


def _never_emit_placeholders(model: nn.Module, *ids: int) -> nn.Module:
    """Suppress the vision placeholder ids in generation: a random-weight model can emit
    them, and a later forward over the generated ids (``use_cache=False`` re-prefills) would
    then find a placeholder with no vision feature behind it (an error in the model, or a
    token the hook counts as vision). A trained model never emits them."""
    model.generation_config.suppress_tokens = sorted(set(ids))
    return model


def _wrapper_builder(
    text: str,
    make_config: Callable[..., Any],
    model_class: str,
    placeholders: tuple[int, ...],
    default_patch: int,
) -> Callable[..., nn.Module]:
    """``build(seed, patch=, **size)`` of one pairing: the tiny ``text`` model of ``size``
    (:class:`.configs.MoeSize` fields; :func:`.text_models.text_model_config`) inside
    ``make_config(text_config, patch=)``, an instance of the transformers class
    ``model_class`` that never emits ``placeholders``."""

    def build(seed: int = 0, *, patch: int = default_patch, **size: int) -> nn.Module:
        import transformers

        cfg = make_config(text_model_config(text, MoeSize(**size)), patch=patch)
        model = build_seeded(getattr(transformers, model_class), cfg, seed)
        return _never_emit_placeholders(model, *placeholders)

    build.__name__ = f"tiny_{make_config.__name__.removesuffix('_config')}_{text}"
    build.__doc__ = make_config.__doc__
    return build


# ---------------------------------------------------------------------- LLaVA-OneVision
def onevision_config(text_config: Any, *, patch: int) -> Any:
    """LLaVA-OneVision (SigLIP) around ``text_config``; anyres with a single 32x32 grid
    pinpoint."""
    from transformers import LlavaOnevisionConfig

    return LlavaOnevisionConfig(
        vision_config=vit_fields(SIZE, patch, model_type="siglip_vision_model"),
        text_config=text_config,
        image_token_index=IMAGE,
        video_token_index=VIDEO,
        image_grid_pinpoints=[[SIZE, SIZE]],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
    )


def onevision_layout(model: nn.Module, image_size: tuple[int, int]) -> tuple[int, int, int]:
    """``(views, grid rows, grid cols)`` of one image of ``image_size`` (H, W) as
    ``get_image_features`` splits it: the base view plus ``rows x cols`` anyres crops of the
    best grid pinpoint (``views = rows * cols + 1``)."""
    from transformers.models.llava_onevision.modeling_llava_onevision import (
        get_anyres_image_grid_shape,
        image_size_to_num_patches,
    )

    cfg = model.config
    side = int(cfg.vision_config.image_size)
    views = image_size_to_num_patches(image_size, cfg.image_grid_pinpoints, side)
    rows, cols = get_anyres_image_grid_shape(image_size, cfg.image_grid_pinpoints, side)
    return int(views), int(rows), int(cols)


def onevision_tokens(model: nn.Module, image_size: tuple[int, int]) -> int:
    """Vision tokens of one anyres image, exactly as ``pack_image_features`` counts them."""
    from transformers.models.llava_onevision.modeling_llava_onevision import unpad_image

    cfg = model.config
    vc = cfg.vision_config
    side = int(vc.image_size // vc.patch_size)
    base = side * side
    views, rows, cols = onevision_layout(model, image_size)
    if views == 1:  # not patched: the base view + one newline
        return base + 1
    fmap = unpad_image(torch.empty(1, rows * side, cols * side), torch.tensor(image_size))
    h, w = fmap.shape[1:]
    max_patches = int(cfg.vision_aspect_ratio.removeprefix("anyres_max_"))
    ratio = math.sqrt(h * w / (max_patches * side**2))
    if ratio > 1.1:
        h, w = int(h // ratio), int(w // ratio)
    return base + h * (w + 1)  # one image_newline per row


def llava_onevision_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Each image resized to 32x32 (so ``image_sizes`` is (32, 32)): base view + the crops
    of the best grid pinpoint, ``pixel_values [B, views, 3, 32, 32]``."""
    side = int(model.config.vision_config.image_size)
    size = (side, side)
    views, rows, cols = onevision_layout(model, size)
    n = onevision_tokens(model, size)
    ids, mask = image_text_ids(prompts, [IMAGE] * n)
    # the base view, then the crops of the grid pinpoint
    pix = [torch.stack([as_chw(im, side), *grid_crops(im, rows, cols, side)]) for im in images]
    assert pix[0].shape[0] == views
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.stack(pix),
        "image_sizes": torch.tensor([size] * len(images)),
    }


# ---------------------------------------------------------------------- InternVL
def internvl_config(text_config: Any, *, patch: int) -> Any:
    """InternVL (InternViT) around ``text_config``; one 32x32 tile is 8x8 patches,
    pixel-shuffled into 16 tokens."""
    from transformers import InternVLConfig

    return InternVLConfig(
        vision_config=vit_fields([SIZE, SIZE], [patch, patch]),
        text_config=text_config,
        image_token_id=IMAGE,
        image_seq_length=(SIZE // patch) ** 2 // 4,
        downsample_ratio=0.5,
    )


def internvl_tokens(model: nn.Module) -> int:
    """``<IMG_CONTEXT>`` tokens per tile: the patch grid (CLS dropped) after pixel shuffle."""
    cfg = model.config
    vc = cfg.vision_config
    h, w = vc.image_size if isinstance(vc.image_size, (list, tuple)) else (vc.image_size,) * 2
    ph, pw = vc.patch_size if isinstance(vc.patch_size, (list, tuple)) else (vc.patch_size,) * 2
    return int((h // ph) * (w // pw) * cfg.downsample_ratio**2)


def internvl_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    vc = model.config.vision_config
    side = int(vc.image_size[0] if isinstance(vc.image_size, (list, tuple)) else vc.image_size)
    n = internvl_tokens(model)
    return one_view_inputs(images, prompts, bracketed_image(n), side)


# ---------------------------------------------------------------------- registry
#: (family, its config, transformers model class, placeholder ids, default patch, processing,
#: text models)
_PAIRINGS = (
    (
        "llava",
        llava_config,
        "LlavaForConditionalGeneration",
        (IMAGE,),
        8,
        llava_inputs,
        ("qwen3_moe", "qwen2_moe", "mixtral", "deepseek_v3", "gpt_oss"),
    ),
    (
        "llava-onevision",
        onevision_config,
        "LlavaOnevisionForConditionalGeneration",
        (IMAGE, VIDEO),
        8,
        llava_onevision_inputs,
        ("qwen2_moe", "qwen2"),
    ),
    (
        "internvl",
        internvl_config,
        "InternVLForConditionalGeneration",
        (IMAGE,),
        4,
        internvl_inputs,
        ("qwen3_moe", "qwen3"),
    ),
)

for _family, _config, _cls, _placeholders, _patch, _process, _texts in _PAIRINGS:
    for _text in _texts:
        register_tiny(
            TinySpec(
                f"{_family}-{_text.replace('_', '-')}",
                _wrapper_builder(_text, _config, _cls, _placeholders, _patch),
                is_instance_of(_cls, _text),
                _process,
            )
        )
