"""Per-token ``top_k`` through the MoE layer's routing function.

vLLM's fused MoE routes every token to the layer's configured ``top_k`` experts. The plugin
gives each token its request's ``k <= top_k`` by keeping the ``k`` largest of those weights and
zeroing the rest, then renormalising by the model's own rule: with ``renormalize`` (Qwen3-MoE's
``norm_topk_prob``) the kept weights are divided by their sum (= a softmax over the top-``k``
logits, what transformers computes at ``top_k = k``); without it (OLMoE) they stay the softmax
over all experts. The routing itself is vLLM's (``_softmax_topk`` of its CPU router), so a
batch at the full ``top_k`` is routed bit for bit as without the plugin.

Compute: the fused kernels take a fixed ``[tokens, top_k]`` layout, so a zero-weighted expert
is still computed; a lower ``top_k`` changes the answer but saves no MoE compute in vLLM.
"""

from __future__ import annotations

import torch
from vllm.model_executor.layers.fused_moe.router.cpu_router import _softmax_topk


def route_per_token(
    gating_output: torch.Tensor, topk: int, renormalize: bool, row_k: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights [T, topk] float32, expert ids [T, topk] int32)``; ``row_k`` ``[T]``: experts
    kept per token (``None``: all ``topk``)."""
    weights, ids = _softmax_topk(gating_output, topk, renormalize)
    if row_k is None:
        return weights, ids
    if row_k.shape[0] != gating_output.shape[0]:
        raise RuntimeError(
            f"fastctrl vLLM plugin: {gating_output.shape[0]} tokens reached the router but "
            f"{row_k.shape[0]} per-token top_k values were set (a batch layout this vLLM "
            "version was not written for)"
        )
    weights, order = weights.sort(dim=-1, descending=True, stable=True)
    ids = ids.gather(-1, order)
    rank = torch.arange(topk, device=weights.device)[None, :]
    weights = torch.where(rank < row_k[:, None], weights, torch.zeros_like(weights))
    if renormalize:
        weights = weights / weights.sum(-1, keepdim=True)
    return weights.contiguous(), ids.contiguous()
