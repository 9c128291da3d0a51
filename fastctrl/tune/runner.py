"""One tuning trial: train with the trial's overrides, selecting on validation; return the best
validation utility. Plain dicts in and out, so any backend (this process, a pool, Ray) can call
it."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import io
from ..train.config import TrainConfig
from .search_space import apply_params


def run_trial(
    config: dict[str, Any], params: dict[str, Any], workdir: str | Path
) -> dict[str, Any]:
    """Fit ``TrainConfig.from_dict(config)`` with ``params`` applied, checkpoints in
    ``workdir``. Only ``Run.fit`` runs: the test split is never read (checked: its env is left
    exactly as it was built).

    Returns ``{"value": best validation utility, "best_env_steps", "env_steps",
    "train_time_s", "duration_s", "metrics": the best validation point's metrics}``.
    """
    from ..train.loop import Run

    t0 = time.perf_counter()
    cfg = apply_params(TrainConfig.from_dict(config), params)
    cfg.run.output_dir, cfg.run.quiet, cfg.run.resume = str(workdir), True, None
    run = Run(cfg)
    test_before = (run.test_env.env_steps, copy.deepcopy(run.test_env.rng.bit_generator.state))
    train_time = run.fit()
    if (run.test_env.env_steps, run.test_env.rng.bit_generator.state) != test_before:
        raise RuntimeError("a tuning trial touched the test split")
    assert run.best is not None  # fit always evaluates the untrained policy first
    return {
        "value": float(run.best["utility"]),
        "best_env_steps": int(run.best["env_steps"]),
        "env_steps": int(run.train_env.env_steps),
        "train_time_s": float(train_time),
        "duration_s": time.perf_counter() - t0,
        "metrics": io.to_json(run.best["metrics"]),
    }


def run_trial_job(job: tuple[dict[str, Any], dict[str, Any], str]) -> dict[str, Any]:
    """:func:`run_trial` of ``(config, params, parent_dir)`` with its checkpoints in a
    temporary directory under ``parent_dir``, removed afterwards (one picklable argument:
    what :func:`fastctrl.distributed.map_jobs` calls on any backend)."""
    config, params, parent = job
    Path(parent).mkdir(parents=True, exist_ok=True)  # on a Ray node it may not exist yet
    with tempfile.TemporaryDirectory(prefix=".trial-", dir=parent) as work:
        return run_trial(config, params, work)
