"""generate() against the lean answer path on the shipped digits VLM.

    pytest bench/bench_answer_path.py --benchmark-only --benchmark-json=answer_path.json
    python bench/bench_answer_path.py [--json answer_path.json] [--rounds 200]

One answer (batch 1, one 64x64 page with a ``list`` question: several answer words, then
``</s>``; one torch thread, CPU) through the hook with the config pinned, as the profiler
times it: greedy ``generate()`` with the shipped generation config vs
:func:`~fastctrl.runtime.answering.lean_answer_path` (here the cached greedy loop, the
same tokens, checked here), at the full and at the cheapest config. pytest-benchmark groups
``answer-<config>``.

The script form interleaves the two paths call by call (load drift hits both alike) and
prints, per config, the median ms of each, what ``generate()`` adds, and the full / cheapest
span each path gives: the ratio the knobs can move latency by.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from script_form import run_script
from sysinfo import cpu_model
from timing import interleaved_medians

from fastctrl import hook
from fastctrl.digits import DIGITS_MODEL
from fastctrl.digits.model import DigitsModelConfig
from fastctrl.digits.pages import PageGenerator
from fastctrl.digits.train import training_space
from fastctrl.runtime.answering import lean_answer_path
from fastctrl.runtime.loading import load_model

GEN = dict(do_sample=False)  # max_new_tokens: the shipped generation config's
_STATE: dict[str, Any] = {}


def setup() -> dict[str, Any]:
    if not _STATE:
        torch.set_num_threads(1)
        model, proc = load_model(DIGITS_MODEL)
        space = training_space(DigitsModelConfig(**model.config.fastctrl_digits))
        page = PageGenerator("test", 7, task_types=("list",)).page(0)
        inputs = proc([page.rgb], [page.question])
        _STATE.update(
            model=model,
            inputs=inputs,
            space=space,
            answer_words=page.answer,
            handle=hook(model, space=space),
            answer=lean_answer_path(model, GEN),
            configs={"full": space.full().values, "cheapest": space.cheapest().values},
        )
    return _STATE


def paths(s: dict[str, Any]) -> dict[str, Any]:
    model, inputs, answer = s["model"], s["inputs"], s["answer"]
    return {"generate": lambda: model.generate(**inputs, **GEN), "lean": lambda: answer(inputs)}


@pytest.mark.parametrize("config", ["full", "cheapest"])
@pytest.mark.parametrize("path", ["generate", "lean"])
def test_answer_path(benchmark: Any, config: str, path: str) -> None:
    s = setup()
    s["handle"].pin(s["configs"][config])
    benchmark.group = f"answer-{config}"
    with torch.inference_mode():
        fn = paths(s)[path]
        out = benchmark(fn)
        assert torch.equal(out, paths(s)["generate"]())


def report(rounds: int) -> dict[str, Any]:
    s = setup()
    out: dict[str, Any] = {
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "rounds": rounds,
        "configs": {},
    }
    with torch.inference_mode():
        for name, config in s["configs"].items():
            s["handle"].pin(config)
            fns = paths(s)
            assert torch.equal(fns["generate"](), fns["lean"]())
            med = interleaved_medians(fns, rounds, warmup=10)
            out["configs"][name] = {
                **{f"{p}_ms": m for p, m in med.items()},
                "generate_adds_ms": med["generate"] - med["lean"],
            }
    c = out["configs"]
    for p in ("generate", "lean"):
        out[f"span_{p}"] = c["full"][f"{p}_ms"] / c["cheapest"][f"{p}_ms"]
    return out


def show(res: dict[str, Any]) -> None:
    for name, r in res["configs"].items():
        print(
            f"{name:>8}: generate {r['generate_ms']:.2f} ms, lean path {r['lean_ms']:.2f} ms "
            f"(generate adds {r['generate_adds_ms']:.2f} ms)"
        )
    print(
        f"full / cheapest: {res['span_generate']:.2f}x with generate(), "
        f"{res['span_lean']:.2f}x with the lean path"
    )


def main() -> None:
    run_script(__doc__, 200, report, show)


if __name__ == "__main__":
    main()
