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

Text models: hidden 64, 4 decoder layers, 8 routed experts, ``num_experts_per_tok`` 4 (every
layer MoE); DeepSeek-V3 with ``first_k_dense_replace = 0``, ``n_group = 2``,
``topk_group = 1`` (group-limited routing keeps 1 group of 4 experts, so any top_k in 1..4
is valid), one shared expert; GPT-OSS with alternating ``sliding_attention`` /
``full_attention`` layers and a 16-token window (shorter than the prompts, so it is in
effect), default RoPE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

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
)

SIZE = 32


# ---------------------------------------------------------------------- text models
def text_config(
    kind: str, hidden: int = 64, layers: int = 4, experts: int = 8, top_k: int = 4
) -> Any:
    """A small transformers config of text model ``kind`` (a ``model_type``)."""
    import transformers as tf

    heads, head_dim = 4, hidden // 4
    common = dict(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=1024,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    moe = dict(num_experts_per_tok=top_k)
    if kind == "qwen3_moe":
        return tf.Qwen3MoeConfig(
            **common,
            **moe,
            num_key_value_heads=2,
            head_dim=head_dim,
            intermediate_size=2 * hidden,
            moe_intermediate_size=hidden // 2,
            num_experts=experts,
            norm_topk_prob=True,
        )
    if kind == "qwen2_moe":
        return tf.Qwen2MoeConfig(
            **common,
            **moe,
            num_key_value_heads=2,
            intermediate_size=2 * hidden,
            moe_intermediate_size=hidden // 2,
            shared_expert_intermediate_size=hidden,
            num_experts=experts,
            norm_topk_prob=False,
        )
    if kind == "mixtral":
        return tf.MixtralConfig(
            **common,
            **moe,
            num_key_value_heads=2,
            head_dim=head_dim,
            intermediate_size=hidden,
            num_local_experts=experts,
        )
    if kind == "deepseek_v3":
        return tf.DeepseekV3Config(
            **common,
            **moe,
            num_key_value_heads=heads,
            intermediate_size=2 * hidden,
            moe_intermediate_size=hidden // 2,
            n_routed_experts=experts,
            n_shared_experts=1,
            first_k_dense_replace=0,
            n_group=2,
            topk_group=1,
            norm_topk_prob=True,
            q_lora_rank=hidden // 2,
            kv_lora_rank=hidden // 4,
            qk_rope_head_dim=8,
            qk_nope_head_dim=8,
            v_head_dim=head_dim,
            routed_scaling_factor=1.0,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        )
    if kind == "gpt_oss":
        return tf.GptOssConfig(
            **common,
            **moe,
            num_key_value_heads=2,
            head_dim=head_dim,
            intermediate_size=hidden,
            num_local_experts=experts,
            sliding_window=16,
            layer_types=[
                "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)
            ],
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        )
    if kind == "qwen2":
        return tf.Qwen2Config(**common, num_key_value_heads=2, intermediate_size=2 * hidden)
    if kind == "qwen3":
        return tf.Qwen3Config(
            **common, num_key_value_heads=2, head_dim=head_dim, intermediate_size=2 * hidden
        )
    raise ValueError(f"no tiny text model {kind!r}")


def _never_emit_placeholders(model: nn.Module, *ids: int) -> nn.Module:
    """Suppress the vision placeholder ids in generation: a random-weight model can emit
    them, and a later forward over the generated ids (``use_cache=False`` re-prefills) would
    then find a placeholder with no vision feature behind it (an error in the model, or a
    token the hook counts as vision). A trained model never emits them."""
    model.generation_config.suppress_tokens = sorted(set(ids))
    return model


# ---------------------------------------------------------------------- LLaVA
def tiny_llava(
    text: str,
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    experts: int = 8,
    top_k: int = 4,
    patch: int = 8,
) -> nn.Module:
    """LLaVA (CLIP vision tower) around text model ``text``; ``(32/patch)**2`` vision tokens."""
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    vc = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=SIZE,
        patch_size=patch,
        projection_dim=32,
    )
    cfg = LlavaConfig(
        vision_config=vc,
        text_config=text_config(text, hidden, layers, experts, top_k),
        image_token_index=IMAGE,
        image_seq_length=(SIZE // patch) ** 2,
    )
    torch.manual_seed(seed)
    return _never_emit_placeholders(LlavaForConditionalGeneration(cfg).eval(), IMAGE)


def llava_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    cfg = model.config
    vc = cfg.vision_config
    n = (vc.image_size // vc.patch_size) ** 2
    if cfg.vision_feature_select_strategy == "full":
        n += 1  # CLIP's CLS token kept
    ids, mask = pad_left([[BOS] + [IMAGE] * n + encode_text(p) for p in prompts])
    pix = torch.stack([as_chw(im, int(vc.image_size)) for im in images])
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix}


# ---------------------------------------------------------------------- LLaVA-OneVision
def tiny_llava_onevision(
    text: str,
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    experts: int = 8,
    top_k: int = 4,
    patch: int = 8,
) -> nn.Module:
    """LLaVA-OneVision (SigLIP) around ``text``; anyres with a single 32x32 grid pinpoint."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    cfg = LlavaOnevisionConfig(
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=SIZE,
            patch_size=patch,
        ),
        text_config=text_config(text, hidden, layers, experts, top_k),
        image_token_index=IMAGE,
        video_token_index=VIDEO,
        image_grid_pinpoints=[[SIZE, SIZE]],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
    )
    torch.manual_seed(seed)
    return _never_emit_placeholders(
        LlavaOnevisionForConditionalGeneration(cfg).eval(), IMAGE, VIDEO
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
    ids, mask = pad_left([[BOS] + [IMAGE] * n + encode_text(p) for p in prompts])
    pix = []
    for im in images:
        tiles = [as_chw(im, side)]
        big = as_chw(im, (rows * side, cols * side))
        tiles += [
            big[:, i * side : (i + 1) * side, j * side : (j + 1) * side]
            for i in range(rows)
            for j in range(cols)
        ]
        pix.append(torch.stack(tiles))
    assert pix[0].shape[0] == views
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.stack(pix),
        "image_sizes": torch.tensor([size] * len(images)),
    }


# ---------------------------------------------------------------------- InternVL
def tiny_internvl(
    text: str,
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    experts: int = 8,
    top_k: int = 4,
    patch: int = 4,
) -> nn.Module:
    """InternVL (InternViT) around ``text``; one 32x32 tile is 8x8 patches, pixel-shuffled
    into 16 tokens."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    cfg = InternVLConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=[SIZE, SIZE],
            patch_size=[patch, patch],
        ),
        text_config=text_config(text, hidden, layers, experts, top_k),
        image_token_id=IMAGE,
        image_seq_length=(SIZE // patch) ** 2 // 4,
        downsample_ratio=0.5,
    )
    torch.manual_seed(seed)
    return _never_emit_placeholders(InternVLForConditionalGeneration(cfg).eval(), IMAGE)


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
    ids, mask = pad_left([[BOS, VSTART] + [IMAGE] * n + [VEND] + encode_text(p) for p in prompts])
    pix = torch.stack([as_chw(im, side) for im in images])
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix}


# ---------------------------------------------------------------------- registry
def _builder(fn: Callable[..., nn.Module], text: str) -> Callable[..., nn.Module]:
    def build(seed: int = 0, **kwargs: Any) -> nn.Module:
        return fn(text, seed, **kwargs)

    build.__name__ = f"{fn.__name__}_{text}"
    build.__doc__ = fn.__doc__
    return build


_PAIRINGS = (
    (
        "llava",
        tiny_llava,
        "LlavaForConditionalGeneration",
        llava_inputs,
        ("qwen3_moe", "qwen2_moe", "mixtral", "deepseek_v3", "gpt_oss"),
    ),
    (
        "llava-onevision",
        tiny_llava_onevision,
        "LlavaOnevisionForConditionalGeneration",
        llava_onevision_inputs,
        ("qwen2_moe", "qwen2"),
    ),
    (
        "internvl",
        tiny_internvl,
        "InternVLForConditionalGeneration",
        internvl_inputs,
        ("qwen3_moe", "qwen3"),
    ),
)

for _family, _fn, _cls, _process, _texts in _PAIRINGS:
    for _text in _texts:
        register_tiny(
            TinySpec(
                f"{_family}-{_text.replace('_', '-')}",
                _builder(_fn, _text),
                is_instance_of(_cls, _text),
                _process,
            )
        )
