"""The cached greedy-decode answer path gives generate()'s multi-token answers, on every
family, through the hook at full and cheapest configs, and refuses what it cannot reproduce."""

from __future__ import annotations

import pytest
import torch

from fastctrl.model_hook import hook
from fastctrl.runtime.answering import GreedyDecode
from fastctrl.space import ActionSpace
from fastctrl.testing.tiny_models import build_tiny, sweep_grids, tiny_families, tiny_inputs

from .conftest import GENERATE_ONLY

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

GREEDY_4 = dict(max_new_tokens=4, do_sample=False)


@pytest.fixture(scope="module", params=tiny_families())
def family_model(request):
    return build_tiny(request.param, seed=0)


def test_same_tokens_as_generate_on_every_family_at_full_and_cheapest(family_model):
    model = family_model
    space = ActionSpace.from_dict(sweep_grids(model))
    answer = GreedyDecode.create(model, GREEDY_4)
    assert answer is not None
    cheapest = {n: space[n].values[0] for n in space.names}
    with hook(model, space=space) as handle, torch.inference_mode():
        for config in (space.full().values, cheapest):
            handle.pin(config)
            for seed in range(2):
                inputs = tiny_inputs(model, batch=2, seed=seed)
                want = model.generate(**inputs, **GREEDY_4)
                got = answer(inputs)
                assert got.shape == want.shape, (config, seed)
                assert torch.equal(got, want), (config, seed)


def test_stops_at_eos_and_pads_finished_rows_like_generate():
    model = build_tiny("llava-olmoe", seed=0)
    inputs = tiny_inputs(model, batch=2, seed=1)
    with torch.inference_mode():
        free = model.generate(**inputs, **GREEDY_4)
        n = inputs["input_ids"].shape[1]
        # make row 0's second token the end of sequence: row 0 stops, row 1 runs on, padded
        gen = {**GREEDY_4, "eos_token_id": int(free[0, n + 1]), "pad_token_id": 0}
        want = model.generate(**inputs, **gen)
        got = GreedyDecode.create(model, gen)(inputs)
        assert torch.equal(got, want)
        for rule in (
            {"suppress_tokens": free[:, n].tolist()},
            {"begin_suppress_tokens": free[:, n].tolist()},
            {"eos_token_id": int(free[0, n]), "min_new_tokens": 2},
        ):
            gen = {**GREEDY_4, **rule}
            assert torch.equal(
                GreedyDecode.create(model, gen)(inputs), model.generate(**inputs, **gen)
            ), rule


def test_digits_model_list_answers_match_generate():
    from fastctrl.digits import DIGITS_MODEL
    from fastctrl.digits.pages import PageGenerator
    from fastctrl.runtime.loading import load_model

    model, proc = load_model(DIGITS_MODEL)
    gen = PageGenerator("test", 5, task_types=("list",))
    pages = [gen.page(i) for i in range(8)]
    answer = GreedyDecode.create(model, {})
    assert answer is not None and answer.max_new_tokens == 5
    lengths = set()
    with torch.inference_mode():
        for p in pages:
            inputs = proc([p.rgb], [p.question])
            got = answer(inputs)
            assert torch.equal(got, model.generate(**inputs))
            lengths.add(got.shape[1] - inputs["input_ids"].shape[1])
    assert len(lengths) > 1  # answers of different lengths, each stopped at its </s>


@pytest.mark.parametrize(
    "gen",
    [dict(max_new_tokens=1, do_sample=False), dict(max_new_tokens=3, use_cache=False)]
    + [dict(max_new_tokens=3, **g) for g in GENERATE_ONLY],
)
def test_what_it_cannot_reproduce_goes_to_generate(gen):
    assert GreedyDecode.create(build_tiny("llava-olmoe", seed=0), gen) is None
