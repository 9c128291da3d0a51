"""The prefill-forward answer path gives generate()'s one-token answers, on every family,
through the hook, and refuses what it cannot reproduce."""

from __future__ import annotations

import pytest
import torch

from fastctrl.model_hook import hook
from fastctrl.runtime.answering import PrefillAnswer
from fastctrl.space import ActionSpace
from fastctrl.testing.tiny_models import build_tiny, sweep_grids, tiny_families, tiny_inputs

from .conftest import GENERATE_ONLY

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

GREEDY_1 = dict(max_new_tokens=1, do_sample=False)


@pytest.fixture(scope="module", params=tiny_families())
def family_model(request):
    return build_tiny(request.param, seed=0)


def _cheapest(space: ActionSpace) -> dict[str, int]:
    return {n: space[n].values[0] for n in space.names}


def test_same_tokens_as_generate_on_every_family_at_full_and_cheapest(family_model):
    model = family_model
    space = ActionSpace.from_dict(sweep_grids(model))
    answer = PrefillAnswer.create(model, GREEDY_1)
    assert answer is not None
    with hook(model, space=space) as handle, torch.inference_mode():
        for config in (space.full().values, _cheapest(space)):
            handle.pin(config)
            for seed in range(3):
                inputs = tiny_inputs(model, batch=2, seed=seed)
                want = model.generate(**inputs, **GREEDY_1)
                got = answer(inputs)
                assert got.shape == want.shape == (2, inputs["input_ids"].shape[1] + 1)
                assert torch.equal(got, want), (config, seed)


def test_generation_config_token_rules_are_applied():
    model = build_tiny("llava-olmoe", seed=0)
    inputs = tiny_inputs(model, batch=2, seed=1)
    with torch.inference_mode():
        free = model.generate(**inputs, **GREEDY_1)[:, -1].tolist()
        # ban what the model would answer: the rule must move the answer, as in generate()
        for rule in ({"suppress_tokens": free}, {"begin_suppress_tokens": free}):
            gen = {**GREEDY_1, **rule}
            answer = PrefillAnswer.create(model, gen)
            assert answer is not None
            want = model.generate(**inputs, **gen)
            got = answer(inputs)
            assert torch.equal(got, want), rule
            assert not set(got[:, -1].tolist()) & set(free)
        # EOS held back by min_new_tokens (the live evaluation passes min = max)
        eos = free[0]
        gen = {**GREEDY_1, "eos_token_id": eos, "min_new_tokens": 1}
        got = PrefillAnswer.create(model, gen)(inputs)
        assert torch.equal(got, model.generate(**inputs, **gen))
        assert eos not in got[:, -1].tolist()


@pytest.mark.parametrize(
    "gen",
    [dict(max_new_tokens=2, do_sample=False), dict(max_new_tokens=1, bad_words_ids=[[5]])]
    + [dict(max_new_tokens=1, **g) for g in GENERATE_ONLY],
)
def test_what_it_cannot_reproduce_goes_to_generate(gen):
    assert PrefillAnswer.create(build_tiny("llava-olmoe", seed=0), gen) is None


def test_hook_kwargs_reach_the_hooked_forward():
    """budget_ms / task_type go to the forward as generate() hands them on: the controller
    decides with the given budget."""
    from fastctrl import Controller, ControllerConfig
    from fastctrl.model_hook import find_adapter

    model = build_tiny("llava-olmoe", seed=0)
    a = find_adapter(model)
    ctrl = Controller(
        ControllerConfig(image_dim=a.image_dim, text_dim=a.text_dim, grids=sweep_grids(model))
    ).eval()
    answer = PrefillAnswer.create(model, GREEDY_1)
    inputs = tiny_inputs(model)
    with hook(model, ctrl, engine="torch") as handle, torch.inference_mode():
        with pytest.raises(ValueError, match="budget"):
            answer(inputs)  # no budget anywhere: the hook's own error
        out = answer(inputs, budget_ms=50.0, task_type="color")
        assert handle.stats.decisions == 1
        assert out.shape[1] == inputs["input_ids"].shape[1] + 1
