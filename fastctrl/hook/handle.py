"""The family-agnostic part of :func:`fastctrl.hook`: features, decision, and applying it.

One top-level forward of a hooked model goes through these steps (all inside that forward):

1. the vision tower runs as usual; a forward hook pools its output (adapter-defined: CLIP CLS
   for LLaVA-OLMoE, mean of merged vision tokens for Qwen3-VL-MoE) -> image feature;
2. the token embedding runs as usual; a forward hook keeps its output -> text feature = mean
   of the embeddings at non-vision, non-padding positions;
3. a pre-hook on the language model (which receives the merged ``inputs_embeds``) runs the
   decision engine on those features and the request budgets, then applies the config:
   vision tokens beyond the budget are removed from ``inputs_embeds``, the attention mask, the
   position ids (their original, possibly multimodal, positions are kept) and family extras
   (Qwen3-VL DeepStack); every router's ``top_k`` is set; skipped decoder blocks become
   identities;
4. a post-hook on the language model restores ``top_k`` and the blocks (also on exceptions).

Decisions: a forward whose cache is empty (prefill) makes a new decision; a forward that
continues that cache (``generate()`` decode steps) reuses it, so the KV cache, which holds only
the kept tokens and only the active blocks' layers, stays consistent. Decode steps keep the
original position numbering (positions continue after the last prompt position), and a full
2-D attention mask from ``generate()`` is mapped onto the kept columns.

Batches: the controller decides per request; the batch then runs ONE config, the per-knob
minimum of the requests' grid indices (grids are ascending, so this is the cheapest choice on
every knob: the request with the tightest budget binds each knob). Per-request decisions are
kept in ``handle.last_request_decisions`` and counted in ``handle.stats.request_configs``.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engines import Engine, make_engine
from ..engines.base import check_budget
from ..policy import Controller
from ..space import ActionSpace, Config
from .adapters.base import Adapter, find_adapter

log = logging.getLogger(__name__)

#: knob names the hook knows how to apply
VISION_KNOBS = ("max_crops", "vision_tokens")
TOPK_KNOB = "top_k"
BLOCKS_KNOB = "num_active_blocks"
KNOWN_KNOBS = (*VISION_KNOBS, TOPK_KNOB, BLOCKS_KNOB)

# models currently hooked (a model takes one hook at a time); weak so nothing is kept alive
_HOOKED: weakref.WeakKeyDictionary[nn.Module, HookHandle] = weakref.WeakKeyDictionary()


@dataclass
class HookStats:
    """Live counters of a hook. Times are in ms (``perf_counter`` on CPU, CUDA events on GPU).

    A *decision forward* is a forward that ran the controller (prefill); decode steps reuse
    the held decision and are counted in ``decode_forwards``.
    """

    decisions: int = 0
    """Decision forwards (one per request batch at prefill; pinned configs included)."""
    decode_forwards: int = 0
    """Forwards that reused a held decision (generate() decode steps)."""
    configs: Counter[tuple[int, ...]] = field(default_factory=Counter)
    """Config (knob values, in knob order) that each decision forward ran -> count."""
    request_configs: Counter[tuple[int, ...]] = field(default_factory=Counter)
    """Config each request asked for (before the batch minimum) -> count."""
    controller_ms: list[float] = field(default_factory=list)
    """Decision-engine call time per forward that ran the controller (pinned forwards and
    decode steps do not run it and are not listed)."""
    forward_ms: list[float] = field(default_factory=list)
    """Whole top-level forward time (controller included) of the same forwards."""
    knob_names: tuple[str, ...] = ()
    timer: str = "perf_counter"

    @property
    def controller_share(self) -> float:
        """Controller time / forward time over all decision forwards (nan before any)."""
        total = sum(self.forward_ms)
        return sum(self.controller_ms) / total if total > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        def _med(x: list[float]) -> float:
            return float(np.median(x)) if x else math.nan

        return {
            "decisions": self.decisions,
            "decode_forwards": self.decode_forwards,
            "configs": {self._key(k): v for k, v in self.configs.items()},
            "request_configs": {self._key(k): v for k, v in self.request_configs.items()},
            "controller_ms_p50": _med(self.controller_ms),
            "forward_ms_p50": _med(self.forward_ms),
            "controller_share": self.controller_share,
            "timer": self.timer,
        }

    def _key(self, values: tuple[int, ...]) -> str:
        return ",".join(f"{n}={v}" for n, v in zip(self.knob_names, values, strict=True))


@dataclass
class _Request:
    """The decision held from a prefill through its decode steps."""

    config: Config
    keep_idx: torch.Tensor | None  # [B, L'] kept original columns; None when nothing removed
    orig_len: int
    kept_len: int
    next_pos: torch.Tensor | None  # [B] or [C, B]: next original position per row
    cache_len: int  # cache length the next continuing call must present


@dataclass
class _Forward:
    """What one top-level forward captured before the language model runs."""

    budget: Any
    attention_mask: torch.Tensor | None
    image_feats: list[torch.Tensor] = field(default_factory=list)
    tokens_per_image: list[int] = field(default_factory=list)
    input_ids: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    controller_ran: bool = False
    controller_ms: float = 0.0
    t0: Any = None
    ctrl_events: tuple[Any, Any] | None = None


def _now(device: torch.device) -> Any:
    if device.type == "cuda":
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev
    return time.perf_counter()


def _elapsed_ms(start: Any, end: Any) -> float:
    if isinstance(start, float):
        return (end - start) * 1e3
    end.synchronize()
    return float(start.elapsed_time(end))


class HookHandle:
    """Returned by :func:`fastctrl.hook`; ``remove()`` undoes everything."""

    def __init__(self, model: nn.Module, adapter: Adapter, space: ActionSpace,
                 engine: Engine | None, budget_ms: Any, tokens_per_crop: int | None) -> None:
        self.model = model
        self.adapter = adapter
        self.space = space
        self.engine = engine
        self.tokens_per_crop = tokens_per_crop
        self._budget = budget_ms
        self._pinned: Config | None = None
        self._ctx: _Forward | None = None
        self._request: _Request | None = None
        self._orig_top_k = [int(r.top_k) for r in adapter.routers]
        self._hooks: list[Any] = []
        self._removed = False
        self._device = next(model.parameters()).device
        self.stats = HookStats(knob_names=space.names,
                               timer="cuda_events" if self._device.type == "cuda"
                               else "perf_counter")
        self.last_request_decisions: torch.Tensor | None = None
        """``[B, n_knobs]`` grid indices the controller gave each request at the last prefill."""
        self.last_config: Config | None = None
        """Config the last decision forward ran."""
        self.last_features: tuple[torch.Tensor, torch.Tensor] | None = None
        """``(image [B, Di], text [B, Dt])`` float32 features of the last decision forward."""
        self.last_kept_positions: torch.Tensor | None = None
        """``[B, L']`` original sequence positions the language model saw at the last prefill
        (``None`` when no token was removed); logits of that forward follow these positions."""
        self._install()

    # ------------------------------------------------------------------ public API
    def set_budget(self, budget_ms: Any) -> None:
        """Default budget for later forwards: ms, a scalar or one value per request."""
        self._budget = _validate_budget(budget_ms)

    @property
    def budget_ms(self) -> Any:
        return self._budget

    @contextmanager
    def budget_scope(self, budget_ms: Any) -> Iterator[None]:
        """Use ``budget_ms`` for the forwards inside the ``with`` block (e.g. one request)."""
        old, self._budget = self._budget, _validate_budget(budget_ms)
        try:
            yield
        finally:
            self._budget = old

    def pin(self, config: Config | dict[str, int] | None) -> None:
        """Run ``config`` for every request instead of asking the controller (``None`` unpins).

        Used by the profiler to sweep a grid through exactly the same application path.
        """
        if config is None:
            self._pinned = None
            return
        if isinstance(config, dict):
            config = self.space.config_from_values(**config)
        if not isinstance(config, Config) or config.space != self.space:
            raise ValueError(f"pin() needs a Config of {self.space}, got {config!r}")
        self._pinned = config

    def remove(self) -> None:
        """Remove every hook and restore routers and blocks; idempotent."""
        if self._removed:
            return
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self.model.__dict__.pop("generate", None)
        self._restore_modules()
        self._request = None
        self._ctx = None
        if _HOOKED.get(self.model) is self:
            del _HOOKED[self.model]
        self._removed = True

    @property
    def removed(self) -> bool:
        return self._removed

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "removed" if self._removed else "active"
        return (f"HookHandle({self.adapter.family}, {self.space}, engine="
                f"{getattr(self.engine, 'kind', None)}, {state})")

    # ------------------------------------------------------------------ installation
    def _install(self) -> None:
        a = self.adapter
        self._hooks += [
            self.model.register_forward_pre_hook(self._outer_pre, with_kwargs=True),
            self.model.register_forward_hook(self._outer_post, always_call=True),
            a.vision_tower.register_forward_hook(self._vision_post, with_kwargs=True),
            a.embed_tokens.register_forward_hook(self._embed_post),
            a.language_model.register_forward_pre_hook(self._lm_pre, with_kwargs=True),
            a.language_model.register_forward_hook(self._lm_post, always_call=True),
        ]
        orig_generate = getattr(self.model, "generate", None)
        if callable(orig_generate):
            # generate() validates its kwargs against forward's signature, so a per-request
            # budget is taken here and held for the whole call (prefill and decode steps).
            def generate(*args: Any, budget_ms: Any = None, **kwargs: Any) -> Any:
                if budget_ms is None:
                    return orig_generate(*args, **kwargs)
                with self.budget_scope(budget_ms):
                    return orig_generate(*args, **kwargs)

            self.model.generate = generate

    # ------------------------------------------------------------------ hooks
    def _outer_pre(self, module: nn.Module, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        budget = kwargs.pop("budget_ms", None)
        budget = self._budget if budget is None else _validate_budget(budget)
        am = kwargs.get("attention_mask")
        self._ctx = _Forward(budget=budget,
                             attention_mask=am if isinstance(am, torch.Tensor) and am.ndim == 2
                             else None)
        self._ctx.t0 = _now(self._device)
        return args, kwargs

    def _outer_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        ctx, self._ctx = self._ctx, None
        self._restore_modules()
        if ctx is None or not ctx.controller_ran:
            return
        end = _now(self._device)
        self.stats.forward_ms.append(_elapsed_ms(ctx.t0, end))
        if ctx.ctrl_events is not None:
            ctx.controller_ms = _elapsed_ms(*ctx.ctrl_events)
        self.stats.controller_ms.append(ctx.controller_ms)

    def _vision_post(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                     output: Any) -> None:
        if self._ctx is None:
            return
        feats, tokens = self.adapter.pool_images(args, kwargs, output)
        self._ctx.image_feats.append(feats.detach())
        self._ctx.tokens_per_image += tokens

    def _embed_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        ctx = self._ctx
        if ctx is None or ctx.input_ids is not None or not args:
            return
        ids = args[0]
        if isinstance(ids, torch.Tensor) and ids.ndim == 2:
            ctx.input_ids, ctx.text_embeds = ids, output.detach()

    def _lm_pre(self, module: nn.Module, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        ctx = self._ctx
        embeds = kwargs.get("inputs_embeds")
        if ctx is None or embeds is None:
            return None  # language model called on its own: not a VLM forward, leave it alone
        cache = kwargs.get("past_key_values")
        past = int(cache.get_seq_length()) if cache is not None else 0
        if past == 0:
            req = self._prefill(ctx, kwargs, embeds)
        else:
            req = self._request
            if req is None or req.cache_len != past:
                raise RuntimeError(
                    f"fastctrl.hook: this forward continues a KV cache of length {past} that does "
                    "not belong to the request this hook decided for (expected length "
                    f"{None if req is None else req.cache_len}). Start with an empty cache "
                    "(a prefill) so a decision is made, or remove the hook."
                )
            self._continue(req, kwargs, past)
            self.stats.decode_forwards += 1
        self._apply_modules(req.config)
        req.cache_len = past + int(kwargs["inputs_embeds"].shape[1])
        self._request = req
        return args, kwargs

    def _lm_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._restore_modules()

    # ------------------------------------------------------------------ prefill
    def _prefill(self, ctx: _Forward, kwargs: dict[str, Any], embeds: torch.Tensor) -> _Request:
        bsz, seq = embeds.shape[:2]
        ids = ctx.input_ids if ctx.input_ids is not None and \
            tuple(ctx.input_ids.shape) == (bsz, seq) else None
        vis = self.adapter.vision_mask(ids) if ids is not None else \
            torch.zeros(bsz, seq, dtype=torch.bool, device=embeds.device)
        am = kwargs.get("attention_mask")
        am2 = am if isinstance(am, torch.Tensor) and am.ndim == 2 else ctx.attention_mask
        image, text = self._features(ctx, vis, am2, bsz)
        self.last_features = (image, text)

        if self._pinned is not None:
            per_request = torch.tensor([self._pinned.indices] * bsz, dtype=torch.long)
        else:
            per_request = self._decide(ctx, image, text, bsz)
        batch_idx = per_request.min(dim=0).values
        config = self.space.config(batch_idx.tolist())
        self.last_request_decisions = per_request
        self.last_config = config
        self.stats.decisions += 1
        self.stats.configs[tuple(config.values.values())] += 1
        for row in per_request.tolist():
            self.stats.request_configs[tuple(self.space.config(row).values.values())] += 1

        keep = self._vision_keep(vis, ctx.tokens_per_image, config)
        self.last_kept_positions = None
        if keep is None:
            return _Request(config, None, seq, seq, None, 0)
        removed = (~keep).sum(1)
        if not bool((removed == removed[0]).all()):
            raise ValueError(
                "fastctrl.hook: a vision-token budget needs the same number of vision tokens in "
                f"every row of a batch (one config per batch); rows would drop {removed.tolist()}"
            )
        keep_idx = keep.nonzero()[:, 1].view(bsz, -1)
        kept = keep_idx.shape[1]
        kwargs["inputs_embeds"] = embeds.gather(
            1, keep_idx[..., None].expand(-1, -1, embeds.shape[-1]))
        if am is not None:
            if not (isinstance(am, torch.Tensor) and am.ndim == 2):
                raise ValueError(
                    "fastctrl.hook: removing vision tokens needs a 2-D attention_mask [B, L] "
                    f"(or none), got {type(am).__name__} "
                    f"{list(am.shape) if isinstance(am, torch.Tensor) else ''}"
                )
            kwargs["attention_mask"] = am.gather(1, keep_idx)
        pos = kwargs.get("position_ids")
        if pos is None:
            pos = torch.arange(seq, device=embeds.device)[None].expand(bsz, seq)
        if pos.shape[-2] != bsz:
            pos = pos.expand(*pos.shape[:-2], bsz, seq)
        pos_kept = pos.gather(-1, keep_idx.expand(*pos.shape[:-2], bsz, kept))
        kwargs["position_ids"] = pos_kept
        self.adapter.select_extra(kwargs, keep_idx, keep)
        self.last_kept_positions = keep_idx
        return _Request(config, keep_idx, seq, kept, pos_kept[..., -1] + 1, 0)

    def _features(self, ctx: _Forward, vis: torch.Tensor, am: torch.Tensor | None,
                  bsz: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled ``[B, Di]`` image and ``[B, Dt]`` text features from this forward's captures."""
        dev = vis.device
        image = torch.zeros(bsz, self.adapter.image_dim, device=dev)
        if ctx.image_feats:
            feats = torch.cat(ctx.image_feats).float().to(dev)
            rows = _image_rows(vis, ctx.tokens_per_image)
            if rows is not None and len(rows) == feats.shape[0]:
                # a request with several images gets the mean of their features
                counts = torch.zeros(bsz, device=dev).index_add_(
                    0, rows, torch.ones(len(rows), device=dev))
                image = image.index_add_(0, rows, feats) / counts.clamp(min=1)[:, None]
            elif feats.shape[0] == bsz:
                image = feats
            else:
                raise ValueError(
                    f"fastctrl.hook: cannot assign {feats.shape[0]} images to {bsz} requests "
                    "(vision placeholder tokens do not match the vision tower's output)"
                )
        text = torch.zeros(bsz, self.adapter.text_dim, device=dev)
        if ctx.text_embeds is not None and tuple(ctx.text_embeds.shape[:2]) == tuple(vis.shape):
            m = ~vis
            if am is not None:
                m = m & am.to(dev).bool()
            w = m.float()
            text = (ctx.text_embeds.float() * w[..., None]).sum(1) / w.sum(1).clamp(min=1)[:, None]
        return image.contiguous(), text.contiguous()

    def _decide(self, ctx: _Forward, image: torch.Tensor, text: torch.Tensor,
                bsz: int) -> torch.Tensor:
        if self.engine is None:
            raise RuntimeError(
                "fastctrl.hook: no controller was given, so a config must be pinned first "
                "(handle.pin(config))"
            )
        if ctx.budget is None:
            raise ValueError(
                "fastctrl.hook: no latency budget: pass budget_ms to fastctrl.hook(), call "
                "handle.set_budget(ms), or pass budget_ms=... to the forward / generate call"
            )
        budget = check_budget(ctx.budget, bsz)  # one per request
        if self.engine.kind == "int8":
            image, text = image.cpu(), text.cpu()
        budget_t = torch.from_numpy(budget).to(image.device)
        start = _now(self._device)
        idx = self.engine.decide(image, text, budget_t)
        end = _now(self._device)
        ctx.controller_ran = True
        if isinstance(start, float):
            ctx.controller_ms = (end - start) * 1e3
        else:
            ctx.ctrl_events = (start, end)
        idx = torch.as_tensor(idx).to("cpu", torch.long)
        if idx.shape != (bsz, len(self.space)):
            raise RuntimeError(
                f"decision engine returned shape {list(idx.shape)}, expected [{bsz}, "
                f"{len(self.space)}]"
            )
        return idx

    def _vision_keep(self, vis: torch.Tensor, tokens_per_image: list[int],
                     config: Config) -> torch.Tensor | None:
        """``[B, L]`` bool of positions kept, or ``None`` when every token is kept.

        Selection rule (cheap, content-independent): within each image, keep ``k`` of its ``n``
        tokens evenly spaced in the order the model lays them out (raster order), i.e.
        positions ``floor((i + 0.5) * n / k)`` for ``i < k``: a uniform spatial subsample.
        """
        knob = next((n for n in VISION_KNOBS if n in self.space.names), None)
        if knob is None or not bool(vis.any()):
            return None
        value = config[knob]
        if knob == "max_crops" and self.tokens_per_crop is None and \
                value == self.space[knob].values[-1]:
            return None  # the grid top keeps every token
        pos = vis.nonzero()  # row-major: [n_vis, 2] (row, col)
        sizes = list(tokens_per_image)
        if sum(sizes) != pos.shape[0]:
            sizes = vis.sum(1)[vis.sum(1) > 0].tolist()  # one "image" per row
        keep = torch.ones_like(vis)
        start = 0
        for n in sizes:
            k = self._kept_tokens(knob, value, n)
            if k < n:
                chosen = ((torch.arange(k, device=vis.device) + 0.5) * n / k).long()
                drop = torch.ones(n, dtype=torch.bool, device=vis.device)
                drop[chosen] = False
                p = pos[start:start + n][drop]
                keep[p[:, 0], p[:, 1]] = False
            start += n
        return None if bool(keep.all()) else keep

    def _kept_tokens(self, knob: str, value: int, n: int) -> int:
        if knob == "vision_tokens":
            return max(1, min(n, value))
        if self.tokens_per_crop is not None:
            return max(1, min(n, value * self.tokens_per_crop))
        top = self.space[knob].values[-1]
        return max(1, min(n, math.ceil(n * value / top)))

    # ------------------------------------------------------------------ decode steps
    def _continue(self, req: _Request, kwargs: dict[str, Any], past: int) -> None:
        if req.keep_idx is None:
            return  # nothing removed: the model's own masks and positions are already right
        n = int(kwargs["inputs_embeds"].shape[1])
        am = kwargs.get("attention_mask")
        if am is not None:
            if not (isinstance(am, torch.Tensor) and am.ndim == 2):
                raise ValueError("fastctrl.hook: decode steps after removing vision tokens need "
                                 "a 2-D attention_mask (or none)")
            full = req.orig_len + (past - req.kept_len) + n
            if am.shape[1] == full:  # generate()'s mask over the original columns: map it
                kwargs["attention_mask"] = torch.cat(
                    [am[:, :req.orig_len].gather(1, req.keep_idx), am[:, req.orig_len:]], dim=1)
            elif am.shape[1] != past + n:
                raise ValueError(
                    f"fastctrl.hook: attention_mask has {am.shape[1]} columns; expected {full} "
                    f"(original prompt columns) or {past + n} (cache + new tokens)"
                )
        # positions continue the original numbering (the model would count kept tokens only)
        assert req.next_pos is not None
        step = torch.arange(n, device=req.next_pos.device)
        new = req.next_pos[..., None] + step
        given = kwargs.get("position_ids")
        if given is not None and given.ndim == 3 and new.ndim == 3 and given.shape[0] != \
                new.shape[0]:
            new = new[1:] if new.shape[0] == 4 else torch.cat([new[:1], new])
        kwargs["position_ids"] = new
        req.next_pos = req.next_pos + n

    # ------------------------------------------------------------------ module patches
    def _apply_modules(self, config: Config) -> None:
        values = config.values
        if TOPK_KNOB in values:
            for r in self.adapter.routers:
                r.top_k = int(values[TOPK_KNOB])
        if BLOCKS_KNOB in values:
            active = int(values[BLOCKS_KNOB])
            skip = self.adapter.skipped_layer_output
            for i, layer in enumerate(self.adapter.decoder_layers):
                if i >= active:  # early exit: blocks active..N-1 are identities
                    layer.forward = _make_skip(skip)

    def _restore_modules(self) -> None:
        for r, k in zip(self.adapter.routers, self._orig_top_k, strict=True):
            r.top_k = k
        for layer in self.adapter.decoder_layers:
            layer.__dict__.pop("forward", None)


def _make_skip(skip: Any) -> Any:
    def forward(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return skip(hidden_states)

    return forward


def _image_rows(vis: torch.Tensor, tokens_per_image: list[int]) -> torch.Tensor | None:
    """Row of each image: the row of its first vision token (images are in sequence order)."""
    if not tokens_per_image:
        return None
    pos = vis.nonzero()
    if sum(tokens_per_image) != pos.shape[0]:
        return None
    starts = np.concatenate([[0], np.cumsum(tokens_per_image)[:-1]]).astype(np.int64)
    return pos[torch.from_numpy(starts).to(pos.device), 0]


def _validate_budget(budget_ms: Any) -> Any:
    if budget_ms is None:
        return None
    if isinstance(budget_ms, (list, tuple)):
        budget_ms = np.asarray(budget_ms, dtype=np.float64)
    if isinstance(budget_ms, (np.ndarray, torch.Tensor)):
        check_budget(budget_ms, int(np.prod(budget_ms.shape)) or 1)
    else:
        check_budget(budget_ms, 1)
    return budget_ms


def _check_space(space: ActionSpace, adapter: Adapter) -> None:
    unknown = [n for n in space.names if n not in KNOWN_KNOBS]
    if unknown:
        raise ValueError(f"fastctrl.hook cannot apply knobs {unknown}; it knows {KNOWN_KNOBS}")
    if sum(n in VISION_KNOBS for n in space.names) > 1:
        raise ValueError(f"use one of {VISION_KNOBS}, not both")
    for name in space.names:
        if min(space[name].values) < 1:
            raise ValueError(f"knob {name!r}: values must be >= 1, got {space[name].values}")
    if TOPK_KNOB in space.names:
        vals = space[TOPK_KNOB].values
        if max(vals) > adapter.num_experts:
            raise ValueError(
                f"knob 'top_k' grid {vals} exceeds the model's {adapter.num_experts} experts"
            )
        if max(vals) != adapter.native_top_k:
            log.warning("top_k grid top %d differs from the model's native top_k %d: the full "
                        "config is not the unmodified model", max(vals), adapter.native_top_k)
    if BLOCKS_KNOB in space.names:
        vals = space[BLOCKS_KNOB].values
        if max(vals) > adapter.num_layers:
            raise ValueError(f"knob 'num_active_blocks' grid {vals} exceeds the model's "
                             f"{adapter.num_layers} decoder blocks")
        if max(vals) != adapter.num_layers:
            log.warning("num_active_blocks grid top %d < the model's %d blocks: the full config "
                        "is not the unmodified model", max(vals), adapter.num_layers)


def hook(model: nn.Module, controller: Controller | None = None,
         budget_ms: float | Sequence[float] | np.ndarray | torch.Tensor | None = None,
         engine: str = "auto", *, space: ActionSpace | None = None,
         tokens_per_crop: int | None = None) -> HookHandle:
    """Patch a transformers MoE VLM so that every forward decides and applies its own config.

    Args:
        model: a supported transformers VLM (see ``fastctrl.hook.supported_families()``).
        controller: the :class:`~fastctrl.Controller`; its ``image_dim`` / ``text_dim`` must
            equal the model's pooled feature sizes (``adapter.image_dim`` / ``text_dim``).
            ``None`` only with ``space`` for pinned configs (profiling).
        budget_ms: default latency budget in ms (scalar or one per request); can be changed
            with ``handle.set_budget`` or per call with ``model(..., budget_ms=...)`` /
            ``model.generate(..., budget_ms=...)``.
        engine: decision engine kind for :func:`fastctrl.make_engine`.
        space: the action space when ``controller`` is ``None``.
        tokens_per_crop: vision tokens per crop unit for ``max_crops``; ``None`` makes a crop
            unit ``1/max(max_crops grid)`` of each image's tokens (the grid top keeps all).
    """
    adapter = find_adapter(model)
    if model in _HOOKED and not _HOOKED[model].removed:
        raise RuntimeError("this model is already hooked; call handle.remove() first")
    if controller is not None:
        if not isinstance(controller, Controller):
            raise TypeError(
                f"controller must be a fastctrl.Controller, got {type(controller).__name__}")
        cc = controller.config
        if (cc.image_dim, cc.text_dim) != (adapter.image_dim, adapter.text_dim):
            raise ValueError(
                f"controller dims (image_dim={cc.image_dim}, text_dim={cc.text_dim}) do not match "
                f"the {adapter.family} model's pooled features (image_dim={adapter.image_dim}, "
                f"text_dim={adapter.text_dim}); build the controller with "
                f"ControllerConfig(image_dim={adapter.image_dim}, text_dim={adapter.text_dim}, ...)"
            )
        if space is not None and space != controller.space:
            raise ValueError(f"space {space} differs from the controller's {controller.space}")
        space = controller.space
        eng: Engine | None = make_engine(controller, engine)
    else:
        if space is None:
            raise ValueError("fastctrl.hook needs a controller, or a space to pin configs from")
        eng = None
    if tokens_per_crop is not None and (not isinstance(tokens_per_crop, int) or
                                        tokens_per_crop < 1):
        raise ValueError(f"tokens_per_crop must be a positive int, got {tokens_per_crop!r}")
    _check_space(space, adapter)
    adapter.check_experts_implementation()
    handle = HookHandle(model, adapter, space, eng, _validate_budget(budget_ms), tokens_per_crop)
    _HOOKED[model] = handle
    log.info("fastctrl.hook: %s with %s, engine=%s", adapter.family, space,
             getattr(eng, "kind", None))
    return handle
