"""fastctrl.hook on the tiny random-weight models: hook overhead and per-knob forward latency.

    pytest bench/bench_hook.py --benchmark-only --benchmark-json=hook.json
    python bench/bench_hook.py [--json hook_report.json] [--rounds 30]

One prefill forward (batch 1, one 32x32 image, a short prompt), one torch thread, CPU.

pytest-benchmark groups:
- ``hook-overhead-<family>``: ``unhooked`` vs ``hooked-pinned-full`` (hook machinery only: feature
  pooling, module patching and restoring) vs ``hooked-controller-full`` (plus the decision
  engine, ``engine="auto"``: int8 when the extension is built, else torch; the controller is
  forced to choose the full config, so the model's work is identical);
- ``knob-<family>-<knob>``: one knob swept down its grid, the others at the full config.

The script form prints the same as ratios (median over rounds): each knob value's latency over
the full config's, the hook overhead, and the controller time per forward and its share
(``handle.stats``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from fastctrl import Controller, ControllerConfig
from fastctrl.inengine import find_adapter, hook
from fastctrl.inengine.tiny import build_tiny, tiny_inputs

FAMILIES = ("llava-olmoe", "qwen3-vl-moe")
GRIDS = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]}
FULL = {k: v[-1] for k, v in GRIDS.items()}
#: wider than the test models so that compute, not Python overhead, dominates a forward
HIDDEN = 256
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
    c = Controller(ControllerConfig(image_dim=a.image_dim, text_dim=a.text_dim,
                                    grids=GRIDS)).eval()
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


def extra(benchmark: Any, family: str) -> None:
    benchmark.extra_info.update({
        "family": family, "threads": torch.get_num_threads(), "batch": 1,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
    })


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
@pytest.mark.parametrize("knob_value", [(k, v) for k, vs in GRIDS.items() for v in vs],
                         ids=lambda kv: f"{kv[0]}={kv[1]}")
def test_knob_latency(benchmark: Any, family: str, knob_value: tuple[str, int]) -> None:
    model, inputs = setup(family)
    knob, value = knob_value
    benchmark.group = f"knob-{family}-{knob}"
    extra(benchmark, family)
    with hook(model, space=full_controller(model).space) as h:
        h.pin({**FULL, knob: value})
        benchmark.pedantic(forward_fn(model, inputs), rounds=30, warmup_rounds=3)


# ---------------------------------------------------------------------------- script report
def _interleaved_medians(model: Any, inputs: dict[str, torch.Tensor], rounds: int,
                         warmup: int = 3) -> tuple[dict[str, float], dict[str, Any]]:
    """Median forward ms of every variant, timed round-robin so that load drifting on a shared
    CPU hits every variant alike (timing variants one after another did not: ratios swung by
    2x between runs under a load average of ~6 on 2 cores)."""
    run = forward_fn(model, inputs)
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
    info: dict[str, Any] = {"engine": ctrl.engine.kind, "controller_ms": [], "forward_ms": []}
    for r in range(warmup + rounds):
        for name, cfg in variants:
            h = None
            if name.startswith("pinned"):
                h = hook(model, space=space)
                h.pin(cfg())
            elif name.startswith("controller"):
                h = hook(model, full_controller(model), budget_ms=50.0, engine="auto")
                h.engine = ctrl.engine
            t0 = time.perf_counter()
            run()
            dt = (time.perf_counter() - t0) * 1e3
            if h is not None:
                if name.startswith("controller") and r >= warmup:
                    info["controller_ms"] += h.stats.controller_ms
                    info["forward_ms"] += h.stats.forward_ms
                h.remove()
            if r >= warmup:
                times[name].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}, info


def report(rounds: int, hidden: int) -> dict[str, Any]:
    out: dict[str, Any] = {"threads": 1, "torch": torch.__version__, "rounds": rounds,
                           "hidden": hidden, "grids": GRIDS, "families": {}}
    for family in FAMILIES:
        model, inputs = setup(family, hidden)
        med, info = _interleaved_medians(model, inputs, rounds)
        full_ms = med["pinned:full"]
        knob_ms = {k: {str(v): med[f"pinned:{k}={v}"] if v != FULL[k] else full_ms
                       for v in vals} for k, vals in GRIDS.items()}
        ctrl_ms = statistics.median(info["controller_ms"])
        out["families"][family] = {
            "seq_len": int(inputs["input_ids"].shape[1]),
            "unhooked_ms": med["unhooked"],
            "hooked_pinned_full_ms": full_ms,
            "hooked_controller_full_ms": med["controller:full"],
            "hook_overhead_ratio_pinned": full_ms / med["unhooked"],
            "hook_overhead_ratio_controller": med["controller:full"] / med["unhooked"],
            "controller": {"engine": info["engine"], "controller_ms_p50": ctrl_ms,
                           "share_p50": statistics.median(
                               c / f for c, f in zip(info["controller_ms"], info["forward_ms"],
                                                     strict=True))},
            "knob_ms": knob_ms,
            "knob_ratio_vs_full": {k: {v: ms / full_ms for v, ms in vals.items()}
                                   for k, vals in knob_ms.items()},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--hidden", type=int, default=HIDDEN, help="text hidden size of the models")
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    rep = report(args.rounds, args.hidden)
    text = json.dumps(rep, indent=2)
    if args.json:
        from fastctrl import io

        io.write_text(args.json, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
