"""Shared pieces of the tests that train controllers: a small run's flags and the run itself."""

from __future__ import annotations

from pathlib import Path

from fastctrl.train.cli import parse_train_args
from fastctrl.train.loop import Run


def synthetic_training(requests: int, max_env_steps: int, eval_every_steps: int) -> list[str]:
    """The flags of a quiet run on ``requests`` synthetic requests that validates every
    ``eval_every_steps`` of its ``max_env_steps`` env-step budget (`fastctrl train`, `compare`
    and `tune` take them alike)."""
    return (
        f"--synthetic_requests {requests} --max_env_steps {max_env_steps} "
        f"--eval_every_steps {eval_every_steps} --quiet"
    ).split()


#: the smallest budget the compare, tune and Ray tests train on
TINY_TRAINING = synthetic_training(200, 3000, 1500)


def training_run(output_dir: str | Path, *flags: str) -> Run:
    """The run ``fastctrl train FLAGS --output_dir OUTPUT_DIR`` would start."""
    return Run(parse_train_args([*flags, "--output_dir", str(output_dir)]))
