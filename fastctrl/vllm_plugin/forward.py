"""The language model's forward with each request at its own config.

vLLM's V1 runner flattens a step's requests into one token batch: request ``r`` owns rows
``query_start_loc[r]:query_start_loc[r + 1]`` (its prompt chunk at prefill, one row per decode
step). :meth:`FastctrlState.begin_step` maps rows to requests and their held configs; the
replaced decoder loop then runs, at block ``i``:

- every row still within its depth (``depth > i``): the block as vLLM runs it;
- no row: the loop stops there (the remaining blocks are not run at all: compute saved, no KV
  written for them, which no request reads, since a request keeps its depth for its life);
- some rows: attention runs on every row (the step's attention metadata describes the whole
  batch; a finished row's attention output is discarded, so its KV entries for that block are
  written but never read), then the MoE / MLP runs on the active rows only (row subset: its
  compute is saved), and each finished row keeps its residual stream unchanged (``hidden = 0``,
  ``residual = stream``: the final norm sees ``hidden + residual = stream``).

So depth is "rows subset at the MoE, masked at attention": compute is saved in full when the
whole batch is past a block, in the MoE when part of it is. ``top_k`` is per token through the
routing function (:mod:`.routing`). A step where every request is at the full config runs
vLLM's own forward untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import MethodType
from typing import Any

import numpy as np
import torch
from torch import nn

from .decisions import Decider, ModelLimits
from .pins import check_eager, check_runner
from .request_args import RequestArgs, parse_request_args
from .routing import route_per_token

log = logging.getLogger(__name__)


class StepPlan:
    """Per-row ``top_k`` and depth of one step (rows beyond the requests' tokens, padding,
    run the full config)."""

    def __init__(self, counts: np.ndarray, ks: Sequence[int], depths: Sequence[int]) -> None:
        self.counts = counts
        self.ks = np.asarray(ks, dtype=np.int64)
        self.depths = np.asarray(depths, dtype=np.int64)
        self.row_k_np = np.repeat(self.ks, counts)
        self.row_depth = np.repeat(self.depths, counts)


class FastctrlState:
    """What the plugin keeps on one model: the decider, the current step's plan, the hooks."""

    def __init__(self, inner: nn.Module, limits: ModelLimits, decider: Decider) -> None:
        self.inner = inner
        self.limits = limits
        self.decider = decider
        self.plan: StepPlan | None = None
        self.moe_k: torch.Tensor | None = None
        self.steps = 0
        self.steps_full = 0

    # ------------------------------------------------------------------ per step
    def begin_step(self, runner: Any) -> None:
        """Decide for requests new in this step, and lay out the step's per-row configs."""
        if self.steps == 0:
            check_runner(runner)
        self.steps += 1
        batch = runner.input_batch
        n = batch.num_reqs
        req_ids = list(batch.req_ids[:n])
        new = [r for r in req_ids if r not in self.decider.held]
        if new:
            self._decide(runner, new)
        if len(self.decider.held) > n:
            self.decider.forget(runner.requests)
        held = self.decider.held
        full = self.limits
        ks = [held[r].top_k for r in req_ids]
        depths = [held[r].depth for r in req_ids]
        if all(k == full.top_k for k in ks) and all(d == full.num_layers for d in depths):
            self.plan = None
            self.steps_full += 1
            return
        qsl = runner.query_start_loc.np[: n + 1]
        self.plan = StepPlan(np.diff(qsl).astype(np.int64), ks, depths)

    def end_step(self) -> None:
        self.plan = None
        self.moe_k = None

    def _decide(self, runner: Any, new: list[str]) -> None:
        args: list[RequestArgs] = []
        for rid in new:
            params = runner.requests[rid].sampling_params
            try:
                args.append(parse_request_args(getattr(params, "extra_args", None)))
            except ValueError as e:
                # the engine serves the other requests: this one runs the full model
                log.error("fastctrl: request %s: %s; running the full config", rid, e)
                args.append(RequestArgs())
        feats = []
        for rid, a in zip(new, args, strict=True):
            if self.decider.needs_features(a):
                ids = runner.requests[rid].prompt_token_ids
                feats.append(self.text_feature(ids))
        self.decider.decide(new, args, torch.stack(feats) if feats else None)

    @torch.no_grad()
    def text_feature(self, prompt_ids: Sequence[int]) -> torch.Tensor:
        """Mean of the model's token embeddings over the whole prompt (float32 ``[hidden]``)."""
        dev = self.inner.embed_tokens.weight.device
        ids = torch.as_tensor(list(prompt_ids), dtype=torch.long, device=dev)
        return self.inner.embed_input_ids(ids).float().mean(0)

    # ------------------------------------------------------------------ in the forward
    def route(
        self,
        hidden_states: torch.Tensor,
        gating_output: torch.Tensor,
        topk: int,
        renormalize: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """vLLM's ``custom_routing_function`` signature; per-token ``k`` from the plan."""
        return route_per_token(gating_output, topk, renormalize, self.moe_k)

    def _rows(self, values: np.ndarray, fill: int, total: int) -> np.ndarray:
        if values.shape[0] >= total:
            return values[:total]
        return np.concatenate([values, np.full(total - values.shape[0], fill, np.int64)])

    def forward(
        self,
        original: Any,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        plan = self.plan
        if plan is None:
            return original(input_ids, positions, intermediate_tensors, inputs_embeds, **kwargs)
        inner = self.inner
        h = inputs_embeds if inputs_embeds is not None else inner.embed_input_ids(input_ids)
        total = h.shape[0]
        depth = self._rows(plan.row_depth, self.limits.num_layers, total)
        row_k_np = self._rows(plan.row_k_np, self.limits.top_k, total)
        row_k = (
            None
            if bool((row_k_np == self.limits.top_k).all())
            else torch.from_numpy(row_k_np).to(h.device)
        )
        residual: torch.Tensor | None = None
        layers = list(inner.layers)[inner.start_layer : inner.end_layer]
        try:
            for i, layer in enumerate(layers):
                active = depth > i
                n_active = int(active.sum())
                if n_active == 0:
                    break  # every row is past its depth: the remaining blocks are not run
                if n_active == total:
                    self.moe_k = row_k
                    h, residual = layer(positions, h, residual)
                    continue
                h, residual = self._partial_block(layer, positions, h, residual, active, row_k)
        finally:
            self.moe_k = None
        if residual is None:
            return inner.norm(h)
        h, _ = inner.norm(h, residual)
        return h

    def _partial_block(
        self,
        layer: nn.Module,
        positions: torch.Tensor,
        h: torch.Tensor,
        residual: torch.Tensor | None,
        active: np.ndarray,
        row_k: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dev = h.device
        act = torch.from_numpy(np.flatnonzero(active)).to(dev)
        skip = torch.from_numpy(np.flatnonzero(~active)).to(dev)
        # the finished rows' residual stream, read before the fused norms (which may write
        # their inputs in place)
        stream = h.index_select(0, skip)
        if residual is not None:
            stream = stream + residual.index_select(0, skip)
            x, residual = layer.input_layernorm(h, residual)
        else:
            residual = h.clone()
            x = layer.input_layernorm(h)
        x = layer.self_attn(positions=positions, hidden_states=x)
        x, residual = layer.post_attention_layernorm(x, residual)
        self.moe_k = None if row_k is None else row_k.index_select(0, act)
        y = layer.mlp(x.index_select(0, act))
        out = torch.zeros_like(x).index_copy_(0, act, y)
        residual = residual.index_copy(0, skip, stream)
        return out, residual


#: the decoder-layer parts the replaced loop calls (vLLM's OLMoE / Qwen3-MoE layers)
LAYER_PARTS = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")


def install(model: nn.Module, limits: ModelLimits, decider: Decider) -> FastctrlState:
    """Put the per-request forward on ``model`` (a vLLM ``*ForCausalLM``): instance-level
    forward of its language model, the routing function of each MoE layer's router."""
    from vllm.model_executor.layers.fused_moe.router.custom_routing_router import (
        CustomRoutingRouter,
    )

    inner = model.model
    check_eager(inner)
    for i, layer in enumerate(inner.layers):
        missing = [p for p in LAYER_PARTS if not hasattr(layer, p)]
        if missing:
            raise TypeError(
                f"fastctrl vLLM plugin: decoder layer {i} ({type(layer).__name__}) lacks "
                f"{missing}; the plugin supports layers made of {LAYER_PARTS}"
            )
    state = FastctrlState(inner, limits, decider)
    for layer in inner.layers:
        experts = getattr(layer.mlp, "experts", None)
        router = getattr(experts, "router", None)
        if router is None:
            continue  # a dense block (Qwen3-MoE's mlp_only_layers): top_k does not apply
        if hasattr(router, "custom_routing_function") and router.custom_routing_function is None:
            # CPURouter: it calls a custom routing function when one is set
            router.custom_routing_function = state.route
        else:
            # GPU routers: one that calls the routing function (written for GPU, not run here)
            experts.router = CustomRoutingRouter(
                top_k=router.top_k,
                global_num_experts=router.global_num_experts,
                custom_routing_function=state.route,
                eplb_state=router.eplb_state,
                renormalize=router.renormalize,
            )
    original = MethodType(type(inner).forward, inner)

    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return state.forward(original, *args, **kwargs)

    inner.forward = MethodType(forward, inner)
    return state
