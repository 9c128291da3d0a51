"""The public handle of :func:`fastctrl.hook`, and what one hooked forward does.

The pieces live beside it: feature capture (:mod:`.capture`), applying a config
(:mod:`.apply`), the decode state held through ``generate()`` (:mod:`.decode`), live counters
(:mod:`.stats`), the families (:mod:`.families`).

One top-level forward of a hooked model goes through these steps (all inside that forward):

1. the vision tower runs as usual; a forward hook pools its output (adapter-defined: CLIP CLS
   for LLaVA-OLMoE, mean of merged vision tokens for Qwen3-VL-MoE) -> image feature;
2. the token embedding runs as usual; a forward hook keeps its output -> text feature = mean
   of the embeddings at non-vision, non-padding positions;
3. a pre-hook on the language model (which receives the merged ``inputs_embeds``) pools the
   features (in the model's dtype, on its device) and makes ONE engine call on them and the
   request budgets (:func:`.decision.decide`: the same call evaluation's
   ``controller_overhead_ms`` times), reads the config on the host (on CUDA the decision's
   only sync: the config decides tensor shapes), then applies it:
   vision tokens beyond the budget are removed from ``inputs_embeds``, the attention mask, the
   position ids (their original, possibly multimodal, positions are kept) and family extras
   (Qwen3-VL DeepStack); every router's ``top_k`` is set; skipped decoder blocks become
   identities;
4. a post-hook on the language model restores ``top_k`` and the blocks (also on exceptions);
   at the full config nothing was patched and nothing is restored.

Tile-splitting families (Idefics3 / SmolVLM: an adapter with a ``tile_spec``, see
:mod:`.crops`) decide earlier, so that ``max_crops`` cuts the vision encoder's work: the
top-level pre-hook pools features available before any tile is encoded (the global tiles'
pixels, the prompt's token embeddings), makes the one engine call, and rewrites the forward's
inputs to the kept crops (every global tile kept) and their prompt spans; the vision tower
then encodes only those tiles, and the language-model pre-hook applies ``top_k`` /
``num_active_blocks`` from the held decision without removing tokens. ``generate()`` is made
to encode images inside the prefill forward (not before it), and its decode steps' attention
mask and position ids are mapped onto the shorter prompt.

Decisions: a forward whose cache is empty (prefill) makes a new decision; a forward that
continues that cache (``generate()`` decode steps) reuses it, so the KV cache, which holds only
the kept tokens and only the active blocks' layers, stays consistent. Decode steps keep the
original position numbering (positions continue after the last prompt position), and a full
2-D attention mask from ``generate()`` is mapped onto the kept columns.

Batches: the controller decides per request. ``generate()`` of a batch (``batching=
"per_request"``, the default) then runs every request at its own config: the requests are
decided first (:meth:`HookHandle.decide`: the forward up to the decision, the language model
not run), grouped by config, and each group generates pinned at its config
(:mod:`.per_request`). One plain forward (``model(**batch)``) runs ONE config, as does
``generate()`` with ``batching="min"``: the per-knob minimum of the requests' grid indices
(grids are ascending, so the request with the tightest budget binds each knob), one pass for
the whole batch, which is what a caller wants who prefers one forward to several smaller ones
and can accept the tightest request's config for everyone. Per-request decisions are kept in
``handle.last_request_decisions`` and counted in ``handle.stats.request_configs``.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engines import Engine, make_engine
from ..engines.base import check_budget
from ..policy import Controller
from ..space import ActionSpace, Config
from . import crops
from .apply import ModulePatcher, check_space, keeps_every_token, remove_tokens, vision_keep
from .capture import ForwardCapture, text_feature
from .decision import (
    BudgetCache,
    ConfigCache,
    Decision,
    batch_indices,
    budget_tensor,
    decide,
)
from .decode import DecodeState
from .families.base import Adapter, find_adapter
from .per_request import BATCHING, DecisionMade, generate_per_request
from .stats import HookStats, now

log = logging.getLogger(__name__)

# models currently hooked (a model takes one hook at a time); weak so nothing is kept alive
_HOOKED: weakref.WeakKeyDictionary[nn.Module, HookHandle] = weakref.WeakKeyDictionary()


def validate_budget(budget_ms: Any) -> np.ndarray | None:
    """The one budget check of the hook, at its boundary: ms as a scalar or one per request
    (number, sequence, numpy array or tensor) -> float32 ``[n]``; ``None`` stays ``None``."""
    if budget_ms is None:
        return None
    if isinstance(budget_ms, (list, tuple)):
        budget_ms = np.asarray(budget_ms, dtype=np.float64)
    if isinstance(budget_ms, (np.ndarray, torch.Tensor)):
        return check_budget(budget_ms, int(np.prod(budget_ms.shape)) or 1)
    return check_budget(budget_ms, 1)


class HookHandle:
    """Returned by :func:`fastctrl.hook`; ``remove()`` undoes everything."""

    def __init__(
        self,
        model: nn.Module,
        adapter: Adapter,
        space: ActionSpace,
        engine: Engine | None,
        budget_ms: np.ndarray | None,
        tokens_per_crop: int | None,
        renormalize_topk: bool | None = None,
        batching: str = "per_request",
    ) -> None:
        if batching not in BATCHING:
            raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
        self.batching = batching
        self.model = model
        self.adapter = adapter
        self.space = space
        self.engine = engine
        self.tokens_per_crop = tokens_per_crop
        self._budget = budget_ms
        self._task: Any = None  # default task type(s) of later forwards (None: unknown)
        self._pinned: Config | None = None
        self.guardrail: Any = None
        """A :class:`~.guardrail.LatencyGuardrail` (or anything with its ``apply``) run on
        every decision after the engine; None: the engine's decisions as they are."""
        self._decide_only = False  # decide(): stop the forward once the decision is made
        self._group_run = False  # a per-request group's pinned generate(): counted as decided
        self._last_rows: list[list[int]] = []
        self._ctx: ForwardCapture | None = None
        self._decode_ctx = ForwardCapture(budget=None, attention_mask=None, decides=False)
        self._pending_vision = _empty_capture()  # vision tower output outside a forward
        self._request: DecodeState | None = None
        self._patcher = ModulePatcher(adapter, renormalize_topk)
        self._hooks: list[Any] = []
        self._removed = False
        self._device = _model_device(model)
        self.stats = HookStats(
            knob_names=space.names,
            timer="cuda_events" if self._device.type == "cuda" else "perf_counter",
        )
        self._last_idx: torch.Tensor | list[list[int]] | None = None
        self._configs = ConfigCache(space)
        self._budgets = BudgetCache()
        self.last_config: Config | None = None
        """Config the last decision forward ran."""
        self._features: tuple[torch.Tensor, torch.Tensor] | None = None
        self._features_from: tuple[Any, ...] | None = None
        self._features_fn: Any = None  # pinned tile-splitting forward: features when read
        self._tiles: crops.TileSpec | None = getattr(adapter, "tile_spec", None)
        self._crop_state: crops.CropState | None = None
        self._forward_params: list[str] | None = None
        self._keeps_all: dict[tuple[int, ...], bool] = {}  # config key -> keeps_every_token
        self.last_kept_positions: torch.Tensor | None = None
        """``[B, L']`` original sequence positions the language model saw at the last prefill
        (``None`` when no token was removed); logits of that forward follow these positions."""
        self._install()

    # ------------------------------------------------------------------ public API
    def set_budget(self, budget_ms: Any) -> None:
        """Default budget for later forwards: ms, a scalar or one value per request."""
        self._budget = validate_budget(budget_ms)

    @property
    def budget_ms(self) -> np.ndarray | None:
        """The default budget as validated float32 ``[n]`` ms (``None`` when unset)."""
        return self._budget

    def set_task_type(self, task_type: str | Sequence[str] | None) -> None:
        """Default task type(s) for later forwards (a name or one per request; ``None``:
        unknown). Per call: ``model(..., task_type=...)`` / ``model.generate(...,
        task_type=...)``. A controller trained with task types uses them as an input; a name
        it was not trained on is "unknown"."""
        self._task = task_type

    @contextmanager
    def budget_scope(self, budget_ms: Any) -> Iterator[None]:
        """Use ``budget_ms`` for the forwards inside the ``with`` block (e.g. one request)."""
        old, self._budget = self._budget, validate_budget(budget_ms)
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

    def decide(self, budget_ms: Any = None, task_type: Any = None, **inputs: Any) -> list[Config]:
        """Each request's config, decided as a forward of the hooked model would decide it
        (same features, engine and budgets) but without running the language model: the
        forward stops once the decision is made. ``inputs`` are the model's forward inputs;
        ``budget_ms`` / ``task_type`` as for a forward (default: the handle's)."""
        if self.engine is None:
            raise RuntimeError("fastctrl.hook: decide() needs a controller")
        if self._pinned is not None:
            raise RuntimeError("fastctrl.hook: decide() asks the controller; unpin first")
        self._decide_only = True
        try:
            with torch.no_grad():
                self.model(
                    **{**inputs, "use_cache": False}, budget_ms=budget_ms, task_type=task_type
                )
        except DecisionMade as made:
            return [self._configs.get(tuple(r)).config for r in made.rows]
        finally:
            self._decide_only = False
        raise RuntimeError("fastctrl.hook: the forward made no decision (no image-text input?)")

    def remove(self) -> None:
        """Remove every hook and restore routers and blocks; idempotent."""
        if self._removed:
            return
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self.model.__dict__.pop("generate", None)
        self.model.__dict__.pop(_ENCODE_BEFORE_PREFILL, None)
        self._crop_state = None
        self._features_fn = None
        self._pending_vision = _empty_capture()
        self._patcher.restore()
        self._request = None
        self._ctx = None
        self._features_from = None
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
        return (
            f"HookHandle({self.adapter.family}, {self.space}, engine="
            f"{getattr(self.engine, 'kind', None)}, {state})"
        )

    # ------------------------------------------------------------------ installation
    def _install(self) -> None:
        a = self.adapter
        self._hooks += [
            self.model.register_forward_pre_hook(self._outer_pre, with_kwargs=True),
            self.model.register_forward_hook(self._outer_post, always_call=True),
            a.embed_tokens.register_forward_hook(self._embed_post),
            a.language_model.register_forward_pre_hook(self._lm_pre, with_kwargs=True),
            a.language_model.register_forward_hook(self._lm_post, always_call=True),
        ]
        if a.image_feature == "vision_tower":
            self._hooks.append(
                a.vision_tower.register_forward_hook(self._vision_post, with_kwargs=True)
            )
        orig_generate = getattr(self.model, "generate", None)
        if callable(orig_generate):
            # generate() validates its kwargs against forward's signature, so a per-request
            # budget is taken here and held for the whole call (prefill and decode steps).
            def generate(
                *args: Any, budget_ms: Any = None, task_type: Any = None, **kwargs: Any
            ) -> Any:
                old_task, self._task = (
                    self._task,
                    task_type if task_type is not None else self._task,
                )
                try:
                    with self.budget_scope(budget_ms if budget_ms is not None else self._budget):
                        if (
                            self.batching == "per_request"
                            and self.engine is not None
                            and self._pinned is None
                            and not args
                        ):
                            out = generate_per_request(self, orig_generate, kwargs)
                            if out is not None:
                                return out
                        return orig_generate(*args, **kwargs)
                finally:
                    self._task = old_task

            self.model.generate = generate
        if self._tiles is not None and hasattr(self.model, _ENCODE_BEFORE_PREFILL):
            # transformers >= 5.2x generate() encodes the images before the prefill forward
            # (and passes them as mm_encoder_outputs); for crops to be dropped before they are
            # encoded, pixel_values must reach the prefill forward, which encodes them itself.
            setattr(self.model, _ENCODE_BEFORE_PREFILL, _keep_pixels_for_prefill)

    # ------------------------------------------------------------------ hooks
    def _outer_pre(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        budget = kwargs.pop("budget_ms", None)
        budget = self._budget if budget is None else validate_budget(budget)
        task = kwargs.pop("task_type", None)
        task = self._task if task is None else task
        cache = kwargs.get("past_key_values")
        if cache is None:
            cache = kwargs.get("cache")
        past = cache.get_seq_length() if hasattr(cache, "get_seq_length") else None
        if past:
            # A forward that continues a KV cache (a decode step) makes no decision: it needs
            # no capture, no time stamps (on CUDA an event record each) and no pooling; one
            # shared, never-written capture stands for it.
            self._decode_ctx.past = int(past)
            self._ctx = self._decode_ctx
            st, req = self._crop_state, self._request
            if st is not None and req is not None and req.cache_len == int(past):
                st.continue_step(kwargs, int(past))  # mask / positions of the shorter prompt
            elif req is not None and req.keep_idx is not None and req.cache_len == int(past):
                # vision tokens were removed at prefill: the 2-D mask onto the kept columns
                # before the base model prepares masks from it (Gemma 3, Molmo2 do)
                ids = kwargs.get("input_ids")
                n = int(ids.shape[1]) if isinstance(ids, torch.Tensor) and ids.ndim == 2 else 1
                if "attention_mask" in kwargs:
                    kwargs["attention_mask"] = req.map_mask(kwargs["attention_mask"], int(past), n)
            return args, kwargs
        if self._tiles is not None and args:
            args, kwargs = (), {**self._bind(args), **kwargs}
        am = kwargs.get("attention_mask")
        ctx = self._ctx = ForwardCapture(
            budget=budget,
            attention_mask=am if isinstance(am, torch.Tensor) and am.ndim == 2 else None,
        )
        pending = self._pending_vision
        if pending.image_feats:  # the tower ran outside a forward since the last prefill
            self._pending_vision = _empty_capture()
            if kwargs.get("mm_encoder_outputs"):  # encoded for this forward (generate())
                ctx.image_feats, ctx.tokens_per_image = (
                    pending.image_feats,
                    pending.tokens_per_image,
                )
        ctx.task = task
        ctx.t0 = now(self._device)
        if self._tiles is not None:
            self._decide_before_vision(ctx, kwargs)
        return args, kwargs

    def _bind(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """Positional arguments of the top-level forward by name (tile families rewrite them)."""
        if self._forward_params is None:
            self._forward_params = list(inspect.signature(self.model.forward).parameters)
        return dict(zip(self._forward_params, args, strict=False))

    def _decide_before_vision(self, ctx: ForwardCapture, kwargs: dict[str, Any]) -> None:
        """Tile-splitting families: decide from what exists before any tile is encoded, then
        keep only the kept crops in the forward's inputs (:mod:`.crops`)."""
        spec = self._tiles
        assert spec is not None
        ids = kwargs.get("input_ids")
        pix = kwargs.get("pixel_values")
        pmask = kwargs.get("pixel_attention_mask")
        am = ctx.attention_mask
        self._crop_state = None
        self.last_kept_positions = None
        if isinstance(ids, torch.Tensor) and ids.ndim == 2:
            bsz = int(ids.shape[0])
            layout = crops.parse(ids, pix, spec) if pix is not None else None
        else:  # inputs_embeds: the text feature from them, crops cannot be dropped
            emb = kwargs.get("inputs_embeds")
            bsz, layout = int(emb.shape[0]), None
        t0 = now(self._device)

        def features() -> tuple[torch.Tensor, torch.Tensor]:
            if isinstance(ids, torch.Tensor) and ids.ndim == 2:
                emb = self.adapter.embed_tokens(ids)
                vis = self.adapter.vision_mask(ids)
            else:
                emb = kwargs["inputs_embeds"]
                vis = torch.zeros(emb.shape[:2], dtype=torch.bool, device=emb.device)
            text = text_feature(emb.detach(), vis, am, bsz)
            image = crops.image_features(pix, pmask, layout, spec, bsz, text.dtype, text.device)
            return image.contiguous(), text

        if self._pinned is not None:
            self._features, self._features_from, self._features_fn = None, None, features
            chosen = self._configs.get(self._pinned.indices)
            rows = [list(self._pinned.indices)] * bsz
            self._last_idx = rows
        else:
            image, text = features()
            self._features, self._features_from, self._features_fn = (image, text), None, None
            d = self._decide(ctx, image, text, bsz)
            ctx.ctrl = (t0, now(self._device))
            ctx.controller_ran = True
            chosen, rows = d.config, d.rows
            self._last_idx = d.per_request if d.per_request is not None else rows
        self._count_decision(chosen, rows, bsz)
        if self._decide_only:  # recorded as a decision forward that stopped here
            raise DecisionMade(rows)
        ctx.held = chosen
        knob = "max_crops"
        if layout is None or knob not in self.space.names:
            return
        top = self.space[knob].values[-1]
        value = chosen.values[knob]
        absolute = self.tokens_per_crop is not None
        if value == top and not absolute:
            return  # the grid top keeps every crop: the forward is the unmodified one
        state = crops.reduce_inputs(kwargs, layout, crops.plan(layout, value, top, absolute), spec)
        if state is not None:
            self._crop_state = state
            self.last_kept_positions = state.keep_idx
            ctx.attention_mask = state.prompt_mask

    def _outer_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        ctx, self._ctx = self._ctx, None
        self._patcher.restore()
        if ctx is None or not ctx.controller_ran or ctx.t0 is None or ctx.ctrl is None:
            return
        self.stats.record(ctx.ctrl, (ctx.t0, now(self._device)))

    def _vision_post(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        ctx = self._ctx
        if ctx is None:
            # transformers >= 5.2x generate() encodes the images before the prefill forward and
            # hands them to it as mm_encoder_outputs: keep what the tower gave for that forward
            self._pending_vision.on_vision(self.adapter, args, kwargs, output)
        elif ctx.decides:
            ctx.on_vision(self.adapter, args, kwargs, output)

    def _embed_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        ctx = self._ctx
        if ctx is not None and ctx.decides:
            ctx.on_embed(args, output)

    def _lm_pre(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        ctx = self._ctx
        embeds = kwargs.get("inputs_embeds")
        if ctx is None or embeds is None:
            return None  # language model called on its own: not a VLM forward, leave it alone
        if ctx.past is not None:  # the top-level forward's cache is this one (outer_pre)
            past = ctx.past
        else:
            # transformers >= 5.2x passes the KV cache as ``cache`` (``past_key_values`` before)
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            past = int(cache.get_seq_length()) if cache is not None else 0
        if past == 0 and ctx.held is not None:
            # decided before the vision tower (tile families): apply, remove nothing
            chosen = ctx.held
            seq = int(embeds.shape[1])
            req = DecodeState(chosen.config, None, seq, seq, None, 0, chosen.values)
        elif past == 0:
            req = self._prefill(ctx, kwargs, embeds)
            if self._decide_only:  # recorded as a decision forward that stopped here
                raise DecisionMade(self._last_rows)
        else:
            req = self._request
            if req is None or req.cache_len != past:
                raise RuntimeError(
                    f"fastctrl.hook: this forward continues a KV cache of length {past} that does "
                    "not belong to the request this hook decided for (expected length "
                    f"{None if req is None else req.cache_len}). Start with an empty cache "
                    "(a prefill) so a decision is made, or remove the hook."
                )
            req.continue_step(kwargs, past)
            self.stats.decode_forwards += 1
        self._patcher.apply(req.config, req.values)
        req.cache_len = past + int(kwargs["inputs_embeds"].shape[1])
        self._request = req
        return args, kwargs

    def _lm_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._patcher.restore()

    # ------------------------------------------------------------------ prefill
    def _prefill(
        self, ctx: ForwardCapture, kwargs: dict[str, Any], embeds: torch.Tensor
    ) -> DecodeState:
        bsz, seq = embeds.shape[:2]
        t0 = now(self._device)
        ids = (
            ctx.input_ids
            if ctx.input_ids is not None and tuple(ctx.input_ids.shape) == (bsz, seq)
            else None
        )
        am = kwargs.get("attention_mask")
        am2 = am if isinstance(am, torch.Tensor) and am.ndim == 2 else ctx.attention_mask

        vis: torch.Tensor | None = None
        if self._pinned is not None:
            # No decision: the vision mask and the pooling only if someone reads last_features
            # (the profiler does, once per request) or vision tokens are removed. They were
            # ~0.16-0.2 ms of a pinned forward's ~0.3-0.55 ms of hook time (measured).
            self._features = None
            self._features_from = (ctx, ids, am2, bsz, seq, embeds)
            chosen = self._configs.get(self._pinned.indices)
            rows = [list(self._pinned.indices)] * bsz
            self._last_idx = rows
        else:
            vis = self._vision_mask(ids, bsz, seq, embeds.device)
            image, text = ctx.features(self.adapter, vis, am2, bsz, embeds)
            self._features, self._features_from = (image, text), None
            d = self._decide(ctx, image, text, bsz)
            ctx.ctrl = (t0, now(self._device))
            ctx.controller_ran = True
            chosen, rows = d.config, d.rows
            self._last_idx = d.per_request if d.per_request is not None else rows
        config = chosen.config
        self._count_decision(chosen, rows, bsz)

        if self._keeps_all.get(chosen.key, False):
            keep = None
        else:
            if vis is None:
                vis = self._vision_mask(ids, bsz, seq, embeds.device)
            keep = vision_keep(
                self.space, self.tokens_per_crop, vis, ctx.tokens_per_image, chosen.values
            )
        if keep is None and chosen.key not in self._keeps_all:
            self._keeps_all[chosen.key] = keeps_every_token(
                self.space, self.tokens_per_crop, chosen.values
            )
        self.last_kept_positions = None
        if keep is None:
            return DecodeState(config, None, seq, seq, None, 0, chosen.values)
        keep_idx, pos_kept = remove_tokens(self.adapter, kwargs, keep)
        self.last_kept_positions = keep_idx
        return DecodeState(
            config, keep_idx, seq, keep_idx.shape[1], pos_kept[..., -1] + 1, 0, chosen.values
        )

    def _count_decision(self, chosen: Any, rows: list[list[int]], bsz: int) -> None:
        self.last_config = chosen.config
        self._last_rows = rows
        if self._group_run:  # a per-request group: decided (and counted) by decide()
            self.stats.configs[chosen.key] += 1
            return
        self.stats.decisions += 1
        if not self._decide_only:  # decide() runs no config
            self.stats.configs[chosen.key] += 1
        if bsz == 1 or all(r == rows[0] for r in rows):
            self.stats.request_configs[self._configs.get(tuple(rows[0])).key] += bsz
        else:
            for row in rows:
                self.stats.request_configs[self._configs.get(tuple(row)).key] += 1

    def _decide(
        self, ctx: ForwardCapture, image: torch.Tensor, text: torch.Tensor, bsz: int
    ) -> Decision:
        """The one engine call on the pooled features (:func:`.decision.decide`)."""
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
        dev = self.engine.device
        if ctx.budget is self._budget:  # the default budget: its tensor is made once
            budget = self._budgets.tensor(ctx.budget, bsz, dev)
        else:
            budget = budget_tensor(ctx.budget, bsz, dev)
        if image.device != dev:  # e.g. a CUDA model with a CPU engine: one copy each
            image, text = image.to(dev), text.to(dev)
        task = None
        if ctx.task is not None and getattr(self.engine, "n_task_slots", 0):
            task = torch.from_numpy(self.engine.task_slots(ctx.task, bsz)).to(dev)
        d = decide(self.engine, self._configs, image, text, budget, task)
        if self.guardrail is None:
            return d
        rows, replaced = self.guardrail.apply(d.rows, ctx.budget, ctx.task)
        self.stats.guardrail_replaced += replaced
        if not replaced:
            return d
        return Decision(None, rows, self._configs.get(batch_indices(rows)))

    @property
    def last_features(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(image [B, Di], text [B, Dt])`` pooled features of the last prefill (the model's
        dtype and device); pooled on first access after a pinned forward."""
        if self._features is None and self._features_fn is not None:
            self._features, self._features_fn = self._features_fn(), None
        if self._features is None and self._features_from is not None:
            ctx, ids, am, bsz, seq, embeds = self._features_from
            vis = self._vision_mask(ids, bsz, seq, embeds.device)
            self._features = ctx.features(self.adapter, vis, am, bsz, embeds)
            self._features_from = None
        return self._features

    def _vision_mask(
        self, ids: torch.Tensor | None, bsz: int, seq: int, device: torch.device
    ) -> torch.Tensor:
        if ids is None:  # no token ids (inputs_embeds given): no position is a vision token
            return torch.zeros(bsz, seq, dtype=torch.bool, device=device)
        return self.adapter.vision_mask(ids)

    @property
    def last_request_decisions(self) -> torch.Tensor | None:
        """``[B, n_knobs]`` grid indices (int64, CPU) the controller gave each request at the
        last prefill (the pinned config's indices when pinned)."""
        idx = self._last_idx
        if idx is None:
            return None
        if isinstance(idx, list):
            return torch.tensor(idx, dtype=torch.long)
        return idx.to("cpu", torch.long)


#: the GenerationMixin step that encodes images before the prefill forward (transformers 5.2x)
_ENCODE_BEFORE_PREFILL = "_prepare_multimodal_encoder_kwargs_for_generation"


def _keep_pixels_for_prefill(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Instance override of :data:`_ENCODE_BEFORE_PREFILL` for tile-splitting families:
    ``pixel_values`` stay in the kwargs and the prefill forward encodes them (after the hook
    dropped crops); generate() still drops them from decode steps."""
    return model_kwargs


def _empty_capture() -> ForwardCapture:
    return ForwardCapture(budget=None, attention_mask=None)


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def hook(
    model: nn.Module,
    controller: Controller | None = None,
    budget_ms: float | Sequence[float] | np.ndarray | torch.Tensor | None = None,
    engine: str = "auto",
    *,
    space: ActionSpace | None = None,
    tokens_per_crop: int | None = None,
    renormalize_topk: bool | None = None,
    batching: str = "per_request",
) -> HookHandle:
    """Patch a transformers VLM so that every forward decides and applies its own config.

    Args:
        model: a supported transformers VLM (see ``fastctrl.model_hook.supported_families()``).
        controller: the :class:`~fastctrl.Controller`; its ``image_dim`` / ``text_dim`` must
            equal the model's pooled feature sizes (``adapter.image_dim`` / ``text_dim``).
            ``None`` only with ``space`` for pinned configs (profiling).
        budget_ms: default latency budget in ms (scalar or one per request); can be changed
            with ``handle.set_budget`` or per call with ``model(..., budget_ms=...)`` /
            ``model.generate(..., budget_ms=...)``.
        engine: decision engine kind for :func:`fastctrl.make_engine`. ``"auto"``: on a CUDA
            model the Triton engine on the model's device (pooled features never leave the
            GPU; one sync per decision, to read the config), on CPU the int8 engine.
        space: the action space when ``controller`` is ``None``.
        tokens_per_crop: vision tokens per crop unit for ``max_crops``; ``None`` makes a crop
            unit ``1/max(max_crops grid)`` of each image's tokens (the grid top keeps all).
        renormalize_topk: what a lowered ``top_k`` does to the kept routing weights. ``None``
            (default): the model's own rule (OLMoE / Qwen-MoE with ``norm_topk_prob=False``
            keep the softmax over all experts, so the MoE output shrinks; Mixtral, GPT-OSS,
            Qwen3-VL-MoE always renormalise). ``True``: renormalise the kept weights to sum
            to 1; ``False``: never renormalise. A router whose rule is fixed and differs is
            refused. README "Families" gives the measured effect on agreement with the full
            model.
        batching: what ``generate()`` of a batch runs. ``"per_request"`` (default): every
            request its own decided config (the batch is decided, grouped by config, and each
            group generates at its config; inputs whose tensors are not one row per request
            fall back to ``"min"``, with a warning). ``"min"``: one config for the batch, the
            per-knob minimum of the requests' decisions (one pass; the tightest request binds
            everyone).
    """
    adapter = find_adapter(model)
    if model in _HOOKED and not _HOOKED[model].removed:
        raise RuntimeError("this model is already hooked; call handle.remove() first")
    if controller is not None:
        if not isinstance(controller, Controller):
            raise TypeError(
                f"controller must be a fastctrl.Controller, got {type(controller).__name__}"
            )
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
        dev = _model_device(model)
        # On CUDA the engine runs where the model is (auto: Triton), so pooled features stay
        # on the device and the decision's only sync is reading the config; int8 stays on CPU.
        kw = {"device": dev} if dev.type == "cuda" and engine in ("auto", "torch", "triton") else {}
        eng: Engine | None = make_engine(controller, engine, **kw)
    else:
        if space is None:
            raise ValueError("fastctrl.hook needs a controller, or a space to pin configs from")
        eng = None
    if tokens_per_crop is not None and (
        not isinstance(tokens_per_crop, int) or tokens_per_crop < 1
    ):
        raise ValueError(f"tokens_per_crop must be a positive int, got {tokens_per_crop!r}")
    check_space(space, adapter, log)
    adapter.check_experts_implementation()
    if renormalize_topk is not None and not isinstance(renormalize_topk, bool):
        raise ValueError(f"renormalize_topk must be None, True or False, got {renormalize_topk!r}")
    handle = HookHandle(
        model,
        adapter,
        space,
        eng,
        validate_budget(budget_ms),
        tokens_per_crop,
        renormalize_topk,
        batching,
    )
    _HOOKED[model] = handle
    log.info(
        "fastctrl.hook: %s with %s, engine=%s", adapter.family, space, getattr(eng, "kind", None)
    )
    return handle
