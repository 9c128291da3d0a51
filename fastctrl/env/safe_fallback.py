"""Fitting the safe fallback (:class:`fastctrl.policy.fallback.SafeFallback`) on validation.

For each budget of the validation grid and each task slot (the controller's task types, and
slot 0 for a request whose task is unknown), the policy's per-request reward is paired with the
best static config's on the same validation requests; the policy is kept in that cell only when
the lower end of a one-sided paired-bootstrap interval of the mean difference is above 0
(``confidence`` 0.95 by default: the 5th percentile of 2,000 resampled means), else the cell
serves the static config. Rewards are averaged over the measured latency repeats, on the
expected quality where the profile has it (a noisy profile's measured answers add luck the
decision cannot see). The static configs are the E5 ``best_static`` baseline's: per budget,
the config with the best mean reward on the train split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..policy.fallback import SafeFallback
from .bandit import Contexts, ProfileEnv
from .baselines import StaticPolicy, expected_quality_rewards
from .evaluation import to_flat

#: decisions ``[n, n_knobs]`` of the unguarded policy for contexts, with the requests' task
#: types (an array of names) or ``None`` (task unknown)
DecideFn = Callable[[Contexts, "np.ndarray | None"], np.ndarray]


def paired_lower_bound(
    diff: np.ndarray, confidence: float, n_boot: int, rng: np.random.Generator
) -> float:
    """One-sided lower bound of the mean of paired differences (percentile bootstrap)."""
    n = len(diff)
    means = diff[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    return float(np.quantile(means, 1.0 - confidence))


def fit_fallback(
    decide: DecideFn,
    knob_names: tuple[str, ...],
    task_types: tuple[str, ...],
    train_env: ProfileEnv,
    val_env: ProfileEnv,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> SafeFallback:
    """The fallback table of a policy (see the module docstring)."""
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    if val_env.baseline != "global":
        raise ValueError(
            "the safe fallback bins budgets in ms, which needs one budget per ratio: "
            f"--budget_baseline global (got {val_env.baseline!r})"
        )
    static = StaticPolicy.fit(train_env)
    ratios = tuple(sorted(val_env.budget_ratios))
    ctx = val_env.all_contexts(ratios)
    prof = val_env.profile
    rewards = (
        expected_quality_rewards(val_env, ctx)
        if prof.quality_expected is not None
        else val_env.expected_rewards(ctx)
    )
    static_flat = to_flat(val_env, static.decide(ctx, val_env))
    rows = np.arange(len(ctx))
    u_static = rewards[rows, static_flat]
    tasks = np.asarray(prof.task_types[ctx.req]).astype(str)
    rng = np.random.default_rng(seed)
    budgets = np.asarray([ctx.budget_ms[ctx.ratio == r][0] for r in ratios])
    use = np.zeros((len(task_types) + 1, len(ratios)), dtype=bool)
    evidence: list[dict[str, Any]] = []
    for slot in range(len(task_types) + 1):
        sel = np.ones(len(ctx), bool) if slot == 0 else tasks == task_types[slot - 1]
        if not sel.any():
            continue
        sub = ctx.take(np.flatnonzero(sel))
        flat = to_flat(val_env, decide(sub, None if slot == 0 else tasks[sel]))
        diff = rewards[np.flatnonzero(sel), flat] - u_static[sel]
        for k, ratio in enumerate(ratios):
            d = diff[sub.ratio == ratio]
            lower = paired_lower_bound(d, confidence, n_boot, rng)
            use[slot, k] = lower > 0.0
            evidence.append(
                {
                    "task": "" if slot == 0 else task_types[slot - 1],
                    "budget_ratio": ratio,
                    "budget_ms": float(budgets[k]),
                    "n": len(d),
                    "mean_gain": float(d.mean()),
                    "lower_bound": lower,
                    "policy": bool(use[slot, k]),
                }
            )
    return SafeFallback(
        budget_ms=budgets,
        static=prof.config_indices[static.configs[np.searchsorted(static.ratios, ratios)]],
        use_policy=use,
        knob_names=tuple(knob_names),
        task_types=tuple(task_types),
        evidence=evidence,
    )


def summary(fallback: SafeFallback, confidence: float) -> dict[str, Any]:
    """How many cells keep the policy, for ``eval_results.json`` and logs."""
    return {
        "confidence": confidence,
        "cells": int(fallback.use_policy.size),
        "cells_policy": int(fallback.use_policy.sum()),
        "budget_ms": fallback.budget_ms.tolist(),
        "use_policy": fallback.use_policy.tolist(),
    }
