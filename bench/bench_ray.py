"""What Ray costs and buys on this machine: per-task overhead, compare and profile both ways.

    python bench/bench_ray.py [--tasks 500] [--cpus 2] [--json bench/results/bench_ray.json]
    python bench/bench_ray.py --skip_compare --skip_profile   # the task overhead only

On a local Ray cluster of ``--cpus`` CPUs that the script starts (``ray.init``, timed):

- task overhead: a task that returns its argument, ``--tasks`` times, after a warm-up that
  starts the worker processes: submitted all at once then gathered (``pipelined_ms_per_task``,
  the throughput cost) and one at a time, each waited for (``round_trip_ms_per_task``, the
  latency cost);
- compare: the same ``python -m fastctrl.compare`` jobs with ``--jobs CPUS`` (a spawned process
  pool) and with ``--backend ray`` (``--cpus_per_task 1``), each in a fresh output directory;
  the Ray run twice, its worker processes new (``ray_cold``) and then already started
  (``ray_warm``); ``runs_s`` is the E5 meta's wall time of the runs alone, ``total_s``
  includes the analysis and figures; ``speedup`` = local / Ray;
- profile: the tiny-model sweep ``python -m fastctrl.profile`` in this process (one worker)
  and with ``--backend ray --num_workers CPUS``: answer calls per second of wall time, the
  Ray workers' start-up (connecting + loading the model in each) and the sweep after it.

JSON on stdout (and to ``--json``), with the CPU, the versions and the load average before and
after: on a shared host the timings move with the other jobs' load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sysinfo import cpu_model

from fastctrl.io import write_text

COMPARE = [
    "--methods",
    "lut,supervised,grpo",
    "--seeds",
    "2",
    "--synthetic_requests",
    "400",
    "--max_env_steps",
    "10000",
    "--eval_every_steps",
    "2500",
    "--bootstrap_reps",
    "500",
    "--quiet",
]
PROFILE = ["--samples", "16", "--warmup", "1", "--repeats", "3", "--max_new_tokens", "4", "--quiet"]


def echo(x: Any) -> Any:
    return x


def task_overhead(ray: Any, n: int, cpus: int) -> dict[str, float]:
    task = ray.remote(num_cpus=1)(echo)
    ray.get([task.remote(i) for i in range(4 * cpus)])  # start the worker processes
    t0 = time.perf_counter()
    ray.get([task.remote(i) for i in range(n)])
    pipelined = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(n):
        ray.get(task.remote(i))
    round_trip = (time.perf_counter() - t0) / n
    return {
        "tasks": n,
        "pipelined_ms_per_task": round(pipelined * 1e3, 3),
        "round_trip_ms_per_task": round(round_trip * 1e3, 3),
    }


def timed_compare(argv: list[str]) -> dict[str, float]:
    from fastctrl.compare import main

    out = tempfile.mkdtemp(prefix="bench-ray-compare-")
    t0 = time.perf_counter()
    assert main([*argv, "--output_dir", out]) == 0
    total = time.perf_counter() - t0
    meta = json.loads((Path(out) / "e5_statistics.json").read_text())["meta"]
    return {
        "runs_s": round(meta["wall_time_s"], 2),
        "total_s": round(total, 2),
        "parallel": meta["jobs"],
    }


def compare_both_ways(cpus: int) -> dict[str, Any]:
    local = timed_compare([*COMPARE, "--jobs", str(cpus)])
    cold = timed_compare([*COMPARE, "--backend", "ray", "--cpus_per_task", "1"])
    warm = timed_compare([*COMPARE, "--backend", "ray", "--cpus_per_task", "1"])
    return {
        "command": "python -m fastctrl.compare " + " ".join(COMPARE),
        "runs": 6,
        "local_jobs": local,
        "ray_cold": cold,
        "ray_warm": warm,
        "speedup_runs_cold": round(local["runs_s"] / cold["runs_s"], 3),
        "speedup_runs_warm": round(local["runs_s"] / warm["runs_s"], 3),
        "speedup_total_cold": round(local["total_s"] / cold["total_s"], 3),
    }


def timed_profile(argv: list[str]) -> dict[str, Any]:
    from fastctrl.profile import main

    out = Path(tempfile.mkdtemp(prefix="bench-ray-profile-")) / "profile.parquet"
    t0 = time.perf_counter()
    assert main([*argv, "--output_dir", str(out.parent)]) == 0
    total = time.perf_counter() - t0
    side = json.loads(out.with_suffix(".sweep.json").read_text())
    calls, backend, st = side["cost"]["answer_calls"], side["backend"], side["settings"]
    timed_calls = calls * st["repeats"] // (st["warmup"] + st["repeats"])  # batch size 1
    sweep_s = side["cost"]["wall_s"] - backend.get("startup_s", 0.0)
    return {
        "total_s": round(total, 2),
        "sweep_wall_s": side["cost"]["wall_s"],
        "startup_s": backend.get("startup_s"),
        "sweep_after_startup_s": round(sweep_s, 2),
        "answer_calls": calls,
        "timed_calls": timed_calls,
        "timed_s": side["cost"]["timed_s"],
        "calls_per_s_after_startup": round(calls / sweep_s, 2),
        "ms_per_timed_call": round(side["cost"]["timed_s"] / timed_calls * 1e3, 2),
        "workers": backend.get("workers", 1),
    }


def profile_both_ways(cpus: int) -> dict[str, Any]:
    local = timed_profile(PROFILE)
    on_ray = timed_profile([*PROFILE, "--backend", "ray", "--num_workers", str(cpus)])
    return {
        "command": "python -m fastctrl.profile " + " ".join(PROFILE),
        "local": local,
        "ray": on_ray,
        "speedup_after_startup": round(
            on_ray["calls_per_s_after_startup"] / local["calls_per_s_after_startup"], 3
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=500)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--skip_compare", action="store_true")
    p.add_argument("--skip_profile", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    import ray
    import torch

    torch.set_num_threads(1)  # as the CLIs' runs and sweeps do
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
    result: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpus": a.cpus,
        "python": sys.version.split()[0],
        "ray": ray.__version__,
        "torch": torch.__version__,
        "ray_init_s": round(time.perf_counter() - t0, 2),
        "task_overhead": task_overhead(ray, a.tasks, a.cpus),
    }
    if not a.skip_compare:
        result["compare"] = compare_both_ways(a.cpus)
    if not a.skip_profile:
        result["profile"] = profile_both_ways(a.cpus)
    ray.shutdown()
    result["loadavg_before_after"] = [list(load_before), list(os.getloadavg())]
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        write_text(a.json, text + "\n")


if __name__ == "__main__":
    main()
