"""Decision policies for evaluation: the no-training baselines and the engine-backed controller.

Every policy answers ``decide(ctx, env) -> [n, n_knobs]`` grid indices for a batch of
(request, budget) contexts. Baselines:

- ``random``: a uniformly random config per decision (seeded).
- ``full``: the unmodified model (top of every grid).
- ``best_static``: per E5 budget ratio, the one config with the best mean reward on the train
  split (it is told the budget level, as in E5; it never sees the request).
- ``oracle``: per request and budget, the config with the best reward averaged over the
  measured repeats — hindsight, an upper bound no deployable controller can beat on average.
  On a profile with noisy measured quality it also picks the cells whose answers were lucky,
  so it is out of reach there.
- ``oracle_expected`` (profiles with ``quality_expected`` only): the same, on the expected
  quality — the ceiling of a policy's expected utility, and the one to judge against when the
  measured quality is noisy.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..engines.base import Engine
from .bandit import Contexts, ProfileEnv


class Policy(Protocol):
    name: str

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray: ...


class EnginePolicy:
    """A trained controller, deciding through a decision engine on the request's features."""

    def __init__(self, engine: Engine, name: str = "controller") -> None:
        self.engine = engine
        self.name = name

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        image, text = env.features(ctx)
        return np.asarray(
            self.engine.decide(
                image, text, ctx.budget_ms.astype(np.float32), task=env.profile.task_types[ctx.req]
            )
        )


class RandomPolicy:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        flat = self.rng.integers(0, env.profile.n_configs, size=len(ctx))
        return env.profile.config_indices[flat]


class FullPolicy:
    name = "full"

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        full = np.asarray(env.space.full().indices, dtype=np.int64)
        return np.tile(full, (len(ctx), 1))


class StaticPolicy:
    """One config per budget ratio (nearest known ratio for others)."""

    def __init__(self, table: dict[float, int], name: str = "best_static") -> None:
        if not table:
            raise ValueError("a static policy needs at least one (ratio -> config) entry")
        self.ratios = np.asarray(sorted(table), dtype=np.float64)
        self.configs = np.asarray([table[r] for r in sorted(table)], dtype=np.int64)
        self.name = name

    @classmethod
    def fit(cls, train_env: ProfileEnv) -> StaticPolicy:
        """Per ratio, the config with the highest mean expected reward on ``train_env``."""
        table = {}
        for ratio in train_env.budget_ratios:
            ctx = train_env.all_contexts((ratio,))
            table[ratio] = int(train_env.expected_rewards(ctx).mean(0).argmax())
        return cls(table)

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        nearest = np.abs(ctx.ratio[:, None] - self.ratios[None, :]).argmin(1)
        return env.profile.config_indices[self.configs[nearest]]


class OraclePolicy:
    name = "oracle"

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        return env.profile.config_indices[env.expected_rewards(ctx).argmax(1)]


def expected_quality_rewards(env: ProfileEnv, ctx: Contexts) -> np.ndarray:
    """``[n, C]`` reward of every config on the profile's *expected* quality, averaged over the
    measured latency repeats (judging only: no env_steps, never part of what a learner sees)."""
    qe = env.profile.quality_expected
    if qe is None:
        raise ValueError(
            "the profile has no expected quality (Profile.quality_expected); only "
            "profiles with a quality_expected column have an expected oracle"
        )
    q = qe[ctx.req].astype(np.float64)[:, :, None]
    lat = env.profile.latency[ctx.req].astype(np.float64)
    r = env.reward(q, lat, ctx.budget_ms[:, None, None], env.complexity[None, :, None])
    return r.mean(axis=2)


class ExpectedOraclePolicy:
    """Per request and budget, the config with the best reward on expected quality."""

    name = "oracle_expected"

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        return env.profile.config_indices[expected_quality_rewards(env, ctx).argmax(1)]


def baseline_policies(train_env: ProfileEnv, eval_env: ProfileEnv, seed: int = 0) -> list[Policy]:
    """The baselines to judge on ``eval_env``: random (seeded) / full / best_static (fit on
    ``train_env``) / oracle, and oracle_expected where its profile has expected quality."""
    policies: list[Policy] = [
        RandomPolicy(seed),
        FullPolicy(),
        StaticPolicy.fit(train_env),
        OraclePolicy(),
    ]
    if eval_env.profile.quality_expected is not None:
        policies.append(ExpectedOraclePolicy())
    return policies
