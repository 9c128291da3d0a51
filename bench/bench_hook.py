"""fastctrl.hook on the tiny random-weight models: hook overhead and per-knob forward latency.

    pytest bench/bench_hook.py --benchmark-only --benchmark-json=hook.json
    python bench/bench_hook.py [--json hook_report.json] [--rounds 30] [--new-tokens 16]

One prefill forward (batch 1, one 32x32 image, a short prompt), one torch thread, CPU.

pytest-benchmark groups:
- ``hook-overhead-<family>``: ``unhooked`` vs ``hooked-pinned-full`` (hook machinery only: feature
  pooling, module patching and restoring) vs ``hooked-controller-full`` (plus the decision
  engine, ``engine="auto"``: int8 when the extension is built, else torch; the controller is
  forced to choose the full config, so the model's work is identical);
- ``decode-<family>``: ``generate()`` of ``NEW_TOKENS`` tokens, unhooked vs hooked (pinned full);
- ``knob-<family>-<knob>``: one knob swept down its grid, the others at the full config.

The script form prints the same as ratios (median over rounds, variants interleaved, forwards
timed in this thread's CPU time, see :func:`forward_clock`): each knob value's latency over
the full config's, the hook overhead, the controller time per forward
(``handle.stats``: vision mask + pooling + engine call + config) and its share, and the hook's
own time measured directly: every hook callback is timed (``perf_counter``) and summed per
forward (``bookkeeping_ms``: at the pinned full config, i.e. no controller; its share of the
unhooked forward is ``bookkeeping_pct``) and per ``generate()`` decode step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
from sysinfo import cpu_model

from fastctrl import Controller, ControllerConfig
from fastctrl.model_hook import find_adapter, hook
from fastctrl.model_hook.handle import HookHandle
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs

FAMILIES = ("llava-olmoe", "qwen3-vl-moe")
GRIDS = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]}
FULL = {k: v[-1] for k, v in GRIDS.items()}
#: wider than the test models so that compute, not Python overhead, dominates a forward
HIDDEN = 256
NEW_TOKENS = 16
_MODELS: dict[tuple[str, int], Any] = {}


def setup(family: str, hidden: int = HIDDEN) -> tuple[Any, dict[str, torch.Tensor]]:
    torch.set_num_threads(1)
    if (family, hidden) not in _MODELS:
        model = build_tiny(family, seed=0, hidden=hidden)
        _MODELS[family, hidden] = (model, tiny_inputs(model, batch=1, seed=0))
    return _MODELS[family, hidden]


def full_controller(model: Any) -> Controller:
    """A controller whose heads always pick the full config (so only the overhead differs)."""
    a = find_adapter(model)
    c = Controller(ControllerConfig(image_dim=a.image_dim, text_dim=a.text_dim, grids=GRIDS)).eval()
    with torch.no_grad():
        for name, head in c.heads.items():
            head.weight.zero_()
            head.bias.fill_(-10.0)
            head.bias[len(GRIDS[name]) - 1] = 10.0
    return c


def forward_fn(model: Any, inputs: dict[str, torch.Tensor]) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return model(**inputs)

    return run


def generate_fn(model: Any, inputs: dict[str, torch.Tensor], new_tokens: int) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
            )

    return run


def forward_clock() -> Callable[[], float]:
    """The clock of the script's whole-forward / generate() timings: this thread's CPU time
    when torch runs one thread (everything then runs on this thread), else wall time. On the
    shared 2-core host, wall-clock medians of interleaved variants still moved by up to 1.6x
    between runs (another job's bursts); CPU time excludes the time slices lost to them."""
    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


#: the callbacks a HookHandle installs (module hooks): timed by HookTimer
_CALLBACKS = ("_outer_pre", "_outer_post", "_vision_post", "_embed_post", "_lm_pre", "_lm_post")


class HookTimer:
    """Times every hook callback of the handles created inside it (perf_counter, summed).

    The hook's bookkeeping is its callbacks' own time; measured directly this is not buried in
    the run-to-run noise of a whole forward on a shared host (two medians ~2% apart)."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> HookTimer:
        for name in _CALLBACKS:
            orig = self._saved[name] = getattr(HookHandle, name)

            def timed(handle: Any, *args: Any, _orig: Any = orig, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _orig(handle, *args, **kwargs)
                finally:
                    self.total_s += time.perf_counter() - t0

            setattr(HookHandle, name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, orig in self._saved.items():
            setattr(HookHandle, name, orig)

    def take_ms(self) -> float:
        ms, self.total_s = self.total_s * 1e3, 0.0
        return ms


def extra(benchmark: Any, family: str) -> None:
    benchmark.extra_info.update(
        {
            "family": family,
            "threads": torch.get_num_threads(),
            "batch": 1,
            "torch": torch.__version__,
            "cpu": cpu_model(),
        }
    )


# ---------------------------------------------------------------------------- pytest-benchmark
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["unhooked", "hooked-pinned-full", "hooked-controller-full"])
def test_hook_overhead(benchmark: Any, family: str, mode: str) -> None:
    model, inputs = setup(family)
    benchmark.group = f"hook-overhead-{family}"
    extra(benchmark, family)
    h = None
    if mode == "hooked-pinned-full":
        h = hook(model, space=full_controller(model).space)
        h.pin(FULL)
    elif mode == "hooked-controller-full":
        h = hook(model, full_controller(model), budget_ms=50.0, engine="auto")
        benchmark.extra_info["engine"] = h.engine.kind
    try:
        benchmark.pedantic(forward_fn(model, inputs), rounds=30, warmup_rounds=3)
    finally:
        if h is not None:
            benchmark.extra_info["stats"] = h.stats.summary()
            h.remove()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["unhooked", "hooked-pinned-full"])
def test_decode_overhead(benchmark: Any, family: str, mode: str) -> None:
    model, inputs = setup(family)
    benchmark.group = f"decode-{family}"
    extra(benchmark, family)
    benchmark.extra_info["new_tokens"] = NEW_TOKENS
    h = None
    if mode == "hooked-pinned-full":
        h = hook(model, space=full_controller(model).space)
        h.pin(FULL)
    try:
        benchmark.pedantic(generate_fn(model, inputs, NEW_TOKENS), rounds=10, warmup_rounds=2)
    finally:
        if h is not None:
            h.remove()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "knob_value", [(k, v) for k, vs in GRIDS.items() for v in vs], ids=lambda kv: f"{kv[0]}={kv[1]}"
)
def test_knob_latency(benchmark: Any, family: str, knob_value: tuple[str, int]) -> None:
    model, inputs = setup(family)
    knob, value = knob_value
    benchmark.group = f"knob-{family}-{knob}"
    extra(benchmark, family)
    with hook(model, space=full_controller(model).space) as h:
        h.pin({**FULL, knob: value})
        benchmark.pedantic(forward_fn(model, inputs), rounds=30, warmup_rounds=3)


# ---------------------------------------------------------------------------- script report
def _interleaved_medians(
    model: Any, inputs: dict[str, torch.Tensor], rounds: int, warmup: int = 3
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median forward ms of every variant, timed round-robin so that load drifting on a shared
    CPU hits every variant alike (timing variants one after another did not: ratios swung by
    2x between runs under a load average of ~6 on 2 cores)."""
    run = forward_fn(model, inputs)
    clock = forward_clock()
    space = full_controller(model).space
    variants: list[tuple[str, Callable[[], Any]]] = [("unhooked", lambda: None)]
    variants.append(("pinned:full", lambda: FULL))
    for knob, values in GRIDS.items():
        for v in values[:-1]:
            variants.append((f"pinned:{knob}={v}", lambda k=knob, v=v: {**FULL, k: v}))
    variants.append(("controller:full", lambda: None))
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    ctrl = hook(model, full_controller(model), budget_ms=50.0, engine="auto")
    ctrl.remove()  # built once (engine packing), re-installed per round below
    info: dict[str, Any] = {
        "engine": ctrl.engine.kind,
        "controller_ms": [],
        "forward_ms": [],
        "hook_ms_pinned": [],
        "hook_ms_controller": [],
    }
    with HookTimer() as timer:
        for r in range(warmup + rounds):
            for name, cfg in variants:
                h = None
                if name.startswith("pinned"):
                    h = hook(model, space=space)
                    h.pin(cfg())
                elif name.startswith("controller"):
                    h = hook(model, full_controller(model), budget_ms=50.0, engine="auto")
                    h.engine = ctrl.engine
                timer.take_ms()
                t0 = clock()
                run()
                dt = (clock() - t0) * 1e3
                hook_ms = timer.take_ms()
                if h is not None:
                    if name.startswith("controller") and r >= warmup:
                        info["controller_ms"] += h.stats.controller_ms
                        info["forward_ms"] += h.stats.forward_ms
                        info["hook_ms_controller"].append(hook_ms)
                    if name == "pinned:full" and r >= warmup:
                        info["hook_ms_pinned"].append(hook_ms)
                    h.remove()
                if r >= warmup:
                    times[name].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}, info


def _decode_medians(
    model: Any, inputs: dict[str, torch.Tensor], rounds: int, new_tokens: int, warmup: int = 2
) -> dict[str, Any]:
    """``generate()`` unhooked vs hooked at the pinned full config, interleaved; the hook's
    callback time per decode step (the prefill's callbacks are measured on their own and
    subtracted)."""
    gen = generate_fn(model, inputs, new_tokens)
    prefill = forward_fn(model, inputs)
    clock = forward_clock()
    space = full_controller(model).space
    t: dict[str, list[float]] = {"unhooked": [], "hooked": []}
    per_step: list[float] = []
    with HookTimer() as timer:
        for r in range(warmup + rounds):
            t0 = clock()
            gen()
            if r >= warmup:
                t["unhooked"].append((clock() - t0) * 1e3)
            with hook(model, space=space) as h:
                h.pin(FULL)
                prefill()
                prefill_hook_ms = timer.take_ms()
                t0 = clock()
                gen()
                dt = (clock() - t0) * 1e3
                steps = h.stats.decode_forwards
                gen_hook_ms = timer.take_ms()
            if r >= warmup:
                t["hooked"].append(dt)
                per_step.append((gen_hook_ms - prefill_hook_ms) / max(steps, 1))
    med = {k: statistics.median(v) for k, v in t.items()}
    return {
        "new_tokens": new_tokens,
        "generate_unhooked_ms": med["unhooked"],
        "generate_hooked_pinned_full_ms": med["hooked"],
        "ratio": med["hooked"] / med["unhooked"],
        "hook_ms_per_decode_step_p50": statistics.median(per_step),
        "decode_step_ms_unhooked": med["unhooked"] / new_tokens,
    }


def report(rounds: int, hidden: int, new_tokens: int = NEW_TOKENS) -> dict[str, Any]:
    torch.set_num_threads(1)  # as setup() does; before the clock is chosen
    out: dict[str, Any] = {
        "threads": 1,
        "torch": torch.__version__,
        "rounds": rounds,
        "hidden": hidden,
        "grids": GRIDS,
        "cpu": cpu_model(),
        "forward_clock": forward_clock().__name__,
        "callback_clock": "perf_counter",
        "families": {},
    }
    for family in FAMILIES:
        model, inputs = setup(family, hidden)
        med, info = _interleaved_medians(model, inputs, rounds)
        full_ms = med["pinned:full"]
        knob_ms = {
            k: {str(v): med[f"pinned:{k}={v}"] if v != FULL[k] else full_ms for v in vals}
            for k, vals in GRIDS.items()
        }
        ctrl_ms = statistics.median(info["controller_ms"])
        book_ms = statistics.median(info["hook_ms_pinned"])
        out["families"][family] = {
            "seq_len": int(inputs["input_ids"].shape[1]),
            "unhooked_ms": med["unhooked"],
            "hooked_pinned_full_ms": full_ms,
            "hooked_controller_full_ms": med["controller:full"],
            "hook_overhead_ratio_pinned": full_ms / med["unhooked"],
            "hook_overhead_ratio_controller": med["controller:full"] / med["unhooked"],
            "bookkeeping_ms_p50": book_ms,
            "bookkeeping_pct": 100 * book_ms / med["unhooked"],
            "hook_ms_controller_p50": statistics.median(info["hook_ms_controller"]),
            "controller": {
                "engine": info["engine"],
                "controller_ms_p50": ctrl_ms,
                "share_p50": statistics.median(
                    c / f for c, f in zip(info["controller_ms"], info["forward_ms"], strict=True)
                ),
            },
            "knob_ms": knob_ms,
            "knob_ratio_vs_full": {
                k: {v: ms / full_ms for v, ms in vals.items()} for k, vals in knob_ms.items()
            },
            "decode": _decode_medians(model, inputs, max(3, rounds // 3), new_tokens),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--hidden", type=int, default=HIDDEN, help="text hidden size of the models")
    p.add_argument(
        "--new-tokens",
        type=int,
        default=NEW_TOKENS,
        help="generate() length of the decode-step measurement",
    )
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    rep = report(args.rounds, args.hidden, args.new_tokens)
    text = json.dumps(rep, indent=2)
    if args.json:
        from fastctrl import io

        io.write_text(args.json, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
