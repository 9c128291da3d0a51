"""Compare TinyRecursiveControl with random controls and the LQR oracle on a test set.

    python -m fastctrl.recursive_control.baseline_comparison --test_data data/lqr_test/lqr_dataset.npz \
        --trc_checkpoint runs/control/supervised/best_model.pt \
        --output_dir runs/control

Writes ``comparison_results.json`` and a Markdown table (``comparison_table.md``) in
``--output_dir``. The random baseline
draws each control uniformly in ``[-control_bound, control_bound]`` (seeded).

Unless ``--no-generalization``, the same methods are also judged beyond the test box
(:mod:`.generalize`: scales, step counts, horizons, cost weights) against the optimum of the
bounded problem, with the LQR oracle replaced by its bounded counterpart, the LQR feedback
clipped to the bound; ``comparison_generalization.md`` / ``.png`` go beside the JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from . import generalize, lqr, lqr_dataset, run_command
from .model import load_checkpoint
from .optimality_gap import MetricArgs, check_compatible, predict, time_inference, time_ms
from .rollout_cost import rollout_metrics
from .system import DoubleIntegrator

TABLE_FILE = "comparison_table.md"
GENERALIZATION_STEM = "comparison_generalization"
RESULTS_FILE = "comparison_results.json"


def random_policy(seed: int) -> generalize.Policy:
    """Controls uniform in the bound, seeded per call (the same for the same states)."""

    def policy(system: DoubleIntegrator, x0: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.uniform(
            -system.control_bound, system.control_bound, size=(len(x0), system.num_steps)
        )

    return policy


@dataclass
class CompareArgs(MetricArgs):
    """Random controls vs TinyRecursiveControl vs the LQR oracle."""

    test_data: str = "data/lqr_test/lqr_dataset.npz"
    """Test dataset (lqr_dataset.npz or its directory)."""
    trc_checkpoint: str = "runs/control/supervised/best_model.pt"
    """TinyRecursiveControl checkpoint."""
    output_dir: str = "runs/control"
    """Where comparison_results.json, comparison_table.md and (with the generalisation
    sweep) comparison_generalization.md / .png go."""
    seed: int = 0
    """Seed of the random-control baseline."""


def compare(args: CompareArgs) -> dict[str, Any]:
    ds = lqr_dataset.load(args.test_data)
    model, ckpt = load_checkpoint(args.trc_checkpoint)
    check_compatible(model, ds.system, f"--test_data {args.test_data}")
    sys_, x0 = ds.system, ds.initial_states
    sol = lqr.solve(sys_)
    lqr_u, _, lqr_costs = lqr.rollout(sys_, x0, sol)

    rng = np.random.default_rng(args.seed)
    rand_u = rng.uniform(-sys_.control_bound, sys_.control_bound, size=(len(ds), sys_.num_steps))
    trc_u = predict(model, x0)

    rows: dict[str, dict[str, Any]] = {
        "random": rollout_metrics(sys_, x0, rand_u, lqr_costs, args.success_threshold),
        "trc": rollout_metrics(sys_, x0, trc_u, lqr_costs, args.success_threshold),
        "lqr": rollout_metrics(sys_, x0, lqr_u[..., 0], lqr_costs, args.success_threshold),
    }
    rows["trc"].update(time_inference(model, x0, args.timing_batch_size, args.timing_repeats))
    rows["trc"]["num_parameters"] = model.num_parameters()
    rows["lqr"]["inference_ms_per_batch"] = float(
        np.median(time_ms(lambda: lqr.rollout(sys_, x0, sol), repeats=20))
    )
    rows["lqr"]["inference_batch_size"] = len(ds)
    rows["lqr"]["note"] = "closed-form Riccati feedback rollout in numpy float64 (the oracle)"
    for name in ("random", "trc"):
        r = rows[name]
        r["final_error_reduction_vs_random_percent"] = float(
            100.0 * (1.0 - r["mean_final_error"] / rows["random"]["mean_final_error"])
        )
    result = {
        "test_data": str(args.test_data),
        "trc_checkpoint": str(args.trc_checkpoint),
        "num_samples": len(ds),
        "success_threshold": args.success_threshold,
        "model_config": ckpt["model_config"],
        "methods": rows,
    }
    if args.generalization:
        policies = {
            "random controls": random_policy(args.seed),
            "TinyRecursiveControl": generalize.model_policy(model),
            "saturated LQR feedback": generalize.saturated_lqr_policy,
        }
        gen = generalize.sweep(policies, sys_, args.sweep_args(), args.success_threshold)
        out = Path(args.output_dir)
        generalize.write(
            gen, None, out / f"{GENERALIZATION_STEM}.md", out / f"{GENERALIZATION_STEM}.png"
        )
        result["generalization"] = gen
    io.write_json(Path(args.output_dir) / RESULTS_FILE, result)
    io.write_text(Path(args.output_dir) / TABLE_FILE, format_table(result) + "\n")
    return result


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of the comparison."""
    lines = [
        f"Double integrator, {result['num_samples']} test states; success = final error < "
        f"{result['success_threshold']}",
        "",
        "| method | mean final error | success rate | mean cost | gap from LQR cost | "
        "inference (ms / batch) |",
        "|---|---|---|---|---|---|",
    ]
    labels = {"random": "random controls", "trc": "TinyRecursiveControl", "lqr": "LQR (oracle)"}
    for key, label in labels.items():
        r = result["methods"][key]
        t = r.get("inference_ms_per_batch")
        timing = f"{t:.2f} (batch {r['inference_batch_size']})" if t is not None else "-"
        lines.append(
            f"| {label} | {r['mean_final_error']:.4f} | {100 * r['success_rate']:.1f}% "
            f"| {r['mean_cost']:.3f} | {r['cost_gap_percent']:.2f}% | {timing} |"
        )
    return "\n".join(lines)


def command(args: CompareArgs) -> None:
    """Compare and print the tables (``fastctrl lqr compare``)."""
    result = compare(args)
    if not args.quiet:
        print(format_table(result))
        if "generalization" in result:
            print("\n" + generalize.format_table(result["generalization"]))


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(CompareArgs, command, argv, name="baseline_comparison")


if __name__ == "__main__":
    raise SystemExit(main())
