"""max_crops cuts the vision encoder's work on tile-splitting families (Idefics3, SmolVLM).

The reference for a reduced forward is independent of the hook: the tiny processor builds the
input that never had the dropped crops (``tiles_inputs(..., keep=...)``), and the unhooked
model runs on it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastctrl import ActionSpace
from fastctrl.model_hook import find_adapter, hook
from fastctrl.testing.tiny_models import build_tiny
from fastctrl.testing.tiny_models.tiles import tiles_inputs

from .family_kit import make_controller, watch_decisions

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

FAMILIES = ("idefics3", "smolvlm")
GRIDS = {"max_crops": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]}
FULL = {"max_crops": 4, "num_active_blocks": 4}
#: crops kept of a 2x2 image (raster order): evenly spaced, floor((i + 0.5) * 4 / k)
KEPT = {1: [2], 2: [1, 3], 4: [0, 1, 2, 3]}


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return build_tiny(request.param, seed=0)


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


PROMPTS = ["what color is it?", "how many dots"]


class TileCounter:
    """Tiles the vision encoder is called on (summed over its calls)."""

    def __init__(self, model) -> None:
        self.tiles: list[int] = []
        self.h = find_adapter(model).vision_tower.register_forward_pre_hook(
            self._pre, with_kwargs=True
        )

    def _pre(self, mod, args, kwargs):
        pix = kwargs.get("pixel_values", args[0] if args else None)
        self.tiles.append(int(pix.shape[0]))

    def close(self) -> None:
        self.h.remove()


@torch.no_grad()
@pytest.mark.parametrize("batch", [1, 2])
def test_vision_tower_encodes_only_kept_crops_and_global(model, batch):
    inp = tiles_inputs(model, images(batch), PROMPTS[:batch])
    counter = TileCounter(model)
    with hook(model, space=ActionSpace(GRIDS)) as h:
        for v in (1, 2, 4):
            h.pin({**FULL, "max_crops": v})
            counter.tiles.clear()
            model(**inp)
            assert counter.tiles == [batch * (len(KEPT[v]) + 1)]
    counter.close()


@torch.no_grad()
def test_grid_top_is_bit_equal_to_unhooked(model):
    inp = tiles_inputs(model, images(2), PROMPTS)
    ref = model(**inp).logits
    with hook(model, make_controller(model, pick=FULL), budget_ms=50.0) as h:
        out = model(**inp).logits
        assert h.last_config.values == FULL and h.last_kept_positions is None
    assert torch.equal(out, ref)


@torch.no_grad()
@pytest.mark.parametrize("v", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
def test_reduced_forward_equals_unhooked_on_reduced_inputs(model, v, batch):
    """Batch 2 has prompts of different lengths: left padding."""
    ims, prompts = images(batch), PROMPTS[:batch]
    inp = tiles_inputs(model, ims, prompts)
    reduced = tiles_inputs(model, ims, prompts, keep=[KEPT[v]] * batch)
    ref = model(**reduced).logits
    with hook(model, make_controller(model, pick={**FULL, "max_crops": v}), budget_ms=5.0) as h:
        out = model(**inp).logits
        kept = h.last_kept_positions
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    # the kept original columns hold exactly the reduced prompt's tokens
    assert torch.equal(inp["input_ids"].gather(1, kept), reduced["input_ids"])


@torch.no_grad()
def test_rows_with_different_crop_counts_are_repadded(model):
    """Row 0 is split 2x2, row 1 1x2: at max_crops=1 they drop different numbers of tokens."""
    ims = images(2, seed=3)
    grid = [(2, 2), (1, 2)]
    inp = tiles_inputs(model, ims, PROMPTS, grid=grid)
    reduced = tiles_inputs(model, ims, PROMPTS, grid=grid, keep=[[2], [1]])
    ref = model(**reduced).logits
    counter = TileCounter(model)
    with hook(model, space=ActionSpace(GRIDS)) as h:
        h.pin({**FULL, "max_crops": 1})
        out = model(**inp).logits
    counter.close()
    assert counter.tiles == [4]  # one crop + the global tile per row
    mask = reduced["attention_mask"].bool()
    torch.testing.assert_close(out[mask], ref[mask], atol=1e-5, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("blocks", [2, 4])
def test_generate_equals_unhooked_generate_on_reduced_inputs(model, blocks):
    ims = images(2, seed=1)
    inp = tiles_inputs(model, ims, PROMPTS)
    reduced = tiles_inputs(model, ims, PROMPTS, keep=[KEPT[1]] * 2)
    kw = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    cheap = {"max_crops": 1, "num_active_blocks": blocks}
    with hook(model, make_controller(model, pick=cheap), budget_ms=5.0) as h:
        calls = []
        watch_decisions(h, lambda *a: calls.append(1))
        counter = TileCounter(model)
        out = model.generate(**inp, **kw)
        counter.close()
        assert len(calls) == 1 and h.stats.decode_forwards == 5
        assert counter.tiles == [2 * 2]  # encoded once, inside the prefill, kept tiles only
        fresh = model.generate(**inp, **kw, use_cache=False)
    assert torch.equal(out, fresh)
    # the prompt comes back as given; the new tokens are those of the reduced prompt
    L = inp["input_ids"].shape[1]
    assert torch.equal(out[:, :L], inp["input_ids"])
    if blocks == 4:
        ref = model.generate(**reduced, **kw)
        assert torch.equal(out[:, L:], ref[:, reduced["input_ids"].shape[1] :])


@torch.no_grad()
def test_controller_features_come_before_the_vision_tower(model):
    """The decision's features exist before any tile is encoded: the global tile's pixels
    pooled 4x4 (+ the crop count) and the mean token embedding of the text positions."""
    inp = tiles_inputs(model, images(2, seed=2), PROMPTS)
    a = find_adapter(model)
    order = []
    hv = a.vision_tower.register_forward_pre_hook(lambda *x: order.append("vision"))
    with hook(model, make_controller(model), budget_ms=20.0) as h:
        watch_decisions(h, lambda *a: order.append("decide"))
        model(**inp)
        image, text = h.last_features
    hv.remove()
    assert order == ["decide", "vision"]
    glob = inp["pixel_values"][:, -1]
    expect = torch.cat([F.adaptive_avg_pool2d(glob, 4).flatten(1), torch.full((2, 1), 4.0)], 1)
    assert image.shape == (2, a.image_dim)
    torch.testing.assert_close(image, expect, atol=1e-5, rtol=1e-5)
    ids, mask = inp["input_ids"], inp["attention_mask"].bool()
    emb = a.embed_tokens(ids)
    pos = mask & ~a.vision_mask(ids)
    torch.testing.assert_close(
        text, torch.stack([emb[b][pos[b]].mean(0) for b in range(2)]), atol=1e-5, rtol=0
    )


@torch.no_grad()
def test_remove_restores(model):
    inp = tiles_inputs(model, images(2), PROMPTS)
    ref = model(**inp).logits
    gref = model.generate(**inp, max_new_tokens=3, do_sample=False)
    h = hook(model, make_controller(model), budget_ms=10.0)
    h.pin({"max_crops": 1, "num_active_blocks": 2})
    assert model(**inp).logits.shape[1] < ref.shape[1]
    model.generate(**inp, max_new_tokens=3, do_sample=False)
    h.remove()
    assert "generate" not in model.__dict__
    assert "_prepare_multimodal_encoder_kwargs_for_generation" not in model.__dict__
    assert torch.equal(model(**inp).logits, ref)
    assert torch.equal(model.generate(**inp, max_new_tokens=3, do_sample=False), gref)
