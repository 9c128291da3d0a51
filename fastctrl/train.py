"""``python -m fastctrl.train --method {lut,supervised,ppo,dpo,grpo}``.

With no data arguments it trains on the built-in synthetic profile. ``--help`` lists every
hyper-parameter with its meaning and default.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .cli import add_dataclass_args, dataclass_from_args
from .methods.config import METHOD_NAMES, SCHEDULERS, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastctrl.train",
        description="Train (or build) a fastctrl controller with one of five methods and "
                    "evaluate it through a decision engine on the test split.")
    add_dataclass_args(p, TrainConfig, choices={
        "method": METHOD_NAMES, "scheduler": SCHEDULERS, "reward": ("e5", "shaped"),
        "budget_baseline": ("request", "global"), "engine": ("auto", "torch", "triton", "int8"),
        "class_balance": ("none", "weighted_loss", "weighted_sampling"),
        "lut_mode": ("table", "knn"), "dpo_reference": ("initial", "supervised"),
        "arch": ("mlp", "recursive")})
    return p


def summary_table(results: dict) -> str:
    rows = [("controller", results["controller"])] + list(results["baselines"].items())
    ratios = list(results["controller"]["per_budget"])
    head = f"{'policy':<12}" + "".join(f"{'u@' + r:>10}" for r in ratios) + \
        f"{'utility':>10}{'quality':>9}{'SLO viol':>9}{'p95 ms':>9}{'gap %':>8}"
    lines = [head]
    for name, res in rows:
        o = res["overall"]
        gap = o.get("gap_to_oracle_pct")
        lines.append(f"{name:<12}" + "".join(f"{res['per_budget'][r]['utility']:>10.4f}"
                                             for r in ratios)
                     + f"{o['utility']:>10.4f}{o['quality_mean']:>9.4f}"
                     f"{o['slo_violation_rate']:>9.3f}{o['latency_p95']:>9.1f}"
                     f"{(gap if gap is not None else float('nan')):>8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = dataclass_from_args(TrainConfig, args)
    logging.basicConfig(level=logging.WARNING if cfg.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from .training import run_training

    try:
        results = run_training(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not cfg.quiet:
        c = results["controller"]
        print(summary_table(results))
        print(json.dumps({"method": cfg.method, "engine": results["engine"],
                          "controller_parameters": results["controller_parameters"],
                          "env_steps": results["env_steps"],
                          "train_time_s": round(results["train_time_s"], 1),
                          "controller_overhead_ms": round(c["controller_overhead_ms"], 4),
                          "output_dir": cfg.output_dir}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
