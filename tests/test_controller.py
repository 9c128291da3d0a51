from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastctrl import Controller, ControllerConfig, make_engine
from fastctrl.policy.export import argmax_per_head, export_weights, reference_logits

from .conftest import random_inputs


def test_default_size_is_about_half_a_million(controller):
    n = controller.num_parameters()
    assert 400_000 <= n <= 600_000, n


def test_forward_shapes_and_helpers(controller):
    img, txt, budget = random_inputs(controller, 5)
    logits = controller(img, txt, budget)
    assert set(logits) == {"max_crops", "top_k", "num_active_blocks"}
    assert logits["max_crops"].shape == (5, 6)
    acts = controller.sample_actions(logits, deterministic=True)
    for name, lg in logits.items():
        assert torch.equal(acts[name], lg.argmax(-1))
    g = torch.Generator().manual_seed(0)
    sampled = controller.sample_actions(logits, deterministic=False, generator=g)
    lp = controller.log_prob(logits, sampled)
    manual = sum(torch.log_softmax(logits[n], -1)[torch.arange(5), sampled[n]] for n in logits)
    torch.testing.assert_close(lp, manual)
    ent = controller.entropy(logits)
    assert ent.shape == (5,) and (ent > 0).all()
    idx = controller.actions_to_indices(acts)
    assert idx.shape == (5, 3)


def test_budget_changes_decisions_through_encoding():
    torch.manual_seed(0)
    for enc in ("sinusoidal", "linear"):
        c = Controller(ControllerConfig(budget_encoding=enc)).eval()
        img, txt, _ = random_inputs(c, 1)
        a = c(img, txt, 10.0)["top_k"]
        b = c(img, txt, 150.0)["top_k"]
        assert not torch.allclose(a, b), enc


def test_exported_weights_match_module(small_controller):
    c = small_controller
    rng = np.random.default_rng(0)
    c.fit_input_normalization(
        rng.normal(3, 2, (64, 37)).astype(np.float32),
        rng.normal(-1, 5, (64, 91)).astype(np.float32),
    )
    img, txt, budget = random_inputs(c, 33)
    w = export_weights(c)
    ref = reference_logits(w, img, txt, budget)
    with torch.no_grad():
        logits = c(img, txt, budget)
    ours = torch.cat([logits[n] for n in c.knob_names], 1).double().numpy()
    np.testing.assert_allclose(ref, ours, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(
        argmax_per_head(ref, w.head_sizes), c.decide(img, txt, budget).numpy()
    )


def test_save_load_round_trip(tmp_path, small_controller):
    c = small_controller
    c.fit_input_normalization(
        np.random.default_rng(0).normal(size=(16, 37)).astype(np.float32),
        np.random.default_rng(1).normal(size=(16, 91)).astype(np.float32),
    )
    c.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = Controller.from_pretrained(tmp_path).eval()
    img, txt, budget = random_inputs(c, 40)
    for state in (c.state_dict(), loaded.state_dict()):
        assert set(state) == set(c.state_dict())
    for k, v in c.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    for kind in ("torch", "auto"):
        np.testing.assert_array_equal(
            make_engine(c, kind).decide(img, txt, budget),
            make_engine(loaded, kind).decide(img, txt, budget),
        )


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("hidden_dim", 64, "does not match the controller config"),
        ("bogus", 1, "unknown ControllerConfig fields"),
    ],
)
def test_load_refuses_an_edited_config(tmp_path, small_controller, field, value, match):
    small_controller.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"][field] = value
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=match):
        Controller.from_pretrained(tmp_path)


def test_load_refuses_corruption(tmp_path, small_controller):
    small_controller.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        Controller.from_pretrained(tmp_path)

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Controller.from_pretrained(tmp_path)

    with pytest.raises(FileNotFoundError, match="controller config not found"):
        Controller.from_pretrained(tmp_path / "missing")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"budget_encoding": "fourier"}, "budget_encoding"),
        ({"budget_dim": 7}, "budget_dim"),
        ({"ref_latency_ms": 0.0}, "ref_latency_ms"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ControllerConfig(**kwargs)


def test_recursive_arch_runs_on_the_torch_engine(tmp_path):
    torch.manual_seed(0)
    c = Controller(
        ControllerConfig(image_dim=12, text_dim=20, arch="recursive", recursive_outer_cycles=2)
    ).eval()
    img, txt, budget = random_inputs(c, 6)
    logits = c(img, txt, budget)
    assert [logits[n].shape[1] for n in c.knob_names] == list(c.space.sizes)
    engine = make_engine(c, "auto")
    assert engine.kind == "torch"
    np.testing.assert_array_equal(engine.decide(img, txt, budget), c.decide(img, txt, budget))
    with pytest.raises(ValueError, match="arch='mlp' only"):
        make_engine(c, "int8")
    c.save_pretrained(tmp_path)
    back = Controller.from_pretrained(tmp_path).eval()
    np.testing.assert_array_equal(back.decide(img, txt, budget), c.decide(img, txt, budget))


def test_task_type_is_an_input_every_engine_serves(small_controller):
    """task_types: a learned vector per task added to the text projection, exported as one-hot
    input columns; names and slots mean the same; an unknown task is slot 0."""
    cfg = small_controller.config
    torch.manual_seed(3)
    c = Controller(ControllerConfig(**{**cfg.to_dict(), "task_types": ["chart", "ocr", "vqa"]}))
    with torch.no_grad():
        c.task_embed.weight.normal_(0, 3.0)  # large, so the task moves decisions
    c.eval()
    img, txt, budget = random_inputs(c, 256)
    names = np.array(["chart", "ocr", "vqa", "nope"] * 64)
    slots = c.config.task_index(names)
    assert set(slots.tolist()) == {0, 1, 2, 3} and (slots[names == "nope"] == 0).all()
    with torch.no_grad():
        logits = c(img, txt, budget, torch.from_numpy(slots))
    ours = torch.cat([logits[n] for n in c.knob_names], 1).double().numpy()
    w = export_weights(c)
    assert w.text_dim == cfg.text_dim + 4
    one_hot = np.eye(4, dtype=np.float32)[slots]
    ref = reference_logits(w, img, np.concatenate([txt, one_hot], 1), budget)
    np.testing.assert_allclose(ref, ours, rtol=1e-4, atol=1e-4)
    want = c.decide(img, txt, budget, torch.from_numpy(slots)).numpy()
    assert (want != c.decide(img, txt, budget).numpy()).any()  # the task matters
    torch_engine = make_engine(c, "torch")
    np.testing.assert_array_equal(torch_engine.decide(img, txt, budget, task=names), want)
    np.testing.assert_array_equal(torch_engine.decide(img, txt, budget, task=slots), want)
    int8 = make_engine(c, "int8")
    got = int8.decide(img, txt, budget, task=names)
    agree = (got == want).mean(0)
    assert (agree >= 0.97).all(), agree  # int8 quantisation, as for any controller
    with pytest.raises(ValueError, match="task"):
        torch_engine.decide(img, txt, budget, task=np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="task slots"):
        torch_engine.decide(img, txt, budget, task=np.full(256, 9))
