"""Learning-rate schedules, one factory for every trainer.

Each trainer keeps its own constants (passed in, documented where it calls this): the VLM
controller loop follows its env-step budget (:func:`lr_factor`, cosine annealed to 0) and its
plateau schedule watches validation utility (``mode="max"``); TinyRecursiveControl steps per
epoch, anneals to 1% of the peak and watches validation loss (``mode="min"``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

SchedulerKind = Literal["cosine", "step", "plateau", "none"]
Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def make_scheduler(
    kind: SchedulerKind,
    optimizer: torch.optim.Optimizer | None,
    *,
    total_steps: int,
    eta_min: float = 0.0,
    step_gamma: float = 0.3,
    plateau_mode: Literal["min", "max"] = "max",
    plateau_patience: int = 3,
    plateau_factor: float = 0.5,
) -> Scheduler | None:
    """``kind`` over ``total_steps`` scheduler steps (``None`` for ``none`` or no optimizer).

    cosine: to ``eta_min``; step: x ``step_gamma`` every third of the steps; plateau: x
    ``plateau_factor`` after ``plateau_patience`` steps without a better watched value.
    """
    if optimizer is None or kind == "none":
        return None
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total_steps, eta_min=eta_min
        )
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=max(1, total_steps // 3), gamma=step_gamma
        )
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=plateau_mode, factor=plateau_factor, patience=plateau_patience
        )
    raise ValueError(f"--scheduler must be one of cosine, step, plateau, none; got {kind!r}")


def lr_factor(kind: SchedulerKind, progress: float, *, step_gamma: float = 0.3) -> float | None:
    """Learning-rate multiplier at ``progress`` in [0, 1] of a budget, for schedules that
    follow it (cosine to 0; step: x ``step_gamma`` per third); ``None`` for the others."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if kind == "step":
        return step_gamma ** min(int(3 * p), 2)
    if kind == "none":
        return 1.0
    return None


def step_scheduler(scheduler: Scheduler | None, watched: float | None) -> None:
    """Step once; a plateau scheduler only on a new watched value (``None``: no new value)."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if watched is not None:
            scheduler.step(watched)
    else:
        scheduler.step()
