"""Crop dropping before the vision encoder, for families that encode tiles separately
(Idefics3 / SmolVLM image splitting).

Such a family lays out every image as crops followed by one global tile::

    <fake><row_1_col_1><image>*S <fake><row_1_col_2><image>*S \\n ... \\n<fake><global-img><image>*S<fake>

and passes the tiles as ``pixel_values [B, n_tiles, 3, H, W]`` (all-zero tiles are padding).
For ``max_crops`` the hook decides in the top-level forward's pre-hook, before any tile is
encoded, and rewrites the forward's inputs so that only the kept crops (and every global tile)
are in ``pixel_values`` and only their spans are in the prompt:

- :func:`parse` finds the tiles from the token ids alone (no tokenizer ids needed): every run
  of ``S`` image tokens is one tile, the token before it its marker; the last tile of every
  row is a global tile, so a row's global marker is known, and every tile with another marker
  is a crop of the image whose global tile follows it;
- :func:`crops_kept` / :func:`plan`: per image, ``ceil(n_crops * v / top)`` of its crops (the
  grid top keeps them all), evenly spaced in raster order (``floor((i + 0.5) * n / k)``, the
  rule :func:`~.apply.vision_keep` uses for tokens); absolute ``min(n_crops, v)`` when the hook
  was given ``tokens_per_crop``;
- :func:`reduce_inputs`: drops the ``<fake><row_i_col_j><image>*S`` span of every dropped crop
  (row newlines stay) from ``input_ids``, ``attention_mask`` and any other ``[B, L]`` input,
  renumbers given ``position_ids`` as the shorter prompt would have them, and keeps only the
  kept tiles in ``pixel_values`` / ``pixel_attention_mask``. The forward is then the forward of
  the input a processor would have built without those crops; rows that drop different numbers
  of tokens are re-padded on their padding side;
- :class:`CropState` maps ``generate()``'s decode steps (whose attention mask and position ids
  count the original prompt) onto the shorter one.

The image feature of the decision (:func:`image_features`) is computed from the pixels of the
global tiles, which exist before anything is encoded: each global tile average-pooled to a
``G x G`` grid per channel (``3 G^2`` values, masked by ``pixel_attention_mask``) plus the
number of crops of that image, averaged over a request's images (zeros for a request without
images). It costs one pooling op over the global tiles, no vision-encoder work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TileSpec:
    """What the hook needs to know about a tile-splitting family (from its adapter)."""

    image_token_id: int
    tokens_per_tile: int
    """``S``: image tokens one tile becomes in the prompt."""
    pad_token_id: int = 0
    pool_grid: int = 4
    """``G``: the global tile is average-pooled to ``G x G`` per channel for the feature."""
    channels: int = 3

    @property
    def feature_dim(self) -> int:
        return self.channels * self.pool_grid**2 + 1


@dataclass
class Tile:
    start: int  # column of its first image token
    marker: int  # token id before it (<row_i_col_j> or <global-img>)
    is_global: bool
    image: int  # index of its image within the row
    pixel: int = -1  # index in pixel_values[row]


@dataclass
class Layout:
    """The tiles of every row, in sequence order."""

    rows: list[list[Tile]]
    tokens_per_tile: int
    pixel_index: list[list[int]] = field(default_factory=list)
    """Per row, the ``pixel_values`` indices of its real (not all-zero) tiles."""

    def crops_per_image(self, b: int) -> list[int]:
        n: list[int] = []
        count = 0
        for t in self.rows[b]:
            if t.is_global:
                n.append(count)
                count = 0
            else:
                count += 1
        return n


def parse(input_ids: torch.Tensor, pixel_values: torch.Tensor | None, spec: TileSpec) -> Layout:
    """The tiles of ``input_ids`` ``[B, L]``, matched to the real tiles of ``pixel_values``.
    One host read of the image-token positions (and, with pixels, of which tiles are real)."""
    s = spec.tokens_per_tile
    ids = input_ids
    vis = ids == spec.image_token_id
    pos = vis.nonzero().tolist()
    ids_host = None
    per_row: list[list[int]] = [[] for _ in range(ids.shape[0])]
    for b, p in pos:
        per_row[b].append(p)
    rows: list[list[Tile]] = []
    for b, ps in enumerate(per_row):
        if len(ps) % s:
            raise ValueError(
                f"fastctrl.hook: row {b} has {len(ps)} image tokens, not a multiple "
                f"of the {s} tokens per tile"
            )
        starts = ps[::s]
        for k, st in enumerate(starts):
            if ps[k * s + s - 1] != st + s - 1:
                raise ValueError(
                    f"fastctrl.hook: row {b}: the image tokens of tile {k} are not "
                    "contiguous (not a tile-splitting prompt layout)"
                )
        if starts and min(starts) < 2:
            raise ValueError(
                f"fastctrl.hook: row {b}: a tile has no <fake><marker> tokens "
                "before its image tokens"
            )
        if ids_host is None and starts:
            ids_host = ids.tolist()
        markers = [ids_host[b][st - 1] for st in starts] if starts else []
        glob = markers[-1] if markers else None
        if starts and any(ids_host[b][st - 2] != ids_host[b][starts[-1] - 2] for st in starts):
            raise ValueError(
                f"fastctrl.hook: row {b}: the tiles are not all preceded by the "
                "same <fake_token_around_image> token"
            )
        tiles, image = [], 0
        for st, m in zip(starts, markers, strict=True):
            g = m == glob
            tiles.append(Tile(st, m, g, image))
            if g:
                image += 1
        rows.append(tiles)
    layout = Layout(rows, s)
    if pixel_values is not None:
        real = (pixel_values != 0).flatten(2).any(-1).tolist()  # [B, N]
        for b, tiles in enumerate(rows):
            idx = [j for j, r in enumerate(real[b]) if r]
            if len(idx) != len(tiles):
                raise ValueError(
                    f"fastctrl.hook: row {b} has {len(tiles)} tiles in its prompt but "
                    f"{len(idx)} real (not all-zero) tiles in pixel_values"
                )
            for t, j in zip(tiles, idx, strict=True):
                t.pixel = j
            layout.pixel_index.append(idx)
    return layout


def crops_kept(n: int, value: int, top: int, absolute: bool) -> int:
    """Crops of an ``n``-crop image kept at ``max_crops = value``."""
    if n == 0:
        return 0
    if absolute:
        return max(1, min(n, value))
    return max(1, min(n, math.ceil(n * value / top)))


def plan(layout: Layout, value: int, top: int, absolute: bool = False) -> list[list[bool]]:
    """Per row, per tile: kept? Global tiles always; per image the evenly spaced crops."""
    keep: list[list[bool]] = []
    for b, tiles in enumerate(layout.rows):
        flags = [True] * len(tiles)
        i = 0
        for n in layout.crops_per_image(b):
            k = crops_kept(n, value, top, absolute)
            chosen = {int((c + 0.5) * n / k) for c in range(k)}
            for c in range(n):
                flags[i + c] = c in chosen
            i += n + 1  # the crops, then the global tile
        keep.append(flags)
    return keep


@dataclass
class CropState:
    """A prefill whose prompt lost crop spans; maps the request's decode steps onto it."""

    orig_len: int
    kept_len: int
    keep_idx: torch.Tensor
    """``[B, L']`` original column of every column the model saw (-1: padding re-inserted)."""
    prompt_mask: torch.Tensor | None
    """``[B, L']`` the shorter prompt's attention mask (``None`` when the input had none)."""
    shift: torch.Tensor
    """``[B]`` attended prompt tokens dropped per row (what decode positions are moved by)."""

    def continue_step(self, kwargs: dict[str, Any], past: int) -> None:
        ids = kwargs.get("input_ids")
        emb = kwargs.get("inputs_embeds")
        n = int((ids if ids is not None else emb).shape[1])
        am = kwargs.get("attention_mask")
        if (
            isinstance(am, torch.Tensor)
            and am.ndim == 2
            and am.shape[1] == self.orig_len + (past - self.kept_len) + n
        ):
            head = (
                self.prompt_mask
                if self.prompt_mask is not None
                else am.new_ones(am.shape[0], self.kept_len)
            )
            kwargs["attention_mask"] = torch.cat([head.to(am.dtype), am[:, self.orig_len :]], 1)
        pos = kwargs.get("position_ids")
        if isinstance(pos, torch.Tensor):
            kwargs["position_ids"] = pos - self.shift.to(pos.device).view(
                *([1] * (pos.ndim - 2)), -1, 1
            )


def reduce_inputs(
    kwargs: dict[str, Any], layout: Layout, keep: list[list[bool]], spec: TileSpec
) -> CropState | None:
    """Rewrite the top-level forward's kwargs in place to the kept tiles (see the module
    docstring); ``None`` (kwargs untouched) when every tile is kept."""
    if all(all(row) for row in keep):
        return None
    ids: torch.Tensor = kwargs["input_ids"]
    bsz, seq = ids.shape
    dev = ids.device
    s = layout.tokens_per_tile
    cols = torch.ones(bsz, seq, dtype=torch.bool)
    for b, (tiles, flags) in enumerate(zip(layout.rows, keep, strict=True)):
        for t, k in zip(tiles, flags, strict=True):
            if not k:
                cols[b, t.start - 2 : t.start + s] = False  # <fake><row_i_col_j><image>*S
    cols = cols.to(dev)
    am = kwargs.get("attention_mask")
    am2 = am if isinstance(am, torch.Tensor) and am.ndim == 2 else None
    attended = am2.bool() if am2 is not None else torch.ones_like(cols)
    counts = cols.sum(1).tolist()
    width = max(counts)
    if all(c == width for c in counts):
        keep_idx = cols.nonzero()[:, 1].view(bsz, width)
    else:
        # rows drop different numbers of tokens: their attended tokens are re-padded on the
        # input's padding side (as a processor pads the shorter prompts)
        left = not (am2 is not None and bool((am2[:, -1] == 0).any()))
        real = cols & attended
        width = int(real.sum(1).max())
        keep_idx = torch.full((bsz, width), -1, dtype=torch.long, device=dev)
        for b in range(bsz):
            row = real[b].nonzero()[:, 0]
            if left:
                keep_idx[b, width - row.numel() :] = row
            else:
                keep_idx[b, : row.numel()] = row
    pad = keep_idx < 0
    gather_idx = keep_idx.clamp(min=0)
    dropped = ~cols & attended
    shift = dropped.sum(1)

    def take(x: torch.Tensor, fill: int | float) -> torch.Tensor:
        out = x.gather(1, gather_idx)
        return out.masked_fill(pad, fill) if bool(pad.any()) else out

    kwargs["input_ids"] = take(ids, spec.pad_token_id)
    prompt_mask = None
    if am2 is not None:
        prompt_mask = kwargs["attention_mask"] = take(am2, 0)
    elif bool(pad.any()):  # re-inserted padding must not be attended
        prompt_mask = kwargs["attention_mask"] = (~pad).long()
    pos = kwargs.get("position_ids")
    if isinstance(pos, torch.Tensor) and pos.shape[-1] == seq:
        before = dropped.long().cumsum(1).gather(1, gather_idx)  # dropped up to each column
        p = pos.expand(*pos.shape[:-2], bsz, seq).gather(
            -1, gather_idx.expand(*pos.shape[:-2], bsz, width)
        )
        renum = p - before
        real = prompt_mask.bool() if prompt_mask is not None else ~pad
        kwargs["position_ids"] = torch.where(real, renum, p).masked_fill(pad, 0)
    for name, v in list(kwargs.items()):  # other per-token inputs (token type ids, ...)
        if name in ("input_ids", "attention_mask", "position_ids"):
            continue
        if isinstance(v, torch.Tensor) and v.ndim == 2 and tuple(v.shape) == (bsz, seq):
            kwargs[name] = take(v, 0)
    _reduce_pixels(kwargs, layout, keep)
    return CropState(seq, width, keep_idx, prompt_mask, shift)


def _reduce_pixels(kwargs: dict[str, Any], layout: Layout, keep: list[list[bool]]) -> None:
    pix = kwargs.get("pixel_values")
    if pix is None:
        return
    kept = [
        [t.pixel for t, k in zip(tiles, flags, strict=True) if k]
        for tiles, flags in zip(layout.rows, keep, strict=True)
    ]
    n = max(1, max(len(k) for k in kept))
    dev = pix.device
    idx = torch.tensor([k + [k[-1] if k else 0] * (n - len(k)) for k in kept], device=dev)
    valid = torch.tensor([[True] * len(k) + [False] * (n - len(k)) for k in kept], device=dev)
    for name in ("pixel_values", "pixel_attention_mask"):
        x = kwargs.get(name)
        if not isinstance(x, torch.Tensor):
            continue
        g = x.gather(1, idx.view(*idx.shape, *([1] * (x.ndim - 2))).expand(-1, -1, *x.shape[2:]))
        if not bool(valid.all()):
            g = g * valid.view(*valid.shape, *([1] * (x.ndim - 2))).to(g.dtype)
        kwargs[name] = g


def image_features(
    pixel_values: torch.Tensor | None,
    pixel_mask: torch.Tensor | None,
    layout: Layout | None,
    spec: TileSpec,
    bsz: int,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """``[B, 3 G^2 + 1]``: per request, the mean over its images of (the global tile pooled
    to ``G x G`` per channel, the image's number of crops); zeros without images."""
    out = torch.zeros(bsz, spec.feature_dim, dtype=dtype, device=device)
    if pixel_values is None or layout is None:
        return out
    rows, pix_idx, crops = [], [], []
    for b, tiles in enumerate(layout.rows):
        n_crops = layout.crops_per_image(b)
        for t in (t for t in tiles if t.is_global):
            rows.append(b)
            pix_idx.append(t.pixel)
            crops.append(float(n_crops[t.image]))
    if not rows:
        return out
    dev = pixel_values.device
    r = torch.tensor(rows, device=dev)
    j = torch.tensor(pix_idx, device=dev)
    g = spec.pool_grid
    x = pixel_values[r, j].to(torch.float32)  # [n_images, C, H, W]
    if pixel_mask is not None:
        m = pixel_mask[r, j].to(torch.float32)[:, None]  # [n, 1, H, W]
        pooled = F.adaptive_avg_pool2d(x * m, g) / F.adaptive_avg_pool2d(m, g).clamp(min=1e-6)
    else:
        pooled = F.adaptive_avg_pool2d(x, g)
    feats = torch.cat([pooled.flatten(1), torch.tensor(crops, device=dev)[:, None]], 1)
    feats = feats.to(device, dtype)
    r = r.to(device)
    count = torch.zeros(bsz, device=device, dtype=dtype).index_add_(
        0, r, torch.ones(len(rows), device=device, dtype=dtype)
    )
    out.index_add_(0, r, feats)
    return out / count.clamp(min=1)[:, None]


__all__ = [
    "CropState",
    "Layout",
    "Tile",
    "TileSpec",
    "crops_kept",
    "image_features",
    "parse",
    "plan",
    "reduce_inputs",
]
