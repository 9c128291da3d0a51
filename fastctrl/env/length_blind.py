"""A reachable reference for the default synthetic profile: the oracle blind to answer length.

The hindsight oracle picks each request's best config knowing everything the simulator drew,
the answer's length (``n_out``) included, which no server knows before it answers and which the
features reveal only weakly (probe R^2 0.218, see :mod:`fastctrl.profile.synthetic`). The
length-blind oracle knows every other hidden factor exactly (``v``, ``r``, image size, prompt
length, difficulty) and the answer length only as its task's prior: the exact distribution of
``clip(round(answer_median[task] * lognormal(0, ANSWER_SIGMA)), 1, ANSWER_MAX)``. Per request and
budget it takes the config with the best expected reward over that distribution and over the
latency measurement noise (Gauss-Hermite nodes of the lognormal). It sees more than a
controller (exact factors) and less (not the weak length hint in the text features), so it is
a reference, not a bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import norm

from ..profile.synthetic import ANSWER_MAX, ANSWER_SIGMA, NOISE_SIGMA, TASKS, _latency, _quality

if TYPE_CHECKING:
    from ..profile.table import Profile
    from . import Contexts, ProfileEnv

NOISE_NODES = 5
SIMULATOR = "fastctrl.profile.synthetic"  # the formulas below are this module's
_NEEDED = ("v", "r", "n_native", "prompt_tokens", "q_max")


def answer_length_prior(
    median: float, sigma: float = ANSWER_SIGMA, longest: int = ANSWER_MAX
) -> np.ndarray:
    """``P(n_out = k)`` for ``k = 1..longest`` under the simulator's draw (rounding, clipping)."""
    edges = np.log(np.arange(1, longest) + 0.5) - np.log(median)  # between k and k+1
    cdf = norm.cdf(edges / sigma)
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


class LengthBlindOracle:
    """The oracle without the answer length (see the module docstring) as a policy."""

    name = "oracle_length_blind"

    def __init__(self, profile: Profile) -> None:
        hidden = profile.hidden
        if (
            profile.simulator != SIMULATOR
            or hidden is None
            or any(k not in hidden for k in _NEEDED)
        ):
            raise ValueError(
                "the length-blind oracle needs a profile of "
                f"fastctrl.profile.synthetic_profile (its hidden factors), got one "
                f"of {profile.simulator or 'no simulator'}"
            )
        self.hidden = hidden
        self.priors = {t: answer_length_prior(spec.answer_median) for t, spec in TASKS.items()}
        x, w = np.polynomial.hermite_e.hermegauss(NOISE_NODES)
        self.noise, self.noise_w = np.exp(NOISE_SIGMA * x), w / w.sum()

    def expected_rewards(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        """``[n, C]`` expected reward of every config for the contexts ``ctx``."""
        h, req = self.hidden, ctx.req
        quality = np.clip(
            _quality(env.space, h["v"][req], h["r"][req], h["n_native"][req], h["q_max"][req]),
            0.0,
            1.0,
        )[:, :, None]
        prior = self.length_probs(ctx, env)
        total = np.zeros(quality.shape[:2])
        for k in range(ANSWER_MAX):
            base = _latency(
                env.space, h["prompt_tokens"][req], h["n_native"][req], np.full(len(req), k + 1.0)
            )
            r = env.reward(
                quality,
                base[:, :, None] * self.noise,
                ctx.budget_ms[:, None, None],
                env.complexity[None, :, None],
            )
            total += prior[:, k, None] * (r * self.noise_w).sum(2)
        return total

    def length_probs(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        """``[n, ANSWER_MAX]``: what the oracle knows of each answer's length (its task's
        prior)."""
        tasks = np.asarray(env.profile.task_types)[ctx.req].astype(str)
        names = sorted(self.priors)
        table = np.stack([self.priors[t] for t in names])
        return table[np.searchsorted(names, tasks)]

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        return env.profile.config_indices[self.expected_rewards(ctx, env).argmax(1)]
