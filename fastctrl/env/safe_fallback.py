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

Cells (``cells``):

- ``task_budget``: one cell per (task type, budget), each on its own requests;
- ``budget``: one cell per budget, the known task types pooled (more requests, more power, no
  per-task guarantee);
- ``hierarchical`` (the default): a (task type, budget) cell keeps the policy when its own
  requests show the gain, or when the pooled budget shows it and the task's own cell does not
  show a loss (its one-sided upper bound is not below 0). A small validation split (the digits
  profile: 80 requests, ~13 per cell) rarely shows a gain in a cell of its own; the pooled
  budget can, without serving a task whose cell shows the policy worse.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..policy.fallback import SafeFallback
from .bandit import Contexts, ProfileEnv
from .baselines import StaticPolicy, expected_quality_rewards
from .evaluation import to_flat

FallbackCells = Literal["hierarchical", "task_budget", "budget"]
FALLBACK_CELLS: tuple[str, ...] = typing.get_args(FallbackCells)

#: decisions ``[n, n_knobs]`` of the unguarded policy for contexts, with the requests' task
#: types (an array of names) or ``None`` (task unknown)
DecideFn = Callable[[Contexts, "np.ndarray | None"], np.ndarray]


def paired_bounds(
    diff: np.ndarray, confidence: float, n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    """One-sided lower and upper bounds of the mean of paired differences (percentile
    bootstrap, each at ``confidence``)."""
    n = len(diff)
    means = diff[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    return float(np.quantile(means, 1.0 - confidence)), float(np.quantile(means, confidence))


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
    cells: FallbackCells = "hierarchical",
) -> SafeFallback:
    """The fallback table of a policy (see the module docstring)."""
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    if cells not in FALLBACK_CELLS:
        raise ValueError(f"cells must be one of {FALLBACK_CELLS}, got {cells!r}")
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
    rows = np.arange(len(ctx))
    u_static = rewards[rows, to_flat(val_env, static.decide(ctx, val_env))]
    tasks = np.asarray(prof.task_types[ctx.req]).astype(str)
    rng = np.random.default_rng(seed)
    budgets = np.asarray([ctx.budget_ms[ctx.ratio == r][0] for r in ratios])
    evidence: list[dict[str, Any]] = []

    def gains(sel: np.ndarray, with_task: bool) -> np.ndarray:
        """Per-context reward gain over static of the contexts ``sel``."""
        flat = to_flat(
            val_env, decide(ctx.take(np.flatnonzero(sel)), tasks[sel] if with_task else None)
        )
        return rewards[np.flatnonzero(sel), flat] - u_static[sel]

    def test(name: str, diff: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        """``[K, 2]`` bounds per budget of per-context gains ``diff`` at budget ratios ``ratio``
        (rows: NaN where there are none)."""
        out = np.full((len(ratios), 2), np.nan)
        if not len(diff):
            return out
        for k, r in enumerate(ratios):
            d = diff[ratio == r]
            out[k] = paired_bounds(d, confidence, n_boot, rng)
            evidence.append(
                {
                    "task": name,
                    "budget_ratio": r,
                    "budget_ms": float(budgets[k]),
                    "n": len(d),
                    "mean_gain": float(d.mean()),
                    "lower_bound": float(out[k, 0]),
                    "upper_bound": float(out[k, 1]),
                }
            )
        return out

    use = np.zeros((len(task_types) + 1, len(ratios)), dtype=bool)
    # slot 0 (task unknown): every request, decided without its task
    everyone = np.ones(len(ctx), bool)
    use[0] = test("", gains(everyone, False), ctx.ratio)[:, 0] > 0
    if task_types:
        # the known tasks' requests decided once, with their tasks; each cell reads its rows
        known = np.isin(tasks, task_types)
        gain = np.full(len(ctx), np.nan)
        gain[known] = gains(known, True)
        pooled = test("*", gain[known], ctx.ratio[known]) if cells != "task_budget" else None
        for i, t in enumerate(task_types):
            if cells == "budget":
                use[i + 1] = pooled[:, 0] > 0
                continue
            own = test(t, gain[tasks == t], ctx.ratio[tasks == t])
            use[i + 1] = own[:, 0] > 0  # a shown gain of the task's own cell
            if pooled is not None:  # or a shown gain at the budget, the task not shown worse
                use[i + 1] |= (pooled[:, 0] > 0) & ~(own[:, 1] < 0)
    return SafeFallback(
        budget_ms=budgets,
        static=prof.config_indices[static.configs[np.searchsorted(static.ratios, ratios)]],
        use_policy=use,
        knob_names=tuple(knob_names),
        task_types=tuple(task_types),
        evidence=evidence,
    )


def summary(fallback: SafeFallback, confidence: float) -> dict[str, Any]:
    """How many cells keep the policy, and the validation gain over the best static config
    (mean reward per validation context whose task type the policy knows, or every context
    when it takes none) of the raw policy and of the deployed one: for ``eval_results.json``,
    logs and choosing what ships."""
    slot = {t: i + 1 for i, t in enumerate(fallback.task_types)}
    k = {float(b): i for i, b in enumerate(fallback.budget_ms)}
    if fallback.task_types:
        cells = [e for e in fallback.evidence if e["task"] in slot]
        if not cells:  # pooled cells only: one row per budget for every known task
            cells = [
                {**e, "task": fallback.task_types[0]} for e in fallback.evidence if e["task"] == "*"
            ]
    else:
        cells = [e for e in fallback.evidence if e["task"] == ""]
    n = sum(e["n"] for e in cells)
    kept = [fallback.use_policy[slot.get(e["task"], 0), k[e["budget_ms"]]] for e in cells]
    raw = sum(e["n"] * e["mean_gain"] for e in cells) / n if n else None
    deployed = (
        sum(e["n"] * e["mean_gain"] for e, keep in zip(cells, kept, strict=True) if keep) / n
        if n
        else None
    )
    return {
        "confidence": confidence,
        "cells": int(fallback.use_policy.size),
        "cells_policy": int(fallback.use_policy.sum()),
        "budget_ms": fallback.budget_ms.tolist(),
        "use_policy": fallback.use_policy.tolist(),
        "val_gain_raw": raw,
        "val_gain_deployed": deployed,
    }
