"""The toy tokenizer and image helpers every tiny family's processor shares.

The toy tokenizer maps printable ASCII to its byte value (ids 32..126) and reserves
0 pad, 1 bos, 2 eos, 3 image, 4 video, 5 vision start, 6 vision end, 7..31 for family
special tokens (row / column markers, image boundaries, ...). The vocabulary is 128.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    t = torch.nn.functional.interpolate(t[None], size=hw, mode="bilinear",
                                        align_corners=False)[0]
    return t * 2 - 1


def pad_left(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` ``[B, L]``, left-padded with PAD."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
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
