"""Tiny dense VLMs of stock transformers: Qwen3-VL, Qwen2.5-VL, Gemma 3 and Molmo2.

Each is built from its transformers config classes (text hidden 64, 4 decoder layers, a
2-layer vision tower on 32x32 images) and gets a toy processor laying out the tokens the way
the family's processor does, with the toy ids of :mod:`.common`:

- Qwen3-VL / Qwen2.5-VL: ``BOS VSTART IMAGE*16 VEND text`` (``<|vision_start|>`` /
  ``<|vision_end|>``), Qwen-VL patches (an 8x8 patch grid merged 2x2), ``image_grid_thw`` and
  ``mm_token_type_ids`` (:func:`.common.qwen_vl_inputs`). Qwen3-VL has DeepStack after
  vision layers 0 and 1; Qwen2.5-VL uses window attention (2x2 merged-token windows) in vision
  block 0 and full attention in block 1.
- Gemma 3: ``BOS VSTART IMAGE*16 VEND text`` (``<start_of_image>`` ``<image_soft_token>``*16
  ``<end_of_image>``): SigLIP on 8x8 patches average-pooled 2x2 to ``mm_tokens_per_image = 16``;
  ``pixel_values`` ``[n_images, 3, 32, 32]`` and ``token_type_ids`` (1 at image tokens: the
  bidirectional attention block over each image); the projector weight, zeros until a
  checkpoint loads, is drawn at random. Decoder layers 0-2 are sliding-window
  (window 16), layer 3 full attention.
- Molmo2: per image a low-resolution view then one high-resolution crop, each a 32x32 crop of
  8x8 patches pooled 2x2 into a 4x4 token grid:
  ``BOS [7 (IMAGE*4 8)*4 VEND] [VSTART (IMAGE*4 8)*4 VEND] text``
  (``<low_res_im_start>`` / ``<im_start>``, ``<im_patch>`` rows each followed by ``<im_col>``,
  ``<im_end>``; 7 and 8 are the low-res start and column tokens), ``pixel_values``
  ``[2 * n_images, 64, 48]`` (crops x patches x pixels), ``image_token_pooling``
  ``[32 * n_images, 4]`` (patch indices pooled by each token, offset per image),
  ``image_grids`` ``[n_images, 4]`` = (4, 4, 4, 4), ``image_num_crops`` and
  ``mm_token_type_ids`` (1 at every image token, start / end / column tokens included: they
  share one bidirectional block).
"""

from __future__ import annotations

import inspect
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
    as_chw,
    bracketed_image,
    image_text_ids,
    is_instance_of,
    one_view_inputs,
    qwen_vl_inputs,
)
from .configs import (
    QWEN_VL_TOKEN_IDS,
    SPECIAL_TOKEN_IDS,
    TOWER_WIDTH,
    build_seeded,
    default_rope,
    qwen3_vision_config,
    qwen_vision_fields,
    text_fields,
    vit_fields,
)

#: Molmo2's ``<low_res_im_start>`` and ``<im_col>`` tokens; frame start / end (never emitted)
MOLMO_LOW_RES_START, MOLMO_COL, MOLMO_FRAME_START, MOLMO_FRAME_END = SPECIAL[:4]
#: Molmo2's image token ids as config fields: ``<im_patch>``, the starts of the low-resolution
#: view and of the crops, ``<im_end>``
MOLMO2_IMAGE_IDS = dict(
    image_patch_id=IMAGE,
    low_res_image_start_token_id=MOLMO_LOW_RES_START,
    image_start_token_id=VSTART,
    image_end_token_id=VEND,
)


# --------------------------------------------------------------------------- Qwen-VL
def tiny_qwen3_vl(
    seed: int = 0, *, hidden: int = 64, layers: int = 4, deepstack: Sequence[int] = (0, 1)
) -> nn.Module:
    """Qwen3-VL (dense); a 32x32 image is an 8x8 patch grid merged 2x2 into 16 vision tokens."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    cfg = Qwen3VLConfig(
        text_config=text_fields(
            hidden,
            layers,
            bos_eos=False,
            head_dim=16,
            rope_parameters=default_rope(mrope_section=[2, 3, 3], mrope_interleaved=True),
        ),
        vision_config=qwen3_vision_config(hidden, deepstack),
        **QWEN_VL_TOKEN_IDS,
    )
    return build_seeded(Qwen3VLForConditionalGeneration, cfg, seed)


def tiny_qwen2_5_vl(seed: int = 0, *, hidden: int = 64, layers: int = 4) -> nn.Module:
    """Qwen2.5-VL; a 32x32 image is an 8x8 patch grid merged 2x2 into 16 vision tokens."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    cfg = Qwen2_5_VLConfig(
        text_config=text_fields(
            hidden, layers, rope_parameters=default_rope(mrope_section=[2, 3, 3])
        ),
        vision_config=qwen_vision_fields(
            temporal_patch_size=2,
            out_hidden_size=hidden,
            window_size=16,
            fullatt_block_indexes=[1],
        ),
        **QWEN_VL_TOKEN_IDS,
    )
    return build_seeded(Qwen2_5_VLForConditionalGeneration, cfg, seed)


# --------------------------------------------------------------------------- Gemma 3
def tiny_gemma3(
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    image_size: int = 32,
    patch: int = 4,
    tokens_per_image: int = 16,
    sliding_window: int = 16,
) -> nn.Module:
    """Gemma 3: SigLIP tower, 2x2 average pool to ``tokens_per_image``; sliding-window
    layers except every fourth (the last of 4)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    layer_types = [
        "full_attention" if (i + 1) % 4 == 0 else "sliding_attention" for i in range(layers)
    ]
    cfg = Gemma3Config(
        text_config=text_fields(
            hidden,
            layers,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=sliding_window,
            layer_types=layer_types,
        ),
        vision_config=vit_fields(
            image_size, patch, model_type="siglip_vision_model", vision_use_head=False
        ),
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=VSTART,
        eoi_token_index=VEND,
        image_token_index=IMAGE,
        **SPECIAL_TOKEN_IDS,
    )
    model = build_seeded(Gemma3ForConditionalGeneration, cfg, seed)
    # the projector weight starts at zeros (a checkpoint sets it): random, or every merged
    # vision token would be the zero vector
    with torch.no_grad():
        w = model.model.multi_modal_projector.mm_input_projection_weight
        w.normal_(0.0, w.shape[0] ** -0.5)
    return model


def _gemma3_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    n = int(model.config.mm_tokens_per_image)
    size = int(model.config.vision_config.image_size)
    inputs = one_view_inputs(images, prompts, bracketed_image(n), size)
    inputs["token_type_ids"] = (inputs["input_ids"] == IMAGE).long()
    return inputs


# --------------------------------------------------------------------------- Molmo2
def tiny_molmo2(
    seed: int = 0, *, hidden: int = 64, layers: int = 4, crop: int = 32, patch: int = 4
) -> nn.Module:
    """Molmo2: a ViT on ``crop``-square crops, a 2x2 attention-pooling adapter; both ViT
    layers feed the adapter (``vision_feature_layer = [-1, -2]``)."""
    from transformers import Molmo2Config, Molmo2ForConditionalGeneration

    # the ViT and its pooling adapter have the same width and attention heads
    heads = dict(num_attention_heads=2, num_key_value_heads=2, head_dim=16)
    cfg = Molmo2Config(
        vision_config=vit_fields(
            [crop, crop], patch, **heads, num_position_embeddings=(crop // patch) ** 2
        ),
        adapter_config=dict(
            TOWER_WIDTH, **heads, vision_feature_layer=[-1, -2], text_hidden_size=hidden
        ),
        text_config=text_fields(hidden, layers, head_dim=16, additional_vocab_size=0),
        **MOLMO2_IMAGE_IDS,
        frame_start_token_id=MOLMO_FRAME_START,
        frame_end_token_id=MOLMO_FRAME_END,
        **SPECIAL_TOKEN_IDS,
    )
    return build_seeded(Molmo2ForConditionalGeneration, cfg, seed)


def _molmo2_pool_index(g: int, pool: int = 2) -> torch.Tensor:
    """``[(g/pool)^2, pool^2]``: the patch indices of a ``g x g`` grid each token pools
    (Molmo2's ``arange_for_pooling`` for a grid that ``pool`` divides)."""
    r = g // pool
    return torch.arange(g * g).view(r, pool, r, pool).permute(0, 2, 1, 3).reshape(r * r, -1)


def _molmo2_patches(img: torch.Tensor, patch: int) -> torch.Tensor:
    """``[3, S, S]`` -> ``[(S/p)^2, p*p*3]`` (Molmo2's ``batch_pixels_to_patches``: HWC)."""
    c, h, w = img.shape
    x = img.permute(1, 2, 0).reshape(h // patch, patch, w // patch, patch, c)
    return x.transpose(1, 2).reshape((h // patch) * (w // patch), patch * patch * c)


def _molmo2_pools_per_image(model: nn.Module) -> bool:
    """Whether ``image_token_pooling`` indexes each image's own patches (transformers >= 5.25:
    ``get_image_features`` takes ``image_num_crops`` and adds the offsets itself) rather than the
    patches of the whole batch (earlier releases), as the installed processor emits it."""
    get = type(model.model).get_image_features
    return "image_num_crops" in inspect.signature(get).parameters


def _molmo2_inputs(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    vc = model.config.vision_config
    crop, patch = int(vc.image_size[0]), int(vc.patch_size)
    g = crop // patch
    r = g // 2  # token rows / cols of each view
    view = lambda start: [start] + ([IMAGE] * r + [MOLMO_COL]) * r + [VEND]  # noqa: E731
    image_tokens = view(MOLMO_LOW_RES_START) + view(VSTART)
    ids, mask = image_text_ids(prompts, image_tokens)
    crops, pools = [], []
    idx = _molmo2_pool_index(g)
    per_image = _molmo2_pools_per_image(model)
    for i, im in enumerate(images):
        low = as_chw(im, crop)  # the low-resolution view: the whole image at crop size
        high = as_chw(im, crop)  # one high-resolution crop (a 1x1 tiling of a crop-size canvas)
        crops += [_molmo2_patches(low, patch), _molmo2_patches(high, patch)]
        base = 0 if per_image else i * 2 * g * g
        pools += [idx + base, idx + base + g * g]
    n = len(images)
    special = torch.tensor([IMAGE, MOLMO_COL, VSTART, MOLMO_LOW_RES_START, VEND])
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.stack(crops),
        "image_token_pooling": torch.cat(pools),
        "image_grids": torch.tensor([(r, r, r, r)] * n),
        "image_num_crops": torch.tensor([2] * n),
        "mm_token_type_ids": torch.isin(ids, special).long(),
    }


register_tiny(
    TinySpec(
        "qwen3-vl", tiny_qwen3_vl, is_instance_of("Qwen3VLForConditionalGeneration"), qwen_vl_inputs
    )
)
register_tiny(
    TinySpec(
        "qwen2.5-vl",
        tiny_qwen2_5_vl,
        is_instance_of("Qwen2_5_VLForConditionalGeneration"),
        qwen_vl_inputs,
    )
)
register_tiny(
    TinySpec(
        "gemma3", tiny_gemma3, is_instance_of("Gemma3ForConditionalGeneration"), _gemma3_inputs
    )
)
register_tiny(
    TinySpec(
        "molmo2", tiny_molmo2, is_instance_of("Molmo2ForConditionalGeneration"), _molmo2_inputs
    )
)
