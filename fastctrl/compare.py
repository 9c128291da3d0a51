"""``python -m fastctrl.compare``: the E5 experiment — every method x seeds, JSON + figures + report.

All methods share the observation space, action space, reward, latency measurements, budgets
and an env-step budget; each (method, seed) is an independent ``fastctrl.train`` run in its own
directory under ``<output_dir>/runs``, executed in parallel over ``--jobs`` processes. Finished
runs are reused (an interrupted compare picks them up; a run killed mid-way resumes from its
last checkpoint), so rerunning the command completes what is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from . import e5, io
from .methods.config import METHOD_NAMES, TrainConfig
from .plots import (
    plot_e5_frontiers,
    plot_e5_learning_curves,
    plot_e5_overhead,
    plot_e5_sample_efficiency,
    plot_e5_stability,
)

log = logging.getLogger(__name__)

#: TrainConfig fields a finished run must match to be reused
REUSE_KEYS = ("method", "seed", "profile", "synthetic_requests", "max_env_steps",
              "eval_every_steps", "num_epochs", "reward", "reward_lambda", "budget_baseline")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastctrl.compare", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", default=",".join(METHOD_NAMES),
                   help="comma-separated methods to compare")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (0..seeds-1)")
    p.add_argument("--jobs", type=int, default=2, help="runs executed in parallel")
    p.add_argument("--output_dir", default="runs/e5")
    p.add_argument("--profile", default=None, help="a profile table; default: synthetic")
    p.add_argument("--synthetic_requests", type=int, default=3500)
    p.add_argument("--max_env_steps", type=int, default=1_000_000,
                   help="the common env-step budget of every run")
    p.add_argument("--eval_every_steps", type=int, default=25_000,
                   help="validation evaluation interval (env_steps)")
    p.add_argument("--num_epochs", type=int, default=100)
    p.add_argument("--slo_threshold", type=float, default=0.05,
                   help="sample efficiency: SLO violation rate to reach")
    p.add_argument("--quality_fraction", type=float, default=0.9,
                   help="sample efficiency: quality to reach, as a fraction of the full model's")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 400 requests, 2 seeds, 12 epochs, 150k env-step budget")
    p.add_argument("--quiet", action="store_true")
    return p


def _run_one(cfg_dict: dict[str, Any]) -> str:
    from .training import Run

    Run(TrainConfig(**cfg_dict)).run()
    return cfg_dict["output_dir"]


def _reusable(run_dir: Path, cfg: TrainConfig) -> bool:
    stats, ev = run_dir / "training_stats.json", run_dir / "eval_results.json"
    if not (stats.is_file() and ev.is_file()):
        return False
    try:
        saved = json.loads(stats.read_text())["config"]
    except (json.JSONDecodeError, KeyError):
        return False
    want = dataclasses.asdict(cfg)
    return all(saved.get(k) == want[k] for k in REUSE_KEYS)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.quick:
        args.synthetic_requests, args.seeds, args.num_epochs = 400, 2, 12
        args.max_env_steps, args.eval_every_steps = 150_000, 5_000
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHOD_NAMES]
    if bad or not methods:
        print(f"error: --methods must name some of {METHOD_NAMES}, got {bad or methods}",
              file=sys.stderr)
        return 2
    for name in ("seeds", "jobs", "max_env_steps", "eval_every_steps", "num_epochs"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be >= 1", file=sys.stderr)
            return 2
    out = Path(args.output_dir)
    seeds = list(range(args.seeds))
    configs: dict[tuple[str, int], TrainConfig] = {}
    for m in methods:
        for s in seeds:
            configs[(m, s)] = TrainConfig(
                method=m, seed=s, profile=args.profile,
                synthetic_requests=args.synthetic_requests, max_env_steps=args.max_env_steps,
                eval_every_steps=args.eval_every_steps, num_epochs=args.num_epochs,
                output_dir=str(out / "runs" / f"{m}_seed{s}"), quiet=True)
    todo = {k: c for k, c in configs.items() if not _reusable(Path(c.output_dir), c)}
    for c in todo.values():
        if (Path(c.output_dir) / "last_checkpoint.pt").is_file():
            c.resume = c.output_dir
    log.info("E5: %d runs, %d already done, %d to run on %d processes", len(configs),
             len(configs) - len(todo), len(todo), args.jobs)
    t0 = time.perf_counter()
    failures = []
    if todo:
        with ProcessPoolExecutor(max_workers=args.jobs,
                                 mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(_run_one, dataclasses.asdict(c)): k for k, c in todo.items()}
            for f in as_completed(futs):
                key = futs[f]
                try:
                    f.result()
                    log.info("done %s seed %d (%.0f s)", *key, time.perf_counter() - t0)
                except Exception as e:  # one failed run must not lose the others
                    failures.append((key, repr(e)))
                    log.error("run %s seed %d failed: %s", *key, e)
    if failures:
        print(f"error: {len(failures)} runs failed: {failures}", file=sys.stderr)
        return 1
    runs = e5.load_runs({k: Path(c.output_dir) for k, c in configs.items()})
    any_eval = next(iter(next(iter(runs.values())).values()))["eval"]
    any_stats = next(iter(next(iter(runs.values())).values()))["stats"]
    meta = {"methods": methods, "seeds": seeds, "profile": args.profile or
            f"synthetic ({args.synthetic_requests} requests)",
            "profile_detail": any_stats["profile"], "reward": any_eval["reward"],
            "budget_ratios": any_eval["budget_ratios"],
            "budget_baseline": any_eval["budget_baseline"],
            "n_configs": any_eval["n_configs"],
            "max_env_steps": args.max_env_steps, "eval_every_steps": args.eval_every_steps,
            "wall_time_s": time.perf_counter() - t0, "jobs": args.jobs}
    curves = e5.training_curves(runs)
    eff = e5.sample_efficiency(runs, args.slo_threshold, args.quality_fraction)
    fr = e5.final_frontiers(runs)
    ov = e5.overhead_analysis(runs)
    st = e5.stability_analysis(runs)
    for name, obj in (("e5_training_curves", curves), ("e5_sample_efficiency", eff),
                      ("e5_final_frontiers", fr), ("e5_overhead_analysis", ov),
                      ("e5_stability_analysis", st)):
        io.write_json(out / f"{name}.json", {"meta": meta, name.removeprefix("e5_"): obj})
    figs = out / "figures"
    for name, fn, obj in (("e5_learning_curves", plot_e5_learning_curves, curves),
                          ("e5_sample_efficiency", plot_e5_sample_efficiency, eff),
                          ("e5_final_frontiers", plot_e5_frontiers, fr),
                          ("e5_overhead_comparison", plot_e5_overhead, ov),
                          ("e5_stability", plot_e5_stability, st)):
        io.write_with(figs / f"{name}.png", lambda p, fn=fn, obj=obj: fn(obj, p))
    io.write_text(out / "e5_report.md", e5.report(meta, eff, fr, ov, st))
    if not args.quiet:
        print(f"E5 done in {meta['wall_time_s']:.0f} s: {out / 'e5_report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
