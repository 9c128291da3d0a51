"""The first two tiny families: LLaVA with an OLMoE text model, and Qwen3-VL-MoE; and the
LLaVA config and inputs the LLaVA pairings of :mod:`.wrappers` share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from . import TinySpec, register_tiny
from .common import IMAGE, is_instance_of, one_view_inputs, qwen_vl_inputs
from .configs import (
    QWEN_VL_TOKEN_IDS,
    MoeSize,
    build_seeded,
    default_rope,
    qwen3_vision_config,
    text_fields,
    vit_fields,
)
from .text_models import text_model_config


def llava_config(text_config: Any, *, patch: int, image_size: int = 32) -> Any:
    """A ``LlavaConfig``: a CLIP vision tower on ``image_size`` images (``(image_size /
    patch)**2`` vision tokens: the ``"default"`` strategy drops the CLS) around
    ``text_config``."""
    from transformers import CLIPVisionConfig, LlavaConfig

    return LlavaConfig(
        vision_config=CLIPVisionConfig(**vit_fields(image_size, patch, projection_dim=32)),
        text_config=text_config,
        image_token_index=IMAGE,
        image_seq_length=(image_size // patch) ** 2,
    )


def llava_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    """``BOS IMAGE*n text``, ``pixel_values [B, 3, S, S]``."""
    cfg = model.config
    vc = cfg.vision_config
    n = (vc.image_size // vc.patch_size) ** 2
    if cfg.vision_feature_select_strategy == "full":
        n += 1  # CLIP's CLS token kept
    return one_view_inputs(images, prompts, [IMAGE] * n, int(vc.image_size))


def tiny_llava_olmoe(
    seed: int = 0, *, image_size: int = 32, patch: int = 4, **size: int
) -> nn.Module:
    """LLaVA (CLIP vision tower) + OLMoE text model; ``(image_size/patch)**2`` vision tokens;
    ``size``: :class:`.configs.MoeSize` fields."""
    from transformers import LlavaForConditionalGeneration

    text = text_model_config("olmoe", MoeSize(**size))
    cfg = llava_config(text, image_size=image_size, patch=patch)
    return build_seeded(LlavaForConditionalGeneration, cfg, seed)


def tiny_qwen3_vl_moe(
    seed: int = 0, *, deepstack: Sequence[int] = (0, 1), **size: int
) -> nn.Module:
    """Qwen3-VL-MoE; a 32x32 image is an 8x8 patch grid merged 2x2 into 16 vision tokens;
    ``size``: :class:`.configs.MoeSize` fields."""
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

    s = MoeSize(**size)
    cfg = Qwen3VLMoeConfig(
        text_config=text_fields(
            s.hidden,
            s.layers,
            bos_eos=False,
            moe_intermediate_size=s.hidden // 2,
            head_dim=16,
            num_experts=s.experts,
            num_experts_per_tok=s.top_k,
            rope_parameters=default_rope(mrope_section=[2, 3, 3], mrope_interleaved=True),
        ),
        vision_config=qwen3_vision_config(s.hidden, deepstack),
        **QWEN_VL_TOKEN_IDS,
    )
    return build_seeded(Qwen3VLMoeForConditionalGeneration, cfg, seed)


register_tiny(
    TinySpec(
        "llava-olmoe",
        tiny_llava_olmoe,
        is_instance_of("LlavaForConditionalGeneration", "olmoe"),
        llava_inputs,
    )
)
register_tiny(
    TinySpec(
        "qwen3-vl-moe",
        tiny_qwen3_vl_moe,
        is_instance_of("Qwen3VLMoeForConditionalGeneration"),
        qwen_vl_inputs,
    )
)
