"""GRPO variants on the main job's data and budget, judged on VALIDATION (the tuning protocol):
what justified GRPO's defaults (sampled vs offline groups, the learning rate, the entropy bonus).

    python bench/grpo_variants.py --output bench/results/grpo_variants.json

Each variant is one `fastctrl train grpo` run (the built-in synthetic profile, seed 0, the
default 1,000,000 env_steps unless it says otherwise); the file keeps each run's validation
curve (utility and SLO violation at every point), its best and final validation utility, and
the test numbers of the raw and the deployed (safe-fallback) controller for the record; the
choice reads validation only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastctrl import io  # noqa: E402
from fastctrl.sysinfo import command_line, provenance  # noqa: E402

#: name -> flags on top of `fastctrl train grpo --seed 0`
VARIANTS: dict[str, list[str]] = {
    "sampled, lr 1e-4 (the previous default)": ["--groups", "sampled", "--lr", "1e-4"],
    "sampled, lr 1e-4, entropy 0.01": [
        "--groups", "sampled", "--lr", "1e-4", "--grpo_ent_coef", "0.01",
    ],
    "sampled, lr 1e-4, weight decay 0.01": [
        "--groups", "sampled", "--lr", "1e-4", "--weight_decay", "0.01",
    ],
    "sampled, lr 3e-5": ["--groups", "sampled", "--lr", "3e-5"],
    "sampled, lr 2e-5": ["--groups", "sampled", "--lr", "2e-5"],
    "offline, lr 1e-4": ["--groups", "offline", "--lr", "1e-4", "--updates_per_step", "50"],
    "offline, lr 1e-4, uniform weights": [
        "--groups", "offline", "--lr", "1e-4", "--updates_per_step", "50",
        "--offline_weighting", "uniform",
    ],
    "offline, lr 1e-4, 5 updates per step": [
        "--groups", "offline", "--lr", "1e-4", "--updates_per_step", "5",
    ],
}  # fmt: skip


def summarise(run_dir: Path) -> dict:
    stats = json.loads((run_dir / "training_stats.json").read_text())
    res = json.loads((run_dir / "eval_results.json").read_text())
    hist = stats["history"]
    best = max(hist, key=lambda h: h["utility"])
    return {
        "validation": [
            {"env_steps": h["env_steps"], "utility": h["utility"], "slo": h["slo_violation_rate"]}
            for h in hist
        ],
        "val_best": best["utility"],
        "val_best_env_steps": best["env_steps"],
        "val_best_slo": best["slo_violation_rate"],
        "val_final": hist[-1]["utility"],
        "val_final_slo": hist[-1]["slo_violation_rate"],
        "val_best_static": stats["val_references"]["best_static"]["utility"],
        "test_raw": res["raw_controller"]["overall"]["utility"],
        "test_deployed": res["controller"]["overall"]["utility"],
        "test_best_static": res["baselines"]["best_static"]["overall"]["utility"],
        "wall_s": hist[-1]["wall_s"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default="bench/results/grpo_variants.json")
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run (default all)")
    args = ap.parse_args()
    out = {"meta": provenance(command_line("bench/grpo_variants.py"))}
    out["variants"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in VARIANTS.items():
            if args.only and name not in args.only:
                continue
            run_dir = Path(tmp) / str(len(out["variants"]))
            cmd = [sys.executable, "-m", "fastctrl.train", "--method", "grpo", "--seed", "0"]
            cmd += [*flags, "--output_dir", str(run_dir), "--quiet"]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            out["variants"][name] = {
                "flags": flags,
                **summarise(run_dir),
                "run_s": time.perf_counter() - t0,
            }
            v = out["variants"][name]
            print(
                f"{name}: val best {v['val_best']:.4f} final {v['val_final']:.4f} "
                f"(slo {v['val_best_slo']:.3f} -> {v['val_final_slo']:.3f})",
                flush=True,
            )
    io.write_json(args.output, out)  # atomic: a killed run leaves the old file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
