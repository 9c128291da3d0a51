"""ProfileEnv: a contextual bandit over a profile.

A step is one request + budget in, one config out, quality and latency back (the latency is
one of the measured repeats, drawn with the env's seeded generator). ``env_steps`` counts every
configuration evaluated, for every method alike: an RL sample is one step, a GRPO group of G
is G steps, and an offline method that reads a request's whole row of the profile table pays
one step per config it reads.

Budgets: ``ratio x baseline`` where the ratios are the E5 set ``[0.35, 0.50, 0.70, 0.85, 1.00]``
and the baseline is the full configuration's mean latency, global (the default: the mean over
the train split, so no split leaks into another) or per request. The GRPO guide's per-sample
variants are ``0.8x / 1.0x / 1.2x`` the latency of a sample's own config (:func:`guide_budgets`).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..profile.table import Profile
from .reward import E5Reward, Reward

E5_BUDGET_RATIOS: tuple[float, ...] = (0.35, 0.50, 0.70, 0.85, 1.00)
GUIDE_BUDGET_RATIOS: tuple[float, ...] = (0.8, 1.0, 1.2)
BudgetBaseline = Literal["global", "request"]
BASELINES: tuple[str, ...] = typing.get_args(BudgetBaseline)


def guide_budgets(
    latency_ms: np.ndarray, ratios: tuple[float, ...] = GUIDE_BUDGET_RATIOS
) -> np.ndarray:
    """The GRPO guide's per-sample budget variants: ``[..., len(ratios)]`` = ratio x latency."""
    lat = np.asarray(latency_ms, dtype=np.float64)
    return lat[..., None] * np.asarray(ratios)


def config_complexity(profile: Profile) -> np.ndarray:
    """[C] mean normalised knob index of each config, in [0, 1] (0 = cheapest)."""
    sizes = np.asarray(profile.space.sizes, dtype=np.float64)
    return (profile.config_indices / np.maximum(sizes - 1, 1)).mean(1)


@dataclass
class Contexts:
    """A batch of (request, budget) pairs. ``req`` indexes the profile's requests."""

    req: np.ndarray
    budget_ms: np.ndarray
    ratio: np.ndarray

    def __len__(self) -> int:
        return len(self.req)

    def take(self, idx: np.ndarray) -> Contexts:
        return Contexts(self.req[idx], self.budget_ms[idx], self.ratio[idx])

    def repeat_each(self, k: int) -> Contexts:
        """Each context ``k`` times in a row (the rows of a ``[n, k]`` group, flattened)."""
        return self.take(np.repeat(np.arange(len(self)), k))


@dataclass
class StepResult:
    quality: np.ndarray
    latency_ms: np.ndarray
    reward: np.ndarray


class ProfileEnv:
    """Contextual bandit over one split of a profile (see module docstring)."""

    def __init__(
        self,
        profile: Profile,
        split: str = "train",
        *,
        reward: Reward | None = None,
        budget_ratios: tuple[float, ...] = E5_BUDGET_RATIOS,
        baseline: BudgetBaseline = "global",
        seed: int = 0,
    ) -> None:
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
        ratios = tuple(float(r) for r in budget_ratios)
        if not ratios or any(not np.isfinite(r) or r <= 0 for r in ratios):
            raise ValueError(f"budget_ratios must be positive numbers, got {budget_ratios}")
        self.profile = profile
        self.split = split
        self.requests = profile.split_indices(split)
        if len(self.requests) == 0:
            raise ValueError(f"profile has no requests in split {split!r}")
        self.reward = reward or E5Reward()
        self.budget_ratios = ratios
        self.baseline = baseline
        full = profile.mean_latency[:, profile.full_index].astype(np.float64)
        if baseline == "global":
            train = profile.split_indices("train")
            ref = full[train].mean() if len(train) else full.mean()
            self.baseline_ms = np.full(profile.n_requests, ref)
        else:
            self.baseline_ms = full
        self.complexity = config_complexity(profile)
        self.rng = np.random.default_rng(seed)
        self.env_steps = 0

    # ------------------------------------------------------------------ contexts
    @property
    def space(self):
        return self.profile.space

    def contexts(self, req: np.ndarray, ratio: np.ndarray) -> Contexts:
        req = np.asarray(req, dtype=np.int64)
        ratio = np.broadcast_to(np.asarray(ratio, dtype=np.float64), req.shape).copy()
        return Contexts(req, ratio * self.baseline_ms[req], ratio)

    def sample_contexts(self, n: int) -> Contexts:
        """``n`` random (request, budget ratio) pairs from this split."""
        req = self.rng.choice(self.requests, size=n)
        ratio = self.rng.choice(np.asarray(self.budget_ratios), size=n)
        return self.contexts(req, ratio)

    def all_contexts(self, ratios: tuple[float, ...] | None = None) -> Contexts:
        """Every request of the split at every budget ratio (ratio-major order)."""
        ratios = self.budget_ratios if ratios is None else ratios
        req = np.tile(self.requests, len(ratios))
        ratio = np.repeat(np.asarray(ratios, dtype=np.float64), len(self.requests))
        return self.contexts(req, ratio)

    def features(self, ctx: Contexts) -> tuple[np.ndarray, np.ndarray]:
        feats = self.profile.features
        if feats is None:
            raise ValueError("this profile has no feature store; controllers need features")
        return feats.image[ctx.req], feats.text[ctx.req]

    # ------------------------------------------------------------------ interaction
    def step(self, ctx: Contexts, configs: np.ndarray) -> StepResult:
        """Run each context under its config (flat indices [n]); counts n env_steps."""
        configs = np.asarray(configs, dtype=np.int64).reshape(-1)
        if len(configs) != len(ctx):
            raise ValueError(
                f"configs must have one entry per context ({len(ctx)}), got {len(configs)}"
            )
        if (configs < 0).any() or (configs >= self.profile.n_configs).any():
            raise ValueError(f"configs must be flat indices in [0, {self.profile.n_configs})")
        rep = self.rng.integers(0, self.profile.n_repeats, size=len(ctx))
        quality = self.profile.quality[ctx.req, configs].astype(np.float64)
        latency = self.profile.latency[ctx.req, configs, rep].astype(np.float64)
        self.env_steps += len(ctx)
        reward = self.reward(quality, latency, ctx.budget_ms, self.complexity[configs])
        return StepResult(quality, latency, reward)

    def profile_rows(self, req: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read whole rows of the profile table (what offline methods learn from).

        Returns quality ``[n, C]`` and every measured latency repeat ``[n, C, S]``; counts
        ``n * C * S`` env_steps, one per measurement read.
        """
        req = np.asarray(req, dtype=np.int64)
        quality = self.profile.quality[req].astype(np.float64)
        latency = self.profile.latency[req].astype(np.float64)
        self.env_steps += int(latency.size)
        return quality, latency

    def row_cost(self) -> int:
        """env_steps charged by :meth:`profile_rows` per request (configs x repeats)."""
        return int(self.profile.n_configs * self.profile.n_repeats)

    def row_rewards(
        self, quality: np.ndarray, latency: np.ndarray, budget_ms: np.ndarray
    ) -> np.ndarray:
        """``[n, C]`` reward of every config of rows read with :meth:`profile_rows`, averaged
        over the measured repeats, at one budget per row (no env_steps: nothing new is read)."""
        r = self.reward(
            quality[:, :, None],
            latency,
            np.asarray(budget_ms)[:, None, None],
            self.complexity[None, :, None],
        )
        return r.mean(axis=2)

    # ------------------------------------------------------------------ hindsight (no steps)
    def expected_rewards(self, ctx: Contexts) -> np.ndarray:
        """``[n, C]`` reward of every config averaged over the measured repeats (hindsight:
        for oracles and evaluation; does not count env_steps)."""
        q = self.profile.quality[ctx.req].astype(np.float64)[:, :, None]
        lat = self.profile.latency[ctx.req].astype(np.float64)
        r = self.reward(q, lat, ctx.budget_ms[:, None, None], self.complexity[None, :, None])
        return r.mean(axis=2)
