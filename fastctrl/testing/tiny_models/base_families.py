"""The first two tiny families: LLaVA with an OLMoE text model, and Qwen3-VL-MoE."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from . import TinySpec, register_tiny
from .common import (
    BOS,
    EOS,
    IMAGE,
    PAD,
    VEND,
    VIDEO,
    VOCAB,
    VSTART,
    as_chw,
    encode_text,
    is_instance_of,
    pad_left,
    qwen3_vision_config,
    qwen_grid_inputs,
)


def tiny_llava_olmoe(
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    experts: int = 8,
    top_k: int = 4,
    image_size: int = 32,
    patch: int = 4,
) -> nn.Module:
    """LLaVA (CLIP vision tower) + OLMoE text model; ``(image_size/patch)**2`` vision tokens."""
    from transformers import (
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        OlmoeConfig,
    )

    vc = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        projection_dim=32,
    )
    tc = OlmoeConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        num_experts=experts,
        num_experts_per_tok=top_k,
        max_position_embeddings=1024,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    cfg = LlavaConfig(
        vision_config=vc,
        text_config=tc,
        image_token_index=IMAGE,
        image_seq_length=(image_size // patch) ** 2,
    )
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(cfg).eval()


def tiny_qwen3_vl_moe(
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    experts: int = 8,
    top_k: int = 4,
    deepstack: Sequence[int] = (0, 1),
) -> nn.Module:
    """Qwen3-VL-MoE; a 32x32 image is an 8x8 patch grid merged 2x2 into 16 vision tokens."""
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

    head_dim = 16
    cfg = Qwen3VLMoeConfig(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            moe_intermediate_size=hidden // 2,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=head_dim,
            num_experts=experts,
            num_experts_per_tok=top_k,
            max_position_embeddings=1024,
            pad_token_id=PAD,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
        ),
        vision_config=qwen3_vision_config(hidden, deepstack),
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        vision_start_token_id=VSTART,
        vision_end_token_id=VEND,
    )
    torch.manual_seed(seed)
    return Qwen3VLMoeForConditionalGeneration(cfg).eval()


def _llava_olmoe_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    vc = model.config.vision_config
    n = (vc.image_size // vc.patch_size) ** 2
    ids, mask = pad_left([[BOS] + [IMAGE] * n + encode_text(p) for p in prompts])
    pix = torch.stack([as_chw(im, int(vc.image_size)) for im in images])
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix}


def qwen_vl_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str], size: int = 32
) -> dict[str, torch.Tensor]:
    """Inputs for a Qwen-VL-style model (Qwen2.5-VL, Qwen3-VL(-MoE)): each image a
    ``size x size`` patch grid merged ``spatial_merge_size``-square."""
    ids, mask, pix, grid = qwen_grid_inputs(
        model, images, prompts, int(model.config.vision_config.temporal_patch_size), size
    )
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": pix,
        "image_grid_thw": grid,
        "mm_token_type_ids": (ids == IMAGE).long(),
    }


register_tiny(
    TinySpec(
        "llava-olmoe",
        tiny_llava_olmoe,
        is_instance_of("LlavaForConditionalGeneration", "olmoe"),
        _llava_olmoe_inputs,
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
