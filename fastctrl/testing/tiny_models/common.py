"""The toy tokenizer and image helpers every tiny family's processor shares.

The toy tokenizer maps printable ASCII to its byte value (ids 32..126) and reserves
0 pad, 1 bos, 2 eos, 3 image, 4 video, 5 vision start, 6 vision end, 7..31 for family
special tokens (row / column markers, image boundaries, ...). The vocabulary is 128.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

PAD, BOS, EOS, IMAGE, VIDEO, VSTART, VEND = range(7)
#: free ids for family-specific special tokens (a family documents which it uses)
SPECIAL = tuple(range(7, 32))
VOCAB = 128


def encode_text(text: str) -> list[int]:
    return [b for b in text.encode("ascii", "replace") if 32 <= b < 127]


def decode_text(ids: Sequence[int]) -> str:
    return "".join(chr(i) for i in ids if 32 <= i < 127)


def as_chw(image: Any, size: int | tuple[int, int]) -> torch.Tensor:
    """HxWx3 uint8 (numpy / PIL) or 3xHxW float -> ``[3, h, w]`` float in [-1, 1]."""
    if hasattr(image, "convert"):  # PIL
        image = np.asarray(image.convert("RGB"))
    t = torch.as_tensor(np.asarray(image))
    if t.ndim == 3 and t.shape[-1] == 3:
        t = t.permute(2, 0, 1)
    t = t.float()
    if t.max() > 1.5:
        t = t / 255.0
    hw = (size, size) if isinstance(size, int) else size
    t = torch.nn.functional.interpolate(t[None], size=hw, mode="bilinear", align_corners=False)[0]
    return t * 2 - 1


def pad_left(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` ``[B, L]``, left-padded with PAD."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids, mask


def qwen_patches(img: torch.Tensor, patch: int, merge: int, temporal: int) -> torch.Tensor:
    """``[3, H, W]`` -> ``[gh*gw, 3*T*P*P]`` in Qwen-VL's merge-window patch order."""
    p, m, t = patch, merge, temporal
    c, h, w = img.shape
    gh, gw = h // p, w // p
    x = img[None].expand(t, c, h, w)
    x = x.reshape(t, c, gh // m, m, p, gw // m, m, p)
    x = x.permute(2, 5, 3, 6, 1, 0, 4, 7)
    return x.reshape(gh * gw, c * t * p * p).contiguous()


def is_instance_of(class_name: str, text_model_type: str | None = None) -> Callable[[Any], bool]:
    """A ``TinySpec.matches``: whether a model is the named transformers class (False where
    this transformers has no such class) and, if given, its text model is of that type."""

    def matches(model: Any) -> bool:
        import transformers

        cls = getattr(transformers, class_name, None)
        if cls is None or not isinstance(model, cls):
            return False
        return (
            text_model_type is None
            or getattr(model.config.text_config, "model_type", None) == text_model_type
        )

    return matches


def qwen_grid_inputs(
    model: Any, images: Sequence[Any], prompts: Sequence[str], temporal: int, size: int = 32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``input_ids``, ``attention_mask``, Qwen-VL-layout patches and ``image_grid_thw`` for
    ``BOS VSTART IMAGE*n VEND text``, one ``size x size`` image per prompt merged
    ``spatial_merge_size``-square (Qwen-VL, GLM-4.5V, ERNIE-VL)."""
    vc = model.config.vision_config
    patch, merge = int(vc.patch_size), int(vc.spatial_merge_size)
    g = size // patch
    n = g * g // merge**2
    ids, mask = pad_left([[BOS, VSTART] + [IMAGE] * n + [VEND] + encode_text(p) for p in prompts])
    pix = torch.cat([qwen_patches(as_chw(im, size), patch, merge, temporal) for im in images])
    return ids, mask, pix, torch.tensor([(1, g, g)] * len(images))


def qwen3_vision_config(hidden: int, deepstack: Sequence[int]) -> dict[str, Any]:
    """The tiny Qwen3-VL vision tower (dense and MoE): 4x4 patches merged 2x2, DeepStack
    after the given vision blocks."""
    return dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        patch_size=4,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=hidden,
        num_position_embeddings=64,
        deepstack_visual_indexes=list(deepstack),
    )
