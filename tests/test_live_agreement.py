"""The agreement metric in the live evaluation compares each policy's tokens with the tokens
the full config generated for the same request and budget: a policy that answers differently
scores below 1 (it used to be scored against its own tokens, so every policy scored 1.0).

The expected scores are computed here independently: each request answered by ``generate()``
on the hooked model pinned at the policy's config and at the full config, then compared token
by token."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastctrl.evaluate.live import evaluate_live
from fastctrl.model_hook import hook
from fastctrl.policy.lookup_table import LookupTablePolicy
from fastctrl.runtime.loading import load_model
from fastctrl.runtime.metrics import agreement
from fastctrl.runtime.requests import as_requests
from fastctrl.runtime.synthetic_vqa import synthetic_vqa
from fastctrl.space import ActionSpace, Config

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = "tiny-llava-olmoe"
SPACE = ActionSpace({"max_crops": [1, 4], "top_k": [2, 4], "num_active_blocks": [2, 4]})
NEW_TOKENS = 3
BUDGET = 50.0


@pytest.fixture(scope="module")
def tiny():
    return load_model(MODEL, seed=0, device="cpu")


def cheapest_table(tasks) -> LookupTablePolicy:
    """A lookup table that picks the cheapest config for every task type and budget."""
    tasks = sorted(set(tasks))
    cheap = np.array(SPACE.cheapest().indices)
    return LookupTablePolicy(SPACE, tasks, np.array([]), np.tile(cheap, (len(tasks), 1, 1)))


@torch.inference_mode()
def expected_agreement(model, processor, requests, config: Config) -> list[float]:
    """Per request: agreement of ``config``'s greedy tokens with the full config's."""
    out = []
    with hook(model, space=SPACE) as h:
        for r in requests:
            inputs = processor([r.image], [r.prompt])
            n = inputs["input_ids"].shape[1]
            ids = {}
            for c in (config, SPACE.full()):
                h.pin(c)
                gen = model.generate(
                    **inputs, max_new_tokens=NEW_TOKENS, do_sample=False, budget_ms=BUDGET
                )
                ids[c] = gen[0, n:].tolist()
            out.append(agreement(ids[config], ids[SPACE.full()]))
    return out


def test_live_agreement_compares_each_policy_with_the_full_config(tiny):
    model, processor = tiny
    requests = list(as_requests(synthetic_vqa(4, seed=5)))
    cheap = SPACE.cheapest()
    want = expected_agreement(model, processor, requests, cheap)
    assert min(want) < 1.0, "premise: the cheapest config answers differently from the full"
    res = evaluate_live(
        model,
        processor,
        cheapest_table(r.task_type for r in requests),
        requests,
        [BUDGET],
        "agreement",
        static={BUDGET: cheap},
        max_new_tokens=NEW_TOKENS,
        warmup=0,
        quiet=True,
    )
    assert res.metric == "agreement"
    got = res.per_budget[f"{BUDGET:g}"]
    assert got["full"].accuracy == 1.0
    for name in ("controller", "best_static"):
        assert got[name].configs == {
            ",".join(f"{k}={v}" for k, v in cheap.values.items()): len(requests)
        }
        assert got[name].accuracy == pytest.approx(np.mean(want)), name
        assert got[name].accuracy < 1.0, name


def test_agreement_needs_no_answers_and_answer_metrics_do(tiny):
    model, processor = tiny
    requests = list(as_requests(synthetic_vqa(2, seed=5, with_answers=False)))
    table = cheapest_table(r.task_type for r in requests)
    kw = dict(max_new_tokens=1, warmup=0, quiet=True)
    res = evaluate_live(model, processor, table, requests, [BUDGET], "auto", **kw)
    assert res.metric == "agreement"  # auto without answers, as the profiler picks it
    assert res.per_budget[f"{BUDGET:g}"]["full"].accuracy == 1.0
    with pytest.raises(ValueError, match="needs an answer for every sample"):
        evaluate_live(model, processor, table, requests, [BUDGET], "exact_match", **kw)


def test_cli_agreement_scores_a_differing_policy_below_one(tiny, tmp_path):
    """``python -m fastctrl.evaluate --metric agreement``: the reported bug, end to end."""
    from fastctrl.evaluate.cli import main as evaluate_main

    model, processor = tiny
    requests = list(as_requests(synthetic_vqa(4, seed=1000)))  # the CLI's default held-out set
    cheapest_table(r.task_type for r in requests).save_pretrained(tmp_path / "table")
    want = expected_agreement(model, processor, requests, SPACE.cheapest())
    assert min(want) < 1.0, "premise: the cheapest config answers differently from the full"
    out = tmp_path / "eval"
    argv = ["--controller", str(tmp_path / "table"), "--model", MODEL, "--metric", "agreement"]
    argv += ["--budgets_ms", f"{BUDGET:g}", "--samples", "4", "--max_new_tokens", str(NEW_TOKENS)]
    argv += ["--warmup", "0", "--output_dir", str(out), "--quiet"]
    assert evaluate_main(argv) == 0
    res = json.loads((out / "live_eval.json").read_text())
    assert res["metric"] == "agreement"
    per_policy = res["per_budget"][f"{BUDGET:g}"]
    assert per_policy["full"]["accuracy"] == 1.0
    assert per_policy["controller"]["accuracy"] == pytest.approx(np.mean(want))
    assert per_policy["controller"]["accuracy"] < 1.0
