"""The hook on CUDA with a real millisecond budget: a tiny LLaVA-OLMoE on the GPU, the
controller deciding through the engine ``auto`` picks there (the fused Triton kernel), each
request timed with CUDA events against its budget.

    python bench/gpu_hook_check.py --json hook_cuda.json [--device cuda] [--requests 64]

The budget is a ratio of the full config's measured p50 (``--budget_ratio``), so it is a real
number of milliseconds on the card that runs it. The controller is untrained (random
weights): this checks the path (decisions made on the GPU, configs applied, stats, timing),
not decision quality. Writes the device, versions, engine, the full config's p50, per-request
latency percentiles, the share of requests within budget, decisions per config and the
controller's time per forward.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics

import torch

from fastctrl import Controller, ControllerConfig, hook
from fastctrl.model_hook import find_adapter
from fastctrl.runtime.timing import CallTimer
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs

GRID = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run)")
    ap.add_argument("--requests", type=int, default=64, help="timed requests")
    ap.add_argument("--budget_ratio", type=float, default=0.6, help="budget / full p50")
    ap.add_argument("--new_tokens", type=int, default=8, help="tokens generated per request")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = build_tiny("llava-olmoe", seed=0, hidden=256).to(device)
    adapter = find_adapter(model)
    ctrl = (
        Controller(
            ControllerConfig(image_dim=adapter.image_dim, text_dim=adapter.text_dim, grids=GRID)
        )
        .eval()
        .to(device)
    )
    timer = CallTimer(device)
    inputs = {k: v.to(device) for k, v in tiny_inputs(model, batch=1, seed=0).items()}
    gen = dict(max_new_tokens=args.new_tokens, do_sample=False, min_new_tokens=args.new_tokens)

    handle = hook(model, space=ctrl.space)  # pinned at the full config: the reference latency
    handle.pin(ctrl.space.full())
    full = [timer.time(lambda: model.generate(**inputs, **gen))[1] for _ in range(8 + 24)][8:]
    handle.remove()
    full_p50 = statistics.median(full)
    budget = args.budget_ratio * full_p50

    handle = hook(model, ctrl, budget_ms=budget, engine="auto")
    for _ in range(4):  # warm-up: Triton compiles its kernel on the first call
        model.generate(**inputs, **gen)
    handle.stats.take_times()
    lat = [timer.time(lambda: model.generate(**inputs, **gen))[1] for _ in range(args.requests)]
    summary = handle.stats.summary()
    engine = type(handle.engine).__name__ if getattr(handle, "engine", None) else "unknown"
    handle.remove()
    q = statistics.quantiles(lat, n=100)
    out = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor(),
        "torch": torch.__version__,
        "engine": engine,
        "new_tokens": args.new_tokens,
        "full_config_p50_ms": full_p50,
        "budget_ms": budget,
        "latency_ms": {"p50": statistics.median(lat), "p95": q[94], "p99": q[98]},
        "within_budget": sum(x <= budget for x in lat) / len(lat),
        "hook_stats": summary,
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2, default=str)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
