"""fastctrl.hook on both supported families, built from config classes with random weights."""

from __future__ import annotations

import pytest
import torch

from fastctrl import Controller, ControllerConfig
from fastctrl.inengine import find_adapter, hook
from fastctrl.inengine.tiny import build_tiny, tiny_inputs

FAMILIES = ("llava-olmoe", "qwen3-vl-moe")
GRIDS = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]}
FULL = {"max_crops": 4, "top_k": 4, "num_active_blocks": 4}



pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return build_tiny(request.param, seed=0)


def make_controller(model, pick: dict[str, int] | None = None, seed: int = 0) -> Controller:
    """A real controller; with ``pick`` its heads always choose those grid values."""
    a = find_adapter(model)
    torch.manual_seed(seed)
    c = Controller(ControllerConfig(image_dim=a.image_dim, text_dim=a.text_dim,
                                    grids=GRIDS)).eval()
    if pick is not None:
        with torch.no_grad():
            for name, head in c.heads.items():
                head.weight.zero_()
                head.bias.fill_(-10.0)
                head.bias[GRIDS[name].index(pick[name])] = 10.0
    return c


class Probe:
    """Counts what actually runs: decoder blocks, experts per token, sequence length."""

    def __init__(self, model) -> None:
        a = find_adapter(model)
        self.handles = []
        self.attn_calls = 0
        self.router_k: list[int] = []
        self.expert_pairs = 0
        self.seq_lens: list[int] = []
        for layer in a.decoder_layers:
            self.handles.append(layer.self_attn.register_forward_pre_hook(self._attn))
        for r in a.routers:
            self.handles.append(r.register_forward_hook(self._router))
        for e in a.experts:
            self.handles.append(e.register_forward_pre_hook(self._experts))
        self.handles.append(a.language_model.register_forward_pre_hook(self._lm, with_kwargs=True))

    def _attn(self, mod, args):
        self.attn_calls += 1

    def _router(self, mod, args, out):
        self.router_k.append(int(out[2].shape[-1]))

    def _experts(self, mod, args):
        self.expert_pairs += int(args[1].numel())  # token-expert pairs the experts compute

    def _lm(self, mod, args, kwargs):
        self.seq_lens.append(int(kwargs["inputs_embeds"].shape[1]))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def test_remove_restores_bitwise(model):
    inp = tiny_inputs(model, batch=2, seed=1)
    ref = model(**inp).logits
    h = hook(model, make_controller(model), budget_ms=10.0)
    h.pin({"max_crops": 1, "top_k": 1, "num_active_blocks": 2})
    cheap = model(**inp).logits
    assert cheap.shape[1] < ref.shape[1]
    h.pin(None)
    model(**inp)  # a controller decision too
    h.remove()
    assert torch.equal(model(**inp).logits, ref)
    a = find_adapter(model)
    assert all(r.top_k == 4 for r in a.routers)
    assert all("forward" not in layer.__dict__ for layer in a.decoder_layers)
    assert "generate" not in model.__dict__


@torch.no_grad()
def test_full_config_decision_equals_unhooked(model):
    inp = tiny_inputs(model, batch=2, seed=2)
    ref = model(**inp).logits
    gref = model.generate(**inp, max_new_tokens=5, do_sample=False)
    with hook(model, make_controller(model, pick=FULL), budget_ms=50.0) as h:
        out = model(**inp).logits
        gen = model.generate(**inp, max_new_tokens=5, do_sample=False)
        assert h.last_config.values == FULL
        assert h.stats.decisions == 2 and len(h.stats.controller_ms) == 2
    assert torch.equal(out, ref)
    assert torch.equal(gen, gref)


@torch.no_grad()
def test_each_knob_changes_what_runs(model):
    inp = tiny_inputs(model, batch=1, seed=3)
    a = find_adapter(model)
    n_vis = int(a.vision_mask(inp["input_ids"]).sum())
    seq = inp["input_ids"].shape[1]
    with hook(model, space=make_controller(model).space) as h:
        runs = {}
        for name, values in GRIDS.items():
            for v in values:
                probe = Probe(model)
                h.pin({**FULL, name: v})
                model(**inp)
                probe.close()
                runs[(name, v)] = probe
    # top_k: every router picks v experts and the experts compute tokens * v pairs
    for v in GRIDS["top_k"]:
        p = runs[("top_k", v)]
        assert set(p.router_k) == {v}
        assert p.expert_pairs == seq * v * len(a.routers)
    # num_active_blocks: exactly v blocks run attention, and only those reach the experts
    for v in GRIDS["num_active_blocks"]:
        p = runs[("num_active_blocks", v)]
        assert p.attn_calls == v and len(p.router_k) == v
    # max_crops: crops/4 of the vision tokens reach the decoder
    for v in GRIDS["max_crops"]:
        p = runs[("max_crops", v)]
        assert p.seq_lens == [seq - n_vis + -(-n_vis * v // 4)]


@torch.no_grad()
def test_generate_holds_decision_and_cache_stays_consistent(model):
    """Decode after removing tokens and skipping blocks must match recomputing from scratch
    (use_cache=False re-runs prefill every step with the same config and positions)."""
    inp = tiny_inputs(model, batch=2, seed=4)
    cheap = {"max_crops": 1, "top_k": 2, "num_active_blocks": 2}
    with hook(model, make_controller(model, pick=cheap), budget_ms=5.0) as h:
        calls = []
        # the hook's one engine call per decision forward (decide_rows where the engine has it)
        name = "decide_rows" if hasattr(h.engine, "decide_rows") else "decide_tensors"
        orig = getattr(h.engine, name)
        setattr(h.engine, name, lambda *a: calls.append(1) or orig(*a))
        probe = Probe(model)
        cached = model.generate(**inp, max_new_tokens=6, do_sample=False)
        probe.close()
        assert len(calls) == 1  # one decision at prefill, held for the 5 decode steps
        assert h.stats.decode_forwards == 5
        assert set(probe.router_k) == {2}
        assert probe.attn_calls == 2 * 6
        fresh = model.generate(**inp, max_new_tokens=6, do_sample=False, use_cache=False)
        assert len(calls) == 7  # without a cache every step is a new prefill
    assert torch.equal(cached, fresh)


@torch.no_grad()
def test_batch_runs_per_knob_minimum_of_request_decisions(model):
    inp = tiny_inputs(model, batch=3, seed=5)
    with hook(model, make_controller(model), budget_ms=[5.0, 50.0, 500.0]) as h:

        class ByBudget:
            device = torch.device("cpu")

            def decide_tensors(self, image, text, budget):
                assert image.shape[0] == text.shape[0] == budget.shape[0] == 3
                rows = {5.0: [2, 0, 3], 50.0: [0, 2, 1], 500.0: [2, 2, 3]}
                return torch.tensor([rows[float(b)] for b in budget])

        h.engine = ByBudget()
        probe = Probe(model)
        model(**inp)
        probe.close()
        assert h.last_request_decisions.tolist() == [[2, 0, 3], [0, 2, 1], [2, 2, 3]]
        assert h.last_config.values == {"max_crops": 1, "top_k": 1, "num_active_blocks": 2}
        assert set(probe.router_k) == {1} and probe.attn_calls == 2
        assert sum(h.stats.request_configs.values()) == 3


@torch.no_grad()
def test_budget_per_call_and_per_request(model):
    inp = tiny_inputs(model, batch=2, seed=6)
    with hook(model, make_controller(model), budget_ms=20.0) as h:
        seen = []

        class Recorder:
            device = torch.device("cpu")

            def decide_tensors(self, image, text, budget):
                seen.append(budget.tolist())
                return torch.tensor([[2, 2, 3]] * image.shape[0])

        h.engine = Recorder()
        model(**inp)
        model(**inp, budget_ms=7.0)
        model(**inp, budget_ms=[3.0, 9.0])
        model.generate(**inp, max_new_tokens=2, do_sample=False, budget_ms=[4.0, 8.0])
        h.set_budget(11.0)
        model(**inp)
        with h.budget_scope(12.0):
            model(**inp)
    assert seen == [[20.0, 20.0], [7.0, 7.0], [3.0, 9.0], [4.0, 8.0], [11.0, 11.0],
                    [12.0, 12.0]]


@torch.no_grad()
def test_features_come_from_this_forward(model):
    """Pooled features equal what the vision tower / embeddings produced in the same forward."""
    inp = tiny_inputs(model, batch=2, seed=7)
    a = find_adapter(model)
    captured = {}
    # the model later overwrites pooler_output on the same object: copy it at hook time
    def grab(mod, args, out):
        captured["v"] = out.pooler_output.clone()

    h1 = a.vision_tower.register_forward_hook(grab)
    with hook(model, make_controller(model), budget_ms=20.0) as h:
        model(**inp)
        image, text = h.last_features
    h1.remove()
    assert image.shape == (2, a.image_dim) and text.shape == (2, a.text_dim)
    if a.family == "llava-olmoe":
        assert torch.equal(image, captured["v"].float())
    else:
        merged = captured["v"]
        assert torch.allclose(image, merged.view(2, -1, merged.shape[-1]).mean(1))
    ids, mask = inp["input_ids"], inp["attention_mask"].bool()
    emb = a.embed_tokens(ids)
    text_pos = mask & ~a.vision_mask(ids)
    expect = torch.stack([emb[b][text_pos[b]].mean(0) for b in range(2)])
    assert torch.allclose(text, expect, atol=1e-6)


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
    with hook(model, make_controller(model, pick=FULL), budget_ms=50.0) as h:
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
    with hook(model, make_controller(model, pick={**FULL, "top_k": 1}), budget_ms=50.0) as h:
        model(**inp)
        a = find_adapter(model)
        assert all(r.top_k == 4 for r in a.routers) and not h._patcher._top_k_set
