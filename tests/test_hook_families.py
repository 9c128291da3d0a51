"""fastctrl.hook on every family with a tiny model, built from config classes with random
weights: the same behaviour checks for each (knobs that apply to the family only)."""

from __future__ import annotations

import pytest
import torch

from fastctrl.model_hook import find_adapter, hook
from fastctrl.testing.tiny_models import build_tiny, tiny_families, tiny_inputs

from .family_kit import (
    Probe,
    full_for,
    grids_for,
    make_controller,
    moe_layers,
    router_layer,
    watch_decisions,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module", params=tiny_families())
def model(request):
    return build_tiny(request.param, seed=0)


def cheap_config(model, crops=1, k=1, blocks=2) -> dict[str, int]:
    g = grids_for(model)
    out = {"max_crops": crops, "num_active_blocks": blocks}
    if "top_k" in g:
        out["top_k"] = k
    return out


@torch.no_grad()
def test_remove_restores_bitwise(model):
    inp = tiny_inputs(model, batch=2, seed=1)
    ref = model(**inp).logits
    a = find_adapter(model)
    native = [r.top_k for r in a.routers]
    h = hook(model, make_controller(model), budget_ms=10.0)
    h.pin(cheap_config(model))
    cheap = model(**inp).logits
    assert cheap.shape[1] < ref.shape[1]
    h.pin(None)
    model(**inp)  # a controller decision too
    h.remove()
    assert torch.equal(model(**inp).logits, ref)
    assert [r.top_k for r in a.routers] == native
    assert all("forward" not in layer.__dict__ for layer in a.decoder_layers)
    assert "generate" not in model.__dict__


@torch.no_grad()
def test_full_config_decision_equals_unhooked(model):
    inp = tiny_inputs(model, batch=2, seed=2)
    full = full_for(model)
    ref = model(**inp).logits
    gref = model.generate(**inp, max_new_tokens=5, do_sample=False)
    with hook(model, make_controller(model, pick=full), budget_ms=50.0) as h:
        out = model(**inp).logits
        gen = model.generate(**inp, max_new_tokens=5, do_sample=False)
        assert h.last_config.values == full
        assert h.stats.decisions == 2 and len(h.stats.controller_ms) == 2
    assert torch.equal(out, ref)
    assert torch.equal(gen, gref)


@torch.no_grad()
def test_each_knob_changes_what_runs(model):
    inp = tiny_inputs(model, batch=1, seed=3)
    a = find_adapter(model)
    grids, full = grids_for(model), full_for(model)
    n_vis = int(a.vision_mask(inp["input_ids"]).sum())
    assert n_vis > 0
    seq = inp["input_ids"].shape[1]
    with hook(model, space=make_controller(model).space) as h:
        runs = {}
        for name, values in grids.items():
            for v in values:
                probe = Probe(model)
                h.pin({**full, name: v})
                model(**inp)
                probe.close()
                runs[(name, v)] = probe
    moe, where = moe_layers(model), router_layer(model)
    # top_k: every router picks v experts and the experts compute tokens * v pairs per MoE
    # layer (a layer whose routers split the tokens by modality still routes each token once)
    for v in grids.get("top_k", []):
        p = runs[("top_k", v)]
        assert set(p.router_k) == {v}
        assert {where[id(r)] for r in p.routers_called} == set(moe)
        if a.topk_saves_compute and p.expert_pairs:
            assert p.expert_pairs == seq * v * len(moe)
    # num_active_blocks: exactly v blocks run attention, and only their routers run
    for v in grids["num_active_blocks"]:
        p = runs[("num_active_blocks", v)]
        assert p.attn_calls == v
        if a.is_moe:
            assert {where[id(r)] for r in p.routers_called} == {i for i in moe if i < v}
    if getattr(a, "tile_spec", None) is not None:
        # tile families drop whole crops (and their marker tokens) before the vision tower,
        # the global tile always kept: fewer tokens at every lower value, exactly all at the
        # top (exact counts: tests/test_vision_savings.py)
        lens = [runs[("max_crops", v)].seq_lens[0] for v in grids["max_crops"]]
        assert lens == sorted(set(lens)) and lens[-1] == seq
        return
    # max_crops: crops/4 of the vision tokens reach the decoder
    for v in grids["max_crops"]:
        p = runs[("max_crops", v)]
        assert p.seq_lens == [seq - n_vis + -(-n_vis * v // 4)]


@torch.no_grad()
def test_generate_holds_decision_and_cache_stays_consistent(model):
    """Decode after removing tokens and skipping blocks must match recomputing from scratch
    (use_cache=False re-runs prefill every step with the same config and positions)."""
    inp = tiny_inputs(model, batch=2, seed=4)
    grids = grids_for(model)
    cheap = cheap_config(model, k=grids.get("top_k", [1, 2])[1])
    # batching="min": the decision inside each prefill forward (per_request decides once per
    # generate() call, before it: tests/test_per_request_batching.py)
    with hook(model, make_controller(model, pick=cheap), budget_ms=5.0, batching="min") as h:
        calls = []
        watch_decisions(h, lambda *a: calls.append(1))
        probe = Probe(model)
        cached = model.generate(**inp, max_new_tokens=6, min_new_tokens=6, do_sample=False)
        probe.close()
        assert len(calls) == 1  # one decision at prefill, held for the 5 decode steps
        assert h.stats.decode_forwards == 5
        if "top_k" in cheap:
            assert set(probe.router_k) == {cheap["top_k"]}
        assert probe.attn_calls == 2 * 6
        try:
            fresh = model.generate(
                **inp, max_new_tokens=6, min_new_tokens=6, do_sample=False, use_cache=False
            )
        except (IndexError, RuntimeError) as e:
            h.pin(full_for(model))
            with pytest.raises(type(e)):  # the model's own generate(use_cache=False) fails too
                model.generate(**inp, max_new_tokens=6, do_sample=False, use_cache=False)
            pytest.skip(f"transformers: unhooked generate(use_cache=False) fails too: {e}")
        assert len(calls) == 7  # without a cache every step is a new prefill
    assert torch.equal(cached, fresh)


@torch.no_grad()
def test_batch_runs_per_knob_minimum_of_request_decisions(model):
    inp = tiny_inputs(model, batch=3, seed=5)
    grids = grids_for(model)
    sizes = [len(v) for v in grids.values()]
    # three requests' grid indices; the batch runs the per-knob minimum
    rows = {
        5.0: [min(2, n - 1) for n in sizes],
        50.0: [0] + [n - 1 for n in sizes[1:]],
        500.0: [n - 1 for n in sizes],
    }
    rows[5.0][-1] = 1
    expect = {name: grids[name][min(r[i] for r in rows.values())] for i, name in enumerate(grids)}
    with hook(model, make_controller(model), budget_ms=[5.0, 50.0, 500.0]) as h:

        class ByBudget:
            device = torch.device("cpu")

            def decide_tensors(self, image, text, budget):
                assert image.shape[0] == text.shape[0] == budget.shape[0] == 3
                return torch.tensor([rows[float(b)] for b in budget])

        h.engine = ByBudget()
        probe = Probe(model)
        model(**inp)
        probe.close()
        assert h.last_request_decisions.tolist() == [rows[5.0], rows[50.0], rows[500.0]]
        assert h.last_config.values == expect
        assert probe.attn_calls == expect["num_active_blocks"]
        if "top_k" in expect:
            assert set(probe.router_k) == {expect["top_k"]}
        assert sum(h.stats.request_configs.values()) == 3


@torch.no_grad()
def test_budget_per_call_and_per_request(model):
    inp = tiny_inputs(model, batch=2, seed=6)
    top = [len(v) - 1 for v in grids_for(model).values()]
    with hook(model, make_controller(model), budget_ms=20.0) as h:
        seen = []

        class Recorder:
            device = torch.device("cpu")

            def decide_tensors(self, image, text, budget):
                seen.append(budget.tolist())
                return torch.tensor([top] * image.shape[0])

        h.engine = Recorder()
        model(**inp)
        model(**inp, budget_ms=7.0)
        model(**inp, budget_ms=[3.0, 9.0])
        model.generate(**inp, max_new_tokens=2, do_sample=False, budget_ms=[4.0, 8.0])
        h.set_budget(11.0)
        model(**inp)
        with h.budget_scope(12.0):
            model(**inp)
    assert seen == [[20.0, 20.0], [7.0, 7.0], [3.0, 9.0], [4.0, 8.0], [11.0, 11.0], [12.0, 12.0]]


@torch.no_grad()
def test_features_come_from_this_forward(model):
    """Pooled features equal what the vision tower / the merged embeddings / the token
    embeddings were in the same forward."""
    inp = tiny_inputs(model, batch=2, seed=7)
    a = find_adapter(model)
    captured = {}

    def grab_tower(mod, args, out):  # the model may overwrite the output later: copy it
        captured["v"] = out.pooler_output.clone()

    def grab_lm(mod, args, kwargs):
        captured.setdefault("merged", kwargs["inputs_embeds"].clone())

    hooks = [a.language_model.register_forward_pre_hook(grab_lm, with_kwargs=True)]
    if a.image_feature == "vision_tower":
        hooks.append(a.vision_tower.register_forward_hook(grab_tower))
    with hook(model, make_controller(model), budget_ms=20.0) as h:
        model(**inp)
        image, text = h.last_features
        # generate() may encode the images before its prefill forward: same features
        model.generate(**inp, max_new_tokens=1, do_sample=False)
        g_image, g_text = h.last_features
    for x in hooks:
        x.remove()
    torch.testing.assert_close(g_image, image, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_text, text, atol=1e-5, rtol=1e-5)
    assert image.abs().sum() > 0
    ids, mask = inp["input_ids"], inp["attention_mask"].bool()
    vis = a.vision_mask(ids)
    assert image.shape == (2, a.image_dim) and text.shape == (2, a.text_dim)
    if getattr(a, "tile_spec", None) is not None:
        pass  # decided before the tower, from the global tiles (tests/test_vision_savings.py)
    elif a.image_feature == "merged":
        m = captured["merged"]
        expect_img = torch.stack([m[b][vis[b]].mean(0) for b in range(2)])
        assert torch.allclose(image, expect_img, atol=1e-5)
    elif a.family == "llava-olmoe":
        assert torch.equal(image, captured["v"].float())
    else:
        merged = captured["v"]
        assert torch.allclose(image, merged.view(2, -1, merged.shape[-1]).mean(1))
    emb = a.embed_tokens(ids)
    text_pos = mask & ~vis
    expect = torch.stack([emb[b][text_pos[b]].mean(0) for b in range(2)])
    assert torch.allclose(text, expect, atol=1e-5)


@torch.no_grad()
def test_stats_controller_time_and_share(model):
    inp = tiny_inputs(model, batch=1, seed=8)
    with hook(model, make_controller(model), budget_ms=20.0) as h:
        for _ in range(3):
            model(**inp)
        s = h.stats
        assert s.decisions == 3 and len(s.controller_ms) == len(s.forward_ms) == 3
        assert all(0 < c < f for c, f in zip(s.controller_ms, s.forward_ms, strict=True))
        assert 0 < s.controller_share < 1
        assert sum(s.configs.values()) == 3
        assert s.summary()["timer"] == "perf_counter"


@torch.no_grad()
def test_full_config_and_decode_steps_do_no_patching_or_capture(model):
    """At the full config nothing is patched (so nothing is restored), and decode steps reuse
    one shared, never-written capture: no pooling, no time stamps."""
    inp = tiny_inputs(model, batch=1, seed=9)
    full = full_for(model)
    with hook(model, make_controller(model, pick=full), budget_ms=50.0) as h:
        seen = []
        apply = h._patcher.apply

        def spy(config, values=None):
            apply(config, values)
            seen.append((h._patcher._top_k_set, list(h._patcher._skipped)))

        h._patcher.apply = spy
        model.generate(**inp, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        assert seen == [(False, [])] * 4  # prefill + 3 decode steps
        d = h._decode_ctx
        assert d.image_feats == [] and d.text_embeds is None and d.t0 is None
        assert h.stats.decode_forwards == 3 and len(h.stats.controller_ms) == 1
