"""Generate an LQR dataset for the double integrator.

    python -m fastctrl.recursive_control.generate --num_samples 10000 --num_steps 15 \
        --time_horizon 5.0 --seed 42 --output_dir data/lqr_train
    python -m fastctrl.recursive_control.generate --num_samples 1000 --seed 123 --output_dir data/lqr_test

Writes ``<output_dir>/lqr_dataset.npz`` (format: :mod:`fastctrl.recursive_control.lqr_dataset`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from ..cli import need, need_positive
from . import lqr_dataset, run_command
from .system import DoubleIntegrator

log = logging.getLogger(__name__)


@dataclass
class GenerateArgs:
    """Generate LQR-optimal trajectories of the double integrator."""

    num_samples: int = 10000
    """Number of initial states (one optimal trajectory each)."""
    seed: int = 42
    """Seed of the initial-state sampler (use another seed for the test set)."""
    output_dir: str = "data/lqr_train"
    """Directory that receives lqr_dataset.npz."""
    position_range: float = 2.0
    """Initial positions are uniform in [-position_range, position_range]."""
    velocity_range: float = 2.0
    """Initial velocities are uniform in [-velocity_range, velocity_range]."""
    system: tyro.conf.OmitArgPrefixes[DoubleIntegrator] = field(default_factory=DoubleIntegrator)
    """The double integrator, its horizon and its cost (the control bound must not be active
    at the LQR optimum)."""
    quiet: bool = False
    """Print nothing on success."""

    def __post_init__(self) -> None:
        need_positive(self, "num_samples", "position_range", "velocity_range")
        need(bool(self.output_dir), "--output_dir must not be empty")


def run(args: GenerateArgs) -> Path:
    """Generate and save the dataset; returns the path of the written file."""
    ds = lqr_dataset.generate(
        args.system, args.num_samples, args.seed, args.position_range, args.velocity_range
    )
    path = Path(args.output_dir) / lqr_dataset.DATASET_FILE
    lqr_dataset.save(ds, path)
    log.info("wrote %d LQR trajectories to %s", len(ds), path)
    return path


def command(args: GenerateArgs) -> None:
    """Generate the dataset and describe it (``fastctrl lqr generate``)."""
    path = run(args)
    if not args.quiet:
        ds = lqr_dataset.load(path)
        err = ds.system.final_error(ds.state_trajectories)
        print(
            f"wrote {path}: {len(ds)} samples, N={ds.system.num_steps}, "
            f"T={ds.system.time_horizon}s, mean LQR cost {ds.costs.mean():.4f}, "
            f"max |u*| {np.abs(ds.control_sequences).max():.3f}, "
            f"LQR final error mean {err.mean():.2e} max {err.max():.2e}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(GenerateArgs, command, argv, name="generate")


if __name__ == "__main__":
    raise SystemExit(main())
