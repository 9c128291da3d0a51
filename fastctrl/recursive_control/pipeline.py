"""The whole double-integrator experiment in one command (the guide's ``train.sh``).

    python -m fastctrl.recursive_control.pipeline --output_dir runs/control

Stages: generate the training set (seed 42) and the test set (seed 123), train
TinyRecursiveControl, fine-tune it on the control cost, export it to ONNX, evaluate it (and the
export) on the test set and beyond it (:mod:`.generalize`: scales x1 to x5 the training box,
step counts, horizons, cost weights, against the optimum of the bounded problem), and compare
it with random controls, the clipped LQR feedback and the LQR oracle.

``--preset generalizing`` (the default since issue 17) trains the scale-equivariant model
conditioned on the step count (``--train_num_steps``, 10, 15 and 20) for 150 epochs on the
training box (``--scale_max`` > 1 adds scaled copies labelled with the bounded optimum; off by
default, it bought less than fine-tuning, see the README), then fine-tunes it on the rollout
cost for ``--finetune_steps`` steps on states up to ``--finetune_scale_max`` x the box.
``--preset baseline`` is the pipeline as it was before (tanh model, 60 epochs on the training
box, no fine-tuning: those flags are ignored). Layout of ``--output_dir``::

    data/lqr_train/lqr_dataset.npz   data/lqr_test/lqr_dataset.npz
    supervised/  best_model.pt last_model.pt training_stats.json training_curves.png model.onnx
    finetuned/   best_model.pt finetune_stats.json finetune_curves.png        (generalizing)
                 model.onnx (N = --num_steps) model_N10.onnx model_N20.onnx
    evaluation_results.json  evaluation_generalization.md/.png
    comparison_results.json  comparison_table.md  comparison_generalization.md/.png
    pipeline_summary.json

The final model (``final_checkpoint`` / ``final_onnx`` in the summary) is the fine-tuned one,
or the supervised one with the baseline preset or ``--finetune_steps 0``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from .. import io
from ..cli import need, need_at_least, need_positive
from ..train.schedules import SchedulerKind
from . import run_command
from .baseline_comparison import CompareArgs, compare, format_table
from .finetune import finetune_stage
from .generalize import SweepArgs
from .generalize import format_table as generalization_table
from .generate import GenerateArgs
from .generate import run as generate
from .model import ModelSize, load_checkpoint
from .onnx_export import export_onnx
from .optimality_gap import EvaluateArgs, evaluate
from .supervised_training import TRCTrainConfig, train
from .system import DoubleIntegrator

log = logging.getLogger(__name__)

TARGET_GAP_PERCENT = 5.0
TARGET_SUCCESS_POINTS = 2.0
TARGET_INFERENCE_MS = 10.0
# issue 17: in-distribution gap, gap and success at x3 the training box, N in {10, 15, 20}
TARGET_IN_BOX_GAP_PERCENT = 0.2
TARGET_X3_GAP_PERCENT, TARGET_X3_SUCCESS = 5.0, 0.95
TARGET_STEPS_GAP_PERCENT, TARGET_STEPS = 2.0, (10, 15, 20)


def generalization_targets(gen: dict[str, Any], in_box_gap: float) -> dict[str, bool | None]:
    """Issue 17's targets for the policy ``trc`` of a sweep (None: the sweep has no such row)."""
    rows = {r["label"]: r["policies"]["trc"] for r in gen["rows"]}
    x3 = rows.get("x3")
    steps = [rows.get(f"N={n}") for n in TARGET_STEPS]
    return {
        "in_box_gap_at_most_0.2_percent": in_box_gap <= TARGET_IN_BOX_GAP_PERCENT,
        "x3_gap_at_most_5_percent_success_at_least_95": None
        if x3 is None
        else bool(
            x3["served"]
            and x3["cost_gap_percent"] <= TARGET_X3_GAP_PERCENT
            and x3["success_rate"] >= TARGET_X3_SUCCESS
        ),
        "steps_10_15_20_within_2_percent": None
        if any(m is None for m in steps)
        else all(
            m is not None and m["served"] and m["cost_gap_percent"] <= TARGET_STEPS_GAP_PERCENT
            for m in steps
        ),
    }


Preset = Literal["generalizing", "baseline"]


@dataclass
class PipelineArgs(SweepArgs):
    """Generate data, train, fine-tune, evaluate and compare TinyRecursiveControl on the double
    integrator, in and beyond the training box."""

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
    epochs: int = 0
    """Maximum training epochs (0: the preset's, 150 generalizing, 60 baseline)."""
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
    """Export the supervised and the fine-tuned model to model.onnx in their directories."""
    preset: Preset = "generalizing"
    """generalizing: the recipe of issue 17 (below); baseline: the pipeline before it."""
    scale_max: float = 1.0
    """generalizing: add a copy of each training state scaled by up to this (bounded-optimum
    labels); 1: the training box only."""
    train_num_steps: tuple[int, ...] = (10, 15, 20)
    """generalizing: step counts the model is conditioned on (one of them --num_steps)."""
    finetune_steps: int = 6000
    """generalizing: steps of fine-tuning on the rollout cost (0: none)."""
    finetune_scale_max: float = 8.0
    """generalizing: fine-tuning states are up to this x the training box."""
    finetune_lr: float = 3e-4
    """generalizing: fine-tuning learning rate."""
    quiet: bool = False
    """No progress bars; print only the final table."""

    def __post_init__(self) -> None:
        super().__post_init__()
        need_positive(self, "num_train", "num_test", "finetune_scale_max", "finetune_lr")
        need_at_least(self, 0, "epochs", "finetune_steps")
        need(
            self.preset == "baseline"
            or not self.train_num_steps
            or self.num_steps in self.train_num_steps,
            f"--train_num_steps {self.train_num_steps} must include --num_steps {self.num_steps}",
        )
        need(
            self.train_seed != self.test_seed,
            f"--train_seed and --test_seed must differ (both {self.train_seed})",
        )


def run(args: PipelineArgs) -> dict[str, Any]:
    out = Path(args.output_dir)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    t0 = time.perf_counter()
    common = {
        "system": DoubleIntegrator(num_steps=args.num_steps, time_horizon=args.time_horizon),
        "quiet": True,
        "position_range": args.position_range,
        "velocity_range": args.velocity_range,
    }
    train_path = generate(
        GenerateArgs(
            num_samples=args.num_train,
            seed=args.train_seed,
            output_dir=str(out / "data" / "lqr_train"),
            **common,
        )
    )
    test_path = generate(
        GenerateArgs(
            num_samples=args.num_test,
            seed=args.test_seed,
            output_dir=str(out / "data" / "lqr_test"),
            **common,
        )
    )
    timings["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    generalizing = args.preset == "generalizing"
    res = train(
        TRCTrainConfig(
            data=str(train_path),
            output_dir=str(out / "supervised"),
            model_size=args.model_size,
            epochs=args.epochs or (150 if generalizing else 60),
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            scheduler=args.scheduler,
            seed=args.seed,
            device=args.device,
            export_onnx=args.export_onnx,
            quiet=args.quiet,
            scale_equivariant=generalizing,
            scale_max=args.scale_max if generalizing else 1.0,
            train_num_steps=tuple(args.train_num_steps) if generalizing else (),
        )
    )
    timings["train_s"] = time.perf_counter() - t0
    final = res.best_checkpoint
    onnx = final.parent / "model.onnx" if args.export_onnx else None
    finetuned: dict[str, Any] | None = None
    if generalizing and args.finetune_steps > 0:
        t0 = time.perf_counter()
        finetuned = finetune_stage(final, out / "finetuned", args, export_onnx=args.export_onnx)
        final = Path(finetuned["best_checkpoint"])
        onnx = final.parent / "model.onnx" if args.export_onnx else None
        timings["finetune_s"] = time.perf_counter() - t0
    if generalizing and args.export_onnx:
        # one graph per other step count the model serves (model.onnx is --num_steps)
        model, _ = load_checkpoint(final)
        for n in args.train_num_steps:
            if n != args.num_steps:
                export_onnx(model, final.parent / f"model_N{n}.onnx", num_steps=n)

    # what the evaluation and the comparison share: the test set, the output, the sweep
    on_test = dict(
        test_data=str(test_path),
        output_dir=str(out),
        quiet=True,
        **{k: getattr(args, k) for k in SweepArgs.__dataclass_fields__},
    )
    t0 = time.perf_counter()
    ev = evaluate(EvaluateArgs(checkpoint=str(final), onnx=str(onnx) if onnx else "", **on_test))
    timings["evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cmp = compare(CompareArgs(trc_checkpoint=str(final), **on_test))
    timings["compare_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all

    trc, ref = ev["trc"], ev["lqr"]
    summary = {
        "args": asdict(args),
        "timings": timings,
        "load_average_1min": {
            "start": load_start,
            "end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "final_checkpoint": str(final),
        "final_onnx": str(onnx) if onnx else None,
        "num_parameters": ev["num_parameters"],
        "epochs_run": res.stats["epochs_run"],
        "finetune": None
        if finetuned is None
        else {
            k: finetuned[k]
            for k in (
                "val_gap_percent_before",
                "val_gap_percent_best",
                "best_step",
                "finetune_seconds",
            )
        },
        "trc": {
            k: trc[k]
            for k in (
                "cost_gap_percent",
                "success_rate",
                "mean_final_error",
                "mean_cost",
                "inference_ms_per_batch",
                "inference_ms_per_batch_min",
                "inference_batch_size",
            )
        },
        "lqr": {k: ref[k] for k in ("success_rate", "mean_final_error", "mean_cost")},
        "targets": {
            "cost_gap_percent_at_most_5": trc["cost_gap_percent"] <= TARGET_GAP_PERCENT,
            "success_within_2_points_of_lqr": ev["success_rate_gap_points"]
            <= TARGET_SUCCESS_POINTS,
            "inference_batch_1000_under_10ms": trc["inference_batch_size"] == 1000
            and trc["inference_ms_per_batch"] < TARGET_INFERENCE_MS,
            **generalization_targets(ev["generalization"], trc["cost_gap_percent"]),
        },
        "comparison_table": format_table(cmp),
        "generalization_table": generalization_table(ev["generalization"]),
    }
    io.write_json(out / "pipeline_summary.json", summary)
    return summary


def command(args: PipelineArgs) -> None:
    """Run the pipeline and print its tables (``fastctrl lqr pipeline``)."""
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(name)s: %(message)s"
    )
    s = run(args)
    print(s["comparison_table"])
    print("\n" + s["generalization_table"])
    t = s["trc"]
    print(
        f"\ngap from LQR {t['cost_gap_percent']:.3f}%, success {100 * t['success_rate']:.1f}% "
        f"(LQR {100 * s['lqr']['success_rate']:.1f}%), inference "
        f"{t['inference_ms_per_batch']:.2f} ms median / {t['inference_ms_per_batch_min']:.2f} ms "
        f"min per batch of {t['inference_batch_size']}; pipeline {s['timings']['total_s']:.0f} s "
        f"-> {Path(args.output_dir) / 'pipeline_summary.json'}"
    )


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    return run_command(PipelineArgs, command, argv, name="pipeline", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
