"""What a prompt token costs the shipped digits VLM's language model, against what its ops cost.

    pytest bench/bench_digits_tokens.py --benchmark-only --benchmark-json=digits_tokens.json
    python bench/bench_digits_tokens.py [--json digits_tokens.json] [--rounds 40]

The OLMoE language model of ``fastctrl-digits`` (hidden 128, 16 experts, top-k 4), all 8
blocks, one forward of ``inputs_embeds [1, L, 128]`` (random, no cache, batch 1, one torch
thread, CPU) at prompt lengths ``L`` from half the served prompt (the served prompt is about
23 tokens: 16 vision + the question) to 16x it. The script form interleaves the lengths round
by round and prints each median and its ratio to ``L = 24``: how far a knob that removes
tokens (``max_crops``) can move latency on this model, next to one that removes blocks.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from script_form import run_script
from sysinfo import cpu_model
from timing import interleaved_medians

from fastctrl.digits import DIGITS_MODEL
from fastctrl.runtime.loading import load_model

LENGTHS = (12, 24, 48, 96, 192, 384)
SERVED = 24
_STATE: dict[str, Any] = {}


def setup() -> dict[str, Any]:
    if not _STATE:
        torch.set_num_threads(1)
        model, _ = load_model(DIGITS_MODEL)
        lm = model.model.language_model
        gen = torch.Generator().manual_seed(0)
        _STATE.update(
            lm=lm,
            inputs={n: torch.randn(1, n, lm.config.hidden_size, generator=gen) for n in LENGTHS},
        )
    return _STATE


def forward(s: dict[str, Any], n: int) -> Any:
    return s["lm"](inputs_embeds=s["inputs"][n], use_cache=False)


@pytest.mark.parametrize("n", LENGTHS)
def test_language_model_tokens(benchmark: Any, n: int) -> None:
    s = setup()
    benchmark.group = "digits-lm-tokens"
    benchmark.extra_info.update(tokens=n, cpu=cpu_model(), threads=1)
    with torch.inference_mode():
        out = benchmark(forward, s, n)
    assert out.last_hidden_state.shape == (1, n, s["lm"].config.hidden_size)


def report(rounds: int) -> dict[str, Any]:
    s = setup()
    with torch.inference_mode():
        med = interleaved_medians(
            {n: functools.partial(forward, s, n) for n in LENGTHS}, rounds, warmup=5
        )
    return {
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "rounds": rounds,
        "blocks": len(s["lm"].layers),
        "median_ms": {str(n): m for n, m in med.items()},
        "ratio_to_served": {str(n): m / med[SERVED] for n, m in med.items()},
    }


def show(res: dict[str, Any]) -> None:
    for n in LENGTHS:
        print(
            f"L = {n:>3}: {res['median_ms'][str(n)]:6.2f} ms for {res['blocks']} blocks, "
            f"{res['ratio_to_served'][str(n)]:.2f}x L = {SERVED}"
        )


def main() -> None:
    run_script(__doc__, 40, report, show)


if __name__ == "__main__":
    main()
