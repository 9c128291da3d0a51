"""vLLM with the fastctrl plugin on CPU: plugin overhead at the full config, and what each
knob's cheapest setting saves (``python bench/bench_vllm_plugin.py``, in the vLLM environment).

Model: a tiny OLMoE built here (hidden 512, 8 blocks, 8 experts, 4 per token, float32,
random weights). Two engines, each in its own process (:mod:`tests_vllm.engine_run`):
vLLM without the plugin (``VLLM_PLUGINS`` excluding it) and vLLM with it (``FASTCTRL_VLLM=1``).
Engines alternate (``--engine-rounds`` starts of each); each times its request sets
round-robin, ``--repeats`` times, after one warm-up; a set is
``--requests`` requests of ``--prompt-len`` prompt tokens and ``--new-tokens`` new tokens in
one ``generate`` (all in one batch). With the plugin: every request pinned at the full config
(the plugin's bookkeeping only), at ``top_k=1``, at ``num_active_blocks=1``, at both, and a
half/half mix of full and depth 1 (a partial batch: attention on every row, MoE on the active
rows). Reported: median tokens/s (new tokens / wall time) and ratios; JSON to
``bench/results/vllm_plugin/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HIDDEN, LAYERS, TOP_K = 512, 8, 4  # TOP_K: tests_vllm.tiny.TOP_K


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line
        )
    except (OSError, StopIteration):
        return platform.processor()


def request_set(n: int, prompt_len: int, new: int, pin: str | None) -> list[dict]:
    reqs = []
    for i in range(n):
        prompt = [1] + [32 + (7 * i + 3 * j) % 90 for j in range(prompt_len - 1)]
        args = {"fastctrl_pin": pin} if pin else {}
        reqs.append({"prompt": prompt, "max_tokens": new, "extra_args": args})
    return reqs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per set per engine")
    ap.add_argument("--engine-rounds", type=int, default=3, help="alternating engine starts")
    ap.add_argument("--out", default=str(ROOT / "bench/results/vllm_plugin/cpu_tiny_olmoe.json"))
    a = ap.parse_args()
    # the vLLM environment's helpers (imported here: pytest bench/ collects this file in the
    # main environment, which has no vLLM)
    sys.path.insert(0, str(ROOT))
    from tests_vllm import tiny
    from tests_vllm.engine_run import run_engine

    work = Path(tempfile.mkdtemp(prefix="bench_vllm_plugin_"))
    tiny.build("olmoe", work / "olmoe", hidden=HIDDEN, layers=LAYERS)
    n, p, t = a.requests, a.prompt_len, a.new_tokens
    full = f"top_k={TOP_K},num_active_blocks={LAYERS}"
    with_sets = {
        "plugin_full": request_set(n, p, t, full),
        "plugin_top_k_1": request_set(n, p, t, f"top_k=1,num_active_blocks={LAYERS}"),
        "plugin_depth_1": request_set(n, p, t, f"top_k={TOP_K},num_active_blocks=1"),
        "plugin_cheapest": request_set(n, p, t, "top_k=1,num_active_blocks=1"),
        "plugin_mixed_full_depth_1": request_set(n // 2, p, t, full)
        + request_set(n - n // 2, p, t, f"top_k={TOP_K},num_active_blocks=1"),
    }
    model = str(work / "olmoe")
    timing = {"repeats": a.repeats}
    # engines alternate (off, on, off, on, ...): drift on a shared machine falls on both
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for e in range(a.engine_rounds):
        runs["off"].append(
            run_engine(
                {
                    "model": model,
                    "env": {"VLLM_PLUGINS": "none"},
                    "requests": [],
                    "timing": {**timing, "sets": {"vllm": request_set(n, p, t, None)}},
                },
                work / f"off{e}",
            )
        )
        runs["on"].append(
            run_engine(
                {
                    "model": model,
                    "env": {"FASTCTRL_VLLM": "1"},
                    "requests": [],
                    "timing": {**timing, "sets": with_sets},
                },
                work / f"on{e}",
            )
        )
    off = {
        "model_class": runs["off"][0]["model_class"],
        "new_tokens": runs["off"][0]["new_tokens"],
        "times_s": {k: [x for r in runs["off"] for x in r["times_s"][k]] for k in ["vllm"]},
    }
    on = {
        "model_class": runs["on"][0]["model_class"],
        "new_tokens": runs["on"][0]["new_tokens"],
        "times_s": {k: [x for r in runs["on"] for x in r["times_s"][k]] for k in with_sets},
    }
    rows = {}
    for run in (off, on):
        for name, times in run["times_s"].items():
            med = statistics.median(times)
            rows[name] = {
                "median_s": med,
                "times_s": times,
                "tokens_per_s": run["new_tokens"][name] / med,
            }
    base = rows["vllm"]["tokens_per_s"]
    full_tps = rows["plugin_full"]["tokens_per_s"]
    for r in rows.values():
        r["tokens_per_s_vs_vllm"] = r["tokens_per_s"] / base
        r["speedup_vs_plugin_full"] = rows["plugin_full"]["median_s"] / r["median_s"]
    import torch
    import vllm

    result = {
        "command": "python bench/bench_vllm_plugin.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "model": {
            "family": "olmoe",
            "hidden": HIDDEN,
            "layers": LAYERS,
            "experts": 8,
            "top_k": TOP_K,
            "dtype": "float32",
        },
        "requests": n,
        "prompt_len": p,
        "new_tokens": t,
        "repeats": a.repeats,
        "engine_rounds": a.engine_rounds,
        "plugin_overhead_full_config": 1.0 - full_tps / base,
        "rows": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, r in rows.items():
        print(
            f"{name:28s} {r['tokens_per_s']:8.1f} tok/s  x{r['tokens_per_s_vs_vllm']:.3f} of "
            f"vLLM  speedup vs plugin full x{r['speedup_vs_plugin_full']:.2f}"
        )


if __name__ == "__main__":
    main()
