"""A model dispatched by accelerate (``device_map``, some blocks offloaded to disk) keeps its
accelerate hooks through hooked forwards and after ``remove()``.

accelerate installs its ``AlignDevicesHook`` as an instance-level ``forward`` on each
dispatched module; an offloaded block's weights stay on the meta device until that forward
loads them. A hook that dropped those forwards would make an offloaded block run on meta
weights (an error) or silently stop moving tensors between devices.
"""

from __future__ import annotations

import pytest
import torch

from fastctrl import ActionSpace
from fastctrl.model_hook import find_adapter, hook
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

GRIDS = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]}


def device_map(lm: str) -> dict[str, str]:
    """Everything on the CPU except the last two decoder blocks, offloaded to disk."""
    return {
        "model.vision_tower": "cpu",
        "model.multi_modal_projector": "cpu",
        f"{lm}.embed_tokens": "cpu",
        f"{lm}.layers.0": "cpu",
        f"{lm}.layers.1": "cpu",
        f"{lm}.layers.2": "disk",
        f"{lm}.layers.3": "disk",
        f"{lm}.norm": "cpu",
        f"{lm}.rotary_emb": "cpu",
        "lm_head": "cpu",
    }


@pytest.fixture(scope="module")
def dispatched(tmp_path_factory):
    from transformers import LlavaForConditionalGeneration

    path = tmp_path_factory.mktemp("llava")
    ref_model = build_tiny("llava-olmoe", seed=0)
    ref_model.save_pretrained(path)
    model = LlavaForConditionalGeneration.from_pretrained(
        path,
        device_map=device_map("model.language_model"),
        offload_folder=str(tmp_path_factory.mktemp("offload")),
    ).eval()
    return ref_model, model


@torch.no_grad()
def test_dispatched_model_keeps_its_hooks(dispatched):
    ref_model, model = dispatched
    a = find_adapter(model)
    layers = list(a.decoder_layers)
    own = [layer.__dict__.get("forward") for layer in layers]
    assert all(f is not None for f in own) and all(hasattr(x, "_hf_hook") for x in layers)
    assert layers[3].self_attn.q_proj.weight.device.type == "meta"  # offloaded to disk
    inp = tiny_inputs(model, batch=2, seed=1)
    ref = ref_model(**inp).logits
    assert torch.equal(model(**inp).logits, ref)
    # reduced configs through the hook, then the full one: the offloaded blocks still load
    # their weights (a meta-weight forward would raise), and every block's own forward is back
    h = hook(model, space=ActionSpace(GRIDS))
    for blocks in (2, 3, 1):
        h.pin({"max_crops": 2, "top_k": 2, "num_active_blocks": blocks})
        cheap = model(**inp).logits
        assert cheap.shape[1] < ref.shape[1]
        assert [x.__dict__.get("forward") for x in layers] == own
    h.pin({"max_crops": 4, "top_k": 4, "num_active_blocks": 4})
    assert torch.equal(model(**inp).logits, ref)
    gen = model.generate(**inp, max_new_tokens=3, do_sample=False)
    h.pin({"max_crops": 4, "top_k": 4, "num_active_blocks": 3})
    model.generate(**inp, max_new_tokens=3, do_sample=False)
    h.remove()
    assert [x.__dict__.get("forward") for x in layers] == own
    assert all(hasattr(x, "_hf_hook") for x in layers)
    assert torch.equal(model(**inp).logits, ref)
    assert torch.equal(model.generate(**inp, max_new_tokens=3, do_sample=False), gen)
    assert layers[3].self_attn.q_proj.weight.device.type == "meta"  # still offloaded
