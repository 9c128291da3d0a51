"""Action spaces with a subset of the knobs: {max_crops, num_active_blocks} (a dense model has no
top_k) and {num_active_blocks} alone, through every layer of fastctrl: the controller, the three
decision engines, fastctrl.hook on a dense tiny model, a profile (table round trip and a real
sweep) and a short training run of every method."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():  # the triton engine runs in the interpreter (see
    os.environ.setdefault("TRITON_INTERPRET", "1")  # tests/test_triton_engine.py)

from fastctrl import ActionSpace, Controller, ControllerConfig, make_engine  # noqa: E402
from fastctrl.model_hook import hook  # noqa: E402
from fastctrl.profile.table import FeatureStore, Profile  # noqa: E402
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs  # noqa: E402

from .sweep_kit import tiny_sweep  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

SUBSETS = {
    "crops-blocks": {"max_crops": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]},
    "blocks": {"num_active_blocks": [1, 2, 3, 4]},
}
ENGINES = ["torch", "int8", "triton"]
DENSE = "qwen2.5-vl"  # a dense tiny family (4 decoder layers, 16 vision tokens an image)


@pytest.fixture(params=list(SUBSETS))
def grids(request) -> dict[str, list[int]]:
    return SUBSETS[request.param]


def _controller(grids, image_dim=37, text_dim=91, seed=0) -> Controller:
    torch.manual_seed(seed)
    return Controller(ControllerConfig(image_dim=image_dim, text_dim=text_dim, grids=grids)).eval()


def _engine(controller, kind):
    return make_engine(controller, kind)


# --------------------------------------------------------------------------- controller
def test_controller_space_and_heads(grids):
    c = _controller(grids)
    assert c.space.names == tuple(grids)
    assert set(c.heads) == set(grids)
    assert c.space.n_configs == int(np.prod([len(v) for v in grids.values()]))
    assert c.space.full().values == {k: v[-1] for k, v in grids.items()}
    # a save / load round trip keeps the subset space
    out = c.space.to_dict()
    assert ActionSpace.from_dict(out) == c.space


@pytest.mark.parametrize("kind", ENGINES)
def test_engines_decide_on_a_subset_space(grids, kind):
    c = _controller(grids)
    eng = _engine(c, kind)
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(5, 37, generator=g), torch.randn(5, 91, generator=g)
    budget = torch.tensor([5.0, 20.0, 50.0, 200.0, 1000.0])
    idx = eng.decide_tensors(image, text, budget)
    assert tuple(idx.shape) == (5, len(grids))
    sizes = torch.tensor([len(v) for v in grids.values()])
    assert bool(((idx >= 0) & (idx.cpu() < sizes)).all())
    if kind != "int8":  # int8 quantises the weights: near the torch decision, not equal
        ref = _engine(c, "torch").decide_tensors(image, text, budget)
        assert torch.equal(idx.cpu(), ref.cpu())
    # the numpy entry point decides as the tensor one (a scalar budget for every row)
    configs = eng.decide(image.numpy(), text.numpy(), 30.0)
    same = eng.decide_tensors(image, text, torch.full((5,), 30.0))
    np.testing.assert_array_equal(np.asarray(configs), same.cpu().numpy())


# --------------------------------------------------------------------------- hook
@pytest.fixture(scope="module")
def dense_model():
    return build_tiny(DENSE, seed=0)


@pytest.mark.parametrize("kind", ENGINES)
@torch.no_grad()
def test_hook_decides_and_applies_a_subset_space(dense_model, grids, kind):
    model = dense_model
    inp = tiny_inputs(model, batch=2, seed=1)
    ref = model(**inp).logits
    c = _controller(grids, image_dim=64, text_dim=64)
    with hook(model, c, budget_ms=20.0, engine=kind) as h:
        out = model(**inp).logits
        assert set(h.last_config.values) == set(grids)
        h.pin({k: v[0] for k, v in grids.items()})
        cheap = model(**inp).logits
        h.pin({k: v[-1] for k, v in grids.items()})
        assert torch.equal(model(**inp).logits, ref)  # the full config is the plain model
        gen = model.generate(**inp, max_new_tokens=3, do_sample=False)
        assert gen.shape[1] == inp["input_ids"].shape[1] + 3
    assert torch.isfinite(out).all()
    if "max_crops" in grids:
        assert cheap.shape[1] < ref.shape[1]  # vision tokens were removed
    else:
        assert cheap.shape == ref.shape and not torch.equal(cheap, ref)  # blocks skipped


def test_hook_refuses_top_k_on_a_dense_model(dense_model):
    with pytest.raises(ValueError, match="no MoE routers"):
        hook(dense_model, space=ActionSpace({"top_k": [1, 2], "num_active_blocks": [2, 4]}))


# --------------------------------------------------------------------------- profiles
def _subset_profile(grids, n=300, seed=0, image_dim=16, text_dim=24) -> Profile:
    """A synthetic-like profile on a subset space: quality rises and latency grows with each
    knob's grid index, with per-request noise (a stand-in for the synthetic generator, which
    only simulates the three default knobs)."""
    space = ActionSpace(grids)
    rng = np.random.default_rng(seed)
    cfg = np.array([c.indices for c in space.all_configs()], dtype=np.float64)  # [C, K]
    frac = cfg / np.maximum(np.array(space.sizes, dtype=np.float64) - 1, 1)  # [C, K] 0..1
    need = rng.uniform(0.2, 1.0, size=(n, 1))  # difficulty
    reach = frac.mean(1)[None]  # [1, C]
    quality = np.clip(1.0 - need * (1.0 - reach) ** 2 + rng.normal(0, 0.02, (n, 1)), 0, 1)
    cost = 10.0 + 40.0 * reach + 5.0 * need  # [N, C]
    latency = cost[..., None] * rng.lognormal(0.0, 0.05, size=(n, space.n_configs, 3))
    ids = [f"sub-{i:05d}" for i in range(n)]
    rnd = rng.uniform(size=n)
    splits = np.where(rnd < 0.6, "train", np.where(rnd < 0.8, "val", "test"))
    image = need * rng.normal(size=(1, image_dim)) + rng.normal(0, 0.1, (n, image_dim))
    text = rng.normal(size=(n, text_dim))
    return Profile(
        space,
        ids,
        ["vqa"] * n,
        splits,
        quality.astype(np.float32),
        latency.astype(np.float32),
        FeatureStore(ids, image.astype(np.float32), text.astype(np.float32)),
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_profile_table_round_trip(tmp_path, grids, suffix):
    prof = _subset_profile(grids)
    path = tmp_path / f"p{suffix}"
    prof.save(path)
    back = Profile.load(path, require_features=True)  # a .csv: knobs from its columns
    assert back.space == prof.space
    assert back.n_configs == prof.space.n_configs
    np.testing.assert_allclose(back.quality, prof.quality, atol=1e-6)
    assert back.full_index == prof.space.n_configs - 1


def test_synthetic_profile_refuses_a_subset_space_clearly(grids):
    """The simulator models the three default knobs only (its latency and quality are
    functions of all three); a subset is refused with the knobs it simulates."""
    from fastctrl.profile.synthetic import synthetic_profile

    with pytest.raises(ValueError, match="simulates the knobs"):
        synthetic_profile(200, space=ActionSpace(grids))


def test_real_sweep_on_a_dense_tiny_model(tmp_path, dense_model, grids):
    model = dense_model
    rng = np.random.default_rng(0)
    data = [
        {
            "request_id": f"r{i}",
            "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
            "prompt": "what color is it?",
            "answer": "red",
        }
        for i in range(3)
    ]
    space = ActionSpace(grids)
    out = tmp_path / "sweep.parquet"
    tiny_sweep(model, data, space, out)
    prof = Profile.load(out, require_features=True)
    assert prof.space == space
    assert prof.n_requests == 3 and prof.n_configs == space.n_configs
    assert prof.features.image_dim == 64 and prof.features.text_dim == 64
    assert np.isfinite(prof.latency).all() and (prof.latency > 0).all()


# --------------------------------------------------------------------------- training
def _methods():
    from fastctrl.train.methods import METHOD_NAMES

    return METHOD_NAMES


@pytest.mark.parametrize("method", _methods())
def test_every_method_trains_on_a_subset_space(tmp_path, grids, method):
    from fastctrl.train import main

    prof = _subset_profile(grids)
    path = tmp_path / "profile.parquet"
    prof.save(path)
    out = tmp_path / method
    flags = {"ppo": ["--rollout_contexts", "64"]}.get(method, [])
    assert (
        main(
            [
                "--method",
                method,
                "--profile",
                str(path),
                "--output_dir",
                str(out),
                "--max_env_steps",
                "3000",
                "--eval_every_steps",
                "1500",
                "--quiet",
                "--eval_requests",
                "40",
                "--batch_size",
                "32",
                *flags,
            ]
        )
        == 0
    )
    res = json.loads((out / "eval_results.json").read_text())
    assert res["method"] == method
    assert res["controller"]["overall"]["gap_to_oracle"] >= -1e-9
    if method != "lut":
        loaded = Controller.from_pretrained(out / "controller")
        assert loaded.space == ActionSpace(grids)
