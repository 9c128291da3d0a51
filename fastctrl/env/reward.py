"""Rewards: one module, two formulas. All arrays broadcast; latency and budget in ms.

E5 common reward (what every method is trained and judged on in the E5 comparison)::

    r = quality - lambda * max(0, latency - budget) / budget

Shaped reward of the GRPO controller design (``alpha, beta, gamma, delta, epsilon``)::

    r = alpha * quality
        - beta    * sigmoid((latency - budget) / (tau * budget))    # smooth latency penalty
        - gamma   * [latency > budget]                              # budget violation (hard)
        - epsilon * complexity                                      # mean normalised knob index
        + delta   * [latency <= budget] * (1 - latency / budget)    # efficiency bonus

``complexity`` is the mean over knobs of ``index / (grid size - 1)``, in [0, 1] (0 = cheapest
config, 1 = full). Defaults follow the design: alpha=1.0, beta=0.5, gamma=10.0, delta=0.1,
epsilon=0.05; ``tau`` = 0.05 sets the sigmoid's width to 5% of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class E5Reward:
    """``quality - lam * max(0, latency - budget) / budget``."""

    lam: float = 10.0
    """Penalty per unit of relative budget overshoot (10: a 3% overshoot, about one sigma of
    latency noise, costs 0.3 quality, so the oracle keeps SLO violations near 3%)."""

    name = "e5"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"reward lambda must be finite and >= 0, got {self.lam}")

    def __call__(self, quality, latency, budget, complexity=None) -> np.ndarray:
        quality, latency, budget = (
            np.asarray(x, dtype=np.float64) for x in (quality, latency, budget)
        )
        return quality - self.lam * np.maximum(0.0, latency - budget) / budget

    def to_dict(self) -> dict:
        return {"name": self.name, "lambda": self.lam}


@dataclass(frozen=True)
class ShapedReward:
    """The GRPO design's shaped reward (see module docstring)."""

    alpha: float = 1.0
    """Weight of accuracy."""
    beta: float = 0.5
    """Weight of the sigmoid-smoothed latency penalty."""
    gamma: float = 10.0
    """Weight of the hard budget-violation penalty."""
    delta: float = 0.1
    """Weight of the efficiency bonus (reward for finishing under budget)."""
    epsilon: float = 0.05
    """Weight of the complexity penalty (prefers cheaper configs at equal reward)."""
    tau: float = 0.05
    """Width of the latency sigmoid as a fraction of the budget."""

    name = "shaped"

    def __post_init__(self) -> None:
        for k in ("alpha", "beta", "gamma", "delta", "epsilon"):
            v = getattr(self, k)
            if not np.isfinite(v):
                raise ValueError(f"reward_{k} must be finite, got {v}")
        if not self.tau > 0:
            raise ValueError(f"reward tau must be > 0, got {self.tau}")

    def __call__(self, quality, latency, budget, complexity=None) -> np.ndarray:
        quality, latency, budget = (
            np.asarray(x, dtype=np.float64) for x in (quality, latency, budget)
        )
        cx = 0.0 if complexity is None else np.asarray(complexity, dtype=np.float64)
        over = latency > budget
        z = np.clip((latency - budget) / (self.tau * budget), -60.0, 60.0)
        smooth = 1.0 / (1.0 + np.exp(-z))
        bonus = np.where(over, 0.0, 1.0 - latency / budget)
        return (
            self.alpha * quality
            - self.beta * smooth
            - self.gamma * over
            - self.epsilon * cx
            + self.delta * bonus
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "alpha": self.alpha,
            "beta": self.beta,
            "gamma": self.gamma,
            "delta": self.delta,
            "epsilon": self.epsilon,
            "tau": self.tau,
        }


Reward = E5Reward | ShapedReward


RewardKind = Literal["e5", "shaped"]


def make_reward(name: RewardKind = "e5", **kwargs) -> Reward:
    """``e5`` (kwargs: ``lam``) or ``shaped`` (kwargs: alpha, beta, gamma, delta, epsilon, tau)."""
    if name == "e5":
        return E5Reward(**kwargs)
    if name == "shaped":
        return ShapedReward(**kwargs)
    raise ValueError(f"reward must be 'e5' or 'shaped', got {name!r}")
