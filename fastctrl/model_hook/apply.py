"""Applying a config inside the forward: vision tokens kept, router ``top_k``, blocks run.

- Vision tokens (``max_crops`` / ``vision_tokens``): :func:`vision_keep` picks the kept
  positions, :func:`remove_tokens` removes the others from the language model's inputs
  (embeddings, attention mask, position ids — original, possibly multimodal, positions are kept
  — and the family's extras such as Qwen3-VL's DeepStack inputs).
- ``top_k`` and ``num_active_blocks``: :class:`ModulePatcher` sets every router's ``top_k`` and
  turns the skipped decoder blocks into identities for one language-model call, and restores
  them afterwards.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..space import ActionSpace, Config
from .families.base import Adapter

#: knob names the hook knows how to apply
VISION_KNOBS = ("max_crops", "vision_tokens")
TOPK_KNOB = "top_k"
BLOCKS_KNOB = "num_active_blocks"
KNOWN_KNOBS = (*VISION_KNOBS, TOPK_KNOB, BLOCKS_KNOB)


def keeps_every_token(
    space: ActionSpace, tokens_per_crop: int | None, values: Mapping[str, int]
) -> bool:
    """Whether a config keeps every vision token whatever the input (no vision knob, or
    ``max_crops`` at its grid top without ``tokens_per_crop``): decided without reading
    tensors, so no host sync."""
    knob = next((n for n in VISION_KNOBS if n in space.names), None)
    return knob is None or (
        knob == "max_crops" and tokens_per_crop is None and values[knob] == space[knob].values[-1]
    )


def vision_keep(
    space: ActionSpace,
    tokens_per_crop: int | None,
    vis: torch.Tensor,
    tokens_per_image: list[int],
    config: Config | Mapping[str, int],
) -> torch.Tensor | None:
    """``[B, L]`` bool of positions kept, or ``None`` when every token is kept.

    ``config``: a Config or its knob values. Selection rule (cheap, content-independent):
    within each image, keep ``k`` of its ``n`` tokens evenly spaced in the order the model lays
    them out (raster order), i.e. positions ``floor((i + 0.5) * n / k)`` for ``i < k``: a
    uniform spatial subsample.
    """
    values = config.values if isinstance(config, Config) else config
    if keeps_every_token(space, tokens_per_crop, values):
        return None
    knob = next(n for n in VISION_KNOBS if n in space.names)
    value = values[knob]
    if not bool(vis.any()):
        return None
    pos = vis.nonzero()  # row-major: [n_vis, 2] (row, col)
    sizes = list(tokens_per_image)
    if sum(sizes) != pos.shape[0]:
        sizes = vis.sum(1)[vis.sum(1) > 0].tolist()  # one "image" per row
    keep = torch.ones_like(vis)
    start, dropped = 0, False
    for n in sizes:
        k = kept_tokens(space, tokens_per_crop, knob, value, n)
        if k < n:
            p = pos[start : start + n][_dropped(n, k, vis.device)]
            keep[p[:, 0], p[:, 1]] = False
            dropped = True
        start += n
    return keep if dropped else None


@functools.lru_cache(maxsize=256)
def _dropped(n: int, k: int, device: torch.device) -> torch.Tensor:
    """``[n]`` bool: the tokens of an ``n``-token image that keeping ``k`` evenly spaced ones
    drops (made once per (n, k): three tensor ops less per decision)."""
    chosen = ((torch.arange(k, device=device) + 0.5) * n / k).long()
    drop = torch.ones(n, dtype=torch.bool, device=device)
    drop[chosen] = False
    return drop


def kept_tokens(
    space: ActionSpace, tokens_per_crop: int | None, knob: str, value: int, n: int
) -> int:
    """Vision tokens of an ``n``-token image kept at ``knob = value``."""
    if knob == "vision_tokens":
        return max(1, min(n, value))
    if tokens_per_crop is not None:
        return max(1, min(n, value * tokens_per_crop))
    top = space[knob].values[-1]
    return max(1, min(n, math.ceil(n * value / top)))


def remove_tokens(
    adapter: Adapter, kwargs: dict[str, Any], keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep only the ``keep`` positions in the language model's inputs, in place.

    Returns ``keep_idx`` ``[B, L']`` (kept original columns) and the kept position ids
    (``[B, L']`` or ``[C, B, L']`` for multimodal rotary positions).
    """
    embeds = kwargs["inputs_embeds"]
    bsz, seq = embeds.shape[:2]
    removed = (~keep).sum(1)
    if not bool((removed == removed[0]).all()):
        raise ValueError(
            "fastctrl.hook: a vision-token budget needs the same number of vision tokens in "
            f"every row of a batch (one config per batch); rows would drop {removed.tolist()}"
        )
    keep_idx = keep.nonzero()[:, 1].view(bsz, -1)
    kept = keep_idx.shape[1]
    kwargs["inputs_embeds"] = embeds.gather(1, keep_idx[..., None].expand(-1, -1, embeds.shape[-1]))
    am = kwargs.get("attention_mask")
    if isinstance(am, torch.Tensor) and am.ndim == 2:
        kwargs["attention_mask"] = am.gather(1, keep_idx)
    elif am is not None:
        # a mask the base model prepared itself (Gemma 3's dict of [B, 1, L, L] masks with
        # bidirectional image blocks, Molmo2's [B, 1, L, L]): keep the kept rows and columns
        kept_mask = gather_prepared_mask(am, keep_idx, seq)
        if kept_mask is am:
            raise ValueError(
                "fastctrl.hook: removing vision tokens needs a 2-D attention_mask [B, L], a "
                f"prepared [B, H, {seq}, {seq}] mask or a dict of them (or none), got "
                f"{type(am).__name__} {list(am.shape) if isinstance(am, torch.Tensor) else ''}"
            )
        kwargs["attention_mask"] = kept_mask
    pos = kwargs.get("position_ids")
    if pos is None:
        pos = torch.arange(seq, device=embeds.device)[None].expand(bsz, seq)
    if pos.shape[-2] != bsz:
        pos = pos.expand(*pos.shape[:-2], bsz, seq)
    pos_kept = pos.gather(-1, keep_idx.expand(*pos.shape[:-2], bsz, kept))
    kwargs["position_ids"] = pos_kept
    adapter.select_extra(kwargs, keep_idx, keep)
    return keep_idx, pos_kept


def gather_prepared_mask(mask: Any, keep_idx: torch.Tensor, seq: int) -> Any:
    """The rows and columns ``keep_idx [B, L']`` of a prepared ``[B, H, seq, seq]`` mask, or
    of each mask of a dict of them; anything else is returned as it is."""
    if isinstance(mask, dict):
        out = {k: gather_prepared_mask(v, keep_idx, seq) for k, v in mask.items()}
        return mask if all(out[k] is mask[k] for k in mask) else out
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4 or mask.shape[-2:] != (seq, seq):
        return mask
    b, h, _, lk = mask.shape
    kept = keep_idx.shape[1]
    idx = keep_idx.to(mask.device)[:, None, :]
    rows = mask.gather(2, idx[..., None].expand(b, h, kept, lk))
    return rows.gather(3, idx[:, :, None, :].expand(b, h, kept, kept))


class ModulePatcher:
    """Sets ``top_k`` and skips blocks for one language-model call; :meth:`restore` undoes it.

    Routers read ``top_k`` at call time, so it is an attribute set and reset. A skipped block
    gets an instance-level ``forward`` (the identity on the residual stream); whatever
    instance-level ``forward`` the block had before (accelerate's ``device_map`` / offload
    hooks install theirs there) is put back on restore, and a block that is not skipped is
    never touched. Only what differs from the unmodified model is touched, and
    :meth:`restore` undoes only that: at the full config both are no-ops (setting ``top_k``
    on every router and popping ``forward`` from every block, twice per forward, was ~0.2 ms
    of the hook's bookkeeping per forward on the bench models, measured).

    ``renormalize_topk``: ``None`` keeps each router's own rule for the kept weights when
    ``top_k`` is lowered; ``True`` renormalises them to sum to 1 (routers with a
    ``norm_topk_prob`` switch get it set for that call), ``False`` keeps them as the softmax
    over all experts gave them (the switch cleared).
    """

    def __init__(self, adapter: Adapter, renormalize_topk: bool | None = None) -> None:
        self.adapter = adapter
        self.routers = list(adapter.routers)
        self.layers = list(adapter.decoder_layers)
        self.orig_top_k = [int(r.top_k) for r in self.routers]
        self._skip_forward = _make_skip(adapter.skipped_layer_output)
        self._top_k_set = False
        self._skipped: list[tuple[nn.Module, Any]] = []  # (layer, its previous own forward)
        self.renormalize_topk = renormalize_topk
        self._norm_routers = [r for r in self.routers if hasattr(r, "norm_topk_prob")]
        self._orig_norm = [r.norm_topk_prob for r in self._norm_routers]
        if (
            renormalize_topk is not None
            and self.routers
            and len(self._norm_routers) < len(self.routers)
            and adapter.renormalises != ("always" if renormalize_topk else "never")
        ):
            rule = adapter.renormalises
            raise ValueError(
                f"renormalize_topk={renormalize_topk}: the {adapter.family} routers "
                f"({type(self.routers[0]).__name__}) have no norm_topk_prob switch and "
                f"their rule is fixed ({rule!r}); pass renormalize_topk=None to keep it"
            )

    def apply(self, config: Config, values: dict[str, int] | None = None) -> None:
        """Patch for ``config`` (``values``: its knob values, if the caller has them)."""
        values = config.values if values is None else values
        k = values.get(TOPK_KNOB)
        if k is not None and any(k != orig for orig in self.orig_top_k):
            for r in self.routers:
                r.top_k = int(k)
            if self.renormalize_topk is not None:
                for r in self._norm_routers:
                    r.norm_topk_prob = self.renormalize_topk
            self._top_k_set = True
        active = values.get(BLOCKS_KNOB)
        if active is not None and active < len(self.layers):
            for layer in self.layers[int(active) :]:  # early exit: blocks active..N-1 skipped
                self._skipped.append((layer, layer.__dict__.get("forward", _NONE)))
                layer.forward = self._skip_forward

    def restore(self) -> None:
        if self._top_k_set:
            for r, k in zip(self.routers, self.orig_top_k, strict=True):
                r.top_k = k
            for r, n in zip(self._norm_routers, self._orig_norm, strict=True):
                r.norm_topk_prob = n
            self._top_k_set = False
        if self._skipped:
            for layer, own in self._skipped:
                if own is _NONE:
                    layer.__dict__.pop("forward", None)
                else:
                    layer.forward = own
            self._skipped.clear()


_NONE = object()  # a block had no instance-level forward of its own


def _make_skip(skip: Any) -> Any:
    def forward(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return skip(hidden_states)

    return forward


def check_space(space: ActionSpace, adapter: Adapter, log: Any) -> None:
    """The knobs of ``space`` are ones the hook can apply to this model, with sane grids."""
    unknown = [n for n in space.names if n not in KNOWN_KNOBS]
    if unknown:
        raise ValueError(f"fastctrl.hook cannot apply knobs {unknown}; it knows {KNOWN_KNOBS}")
    if sum(n in VISION_KNOBS for n in space.names) > 1:
        raise ValueError(f"use one of {VISION_KNOBS}, not both")
    for name in space.names:
        if min(space[name].values) < 1:
            raise ValueError(f"knob {name!r}: values must be >= 1, got {space[name].values}")
    if TOPK_KNOB in space.names:
        if not adapter.is_moe:
            raise ValueError(
                f"knob 'top_k': the {adapter.family} model has no MoE routers (a dense "
                "language model); leave top_k out of the action space"
            )
        vals = space[TOPK_KNOB].values
        if max(vals) > adapter.num_experts:
            raise ValueError(
                f"knob 'top_k' grid {vals} exceeds the model's {adapter.num_experts} experts"
            )
        if max(vals) != adapter.native_top_k:
            log.warning(
                "top_k grid top %d differs from the model's native top_k %d: the full "
                "config is not the unmodified model",
                max(vals),
                adapter.native_top_k,
            )
    if BLOCKS_KNOB in space.names:
        vals = space[BLOCKS_KNOB].values
        if max(vals) > adapter.num_layers:
            raise ValueError(
                f"knob 'num_active_blocks' grid {vals} exceeds the model's "
                f"{adapter.num_layers} decoder blocks"
            )
        if max(vals) != adapter.num_layers:
            log.warning(
                "num_active_blocks grid top %d < the model's %d blocks: the full config "
                "is not the unmodified model",
                max(vals),
                adapter.num_layers,
            )


__all__ = [
    "BLOCKS_KNOB",
    "KNOWN_KNOBS",
    "TOPK_KNOB",
    "VISION_KNOBS",
    "ModulePatcher",
    "check_space",
    "keeps_every_token",
    "kept_tokens",
    "remove_tokens",
    "vision_keep",
]
