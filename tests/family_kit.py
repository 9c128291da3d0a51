"""Shared pieces of the per-family hook tests: grids that fit a model, controllers, a probe."""

from __future__ import annotations

from collections.abc import Callable

import torch

from fastctrl import Controller, ControllerConfig
from fastctrl.model_hook import find_adapter
from fastctrl.testing.tiny_models import sweep_grids

#: every knob that applies to a model, grid top = the unmodified model
grids_for = sweep_grids


def full_for(model) -> dict[str, int]:
    return {n: v[-1] for n, v in grids_for(model).items()}


def make_controller(model, pick: dict[str, int] | None = None, seed: int = 0) -> Controller:
    """A real controller; with ``pick`` its heads always choose those grid values."""
    a = find_adapter(model)
    grids = grids_for(model)
    torch.manual_seed(seed)
    c = Controller(ControllerConfig(image_dim=a.image_dim, text_dim=a.text_dim, grids=grids)).eval()
    if pick is not None:
        with torch.no_grad():
            for name, head in c.heads.items():
                head.weight.zero_()
                head.bias.fill_(-10.0)
                head.bias[grids[name].index(pick[name])] = 10.0
    return c


def watch_decisions(handle, observe: Callable[..., object]) -> None:
    """Call ``observe(*args)`` on each of the hooked engine's decisions (one call per decision
    forward: ``decide_rows`` where the engine has it, else ``decide_tensors``), which then
    decide as before."""
    name = "decide_rows" if hasattr(handle.engine, "decide_rows") else "decide_tensors"
    decide = getattr(handle.engine, name)

    def watched(*args):
        observe(*args)
        return decide(*args)

    setattr(handle.engine, name, watched)


def _attention(layer):
    for name, child in layer.named_children():
        if "attn" in name or "attention" in name:
            return child
    raise AssertionError(f"{type(layer).__name__} has no attention child")


class Probe:
    """Counts what actually runs: decoder blocks (their attention), the top_k every router
    used, token-expert pairs, the language model's sequence length."""

    def __init__(self, model) -> None:
        a = find_adapter(model)
        self.handles = []
        self.attn_calls = 0
        self.router_k: list[int] = []
        self.routers_called: list[torch.nn.Module] = []
        self.expert_pairs = 0
        self.seq_lens: list[int] = []
        for layer in a.decoder_layers:
            self.handles.append(_attention(layer).register_forward_pre_hook(self._attn))
        for r in a.routers:
            self.handles.append(r.register_forward_pre_hook(self._router))
        for e in a.experts:
            self.handles.append(e.register_forward_pre_hook(self._experts))
        self.handles.append(a.language_model.register_forward_pre_hook(self._lm, with_kwargs=True))

    def _attn(self, mod, args):
        self.attn_calls += 1

    def _router(self, mod, args):
        self.router_k.append(int(mod.top_k))
        self.routers_called.append(mod)

    def _experts(self, mod, args):
        idx = args[1] if len(args) > 1 else None
        if isinstance(idx, torch.Tensor) and not idx.is_floating_point():
            self.expert_pairs += int(idx.numel())  # top_k_index: token-expert pairs computed

    def _lm(self, mod, args, kwargs):
        self.seq_lens.append(int(kwargs["inputs_embeds"].shape[1]))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def moe_layers(model) -> list[int]:
    """Indices of the decoder layers holding at least one router (ERNIE-VL has two per MoE
    layer: text and vision experts, each routing its own tokens)."""
    a = find_adapter(model)
    routers = {id(r) for r in a.routers}
    return [
        i
        for i, layer in enumerate(a.decoder_layers)
        if any(id(m) in routers for m in layer.modules())
    ]


def router_layer(model) -> dict[int, int]:
    """Router module id -> index of the decoder layer holding it."""
    a = find_adapter(model)
    out = {}
    for i, layer in enumerate(a.decoder_layers):
        for m in layer.modules():
            out[id(m)] = i
    return {id(r): out[id(r)] for r in a.routers}
