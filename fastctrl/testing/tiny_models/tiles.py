"""Tiny tile-splitting VLMs: Idefics3 and SmolVLM (dense Llama text model, SigLIP-style vision
encoder run once per 32x32 tile, pixel-shuffle connector).

Image splitting as the families' processors do it (``processing_idefics3.py`` /
``processing_smolvlm.py``): an image becomes a ``rows x cols`` grid of tiles (crops) plus one
global tile (the whole image resized to one tile), encoded separately; the prompt is::

    <fake_token_around_image><row_1_col_1><image>*S <fake_token_around_image><row_1_col_2><image>*S \\n
    <fake_token_around_image><row_2_col_1><image>*S <fake_token_around_image><row_2_col_2><image>*S \\n
    \\n<fake_token_around_image><global-img><image>*S<fake_token_around_image>

(no spaces; ``S`` image tokens per tile, ``(32 / patch)**2 / scale_factor**2`` = 16 here) and
``pixel_values`` is ``[B, n_tiles, 3, 32, 32]`` (crops in raster order, then the global tile;
all-zero tiles are padding) with ``pixel_attention_mask`` ``[B, n_tiles, 32, 32]``.

Toy token ids (``common.SPECIAL``): 7 ``<fake_token_around_image>``, 8 ``<global-img>``,
9 ``\\n``, 10 + 4*(i-1) + (j-1) ``<row_i_col_j>`` (grids up to 4x4).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
from torch import nn

from . import TinySpec, register_tiny
from .common import BOS, IMAGE, PAD, as_chw, encode_text, grid_crops, is_instance_of, pad_left
from .configs import build_seeded, text_fields, vit_fields

FAKE, GLOBAL, NEWLINE = 7, 8, 9
ROW_COL0 = 10
MAX_SIDE = 4
TILE = 32
#: the tiny processor's split: every image is 2x2 crops + the global tile
GRID = (2, 2)
#: the transformers class-name prefix of each tile family (the same structure, own classes)
_CLASS_PREFIX = {"idefics3": "Idefics3", "smolvlm": "SmolVLM"}


def row_col(i: int, j: int) -> int:
    """Toy id of ``<row_{i+1}_col_{j+1}>`` (0-based ``i``, ``j``)."""
    if not (0 <= i < MAX_SIDE and 0 <= j < MAX_SIDE):
        raise ValueError(f"tile ({i}, {j}) outside the toy tokenizer's {MAX_SIDE}x{MAX_SIDE} grid")
    return ROW_COL0 + MAX_SIDE * i + j


def tiny_tiles_model(
    family: str,
    seed: int = 0,
    *,
    hidden: int = 64,
    layers: int = 4,
    patch: int = 4,
    vision_hidden: int = 32,
    vision_layers: int = 2,
) -> nn.Module:
    """Idefics3 or SmolVLM (``family``): Llama text model, SigLIP-style vision; a 32x32 tile
    is an 8x8 patch grid, pixel-shuffled 2x2 into 16 image tokens."""
    import transformers

    prefix = _CLASS_PREFIX[family]
    cfg = getattr(transformers, f"{prefix}Config")(
        text_config=text_fields(hidden, layers, model_type="llama"),
        vision_config=vit_fields(
            TILE,
            patch,
            hidden_size=vision_hidden,
            intermediate_size=2 * vision_hidden,
            num_hidden_layers=vision_layers,
        ),
        image_token_id=IMAGE,
        scale_factor=2,
        pad_token_id=PAD,
    )
    return build_seeded(getattr(transformers, f"{prefix}ForConditionalGeneration"), cfg, seed)


def tokens_per_tile(model: nn.Module) -> int:
    vc = model.config.vision_config
    return int((vc.image_size // vc.patch_size) ** 2 // model.config.scale_factor**2)


def image_prompt(
    rows: int, cols: int, seq_len: int, keep: Sequence[int] | None = None
) -> list[int]:
    """The processor's token layout of one image (``rows = cols = 0``: not split, the global
    tile only). ``keep``: raster indices of the crops to lay out (``None``: all); a crop left
    out loses its ``<fake_token_around_image><row_i_col_j><image>*S`` span, the row
    newlines stay."""
    if rows == 0 and cols == 0:
        return [FAKE, GLOBAL] + [IMAGE] * seq_len + [FAKE]
    kept = set(range(rows * cols)) if keep is None else set(keep)
    out: list[int] = []
    for i in range(rows):
        for j in range(cols):
            if i * cols + j in kept:
                out += [FAKE, row_col(i, j)] + [IMAGE] * seq_len
        out.append(NEWLINE)
    return out + [NEWLINE, FAKE, GLOBAL] + [IMAGE] * seq_len + [FAKE]


def split_image(image: np.ndarray, rows: int, cols: int) -> torch.Tensor:
    """``[rows*cols + 1, 3, 32, 32]``: the crops in raster order, then the global tile."""
    crops = grid_crops(image, rows, cols, TILE) if rows or cols else []
    return torch.stack([*crops, as_chw(image, TILE)])


def tiles_inputs(
    model: nn.Module,
    images: Sequence[np.ndarray],
    prompts: Sequence[str],
    grid: tuple[int, int] | Sequence[tuple[int, int]] = GRID,
    keep: Sequence[Sequence[int] | None] | None = None,
) -> dict[str, torch.Tensor]:
    """Inputs as the family's processor builds them: one image per prompt, split into
    ``grid`` (one ``(rows, cols)`` for all, or one per image; ``(0, 0)``: not split), left
    padding; ``pixel_values`` padded with all-zero tiles. ``keep``: per image, the raster
    indices of the crops to include (an input that never had the other crops: the reference
    the hook's crop dropping is checked against)."""
    s = tokens_per_tile(model)
    grids = [tuple(grid)] * len(images) if isinstance(grid[0], int) else [tuple(g) for g in grid]
    keeps = [None] * len(images) if keep is None else list(keep)
    seqs, tiles = [], []
    for im, p, (r, c), k in zip(images, prompts, grids, keeps, strict=True):
        seqs.append([BOS] + image_prompt(r, c, s, k) + encode_text(p))
        t = split_image(im, r, c)
        if k is not None:
            t = torch.cat([t[sorted(k)], t[-1:]])
        tiles.append(t)
    ids, mask = pad_left(seqs)
    n = max(t.shape[0] for t in tiles)
    pix = torch.zeros(len(tiles), n, 3, TILE, TILE)
    pmask = torch.zeros(len(tiles), n, TILE, TILE, dtype=torch.long)
    for b, t in enumerate(tiles):
        pix[b, : t.shape[0]] = t
        pmask[b, : t.shape[0]] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": pix,
        "pixel_attention_mask": pmask,
    }


def _process(
    model: nn.Module, images: Sequence[np.ndarray], prompts: Sequence[str]
) -> dict[str, torch.Tensor]:
    return tiles_inputs(model, images, prompts)


for _family, _prefix in _CLASS_PREFIX.items():
    register_tiny(
        TinySpec(
            _family,
            partial(tiny_tiles_model, _family),
            is_instance_of(f"{_prefix}ForConditionalGeneration"),
            _process,
        )
    )
