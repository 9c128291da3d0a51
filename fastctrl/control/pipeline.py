"""The whole double-integrator experiment in one command (the guide's ``train.sh``).

    python -m fastctrl.control.pipeline --output_dir runs/control

Stages: generate the training set (seed 42) and the test set (seed 123), train
TinyRecursiveControl, evaluate it on the test set, compare it with random controls and the LQR
oracle, and export it to ONNX. Layout of ``--output_dir``::

    data/lqr_train/lqr_dataset.npz   data/lqr_test/lqr_dataset.npz
    supervised/  best_model.pt last_model.pt training_stats.json training_curves.png model.onnx
    evaluation_results.json  comparison_results.json  comparison_table.md  pipeline_summary.json
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import io
from ..cli import need, need_positive
from ..train.schedules import SchedulerKind
from . import run_command
from .compare import CompareArgs, compare, format_table
from .evaluate import EvaluateArgs, evaluate
from .generate import GenerateArgs
from .generate import run as generate
from .model import ModelSize
from .train import TRCTrainConfig, train

log = logging.getLogger(__name__)

TARGET_GAP_PERCENT = 5.0
TARGET_SUCCESS_POINTS = 2.0
TARGET_INFERENCE_MS = 10.0


@dataclass
class PipelineArgs:
    """Generate data, train, evaluate and compare TinyRecursiveControl on the double integrator."""

    output_dir: str = "runs/control"
    """Directory for data, checkpoints and reports."""
    num_train: int = 10000
    """Training trajectories."""
    num_test: int = 1000
    """Test trajectories."""
    train_seed: int = 42
    """Seed of the training initial states."""
    test_seed: int = 123
    """Seed of the test initial states."""
    num_steps: int = 15
    """Control steps over the horizon."""
    time_horizon: float = 5.0
    """Horizon in seconds."""
    model_size: ModelSize = "small"
    """TinyRecursiveControl preset."""
    epochs: int = 60
    """Maximum training epochs."""
    batch_size: int = 64
    """Training batch size."""
    lr: float = 1e-3
    """Peak learning rate."""
    patience: int = 20
    """Early-stopping patience in epochs (0: never)."""
    scheduler: SchedulerKind = "cosine"
    """Learning-rate schedule."""
    seed: int = 0
    """Training seed (initialisation, shuffling, validation split)."""
    device: str = "cpu"
    """Torch device for training."""
    export_onnx: bool = True
    """Export the best model to supervised/model.onnx."""
    quiet: bool = False
    """No progress bars; print only the final table."""

    def __post_init__(self) -> None:
        need_positive(self, "num_train", "num_test")
        need(self.train_seed != self.test_seed,
             f"--train_seed and --test_seed must differ (both {self.train_seed})")


def run(args: PipelineArgs) -> dict[str, Any]:
    out = Path(args.output_dir)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    t0 = time.perf_counter()
    common = {"num_steps": args.num_steps, "time_horizon": args.time_horizon, "quiet": True}
    train_path = generate(GenerateArgs(num_samples=args.num_train, seed=args.train_seed,
                                       output_dir=str(out / "data" / "lqr_train"), **common))
    test_path = generate(GenerateArgs(num_samples=args.num_test, seed=args.test_seed,
                                      output_dir=str(out / "data" / "lqr_test"), **common))
    timings["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = train(TRCTrainConfig(
        data=str(train_path), output_dir=str(out / "supervised"), model_size=args.model_size,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
        scheduler=args.scheduler, seed=args.seed, device=args.device,
        export_onnx=args.export_onnx, quiet=args.quiet,
    ))
    timings["train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ev = evaluate(EvaluateArgs(checkpoint=str(res.best_checkpoint), test_data=str(test_path),
                               output=str(out / "evaluation_results.json"), quiet=True))
    timings["evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cmp = compare(CompareArgs(test_data=str(test_path), trc_checkpoint=str(res.best_checkpoint),
                              output=str(out / "comparison_results.json"), quiet=True))
    timings["compare_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all

    trc, ref = ev["trc"], ev["lqr"]
    summary = {
        "args": asdict(args),
        "timings": timings,
        "load_average_1min": {"start": load_start,
                              "end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "num_parameters": ev["num_parameters"],
        "epochs_run": res.stats["epochs_run"],
        "trc": {k: trc[k] for k in ("cost_gap_percent", "success_rate", "mean_final_error",
                                    "mean_cost", "inference_ms_per_batch",
                                    "inference_ms_per_batch_min", "inference_batch_size")},
        "lqr": {k: ref[k] for k in ("success_rate", "mean_final_error", "mean_cost")},
        "targets": {
            "cost_gap_percent_at_most_5": trc["cost_gap_percent"] <= TARGET_GAP_PERCENT,
            "success_within_2_points_of_lqr":
                ev["success_rate_gap_points"] <= TARGET_SUCCESS_POINTS,
            "inference_batch_1000_under_10ms":
                trc["inference_batch_size"] == 1000
                and trc["inference_ms_per_batch"] < TARGET_INFERENCE_MS,
        },
        "comparison_table": format_table(cmp),
    }
    io.write_json(out / "pipeline_summary.json", summary)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    def logged_run(args: PipelineArgs) -> dict[str, Any]:
        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                            format="%(name)s: %(message)s")
        return run(args)

    args, s = run_command(PipelineArgs, logged_run, argv, name="pipeline")
    print(s["comparison_table"])
    t = s["trc"]
    print(f"\ngap from LQR {t['cost_gap_percent']:.3f}%, success {100 * t['success_rate']:.1f}% "
          f"(LQR {100 * s['lqr']['success_rate']:.1f}%), inference "
          f"{t['inference_ms_per_batch']:.2f} ms median / {t['inference_ms_per_batch_min']:.2f} ms "
          f"min per batch of {t['inference_batch_size']}; pipeline {s['timings']['total_s']:.0f} s "
          f"-> {Path(args.output_dir) / 'pipeline_summary.json'}")


if __name__ == "__main__":
    main()
