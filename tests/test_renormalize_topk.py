"""``renormalize_topk``: a lowered top_k keeps the model's own weighting rule by default, or
renormalises the kept routing weights; routers with a fixed rule refuse a different one."""

from __future__ import annotations

import copy

import pytest
import torch

from fastctrl import ActionSpace
from fastctrl.model_hook import find_adapter, hook
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

GRIDS = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]}
PIN = {"max_crops": 4, "top_k": 2, "num_active_blocks": 4}


def reference(model, top_k: int, norm: bool):
    ref = copy.deepcopy(model)
    for r in find_adapter(ref).routers:
        r.top_k, r.norm_topk_prob = top_k, norm
    return ref


@torch.no_grad()
@pytest.mark.parametrize("renormalize", [None, True, False])
def test_rule_applied_for_the_call_and_restored(llava, renormalize):
    a = find_adapter(llava)
    assert all(r.norm_topk_prob is False for r in a.routers)  # OLMoE's default
    inp = tiny_inputs(llava, batch=2, seed=3)
    expect_norm = bool(renormalize)  # None keeps the model's False
    ref = reference(llava, 2, expect_norm)(**inp).logits
    other = reference(llava, 2, not expect_norm)(**inp).logits
    assert not torch.allclose(ref, other, atol=1e-4)  # the rule matters on this model
    with hook(llava, space=ActionSpace(GRIDS), renormalize_topk=renormalize) as h:
        h.pin(PIN)
        out = llava(**inp).logits
        assert all(r.norm_topk_prob is False and r.top_k == 4 for r in a.routers)
        h.pin({**PIN, "top_k": 4})  # the full config: the rule is not touched
        full = llava(**inp).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert torch.equal(full, llava(**inp).logits)


def test_fixed_rule_routers_refuse_another():
    qwen = build_tiny("qwen3-vl-moe", seed=0)  # always renormalises, no switch
    with pytest.raises(ValueError, match="renormalize_topk=False.*fixed"):
        hook(qwen, space=ActionSpace(GRIDS), renormalize_topk=False)
    hook(qwen, space=ActionSpace(GRIDS), renormalize_topk=True).remove()  # what it does anyway
    with pytest.raises(ValueError, match="renormalize_topk must be"):
        hook(qwen, space=ActionSpace(GRIDS), renormalize_topk="yes")
