"""The digits VLM's pipeline end to end on a few training steps: train (both stages) ->
save_pretrained -> load like a hub checkpoint (``from_pretrained`` + its processor) -> profile
through the CLI -> the per-knob report. Quality needs the full training run (README)."""

from __future__ import annotations

import json

import pytest
import torch

from fastctrl.digits.data import DigitsDataArgs, write
from fastctrl.digits.report import knob_table, to_markdown
from fastctrl.digits.train import DigitsTrainArgs, train
from fastctrl.profile.cli import main as profile_main
from fastctrl.profile.table import Profile
from fastctrl.runtime.loading import load_model

GRID = {"max_crops": [1, 4], "top_k": [1, 4], "num_active_blocks": [2, 8]}


def train_a_few_steps(out) -> dict:
    """Both stages for a few steps on 8-page batches into ``out``; returns the report."""
    return train(
        DigitsTrainArgs(
            output_dir=str(out),
            steps=3,
            vision_steps=2,
            vision_batch_size=8,
            batch_size=8,
            warmup_steps=1,
            eval_every=3,
            eval_pages=8,
            threads=1,
            quiet=True,
        )
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "model"
    return out, train_a_few_steps(out)


def test_training_is_seeded_and_reports_what_it_did(trained, tmp_path):
    out, report = trained
    assert report["pages_seen"] == 2 * 8 + 3 * 8
    assert len(report["curve"]) == 1
    # accuracies over the 8 validation pages: k / 8 (NaN, or any other count of pages, fails)
    for key in ("val_acc_full", "val_acc_cheapest"):
        k = report["curve"][0][key] * 8
        assert 0 <= k <= 8 and k == pytest.approx(round(k)), (key, k)
    assert set(report["val_accuracy_per_knob"]) == {
        f"{k}={v}" for k, vs in report["space"].items() for v in vs
    }
    again = train_a_few_steps(tmp_path / "again")
    assert again["curve"][0]["loss_full"] == report["curve"][0]["loss_full"]
    from safetensors.torch import load_file

    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_saved_model_loads_like_a_checkpoint_and_generates_answer_words(trained):
    out, _ = trained
    assert not list(out.glob("*.bin")) and (out / "tokenizer.json").is_file()
    model, proc = load_model(str(out), dtype="float32")
    from fastctrl.digits.pages import ANSWERS, PageGenerator

    pages = [PageGenerator("test", 0).page(i) for i in range(4)]
    inputs = proc([p.rgb for p in pages], [p.question for p in pages])
    with torch.inference_mode():
        # min_new_tokens=1: a model this briefly trained may otherwise end at once with </s>
        ids = model.generate(**inputs, do_sample=False, min_new_tokens=1)
    words = [
        proc.decode(o[inputs["input_ids"].shape[1] :], skip_special_tokens=True).split()
        for o in ids
    ]
    # generation is restricted to answer words (and </s>): no prompt word, no special token
    assert all(w and set(w) <= set(ANSWERS) for w in words), words


def test_profile_cli_and_knob_report_on_digit_pages(trained, tmp_path):
    out, _ = trained
    profile_ds, _ = write(
        DigitsDataArgs(output_dir=str(tmp_path / "data"), val_pages=4, test_pages=2, live_pages=1)
    )
    table = tmp_path / "digits"  # the profile's --output_dir
    rc = profile_main(
        [
            "--model",
            str(out),
            "--dataset",
            str(profile_ds),
            "--grid",
            json.dumps(GRID),
            "--max_new_tokens",
            "1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--output_dir",
            str(table),
            "--quiet",
        ]
    )
    assert rc == 0
    prof = Profile.load(table)
    assert sorted(prof.splits.tolist()) == ["test"] * 2 + ["train"] * 3 + ["val"]
    rep = knob_table(prof, "test")
    assert [r["config"] for r in rep["rows"]] == [
        "full",
        "max_crops=1",
        "top_k=1",
        "num_active_blocks=2",
        "cheapest",
    ]
    assert rep["rows"][0]["latency_ratio"] == 1.0 and rep["latency_span"] > 0
    assert "| full |" in to_markdown(rep)
    with pytest.raises(ValueError, match="no 'holdout' requests|split must be one of"):
        knob_table(prof, "holdout")
