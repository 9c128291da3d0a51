"""The config fields the tiny families share, so that each family states only what differs.

Every tiny text model has the toy vocabulary and special ids of :mod:`.common`, 4 attention
heads (2 key/value heads), an MLP twice the hidden size and 1024 positions; every vision tower
is 2 layers of width 32 (MLP 64) with 2 heads. The helpers return plain dicts (a family's
config class takes them as ``text_config=`` / ``vision_config=`` or as keyword arguments) and
a family overrides any field by passing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .common import BOS, EOS, IMAGE, PAD, VEND, VIDEO, VOCAB, VSTART


@dataclass(frozen=True)
class MoeSize:
    """The sizes every tiny MoE builder takes as keywords (``build(seed, hidden=128)``): text
    hidden width, decoder layers, routed experts and experts per token."""

    hidden: int = 64
    layers: int = 4
    experts: int = 8
    top_k: int = 4


#: the toy pad / bos / eos ids as config fields
SPECIAL_TOKEN_IDS = dict(pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
#: the image and video placeholder ids as config fields (Qwen-VL, GLM-4.5V, ERNIE-4.5-VL)
PLACEHOLDER_IDS = dict(image_token_id=IMAGE, video_token_id=VIDEO)
#: Qwen-VL's placeholders and ``<|vision_start|>`` / ``<|vision_end|>`` ids as config fields
QWEN_VL_TOKEN_IDS = dict(PLACEHOLDER_IDS, vision_start_token_id=VSTART, vision_end_token_id=VEND)


def text_fields(hidden: int, layers: int, *, bos_eos: bool = True, **fields: Any) -> dict[str, Any]:
    """A tiny text model's config fields, ``fields`` overriding the shared ones. ``bos_eos``
    False: no bos / eos ids (Qwen3-VL's text config has no such fields)."""
    shared = dict(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        **(SPECIAL_TOKEN_IDS if bos_eos else dict(pad_token_id=PAD)),
    )
    return shared | fields


def default_rope(**fields: Any) -> dict[str, Any]:
    """``rope_parameters`` of default RoPE (theta 10000) plus a family's ``fields``
    (``mrope_section``, ``partial_rotary_factor``, ...)."""
    return {"rope_type": "default", "rope_theta": 10000.0, **fields}


#: the width of every tiny vision tower (the two tower kinds name their depth and heads apart)
TOWER_WIDTH = dict(hidden_size=32, intermediate_size=64)


def vit_fields(image_size: Any, patch: Any, **fields: Any) -> dict[str, Any]:
    """A tiny ViT-style vision tower (CLIP, SigLIP, InternViT, ...) on ``image_size`` images
    cut into ``patch`` patches; ``fields`` override the shared ones."""
    shared = dict(
        TOWER_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
    )
    return shared | fields


def qwen_vision_fields(**fields: Any) -> dict[str, Any]:
    """A tiny Qwen-VL-style vision tower (Qwen-VL, GLM-4.5V, ERNIE-VL): 4x4 patches merged
    2x2; ``fields`` add to or override these."""
    shared = dict(TOWER_WIDTH, depth=2, num_heads=2, patch_size=4, spatial_merge_size=2)
    return shared | fields


def qwen3_vision_config(hidden: int, deepstack: Sequence[int]) -> dict[str, Any]:
    """The tiny Qwen3-VL vision tower (dense and MoE): DeepStack after the given vision
    blocks, output width ``hidden``."""
    return qwen_vision_fields(
        temporal_patch_size=2,
        out_hidden_size=hidden,
        num_position_embeddings=64,
        deepstack_visual_indexes=list(deepstack),
    )


def build_seeded(model_class: type[nn.Module], config: Any, seed: int) -> nn.Module:
    """``model_class(config)`` in eval mode with weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return model_class(config).eval()
