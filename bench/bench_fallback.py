"""What the safe fallback costs a decision: each engine with and without its table, same inputs.

    python bench/bench_fallback.py --json bench/results/bench_fallback.json

The shipped digits controller (its ``fallback.json`` keeps the controller in some cells and not
in others, so both branches run), one thread, B=1 (a served request) and B=64; per engine and
batch: the median time of ``decide`` (numpy in, numpy out: the checked public call) and of the
hook's host path (``decide_rows`` for int8, ``decide_tensors`` + a host read for torch), with
and without the table, interleaved call by call, and their ratio. Triton runs on a GPU only;
on CPU it is listed as not run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastctrl import Controller, io, make_engine  # noqa: E402
from fastctrl.digits import shipped_controller  # noqa: E402
from fastctrl.sysinfo import command_line, provenance  # noqa: E402


def interleaved(fns: dict[str, callable], rounds: int) -> dict[str, float]:
    """Median microseconds of each function, called in turn ``rounds`` times."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter_ns()
            fn()
            times[k].append((time.perf_counter_ns() - t0) / 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def calls(engines: dict, arrays: tuple, task: np.ndarray, slots: torch.Tensor) -> dict:
    """The timed calls of each engine: the public ``decide`` and the hook's host path."""
    t = [torch.from_numpy(a) for a in arrays]
    fns = {}
    for name, e in engines.items():
        fns[f"decide {name}"] = lambda e=e: e.decide(*arrays, task=task)
        if e.kind == "int8":
            fns[f"hook path {name}"] = lambda e=e: e.decide_rows(*t, slots)
        else:
            fns[f"hook path {name}"] = lambda e=e: e.decide_tensors(*t, slots).tolist()
    return fns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="bench/results/bench_fallback.json")
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    guarded = Controller.from_pretrained(shipped_controller())
    assert guarded.fallback is not None, "the shipped controller has no fallback.json"
    raw = Controller.from_pretrained(shipped_controller())
    raw.set_fallback(None)
    cfg = guarded.config
    ref = cfg.ref_latency_ms
    rng = np.random.default_rng(0)
    out: dict = {
        "meta": provenance(command_line("bench/bench_fallback.py")),
        "controller": str(shipped_controller()),
        "cells_policy": int(guarded.fallback.use_policy.sum()),
        "cells": int(guarded.fallback.use_policy.size),
        "threads": 1,
        # the host's 1-minute load when the bench started: the ratios are interleaved call by
        # call, so a busy host slows both sides, but the absolute times are not a quiet host's
        "load_average_1min": os.getloadavg()[0],
        "results": {},
        "not_run": {"triton": "needs a CUDA GPU (the CPU interpreter is not a timing)"},
    }
    for kind in ("torch", "int8"):
        eng = {"with": make_engine(guarded, kind), "without": make_engine(raw, kind)}
        for batch in (1, 64):
            image = rng.standard_normal((batch, cfg.image_dim), dtype=np.float32)
            text = rng.standard_normal((batch, cfg.text_dim), dtype=np.float32)
            budget = (rng.uniform(0.3, 1.1, batch) * ref).astype(np.float32)
            task = np.asarray(rng.choice(cfg.task_types, batch))
            slots = torch.from_numpy(eng["with"].task_slots(task, batch))
            fns = calls(eng, (image, text, budget), task, slots)
            interleaved(fns, 50)  # warm-up
            us = interleaved(fns, args.rounds)
            out["results"][f"{kind} B={batch}"] = {
                "us": us,
                "decide_ratio": us["decide with"] / us["decide without"],
                "hook_path_ratio": us["hook path with"] / us["hook path without"],
                "hook_path_added_us": us["hook path with"] - us["hook path without"],
            }
            r = out["results"][f"{kind} B={batch}"]
            print(
                f"{kind} B={batch}: hook path {us['hook path without']:.1f} -> "
                f"{us['hook path with']:.1f} us ({r['hook_path_ratio']:.2f}x), decide "
                f"{r['decide_ratio']:.2f}x",
                flush=True,
            )
    io.write_json(args.json, out)  # atomic: a killed run leaves the old file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
