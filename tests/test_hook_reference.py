"""A pinned reduced config equals an independently truncated model, for every family.

The reference is a deep copy of the model whose decoder keeps only its first N layers (the
``ModuleList`` cut, ``num_hidden_layers`` set) and whose routers have ``top_k`` set directly;
the hooked model gets there through the hook's own mechanism (skipped blocks, patched and
restored routers). On the text-only path both must give the same logits to 1e-5.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fastctrl.model_hook import find_adapter, hook
from fastctrl.testing.tiny_models import build_tiny, tiny_families
from fastctrl.testing.tiny_models.common import BOS, PAD, encode_text

from .family_kit import grids_for

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def truncated(model: nn.Module, layers: int, top_k: int | None) -> nn.Module:
    ref = copy.deepcopy(model)
    a = find_adapter(ref)
    lm = a.language_model
    holder = lm if isinstance(getattr(lm, "layers", None), nn.ModuleList) else lm.model
    holder.layers = nn.ModuleList(list(holder.layers)[:layers])
    for cfg in {
        id(c): c
        for c in (getattr(lm, "config", None), getattr(holder, "config", None))
        if c is not None
    }.values():
        cfg.num_hidden_layers = layers
        if isinstance(getattr(cfg, "layer_types", None), list):
            cfg.layer_types = cfg.layer_types[:layers]
    if top_k is not None:
        for r in a.routers:
            r.top_k = top_k
    return ref


def text_only(batch: int = 2) -> dict[str, torch.Tensor]:
    prompts = ["what color is the shape?", "how many dots"][:batch]
    seqs = [[BOS] + encode_text(p) for p in prompts]
    width = max(len(s) for s in seqs)
    ids = torch.full((batch, width), PAD, dtype=torch.long)
    mask = torch.zeros((batch, width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s)
        mask[i, width - len(s) :] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("family", tiny_families())
@torch.no_grad()
def test_pinned_reduced_config_equals_truncated_reference(family):
    model = build_tiny(family, seed=0)
    grids = grids_for(model)
    a = find_adapter(model)
    inp = text_only()
    for blocks in sorted({1, max(1, a.num_layers // 2)}):
        for k in grids.get("top_k", [None])[:2]:
            ref = truncated(model, blocks, k)(**inp, use_cache=False).logits
            pin = {"max_crops": 4, "num_active_blocks": blocks}
            if k is not None:
                pin["top_k"] = k
            with hook(model, space=_space(grids)) as h:
                h.pin(pin)
                out = model(**inp, use_cache=False).logits
            assert out.shape == ref.shape
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def _space(grids):
    from fastctrl import ActionSpace

    return ActionSpace(grids)
