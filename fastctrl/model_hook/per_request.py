"""``generate()`` of a batch where every request runs at its own decided config.

A batch's requests can decide different configs, and one forward runs one config (the
shapes of the KV cache, the experts per token and the blocks run are the batch's). So the hook
decides the batch first (:meth:`~fastctrl.model_hook.handle.HookHandle.decide`: the forward
up to the decision, stopped before the language model by :class:`DecisionMade`), groups the
requests by config, and runs ``generate()`` once per group, pinned at that group's config, on
the group's rows. The outputs are put back in request order, right-padded to one length.

This needs every input tensor to hold one row per request (LLaVA-style ``pixel_values``
``[B, ...]``). Families whose vision inputs are concatenated over the batch (Qwen-VL's
``pixel_values [patches, D]``) cannot be cut by rows here; they fall back to the per-knob
minimum, with a warning. The decision pass costs the vision tower and the embeddings once
more for a mixed batch. In ``handle.stats`` the decision pass is the batch's decision
forward (its forward time ends where the pass stops, so ``controller_share`` overstates the
controller's share of a per-request ``generate()``); the groups' pinned runs count in
``stats.configs``, one entry per group.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .handle import HookHandle

log = logging.getLogger(__name__)

BATCHING = ("per_request", "min")
"""``per_request``: each request at its own config; ``min``: one config per batch, the per-knob
minimum of the requests' decisions."""

_warned: set[str] = set()


class DecisionMade(Exception):  # noqa: N818 (control flow, not an error)
    """Raised inside a forward of :meth:`HookHandle.decide` once the decision is made, so the
    language model does not run; carries the requests' grid indices."""

    def __init__(self, rows: list[list[int]]) -> None:
        super().__init__("decision made")
        self.rows = rows


def model_inputs(model: torch.nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``generate()``'s kwargs that the model's forward takes (generation
    settings such as ``max_new_tokens`` are not forward inputs)."""
    params = inspect.signature(model.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names = set(params) | {"pixel_values", "attention_mask", "input_ids", "image_sizes"}
        return {k: v for k, v in kwargs.items() if k in names}
    return {k: v for k, v in kwargs.items() if k in params}


def batch_size(inputs: dict[str, Any]) -> int | None:
    ids = inputs.get("input_ids")
    if isinstance(ids, torch.Tensor) and ids.ndim == 2:
        return int(ids.shape[0])
    return None


def rows_aligned(inputs: dict[str, Any], bsz: int) -> bool:
    """Whether every tensor input holds one row per request (so rows can be cut out)."""
    return all(
        v.ndim >= 1 and int(v.shape[0]) == bsz
        for v in inputs.values()
        if isinstance(v, torch.Tensor)
    )


def take_rows(kwargs: dict[str, Any], rows: list[int], bsz: int) -> dict[str, Any]:
    """``kwargs`` with every per-request tensor cut to ``rows``."""
    index = torch.tensor(rows)
    return {
        k: v.index_select(0, index.to(v.device))
        if isinstance(v, torch.Tensor) and v.ndim >= 1 and int(v.shape[0]) == bsz
        else v
        for k, v in kwargs.items()
    }


def group_rows(rows: list[list[int]]) -> dict[tuple[int, ...], list[int]]:
    """Grid indices per request -> ``{config indices: request rows}`` in first-seen order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for r, idx in enumerate(rows):
        groups.setdefault(tuple(idx), []).append(r)
    return groups


def merge_rows(
    outputs: list[torch.Tensor], groups: list[list[int]], bsz: int, pad_id: int
) -> torch.Tensor:
    """Put each group's ``[b_i, L_i]`` sequences back at their rows of one ``[bsz, max L]``
    tensor, right-padded with ``pad_id`` (as ``generate()`` pads finished rows)."""
    length = max(int(o.shape[1]) for o in outputs)
    out = outputs[0].new_full((bsz, length), pad_id)
    for o, rows in zip(outputs, groups, strict=True):
        out[torch.tensor(rows, device=out.device), : o.shape[1]] = o
    return out


def _pad_id(model: torch.nn.Module, kwargs: dict[str, Any]) -> int | None:
    cfg = kwargs.get("generation_config") or getattr(model, "generation_config", None)
    for name in ("pad_token_id", "eos_token_id"):
        v = kwargs.get(name, getattr(cfg, name, None))
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if isinstance(v, torch.Tensor):
            v = int(v.flatten()[0]) if v.numel() else None
        if v is not None:
            return int(v)
    return None


def _fall_back(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        log.warning(
            "fastctrl.hook: per-request batching falls back to the per-knob minimum: %s", reason
        )


def generate_per_request(
    handle: HookHandle, generate: Callable[..., Any], kwargs: dict[str, Any]
) -> Any | None:
    """``generate(**kwargs)`` with every request at its own config; ``None`` where the batch
    is one request or cannot be cut by rows (the caller then runs ``generate`` as is)."""
    model = handle.model
    inputs = model_inputs(model, kwargs)
    bsz = batch_size(inputs)
    if bsz is None or bsz < 2:
        return None
    if kwargs.get("return_dict_in_generate"):
        _fall_back("return_dict_in_generate outputs are not merged across config groups")
        return None
    if not rows_aligned(inputs, bsz):
        _fall_back(f"{handle.adapter.family}: its inputs are not one row per request")
        return None
    pad_id = _pad_id(model, kwargs)
    if pad_id is None:
        _fall_back("no pad_token_id / eos_token_id to pad the groups' answers to one length")
        return None
    configs = handle.decide(**inputs)
    rows = [list(c.indices) for c in configs]
    groups = group_rows(rows)
    decided = handle._last_idx
    outputs, members = [], []
    handle._group_run = True
    try:
        for indices, members_of in groups.items():
            handle.pin(handle.space.config(list(indices)))
            sub = kwargs if len(groups) == 1 else take_rows(kwargs, members_of, bsz)
            outputs.append(generate(**sub))
            members.append(members_of)
    finally:
        handle._group_run = False
        handle.pin(None)
        handle._last_idx = decided
    if len(groups) == 1:
        return outputs[0]
    return merge_rows(outputs, members, bsz, pad_id)
