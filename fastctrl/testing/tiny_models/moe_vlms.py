"""Tiny MoE VLMs of stock transformers: GLM-4.5V, ERNIE-4.5-VL-MoE, Llama 4 and Aria.

Each is built from its transformers config classes (hidden 64, 4 decoder layers, 8 experts,
top_k 4, a 2-layer vision tower on 32x32 images) and gets a toy processor laying out the tokens
the way the family's processor does, with the toy ids of :mod:`.common`:

- GLM-4.5V: ``BOS VSTART IMAGE*16 VEND text`` (``<|begin_of_image|>`` / ``<|end_of_image|>``),
  Qwen-VL-style patches, ``image_grid_thw`` and ``mm_token_type_ids`` (1 at image tokens).
- ERNIE-4.5-VL-MoE: ``BOS VSTART IMAGE*16 VEND text`` (``<|IMAGE_START|>`` / ``<|IMAGE_END|>``),
  ``temporal_patch_size = 1`` patches, ``image_grid_thw``, ``mm_token_type_ids`` (1 at image
  tokens) and ``moe_mm_token_type_ids`` (1 at image tokens and their start / end tokens: they
  go through the vision experts). Video start / end tokens use the free ids 7 / 8.
- Llama 4: ``BOS VSTART 7 IMAGE*16 VEND text``: ``<|image_start|> <|image|> <|patch|>*16
  <|image_end|>`` for a single-tile image (7 is the ``<|image|>`` marker; ``<|patch|>`` is the
  placeholder ``image_token_index``); ``pixel_values`` ``[n_tiles, 3, 32, 32]``. Registered
  only where ``Llama4ForConditionalGeneration.forward`` can run (not in transformers 5.24:
  see :func:`llama4_forward_works`).
- Aria: ``BOS VSTART IMAGE*16 VEND text`` (``<fim_prefix>`` / ``<fim_suffix>`` around the
  ``<|img|>`` tokens), ``pixel_values`` ``[n_images, 3, 32, 32]`` and ``pixel_mask``; the
  projector maps the 64 patches of an image to 16 queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from . import TinySpec, register_tiny
from .common import (
    IMAGE,
    SPECIAL,
    VEND,
    VSTART,
    bracketed_image,
    is_instance_of,
    one_view_inputs,
    qwen_vl_inputs,
)
from .configs import (
    PLACEHOLDER_IDS,
    MoeSize,
    build_seeded,
    default_rope,
    qwen_vision_fields,
    text_fields,
    vit_fields,
)

#: Llama 4's ``<|image|>`` marker before an image's patch tokens
LLAMA4_IMAGE_MARKER = SPECIAL[0]
#: ERNIE / GLM video start / end tokens (never emitted for images)
VIDEO_START, VIDEO_END = SPECIAL[0], SPECIAL[1]
#: GLM-4.5V's and ERNIE-4.5-VL's placeholder and image / video boundary ids as config fields
IMAGE_VIDEO_TOKEN_IDS = dict(
    PLACEHOLDER_IDS,
    image_start_token_id=VSTART,
    image_end_token_id=VEND,
    video_start_token_id=VIDEO_START,
    video_end_token_id=VIDEO_END,
)


# ---------------------------------------------------------------------- GLM-4.5V
def tiny_glm4v_moe(seed: int = 0, *, dense_layers: int = 1, **size: int) -> nn.Module:
    """GLM-4.5V: first ``dense_layers`` decoder layers dense, the rest MoE (sigmoid router with
    a shared expert); a 32x32 image is an 8x8 patch grid merged 2x2 into 16 vision tokens;
    ``size``: :class:`.configs.MoeSize` fields."""
    from transformers import Glm4vMoeConfig, Glm4vMoeForConditionalGeneration

    s = MoeSize(**size)
    rot = (s.hidden // 4) // 2 // 2  # partial_rotary_factor 0.5: inv_freq of head_dim / 4
    section = [rot // 4, rot // 4, rot - 2 * (rot // 4)]
    cfg = Glm4vMoeConfig(
        text_config=text_fields(
            s.hidden,
            s.layers,
            moe_intermediate_size=s.hidden // 2,
            n_routed_experts=s.experts,
            num_experts_per_tok=s.top_k,
            n_shared_experts=1,
            first_k_dense_replace=dense_layers,
            n_group=1,
            topk_group=1,
            norm_topk_prob=True,
            rope_parameters=default_rope(partial_rotary_factor=0.5, mrope_section=section),
        ),
        vision_config=qwen_vision_fields(
            image_size=32, temporal_patch_size=2, out_hidden_size=s.hidden
        ),
        **IMAGE_VIDEO_TOKEN_IDS,
    )
    return build_seeded(Glm4vMoeForConditionalGeneration, cfg, seed)


# ---------------------------------------------------------------------- ERNIE-4.5-VL-MoE
def tiny_ernie4_5_vl_moe(seed: int = 0, **size: int) -> nn.Module:
    """ERNIE-4.5-VL-MoE: layer 0 dense, the rest modality-isolated MoE (text experts and vision
    experts, each with its own router, plus a shared expert); 16 vision tokens per image;
    ``size``: :class:`.configs.MoeSize` fields."""
    from transformers import Ernie4_5_VLMoeConfig, Ernie4_5_VLMoeForConditionalGeneration

    s = MoeSize(**size)
    half = (s.hidden // 4) // 2  # inv_freq length
    t = max(2, half // 4)
    hw = (half - t) // 2
    cfg = Ernie4_5_VLMoeConfig(
        text_config=text_fields(
            s.hidden,
            s.layers,
            moe_intermediate_size=[s.hidden // 2, s.hidden // 4],
            moe_num_experts=s.experts,
            moe_k=s.top_k,
            moe_num_shared_experts=1,
            tie_word_embeddings=True,
            rope_parameters=default_rope(mrope_section=[hw, hw, half - 2 * hw]),
        ),
        vision_config=qwen_vision_fields(temporal_merge_size=2),
        **IMAGE_VIDEO_TOKEN_IDS,
    )
    return build_seeded(Ernie4_5_VLMoeForConditionalGeneration, cfg, seed)


def _ernie4_5_vl_moe_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    inputs = qwen_vl_inputs(model, images, prompts, temporal=1)
    ids = inputs["input_ids"]
    # image tokens and their start / end tokens go through the vision experts
    inputs["moe_mm_token_type_ids"] = ((ids == IMAGE) | (ids == VSTART) | (ids == VEND)).long()
    return inputs


# ---------------------------------------------------------------------- Llama 4
def tiny_llama4(seed: int = 0, *, image_size: int = 32, patch: int = 4, **size: int) -> nn.Module:
    """Llama 4: every decoder layer MoE (sigmoid router over a dense expert loop, plus a shared
    expert), every 4th layer NoPE; a 32x32 tile is 64 patches pixel-shuffled into 16 tokens;
    ``size``: :class:`.configs.MoeSize` fields."""
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    s = MoeSize(**size)
    cfg = Llama4Config(
        text_config=text_fields(
            s.hidden,
            s.layers,
            intermediate_size=s.hidden // 2,
            intermediate_size_mlp=2 * s.hidden,
            head_dim=s.hidden // 4,
            num_local_experts=s.experts,
            num_experts_per_tok=s.top_k,
            rope_parameters=default_rope(),
        ),
        vision_config=vit_fields(
            image_size,
            patch,
            intermediate_size=128,  # 4x the tower's width
            pixel_shuffle_ratio=0.5,
            vision_output_dim=s.hidden,
            projector_input_dim=s.hidden,
            projector_output_dim=s.hidden,
            rope_parameters=default_rope(),
        ),
        image_token_index=IMAGE,
        boi_token_index=VSTART,
        eoi_token_index=VEND,
    )
    return build_seeded(Llama4ForConditionalGeneration, cfg, seed)


def llama4_forward_works() -> bool:
    """Whether this transformers' ``Llama4ForConditionalGeneration.forward`` can return at all.

    transformers 5.24 builds its output with ``image_outputs=outputs.image_outputs`` from the
    ``Llama4ForCausalLM`` output (a ``MoeCausalLMOutputWithPast``, which has no such field), so
    every call raises ``AttributeError`` (``return_dict=False`` fails in ``capture_outputs``
    instead): no forward, hooked or not, can run, so the tiny model is not registered there.
    """
    import inspect

    try:
        from transformers.models.llama4 import modeling_llama4 as m

        src = inspect.getsource(m.Llama4ForConditionalGeneration.forward)
    except (ImportError, AttributeError, OSError, TypeError):
        return False
    return "outputs.image_outputs" not in src or hasattr(
        m.MoeCausalLMOutputWithPast, "image_outputs"
    )


def _llama4_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    vc = model.config.vision_config
    size, patch = int(vc.image_size), int(vc.patch_size)
    n = int((size // patch) ** 2 * vc.pixel_shuffle_ratio**2)
    image_tokens = [VSTART, LLAMA4_IMAGE_MARKER] + [IMAGE] * n + [VEND]
    return one_view_inputs(images, prompts, image_tokens, size)


# ---------------------------------------------------------------------- Aria
def tiny_aria(
    seed: int = 0, *, image_size: int = 32, patch: int = 4, queries: int = 16, **size: int
) -> nn.Module:
    """Aria: every decoder layer MoE (softmax over the top-k logits, plus shared experts);
    Idefics3 vision tower, the projector's cross-attention turns 64 patches into 16 tokens;
    ``size``: :class:`.configs.MoeSize` fields."""
    from transformers import AriaConfig, AriaForConditionalGeneration

    s = MoeSize(**size)
    cfg = AriaConfig(
        text_config=text_fields(
            s.hidden,
            s.layers,
            model_type="aria_text",
            intermediate_size=s.hidden // 2,
            moe_num_experts=s.experts,
            moe_topk=s.top_k,
            moe_num_shared_experts=1,
        ),
        vision_config=vit_fields(image_size, patch, model_type="idefics3_vision"),
        projector_patch_to_query_dict={(image_size // patch) ** 2: queries},
        image_token_index=IMAGE,
    )
    return build_seeded(AriaForConditionalGeneration, cfg, seed)


def _aria_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    size = int(model.config.vision_config.image_size)
    n = next(iter(model.config.projector_patch_to_query_dict.values()))
    inputs = one_view_inputs(images, prompts, bracketed_image(n), size)
    inputs["pixel_mask"] = torch.ones(len(images), size, size, dtype=torch.bool)
    return inputs


register_tiny(
    TinySpec(
        "glm4v-moe",
        tiny_glm4v_moe,
        is_instance_of("Glm4vMoeForConditionalGeneration"),
        qwen_vl_inputs,
    )
)
register_tiny(
    TinySpec(
        "ernie4_5-vl-moe",
        tiny_ernie4_5_vl_moe,
        is_instance_of("Ernie4_5_VLMoeForConditionalGeneration"),
        _ernie4_5_vl_moe_inputs,
    )
)
if llama4_forward_works():
    register_tiny(
        TinySpec(
            "llama4", tiny_llama4, is_instance_of("Llama4ForConditionalGeneration"), _llama4_inputs
        )
    )
register_tiny(
    TinySpec("aria", tiny_aria, is_instance_of("AriaForConditionalGeneration"), _aria_inputs)
)
