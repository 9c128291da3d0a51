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
    BOS,
    EOS,
    IMAGE,
    PAD,
    SPECIAL,
    VEND,
    VIDEO,
    VOCAB,
    VSTART,
    as_chw,
    encode_text,
    is_instance_of,
    pad_left,
    qwen_grid_inputs,
)

#: Llama 4's ``<|image|>`` marker before an image's patch tokens
LLAMA4_IMAGE_MARKER = SPECIAL[0]
#: ERNIE / GLM video start / end tokens (never emitted for images)
VIDEO_START, VIDEO_END = SPECIAL[0], SPECIAL[1]


def tiny_glm4v_moe(
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    experts: int = 8,
    top_k: int = 4,
    dense_layers: int = 1,
) -> nn.Module:
    """GLM-4.5V: first ``dense_layers`` decoder layers dense, the rest MoE (sigmoid router with
    a shared expert); a 32x32 image is an 8x8 patch grid merged 2x2 into 16 vision tokens."""
    from transformers import Glm4vMoeConfig, Glm4vMoeForConditionalGeneration

    heads = 4
    rot = (hidden // heads) // 2 // 2  # partial_rotary_factor 0.5: inv_freq of head_dim / 4
    section = [rot // 4, rot // 4, rot - 2 * (rot // 4)]
    cfg = Glm4vMoeConfig(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            moe_intermediate_size=hidden // 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=2,
            n_routed_experts=experts,
            num_experts_per_tok=top_k,
            n_shared_experts=1,
            first_k_dense_replace=dense_layers,
            n_group=1,
            topk_group=1,
            norm_topk_prob=True,
            max_position_embeddings=1024,
            pad_token_id=PAD,
            bos_token_id=BOS,
            eos_token_id=EOS,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "partial_rotary_factor": 0.5,
                "mrope_section": section,
            },
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            image_size=32,
            patch_size=4,
            spatial_merge_size=2,
            temporal_patch_size=2,
            out_hidden_size=hidden,
        ),
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        image_start_token_id=VSTART,
        image_end_token_id=VEND,
        video_start_token_id=VIDEO_START,
        video_end_token_id=VIDEO_END,
    )
    torch.manual_seed(seed)
    return Glm4vMoeForConditionalGeneration(cfg).eval()


def _glm4v_moe_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    ids, mask, pix, grid = qwen_grid_inputs(
        model, images, prompts, int(model.config.vision_config.temporal_patch_size)
    )
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": pix,
        "image_grid_thw": grid,
        "mm_token_type_ids": (ids == IMAGE).long(),
    }


# ---------------------------------------------------------------------- ERNIE-4.5-VL-MoE
def tiny_ernie4_5_vl_moe(
    seed: int = 0, *, hidden: int = 64, layers: int = 4, experts: int = 8, top_k: int = 4
) -> nn.Module:
    """ERNIE-4.5-VL-MoE: layer 0 dense, the rest modality-isolated MoE (text experts and vision
    experts, each with its own router, plus a shared expert); 16 vision tokens per image."""
    from transformers import Ernie4_5_VLMoeConfig, Ernie4_5_VLMoeForConditionalGeneration

    heads = 4
    half = (hidden // heads) // 2  # inv_freq length
    t = max(2, half // 4)
    hw = (half - t) // 2
    cfg = Ernie4_5_VLMoeConfig(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=2,
            moe_intermediate_size=[hidden // 2, hidden // 4],
            moe_num_experts=experts,
            moe_k=top_k,
            moe_num_shared_experts=1,
            max_position_embeddings=1024,
            pad_token_id=PAD,
            bos_token_id=BOS,
            eos_token_id=EOS,
            tie_word_embeddings=True,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [hw, hw, half - 2 * hw],
            },
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            patch_size=4,
            spatial_merge_size=2,
            temporal_merge_size=2,
        ),
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        image_start_token_id=VSTART,
        image_end_token_id=VEND,
        video_start_token_id=VIDEO_START,
        video_end_token_id=VIDEO_END,
    )
    torch.manual_seed(seed)
    return Ernie4_5_VLMoeForConditionalGeneration(cfg).eval()


def _ernie4_5_vl_moe_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    ids, mask, pix, grid = qwen_grid_inputs(model, images, prompts, temporal=1)
    image = ids == IMAGE
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": pix,
        "image_grid_thw": grid,
        "mm_token_type_ids": image.long(),
        "moe_mm_token_type_ids": (image | (ids == VSTART) | (ids == VEND)).long(),
    }


# ---------------------------------------------------------------------- Llama 4
def tiny_llama4(
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    experts: int = 8,
    top_k: int = 4,
    image_size: int = 32,
    patch: int = 4,
) -> nn.Module:
    """Llama 4: every decoder layer MoE (sigmoid router over a dense expert loop, plus a shared
    expert), every 4th layer NoPE; a 32x32 tile is 64 patches pixel-shuffled into 16 tokens."""
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    vision_hidden = 32
    cfg = Llama4Config(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=hidden,
            intermediate_size=hidden // 2,
            intermediate_size_mlp=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=hidden // 4,
            num_local_experts=experts,
            num_experts_per_tok=top_k,
            max_position_embeddings=1024,
            pad_token_id=PAD,
            bos_token_id=BOS,
            eos_token_id=EOS,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        vision_config=dict(
            hidden_size=vision_hidden,
            intermediate_size=4 * vision_hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
            pixel_shuffle_ratio=0.5,
            vision_output_dim=hidden,
            projector_input_dim=hidden,
            projector_output_dim=hidden,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        image_token_index=IMAGE,
        boi_token_index=VSTART,
        eoi_token_index=VEND,
    )
    torch.manual_seed(seed)
    return Llama4ForConditionalGeneration(cfg).eval()


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
    ids, mask = pad_left(
        [
            [BOS, VSTART, LLAMA4_IMAGE_MARKER] + [IMAGE] * n + [VEND] + encode_text(p)
            for p in prompts
        ]
    )
    pix = torch.stack([as_chw(im, size) for im in images])
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix}


# ---------------------------------------------------------------------- Aria
def tiny_aria(
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    experts: int = 8,
    top_k: int = 4,
    image_size: int = 32,
    patch: int = 4,
    queries: int = 16,
) -> nn.Module:
    """Aria: every decoder layer MoE (softmax over the top-k logits, plus shared experts);
    Idefics3 vision tower, the projector's cross-attention turns 64 patches into 16 tokens."""
    from transformers import AriaConfig, AriaForConditionalGeneration

    cfg = AriaConfig(
        text_config=dict(
            model_type="aria_text",
            vocab_size=VOCAB,
            hidden_size=hidden,
            intermediate_size=hidden // 2,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            moe_num_experts=experts,
            moe_topk=top_k,
            moe_num_shared_experts=1,
            max_position_embeddings=1024,
            pad_token_id=PAD,
            bos_token_id=BOS,
            eos_token_id=EOS,
        ),
        vision_config=dict(
            model_type="idefics3_vision",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
        ),
        projector_patch_to_query_dict={(image_size // patch) ** 2: queries},
        image_token_index=IMAGE,
    )
    torch.manual_seed(seed)
    return AriaForConditionalGeneration(cfg).eval()


def _aria_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    vc = model.config.vision_config
    size = int(vc.image_size)
    n = next(iter(model.config.projector_patch_to_query_dict.values()))
    ids, mask = pad_left([[BOS, VSTART] + [IMAGE] * n + [VEND] + encode_text(p) for p in prompts])
    pix = torch.stack([as_chw(im, size) for im in images])
    pixel_mask = torch.ones(len(images), size, size, dtype=torch.bool)
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix, "pixel_mask": pixel_mask}


register_tiny(
    TinySpec(
        "glm4v-moe",
        tiny_glm4v_moe,
        is_instance_of("Glm4vMoeForConditionalGeneration"),
        _glm4v_moe_inputs,
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
