"""fastctrl.hook argument checking, unsupported models, and Qwen3-VL DeepStack details."""

from __future__ import annotations

import inspect

import pytest
import torch

from fastctrl import ActionSpace, Controller, ControllerConfig
from fastctrl.model_hook import UnsupportedModelError, find_adapter, hook, supported_families
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs

from .family_kit import watch_decisions

GRIDS = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]}


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def qwen():
    return build_tiny("qwen3-vl-moe", seed=0)


def controller_for(model, **overrides) -> Controller:
    a = find_adapter(model)
    kw = {"image_dim": a.image_dim, "text_dim": a.text_dim, "grids": GRIDS, **overrides}
    return Controller(ControllerConfig(**kw)).eval()


def test_unsupported_model_lists_families():
    from transformers import OlmoeConfig, OlmoeForCausalLM

    text_only = OlmoeForCausalLM(
        OlmoeConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_experts=2,
            num_experts_per_tok=1,
        )
    )
    with pytest.raises(UnsupportedModelError) as e:
        hook(text_only, space=ActionSpace(GRIDS))
    msg = str(e.value)
    assert "OlmoeForCausalLM" in msg and "llava-olmoe" in msg and "qwen3-vl-moe" in msg
    assert len(supported_families()) >= 2
    with pytest.raises(UnsupportedModelError):
        hook("not a model", space=ActionSpace(GRIDS))


def test_the_hook_function_and_its_package_do_not_shadow_each_other():
    import importlib

    import fastctrl

    pkg = importlib.import_module("fastctrl.model_hook")
    assert fastctrl.hook is hook and callable(fastctrl.hook)
    assert pkg.hook is hook
    assert pkg.supported_families() == supported_families()  # what hook's docstring names
    assert "fastctrl.model_hook.supported_families()" in hook.__doc__


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf"), [10.0, -1.0]])
def test_non_positive_budget_is_refused(llava, bad):
    c = controller_for(llava)
    with pytest.raises(ValueError, match="budget_ms"):
        hook(llava, c, budget_ms=bad)
    with hook(llava, c, budget_ms=10.0) as h:
        with pytest.raises(ValueError, match="budget_ms"):
            h.set_budget(bad)
        with pytest.raises(ValueError, match="budget_ms"), torch.no_grad():
            llava(**tiny_inputs(llava), budget_ms=bad)


def test_budget_count_must_match_batch(llava):
    with hook(llava, controller_for(llava), budget_ms=[1.0, 2.0, 3.0]), torch.no_grad():
        with pytest.raises(ValueError, match="one entry per request"):
            llava(**tiny_inputs(llava, batch=2))


def test_missing_budget_is_a_clear_error(llava):
    with hook(llava, controller_for(llava)), torch.no_grad():
        with pytest.raises(ValueError, match="no latency budget"):
            llava(**tiny_inputs(llava))


def test_wrong_controller_dims(llava):
    c = Controller(ControllerConfig(image_dim=768, text_dim=2048, grids=GRIDS))
    with pytest.raises(ValueError, match=r"ControllerConfig\(image_dim=32, text_dim=64"):
        hook(llava, c, budget_ms=10.0)


@pytest.mark.parametrize(
    "grids, match",
    [
        ({"top_k": [1, 16]}, "exceeds the model's 8 experts"),
        ({"num_active_blocks": [2, 9]}, "exceeds the model's 4 decoder blocks"),
        ({"dropout_rate": [1, 2]}, "cannot apply knobs"),
    ],
)
def test_grid_must_fit_the_model(llava, grids, match):
    with pytest.raises(ValueError, match=match):
        hook(llava, space=ActionSpace(grids))


def test_other_arguments(llava):
    with pytest.raises(TypeError, match="fastctrl.Controller"):
        hook(llava, object(), budget_ms=1.0)
    with pytest.raises(ValueError, match="needs a controller, or a space"):
        hook(llava)
    with pytest.raises(ValueError, match="tokens_per_crop"):
        hook(llava, space=ActionSpace(GRIDS), tokens_per_crop=0)
    with hook(llava, space=ActionSpace(GRIDS)) as h:
        with pytest.raises(RuntimeError, match="already hooked"):
            hook(llava, space=ActionSpace(GRIDS))
        with pytest.raises(RuntimeError, match="pinned"), torch.no_grad():
            llava(**tiny_inputs(llava))
        with pytest.raises(ValueError, match="not on the grid"):
            h.pin({"max_crops": 3, "top_k": 1, "num_active_blocks": 1})
    h.remove()  # idempotent


def test_tokens_per_crop(llava):
    inp = tiny_inputs(llava)  # 64 vision tokens
    seq = inp["input_ids"].shape[1]
    with hook(llava, space=ActionSpace(GRIDS), tokens_per_crop=10) as h, torch.no_grad():
        h.pin({"max_crops": 2, "top_k": 4, "num_active_blocks": 4})
        llava(**inp)
        assert h.last_kept_positions.shape[1] == seq - 64 + 20


def test_continuing_a_foreign_cache_is_refused(llava):
    inp = tiny_inputs(llava)
    with torch.no_grad():
        out = llava(**inp, use_cache=True)
    # the cache's keyword is ``cache`` in transformers >= 5.2x (``past_key_values`` before)
    name = (
        "cache"
        if "cache" in inspect.signature(type(llava).forward).parameters
        else "past_key_values"
    )
    nxt = {"input_ids": torch.tensor([[40]]), name: getattr(out, name)}
    with hook(llava, space=ActionSpace(GRIDS)) as h, torch.no_grad():
        h.pin({"max_crops": 4, "top_k": 4, "num_active_blocks": 4})
        with pytest.raises(RuntimeError, match="does not belong"):
            llava(**nxt)


@torch.no_grad()
def test_qwen_deepstack_and_mrope_follow_removed_tokens(qwen):
    inp = tiny_inputs(qwen, batch=2, seed=3)
    lm = find_adapter(qwen).language_model
    seen = {}

    def after_fastctrl(mod, args, kwargs):
        seen["vis"] = kwargs["visual_pos_masks"].clone()
        seen["deep"] = [e.shape[0] for e in kwargs["deepstack_visual_embeds"]]
        seen["pos"] = kwargs["position_ids"].clone()

    injections = []
    orig = lm._deepstack_process
    lm._deepstack_process = lambda h, m, e: injections.append(int(m.sum())) or orig(h, m, e)
    ref = {}
    try:
        pre = lm.register_forward_pre_hook(after_fastctrl, with_kwargs=True)
        qwen(**inp)
        ref = dict(seen)
        pre.remove()
        with hook(qwen, space=ActionSpace(GRIDS)) as h:
            pre = lm.register_forward_pre_hook(after_fastctrl, with_kwargs=True)  # runs after ours
            h.pin({"max_crops": 1, "top_k": 4, "num_active_blocks": 1})
            injections.clear()
            qwen(**inp)
            pre.remove()
    finally:
        del lm._deepstack_process
    # 16 vision tokens per image, 4 kept; DeepStack rows shrink with them, for both layers,
    # and injection still happens after layer 1 although layer 1 is skipped
    assert int(seen["vis"].sum()) == 2 * 4
    assert seen["deep"] == [8, 8]
    assert injections == [8, 8]
    # the kept tokens keep their original 3-D rotary positions
    keep = h.last_kept_positions
    expect = ref["pos"].gather(-1, keep.expand(ref["pos"].shape[0], *keep.shape))
    assert torch.equal(seen["pos"], expect)


def test_decision_path_is_the_one_evaluation_times(llava):
    """The hook's decision is fastctrl.model_hook.decision.decide: one engine call, the batch
    config, a clear error for a wrong-shaped engine answer; evaluation times the same call."""
    import inspect

    from fastctrl.env import evaluation
    from fastctrl.model_hook import decision, handle

    assert handle.decide is decision.decide
    assert "decide(engine, configs" in inspect.getsource(evaluation.measure_overhead_ms)
    c = controller_for(llava)
    with hook(llava, c, budget_ms=10.0) as h, torch.no_grad():
        calls = []

        class Wrong:
            device = torch.device("cpu")

            def decide_tensors(self, image, text, budget):
                calls.append((image.dtype, text.dtype, budget.dtype, budget.shape))
                return torch.zeros(image.shape[0], 2, dtype=torch.long)

        h.engine = Wrong()
        with pytest.raises(
            RuntimeError,
            match=r"decision engine returned shape \[1, 2\], "
            r"expected \[1, 3\]",
        ):
            llava(**tiny_inputs(llava))
        assert calls == [(torch.float32, torch.float32, torch.float32, (1,))]


def test_stats_read_cuda_event_times_lazily():
    """On CUDA the hook records events and reads their times only when the stats are read
    (no sync inside the forward); simulated with stand-in events."""
    from fastctrl.model_hook.stats import HookStats

    class Event:
        def __init__(self, t: float) -> None:
            self.t, self.synced = t, False

        def synchronize(self) -> None:
            self.synced = True

        def elapsed_time(self, end: Event) -> float:
            return end.t - self.t

    s = HookStats(timer="cuda_events")
    ev = [Event(t) for t in (0.0, 1.5, 0.0, 10.0)]
    s.record((ev[0], ev[1]), (ev[2], ev[3]))
    assert not any(e.synced for e in ev)
    assert s.controller_ms == [1.5] and s.forward_ms == [10.0]
    assert ev[1].synced and ev[3].synced
    s.record((1.0, 1.002), (1.0, 1.010))  # perf_counter stamps: stored at once, in ms
    assert s.controller_ms == pytest.approx([1.5, 2.0]) and s.forward_ms == pytest.approx([10, 10])
    assert s.controller_share == pytest.approx(3.5 / 20)


@torch.no_grad()
def test_task_type_reaches_the_engine_per_call_and_per_request(llava):
    c = controller_for(llava, task_types=["count", "color"])
    with hook(llava, c, budget_ms=20.0) as h:
        seen = []

        def note_task(image, text, budget, task=None):
            seen.append(None if task is None else task.tolist())

        watch_decisions(h, note_task)
        llava(**tiny_inputs(llava))
        llava(**tiny_inputs(llava), task_type="color")
        llava(**tiny_inputs(llava, batch=2), task_type=["count", "nope"])
        llava.generate(**tiny_inputs(llava), max_new_tokens=2, task_type="count")
        h.set_task_type("color")
        llava(**tiny_inputs(llava))
    assert seen == [None, [2], [1, 0], [1], [2]]


def test_llama4_is_found_even_where_its_forward_cannot_run():
    """Llama 4's forward raises in transformers 5.24 (so its tiny model is not in the family
    suites there); the adapter still finds every part, and says top_k saves no compute."""
    from fastctrl.testing.tiny_models.moe_vlms import llama4_forward_works, tiny_llama4

    model = tiny_llama4(seed=0)
    a = find_adapter(model)
    assert a.family == "llama4" and a.is_moe and not a.topk_saves_compute
    assert len(a.routers) == a.num_layers == 4 and a.native_top_k >= 1
    assert a.renormalises == "never"
    from fastctrl.testing.tiny_models import tiny_families

    assert ("llama4" in tiny_families()) == llama4_forward_works()
