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


def image_text_ids(
    prompts: Sequence[str], image_tokens: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of ``BOS image_tokens text`` per prompt, left-padded."""
    return pad_left([[BOS, *image_tokens, *encode_text(p)] for p in prompts])


def bracketed_image(n: int) -> list[int]:
    """``VSTART IMAGE*n VEND``: ``n`` placeholders between the vision start / end tokens."""
    return [VSTART] + [IMAGE] * n + [VEND]


def one_view_inputs(
    images: Sequence[Any], prompts: Sequence[str], image_tokens: Sequence[int], size: int
) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` (``BOS image_tokens text``) and ``pixel_values``
    ``[B, 3, size, size]``: the families that encode one view of each image."""
    ids, mask = image_text_ids(prompts, image_tokens)
    pix = torch.stack([as_chw(im, size) for im in images])
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix}


def grid_crops(image: Any, rows: int, cols: int, side: int) -> list[torch.Tensor]:
    """The ``rows x cols`` crops (``[3, side, side]``, raster order) of ``image`` resized to
    ``rows*side x cols*side``: the tiles of an image-splitting processor."""
    big = as_chw(image, (rows * side, cols * side))
    return [
        big[:, i * side : (i + 1) * side, j * side : (j + 1) * side]
        for i in range(rows)
        for j in range(cols)
    ]


def qwen_vl_inputs(
    model: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    temporal: int | None = None,
    size: int = 32,
) -> dict[str, torch.Tensor]:
    """Inputs of a Qwen-VL-style model (Qwen2.5-VL, Qwen3-VL(-MoE), GLM-4.5V, ERNIE-VL):
    ``BOS VSTART IMAGE*n VEND text``, one ``size x size`` image per prompt in Qwen-VL-layout
    patches merged ``spatial_merge_size``-square, ``image_grid_thw`` and ``mm_token_type_ids``
    (1 at image tokens). ``temporal``: frames per patch (default the tower's
    ``temporal_patch_size``)."""
    vc = model.config.vision_config
    patch, merge = int(vc.patch_size), int(vc.spatial_merge_size)
    t = int(vc.temporal_patch_size) if temporal is None else temporal
    g = size // patch
    ids, mask = image_text_ids(prompts, bracketed_image(g * g // merge**2))
    pix = torch.cat([qwen_patches(as_chw(im, size), patch, merge, t) for im in images])
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": pix,
        "image_grid_thw": torch.tensor([(1, g, g)] * len(images)),
        "mm_token_type_ids": (ids == IMAGE).long(),
    }
