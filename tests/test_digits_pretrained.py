"""The shipped digits VLM (``--model fastctrl-digits``): it loads like a checkpoint, answers
test-pool pages it never saw, and each knob costs accuracy. Thresholds sit below what the
shipped weights measure on these 160 fixed pages, one left-padded batch (measured: 0.888 at the
full config, read 0.961; 0.288 at max_crops 1, 0.338 at one block, 0.881 at top-k 1), as
regression guards: a broken processor, template or hook drops them towards chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastctrl import hook
from fastctrl.digits import DIGITS_MODEL, pretrained_dir
from fastctrl.digits.model import EOS, DigitsModelConfig, vocabulary
from fastctrl.digits.pages import PageGenerator
from fastctrl.digits.train import training_space
from fastctrl.runtime.loading import load_model

PAGES = 160


@pytest.fixture(scope="module")
def served():
    torch.set_num_threads(1)
    model, proc = load_model(DIGITS_MODEL)
    pages = [PageGenerator("test", 7).page(i) for i in range(PAGES)]
    inputs = proc([p.rgb for p in pages], [p.question for p in pages])
    return model, inputs, pages


def answers(out: torch.Tensor, prompt_len: int) -> list[str]:
    """The words generated per row, up to the end of sequence."""
    words = {i: w for w, i in vocabulary().items()}
    said = []
    for row in out[:, prompt_len:].tolist():
        ids = row[: row.index(EOS)] if EOS in row else row
        said.append(" ".join(words[t] for t in ids))
    return said


def accuracy(model, inputs, pages, handle, config) -> tuple[float, dict[str, float]]:
    handle.pin(config)
    with torch.inference_mode():
        out = model.generate(**inputs)  # the shipped generation config: greedy, to </s>
    said = answers(out, inputs["input_ids"].shape[1])
    right = np.array([s == p.answer for s, p in zip(said, pages, strict=True)])
    per = {
        t: float(right[[p.task_type == t for p in pages]].mean())
        for t in dict.fromkeys(p.task_type for p in pages)
    }
    return float(right.mean()), per


def test_shipped_files_are_safetensors_with_a_processor():
    d = pretrained_dir()
    assert (d / "model.safetensors").is_file() and not list(d.glob("*.bin"))
    assert (d / "tokenizer.json").is_file() and (d / "chat_template.jinja").is_file()


def test_shipped_model_reads_unseen_pages_and_every_knob_costs_accuracy(served):
    model, inputs, pages = served
    space = training_space(DigitsModelConfig(**model.config.fastctrl_digits))
    handle = hook(model, space=space)
    try:
        full, per_task = accuracy(model, inputs, pages, handle, space.full())
        lowered = {
            name: accuracy(
                model,
                inputs,
                pages,
                handle,
                space.config_from_values(**{**space.full().values, name: space[name].values[0]}),
            )[0]
            for name in space.names
        }
    finally:
        handle.remove()
    assert full >= 0.8 and per_task["read"] >= 0.9, (full, per_task)
    assert lowered["max_crops"] < full - 0.2  # a quarter of the cells
    assert lowered["num_active_blocks"] < full - 0.2  # one block of eight
    assert lowered["top_k"] <= full + 0.02


def test_the_shipped_profile_loads_by_name_with_its_splits_and_machine():
    import json

    from fastctrl.digits import shipped_profile
    from fastctrl.profile.sweep import SIDECAR_SUFFIX
    from fastctrl.profile.table import Profile

    prof = Profile.load(DIGITS_MODEL)
    assert prof.n_requests == 480 and prof.space.n_configs == 54 and prof.features is not None
    assert {s: int((prof.splits == s).sum()) for s in ("train", "val", "test")} == {
        "train": 240,
        "val": 80,
        "test": 160,
    }
    sidecar = json.loads(shipped_profile().with_suffix(SIDECAR_SUFFIX).read_text())
    assert sidecar["torch_threads"] == 1 and sidecar["machine"]["cpu_count"] >= 1
    # the profiled model is the shipped one: its full config answers most test pages right
    test = prof.split_indices("test")
    assert prof.quality[test, prof.full_index].mean() >= 0.85  # measured 0.925
    assert sidecar["answered_by"] == "greedy_decode"  # how its latencies were measured


def test_the_greedy_decode_answers_the_shipped_model_as_generate_does(served):
    """The shipped model restricts its answers with suppress_tokens and ends them with </s>:
    the serving path the profiler and the live evaluation time keeps those rules (and the
    argmax) at every knob, on a left-padded batch whose rows stop at different lengths."""
    from fastctrl.runtime.answering import GreedyDecode

    model, inputs, _ = served
    space = training_space(DigitsModelConfig(**model.config.fastctrl_digits))
    gen = dict(do_sample=False)  # max_new_tokens: the shipped generation config's
    answer = GreedyDecode.create(model, gen)
    assert answer is not None
    cheapest = {n: space[n].values[0] for n in space.names}
    with hook(model, space=space) as handle, torch.inference_mode():
        for config in (space.full().values, cheapest, {**cheapest, "num_active_blocks": 4}):
            handle.pin(config)
            assert torch.equal(answer(inputs), model.generate(**inputs, **gen)), config
