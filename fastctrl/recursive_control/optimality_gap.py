"""Evaluate a trained TinyRecursiveControl against the LQR optimum on a test set.

    python -m fastctrl.recursive_control.optimality_gap --checkpoint runs/control/supervised/best_model.pt \
        --test_data data/lqr_test/lqr_dataset.npz \
        --output_dir runs/control/supervised

The model's controls are simulated through the exact float64 dynamics. Metrics: mean final-state
error ``||x_N||``, success rate (final error < ``--success_threshold``, 0.1), mean trajectory
cost, gap from the LQR cost in percent (``100 * (mean cost / mean LQR cost - 1)``; the LQR costs
are recomputed here from a fresh Riccati solve and checked against the stored ones), and the
inference time of one forward pass over a batch of ``--timing_batch_size`` initial states.

Beside the in-distribution numbers it measures generalisation (:mod:`.generalize`, on unless
``--no-generalization``): initial-state scales (``--scales``), step counts, horizons and cost
weights, each against the optimum of the bounded problem, for the checkpoint and, with
``--onnx``, the exported model; the JSON gets a ``generalization`` entry and
``evaluation_generalization.md`` / ``.png`` go beside it.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ..cli import need_positive
from . import generalize, lqr, lqr_dataset, run_command
from .model import TinyRecursiveControl, load_checkpoint
from .rollout_cost import rollout_metrics
from .system import DoubleIntegrator

log = logging.getLogger(__name__)


@dataclass
class MetricArgs(generalize.SweepArgs):
    """What evaluate and compare share: how a rollout is scored and the forward pass timed, and
    where generalisation is measured."""

    success_threshold: float = 0.1
    """A rollout succeeds when its final-state error is below this."""
    timing_batch_size: int = 1000
    """Batch size of the timed forward pass (test states are tiled to reach it)."""
    timing_repeats: int = 50
    """Timed forward passes (after 5 warm-up passes); the median is reported."""
    generalization: bool = True
    """Also measure generalisation (scales, step counts, horizons, cost weights)."""
    quiet: bool = False
    """Print nothing on success."""

    def __post_init__(self) -> None:
        super().__post_init__()
        need_positive(self, "success_threshold", "timing_batch_size", "timing_repeats")


@dataclass
class EvaluateArgs(MetricArgs):
    """Evaluate a TinyRecursiveControl checkpoint on an LQR test set."""

    checkpoint: str = "runs/control/supervised/best_model.pt"
    """Checkpoint written by python -m fastctrl.recursive_control.supervised_training."""
    test_data: str = "data/lqr_test/lqr_dataset.npz"
    """Test dataset (lqr_dataset.npz or its directory)."""
    output_dir: str = "runs/control/supervised"
    """Where the metrics go (evaluation_results.json) and, with the generalisation sweep,
    evaluation_generalization.md / .png."""
    onnx: str = ""
    """An export of the checkpoint (python -m fastctrl.recursive_control.onnx_export) to judge too."""


GENERALIZATION_STEM = "evaluation_generalization"
RESULTS_FILE = "evaluation_results.json"


def predict(model: TinyRecursiveControl, initial_states: np.ndarray) -> np.ndarray:
    """Controls [n, N] (float64) for initial states [n, 2]."""
    with torch.inference_mode():
        u = model(torch.tensor(initial_states, dtype=torch.float32))
    assert isinstance(u, torch.Tensor)
    return u.double().numpy()


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 0) -> np.ndarray:
    """Wall time (ms) of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3


def time_inference(
    model: TinyRecursiveControl,
    initial_states: np.ndarray,
    batch_size: int,
    repeats: int,
    warmup: int = 5,
) -> dict[str, float]:
    """Median / min wall time (ms) of one forward pass over ``batch_size`` states (CPU)."""
    reps = int(np.ceil(batch_size / len(initial_states)))
    x = torch.tensor(np.tile(initial_states, (reps, 1))[:batch_size], dtype=torch.float32)
    with torch.inference_mode():
        ms = time_ms(lambda: model(x), repeats, warmup)
    return {
        "inference_ms_per_batch": float(np.median(ms)),
        "inference_ms_per_batch_min": float(ms.min()),
        "inference_ms_per_batch_p90": float(np.percentile(ms, 90)),
        "inference_batch_size": int(batch_size),
        "torch_threads": torch.get_num_threads(),
    }


def lqr_reference(ds: lqr_dataset.LQRDataset, success_threshold: float) -> dict[str, Any]:
    """LQR metrics from a fresh Riccati solve, checked against the dataset's stored costs."""
    controls, _, costs = lqr.rollout(ds.system, ds.initial_states)
    max_dev = float(np.abs(costs - ds.costs).max())
    if not np.allclose(costs, ds.costs, rtol=1e-8, atol=1e-10):
        raise ValueError(
            f"test data: stored LQR costs differ from a fresh Riccati solve by up to "
            f"{max_dev:.3g}; the dataset is not LQR-optimal for its system"
        )
    m = rollout_metrics(ds.system, ds.initial_states, controls[..., 0], costs, success_threshold)
    m["max_abs_deviation_from_stored_costs"] = max_dev
    return m


def check_compatible(model: TinyRecursiveControl, system: DoubleIntegrator, what: str) -> None:
    c = model.config
    pairs = (
        ("num_steps", c.num_steps, system.num_steps),
        ("time_horizon", c.time_horizon, system.time_horizon),
        ("control_bound", c.control_bound, system.control_bound),
    )
    for name, mine, theirs in pairs:
        if not np.isclose(float(mine), float(theirs)):
            raise ValueError(
                f"{what}: {name}={theirs} but the model was trained with {name}={mine}"
            )


def evaluate(args: EvaluateArgs) -> dict[str, Any]:
    if args.onnx and not Path(args.onnx).is_file():
        raise FileNotFoundError(f"--onnx: no file at {args.onnx}")
    model, ckpt = load_checkpoint(args.checkpoint)
    ds = lqr_dataset.load(args.test_data)
    check_compatible(model, ds.system, f"--test_data {args.test_data}")
    ref = lqr_reference(ds, args.success_threshold)
    controls = predict(model, ds.initial_states)
    metrics = rollout_metrics(
        ds.system, ds.initial_states, controls, ds.costs, args.success_threshold
    )
    metrics["control_rmse"] = float(
        np.sqrt(np.mean((controls - ds.control_sequences[..., 0]) ** 2))
    )
    metrics.update(
        time_inference(model, ds.initial_states, args.timing_batch_size, args.timing_repeats)
    )
    result = {
        "checkpoint": str(args.checkpoint),
        "test_data": str(args.test_data),
        "num_samples": len(ds),
        "success_threshold": args.success_threshold,
        "model_config": ckpt["model_config"],
        "num_parameters": model.num_parameters(),
        "trc": metrics,
        "lqr": ref,
        "success_rate_gap_points": 100.0 * (ref["success_rate"] - metrics["success_rate"]),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
    }
    if args.onnx:
        onnx_u = generalize.onnx_policy(args.onnx)(ds.system, ds.initial_states)
        result["onnx"] = rollout_metrics(
            ds.system, ds.initial_states, onnx_u, ds.costs, args.success_threshold
        )
        result["onnx"]["max_abs_difference_from_torch"] = float(np.abs(onnx_u - controls).max())
    if args.generalization:
        policies = {"trc": generalize.model_policy(model)}
        if args.onnx:
            policies["trc (onnx)"] = generalize.onnx_policy(args.onnx)
        gen = generalize.sweep(policies, ds.system, args.sweep_args(), args.success_threshold)
        out = Path(args.output_dir)
        generalize.write(
            gen, None, out / f"{GENERALIZATION_STEM}.md", out / f"{GENERALIZATION_STEM}.png"
        )
        result["generalization"] = gen
    io.write_json(Path(args.output_dir) / RESULTS_FILE, result)
    return result


def command(args: EvaluateArgs) -> None:
    """Evaluate and print the summary (``fastctrl lqr evaluate``)."""
    r = evaluate(args)
    if not args.quiet:
        t, q = r["trc"], r["lqr"]
        print(
            f"TRC on {r['num_samples']} test states: cost gap {t['cost_gap_percent']:.3f}% "
            f"from LQR, success {100 * t['success_rate']:.1f}% (LQR {100 * q['success_rate']:.1f}%)"
            f", mean final error {t['mean_final_error']:.4f} (LQR {q['mean_final_error']:.4f}), "
            f"inference {t['inference_ms_per_batch']:.2f} ms per batch of "
            f"{t['inference_batch_size']} -> {Path(args.output_dir) / RESULTS_FILE}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(EvaluateArgs, command, argv, name="optimality_gap")


if __name__ == "__main__":
    raise SystemExit(main())
