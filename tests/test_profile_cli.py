"""python -m fastctrl.profile: sweep -> table + feature store -> fastctrl.train -> hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastctrl.model_hook import find_adapter, hook
from fastctrl.profile.sweep import PARTIAL_SUFFIX, run_sweep
from fastctrl.profile.table import Profile
from fastctrl.runtime.synthetic_vqa import synthetic_vqa
from fastctrl.space import ActionSpace
from fastctrl.testing.tiny_models import TinyProcessor, build_tiny, tiny_inputs

from .sweep_kit import tiny_sweep

GRID = {"max_crops": [1, 4], "top_k": [2, 4], "num_active_blocks": [2, 4]}


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_synthetic_vqa_is_deterministic():
    a, b = synthetic_vqa(6, seed=3), synthetic_vqa(6, seed=3)
    assert [s.request_id for s in a] == [s.request_id for s in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert {s.task_type for s in a} == {"color", "shape", "count"}
    img, prompt, answer = a[0]
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and answer
    assert synthetic_vqa(2, with_answers=False)[0].answer is None


def test_sweep_writes_profile_and_features(llava, tmp_path):
    out = tmp_path / "p.parquet"
    res = tiny_sweep(
        llava, synthetic_vqa(3, with_answers=False), ActionSpace(GRID), out, warmup=1, repeats=2
    )
    prof = Profile.load(out, require_features=True)
    a = find_adapter(llava)
    assert prof.n_requests == 3 and prof.n_configs == 8 and prof.n_repeats == 2
    assert prof.space.to_dict() == GRID
    assert prof.features.image_dim == a.image_dim and prof.features.text_dim == a.text_dim
    assert np.all(prof.quality[:, prof.full_index] == 1.0)  # agreement with itself
    assert np.all(prof.latency > 0)
    side = json.loads(res.sidecar_path.read_text())
    assert side["grid"] == GRID and side["quality_proxy"] is True
    assert len(side["configs"]) == 8
    assert all(c["latency_p95_ms"] >= c["latency_p50_ms"] > 0 for c in side["configs"])
    assert not out.with_name(out.name + PARTIAL_SUFFIX).exists()
    assert "generate" not in llava.__dict__  # the sweep's hook is gone


def test_sweep_resumes_after_interruption(llava, tmp_path):
    out = tmp_path / "r.csv"
    data = synthetic_vqa(4, with_answers=False)

    def interrupted():
        yield from data[:2]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_sweep(llava, interrupted(), ActionSpace(GRID), out)
    assert out.with_name(out.name + PARTIAL_SUFFIX).exists() and not out.exists()
    res = tiny_sweep(llava, data, ActionSpace(GRID), out)
    assert (res.resumed, res.measured) == (2, 2)
    assert Profile.load(out).n_requests == 4


def test_sweep_with_answers_uses_exact_match(llava, tmp_path):
    data = [(s.image, s.prompt, s.answer) for s in synthetic_vqa(2)]
    res = tiny_sweep(llava, data, ActionSpace(GRID), tmp_path / "a.csv", max_new_tokens=1)
    side = json.loads(res.sidecar_path.read_text())
    assert side["settings"]["metric"] == "exact_match" and side["quality_proxy"] is False
    assert set(res.profile.request_ids) == {"req-00000", "req-00001"}


def test_one_token_sweep_answers_by_the_prefill_forward_with_generates_answers(llava, tmp_path):
    """max_new_tokens=1: the prefill-forward path (recorded in the sidecar) scores exactly
    what generate() scores; answer_path='generate' keeps generate()."""
    data = synthetic_vqa(4, with_answers=False)
    space = ActionSpace(GRID)
    fast = tiny_sweep(llava, data, space, tmp_path / "f.csv", max_new_tokens=1)
    slow = tiny_sweep(
        llava, data, space, tmp_path / "g.csv", max_new_tokens=1, answer_path="generate"
    )
    sides = [json.loads(r.sidecar_path.read_text()) for r in (fast, slow)]
    assert [s["answered_by"] for s in sides] == ["prefill_forward", "generate"]
    assert [s["settings"]["answer_path"] for s in sides] == ["auto", "generate"]
    np.testing.assert_array_equal(fast.profile.quality, slow.profile.quality)
    assert not np.all(fast.profile.quality == 1.0)  # the agreement varies: a real comparison
    with pytest.raises(ValueError, match="answer_path"):
        tiny_sweep(llava, data, space, tmp_path / "x.csv", max_new_tokens=1, answer_path="fast")


def test_sweep_argument_errors(llava, tmp_path):
    proc, space = TinyProcessor(llava), ActionSpace(GRID)
    with pytest.raises(ValueError, match="empty"):
        run_sweep(llava, proc, [], space, tmp_path / "x.csv")
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        run_sweep(llava, proc, synthetic_vqa(1), space, tmp_path / "x.txt")
    with pytest.raises(ValueError, match="needs an answer"):
        run_sweep(
            llava,
            proc,
            synthetic_vqa(1, with_answers=False),
            space,
            tmp_path / "x.csv",
            metric="exact_match",
        )
    with pytest.raises(TypeError, match="expected"):
        run_sweep(llava, proc, [42], space, tmp_path / "x.csv")


@pytest.mark.slow
def test_cli_profile_then_train_then_hook(tmp_path):
    from fastctrl import Controller
    from fastctrl.profile import main as profile_main
    from fastctrl.train import main as train_main

    out = tmp_path / "tiny"  # --output_dir: the table is tiny/profile.parquet
    assert (
        profile_main(
            [
                "--samples",
                "8",
                "--grid",
                json.dumps(GRID),
                "--warmup",
                "0",
                "--repeats",
                "1",
                "--max-new-tokens",
                "2",
                "--output_dir",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "profile.parquet").is_file()
    assert (out / "profile.features.safetensors").is_file()
    assert (out / "profile.sweep.json").is_file()
    run_dir = tmp_path / "run"
    assert (
        train_main(
            [
                "--method",
                "supervised",
                "--profile",
                str(out),
                "--output_dir",
                str(run_dir),
                "--num_epochs",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    assert (run_dir / "eval_results.json").is_file()
    # the trained controller drives the profiled model through the hook
    controller = Controller.from_pretrained(run_dir / "controller")
    model = build_tiny("llava-olmoe", seed=0)
    with hook(model, controller, budget_ms=50.0) as h, torch.no_grad():
        model.generate(**tiny_inputs(model), max_new_tokens=2, do_sample=False)
        assert h.stats.decisions == 1 and h.last_config is not None
