"""The user's path, offline, end to end: a model directory written by save_pretrained with a
real processor (a locally trained tokenizer, the family's image processor, a chat template),
a JSONL dataset of image files, then profile -> train -> evaluate through the CLIs, every
model load through from_pretrained / AutoProcessor."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from fastctrl.profile.table import Profile
from fastctrl.runtime.synthetic_vqa import synthetic_vqa
from fastctrl.testing.tiny_models.pretrained import PRETRAINED_FAMILIES, save_tiny_pretrained

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

GRIDS = {
    "llava-olmoe": {"max_crops": [1, 4], "top_k": [2, 4], "num_active_blocks": [2, 4]},
    "gemma3": {"max_crops": [1, 2, 4], "num_active_blocks": [1, 2, 4]},
}  # dense: no top_k
#: two new tokens on the CPU: the profile and the live evaluation alike
QUICK_ANSWERS = ["--max_new_tokens", "2", "--device", "cpu", "--quiet"]


def write_jsonl(directory, n: int, seed: int):
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in synthetic_vqa(n, seed=seed, size=40):
        name = f"{s.request_id}.png"
        Image.fromarray(s.image).save(directory / name)
        rows.append(
            {
                "image": name,
                "question": s.prompt,
                "answers": [s.answer],
                "task_type": s.task_type,
                "request_id": s.request_id,
            }
        )
    path = directory / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def model_and_data(family: str, tmp_path):
    """A saved tiny model of ``family``, 10 training and 4 held-out requests as JSONL."""
    model_dir = save_tiny_pretrained(family, tmp_path / "model")
    train_data = write_jsonl(tmp_path / "train", 10, seed=0)
    return model_dir, train_data, write_jsonl(tmp_path / "heldout", 4, seed=99)


def profile_cli(model_dir, data, grid, prof, *flags: str) -> int:
    """``fastctrl profile`` of the model on ``data`` over ``grid`` into ``prof``'s directory."""
    from fastctrl.profile import main

    return main(
        ["--model", str(model_dir), "--dataset", str(data), "--grid", json.dumps(grid)]
        + ["--output_dir", str(prof.parent), "--warmup", "0", "--repeats", "2", *QUICK_ANSWERS]
        + list(flags)
    )


def train_cli(method: str, prof, run, *flags: str) -> int:
    """``fastctrl train`` of ``method`` on the profile ``prof`` into ``run``."""
    from fastctrl.train import main

    return main(
        ["--method", method, "--profile", str(prof), "--output_dir", str(run)]
        + ["--max_env_steps", "2000", "--eval_every_steps", "1000", "--quiet", *flags]
    )


def evaluate_cli(run, model_dir, prof, data, out, *flags: str) -> int:
    """``fastctrl evaluate`` of the run's policy live on ``data`` at two budget ratios."""
    from fastctrl.evaluate.cli import main

    return main(
        ["--controller", str(run), "--model", str(model_dir), "--profile", str(prof)]
        + ["--dataset", str(data), "--budget_ratios", "0.6", "1.2", "--output_dir", str(out)]
        + [*QUICK_ANSWERS, *flags]
    )


@torch.inference_mode()
def answer_as_the_full_config(path, model_dir, grid, max_new_tokens: int) -> list[str]:
    """Replace the answers of the JSONL at ``path`` with what the model answers at the full
    config of ``grid`` (loaded and answered as the profiler and the live evaluation do it): a
    random-weight model's answers score 0 against the real ones whatever the pipeline does,
    against its own full-config answers the full config must score exactly 1. Returns them."""
    from fastctrl.model_hook import hook
    from fastctrl.runtime.answering import lean_answer_path, make_decoder
    from fastctrl.runtime.datasets import load_requests
    from fastctrl.runtime.loading import load_model
    from fastctrl.runtime.requests import as_requests
    from fastctrl.space import ActionSpace

    model, processor = load_model(str(model_dir), device="cpu")
    data, _ = load_requests(str(path), split=None, samples=None, on_error="raise")
    space, decode = ActionSpace(grid), make_decoder(processor)
    answer = lean_answer_path(model, dict(max_new_tokens=max_new_tokens, do_sample=False))
    answers = []
    with hook(model, space=space) as h:
        h.pin(space.full())
        for r in as_requests(data):
            inputs = processor([r.image], [r.prompt])
            out = answer(inputs, task_type=r.task_type)
            answers.append(decode(out[0, inputs["input_ids"].shape[1] :].tolist()))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len(answers) and all(a.strip() for a in answers), answers
    for row, a in zip(rows, answers, strict=True):
        row["answers"] = [a]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return answers


@pytest.mark.parametrize("family", PRETRAINED_FAMILIES)
def test_profile_train_evaluate_from_a_model_directory(family, tmp_path):
    model_dir, train_data, heldout = model_and_data(family, tmp_path)
    prof = tmp_path / "profile.parquet"
    grid = GRIDS[family]
    for data in (train_data, heldout):
        answer_as_the_full_config(data, model_dir, grid, max_new_tokens=2)
    assert profile_cli(model_dir, train_data, grid, prof, "--configs", "random 6") == 0
    side = json.loads(prof.with_suffix(".sweep.json").read_text())
    assert side["n_requests"] == 10 and side["cells_measured"] == 10 * 6
    assert side["settings"]["metric"] == "exact_match" and not side["quality_proxy"]
    where = side["machine"]  # latencies travel with the machine they were measured on
    assert where["cpu"] and where["cpu_count"] >= 1 and where["torch"] == torch.__version__
    # scored on the model's own full-config answers: the full config measured 1 on every
    # request, and cheaper configs (the cheapest is measured for every request) answer worse
    measured = Profile.load(prof, missing_configs="impute")
    assert (measured.quality[:, measured.full_index] == 1.0).all()
    assert 0.0 < measured.quality[measured.measured].mean() < 1.0
    run, out = tmp_path / "run", tmp_path / "eval"
    assert train_cli("supervised", prof, run, "--missing_configs", "impute") == 0
    assert evaluate_cli(run, model_dir, prof, heldout, out, "--missing_configs", "impute") == 0
    res = json.loads((out / "live_eval.json").read_text())
    assert res["n_requests"] == 4 and len(res["budgets_ms"]) == 2
    assert res["answered_by"] == "greedy_decode"  # two new tokens: the cached greedy loop
    for b in res["per_budget"].values():
        assert set(b) == {"controller", "best_static", "full"}
        assert b["full"]["accuracy"] == 1.0  # the full config gives its own answers again
        for r in b.values():
            assert 0 <= r["accuracy"] <= 1 and 0 <= r["slo_attainment"] <= 1
            assert sum(r["configs"].values()) == 4 and len(r["latency_ms"]) == 4
        assert list(b["full"]["configs"]) == [",".join(f"{k}={v[-1]}" for k, v in grid.items())]
        assert 0 < b["controller"]["controller_share"] < 1
    # the host check: profiled and evaluated here, so the same machine, a finite speed ratio
    host = res["host"]
    assert host["differs"] == [] and host["profile_machine"]["cpu"] == host["machine"]["cpu"]
    assert host["latency_scale"] == pytest.approx(
        host["full_p50_live_ms"] / host["full_p50_profile_ms"]
    )
    for fig in ("accuracy_vs_budget.png", "latency_per_budget.png"):
        assert (out / fig).stat().st_size > 1000
    assert res["command"].startswith("python -m fastctrl.evaluate") and res["date"]
    if family != "llava-olmoe":
        return
    # the latency guardrail: at a budget no config is predicted to meet, every controller
    # decision is replaced by the config its task's quantile latency says is fastest
    from fastctrl.model_hook.guardrail import LatencyGuardrail

    guard = LatencyGuardrail.fit(measured, quantile=0.9)
    out_g = tmp_path / "eval_guardrail"
    from fastctrl.evaluate.cli import main as evaluate_main

    main_flags = ["--missing_configs", "impute", "--guardrail", "0.9", "--budgets_ms", "0.001"]
    assert (
        evaluate_main(
            ["--controller", str(run), "--model", str(model_dir), "--profile", str(prof)]
            + ["--dataset", str(heldout), "--output_dir", str(out_g), *QUICK_ANSWERS, *main_flags]
        )
        == 0
    )
    g = json.loads((out_g / "live_eval.json").read_text())
    tasks = [json.loads(line).get("task_type") for line in heldout.read_text().splitlines()]
    want = []
    for t in tasks:
        lat = guard.latency[t if t in guard.latency else ""]
        idx = measured.config_indices[int(np.argmin(lat))]
        want.append(",".join(f"{k}={grid[k][i]}" for k, i in zip(grid, idx, strict=True)))
    (only,) = g["per_budget"].values()
    assert only["controller"]["configs"] == dict(Counter(want))
    assert g["guardrail_replaced"] >= 1


def test_a_lookup_table_run_is_served_live_through_the_hook(tmp_path):
    """The lut method trains no controller: its run saves the table, and the live evaluation
    pins, per request, the config the table gives for its task type and budget."""
    from collections import Counter

    from fastctrl.policy.lookup_table import LookupTablePolicy

    family = "llava-olmoe"
    model_dir, train_data, heldout = model_and_data(family, tmp_path)
    prof = tmp_path / "profile.parquet"
    assert profile_cli(model_dir, train_data, GRIDS[family], prof) == 0
    run, out = tmp_path / "run", tmp_path / "eval"
    assert train_cli("lut", prof, run) == 0
    table = LookupTablePolicy.from_pretrained(run / "lookup_table")
    assert evaluate_cli(run, model_dir, prof, heldout, out) == 0
    res = json.loads((out / "live_eval.json").read_text())
    assert res["decided_by"] == "lookup_table"
    tasks = [json.loads(line)["task_type"] for line in heldout.read_text().splitlines()]
    for b in res["budgets_ms"]:
        want = Counter(
            ",".join(f"{k}={v}" for k, v in table.decide(t, b).values.items()) for t in tasks
        )
        assert res["per_budget"][f"{b:g}"]["controller"]["configs"] == dict(want)


def test_bad_inputs_are_clear(tmp_path, capsys):
    from fastctrl.evaluate.cli import main as evaluate_main
    from fastctrl.profile import main as profile_main

    empty = tmp_path / "not_a_model"
    empty.mkdir()
    data = write_jsonl(tmp_path / "d", 2, seed=0)
    assert profile_main(["--model", str(empty), "--dataset", str(data), "--quiet"]) == 2
    assert "no config.json" in capsys.readouterr().err
    model_dir = save_tiny_pretrained("llava-olmoe", tmp_path / "m")
    (model_dir / "tokenizer.json").unlink()  # a model directory without its processor
    (model_dir / "processor_config.json").unlink(missing_ok=True)
    assert profile_main(["--model", str(model_dir), "--dataset", str(data), "--quiet"]) == 2
    assert "processor" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": "missing.png", "question": "q?", "answers": ["a"]}) + "\n")
    assert profile_main(["--dataset", str(bad), "--quiet"]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert evaluate_main(["--controller", str(tmp_path), "--budgets_ms", "5", "--quiet"]) == 2
    assert "no controller" in capsys.readouterr().err
