"""Training-free lookup table built from the profiling data.

``table`` mode: (task_type, budget bin) -> the config with the best mean reward over the train
split's requests in that cell (budget bins are log-spaced over the train budgets; an unseen
cell falls back to the best config of its budget bin over all tasks). ``knn`` mode: average the
reward of every config over the ``lut_neighbors`` train requests nearest in feature space
(standardised features, PCA to 32 dims), evaluated at the query's own budget. Building the
table reads whole profile rows (one env_step per configuration read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ...cli import need_at_least
from ...env import Contexts, ProfileEnv
from .base import Method

PCA_DIMS = 32


@dataclass
class LUTConfig:
    """The lookup table's own settings."""

    lut_mode: Literal["table", "knn"] = "table"
    """table ((task_type, budget bin) -> config) or knn (nearest requests in feature space)."""
    lut_budget_bins: int = 16
    """Number of log-spaced budget bins."""
    lut_neighbors: int = 16
    """knn: neighbours averaged per decision."""
    label_requests: int = 0
    """Train requests whose whole profile row is read (0: all)."""

    def __post_init__(self) -> None:
        need_at_least(self, 1, "lut_budget_bins", "lut_neighbors")
        need_at_least(self, 0, "label_requests")


class LookupTable(Method):
    name = "lut"
    Config = LUTConfig
    cost_timer = "table_build_s"
    trains_controller = False
    args: LUTConfig

    def setup(self) -> None:
        env, cfg = self.env, self.args
        reqs = self.rng.permutation(env.requests)
        if cfg.label_requests:
            reqs = reqs[: cfg.label_requests]
        with self.timer(self.cost_timer):
            quality, latency = env.profile_rows(reqs)
            self.tasks = sorted(set(env.profile.task_types))
            if cfg.lut_mode == "table":
                self._build_table(reqs, quality, latency)
            else:
                self._build_knn(reqs, quality, latency)

    def _build_table(self, reqs: np.ndarray, quality: np.ndarray, latency: np.ndarray) -> None:
        env = self.env
        ctx = env.contexts(np.tile(reqs, len(env.budget_ratios)),
                           np.repeat(env.budget_ratios, len(reqs)))
        rewards = env.reward(np.tile(quality, (len(env.budget_ratios), 1)),
                             np.tile(latency, (len(env.budget_ratios), 1)),
                             ctx.budget_ms[:, None], env.complexity[None, :])
        lo, hi = np.log(ctx.budget_ms.min()), np.log(ctx.budget_ms.max())
        self.edges = np.exp(np.linspace(lo, hi, self.args.lut_budget_bins + 1)[1:-1])
        bins = np.searchsorted(self.edges, ctx.budget_ms)
        task = np.searchsorted(self.tasks, env.profile.task_types[ctx.req].astype(str))
        n_bins, c = self.args.lut_budget_bins, env.profile.n_configs
        sums = np.zeros((len(self.tasks), n_bins, c))
        counts = np.zeros((len(self.tasks), n_bins))
        np.add.at(sums, (task, bins), rewards)
        np.add.at(counts, (task, bins), 1)
        bin_sums = sums.sum(0)
        bin_counts = counts.sum(0)
        # bins with no train budget at all borrow the nearest populated bin
        filled = np.flatnonzero(bin_counts > 0)
        nearest = filled[np.abs(np.arange(n_bins)[:, None] - filled[None, :]).argmin(1)]
        fallback = bin_sums[nearest].argmax(1)
        self.table = np.where(counts > 0, sums.argmax(2), fallback[None, :])

    def _build_knn(self, reqs: np.ndarray, quality: np.ndarray, latency: np.ndarray) -> None:
        feats = self.env.profile.features
        x = np.concatenate([feats.image[reqs], feats.text[reqs]], 1).astype(np.float64)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mu) / self.sd
        _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
        self.proj = vt[:PCA_DIMS].T
        self.emb = z @ self.proj
        self.quality, self.latency = quality, latency

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        if self.args.lut_mode == "table":
            task = np.searchsorted(self.tasks, env.profile.task_types[ctx.req].astype(str))
            task = np.clip(task, 0, len(self.tasks) - 1)
            flat = self.table[task, np.searchsorted(self.edges, ctx.budget_ms)]
        else:
            feats = env.profile.features
            x = np.concatenate([feats.image[ctx.req], feats.text[ctx.req]], 1)
            q = ((x - self.mu) / self.sd) @ self.proj
            d = ((q[:, None, :] - self.emb[None, :, :]) ** 2).sum(-1)
            k = min(self.args.lut_neighbors, len(self.emb))
            nn = np.argpartition(d, k - 1, axis=1)[:, :k]                   # [n, k]
            r = env.reward(self.quality[nn], self.latency[nn], ctx.budget_ms[:, None, None],
                           env.complexity[None, None, :])                   # [n, k, C]
            flat = r.mean(1).argmax(1)
        return env.profile.config_indices[flat]

    def policy(self, engine: str = "torch"):
        del engine  # a table needs no decision engine; its decide() is timed directly
        return self

    def train_step(self) -> dict[str, float]:
        raise RuntimeError("the lookup table is built in setup(); it has no training steps")

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"mode": self.args.lut_mode, "tasks": list(self.tasks)}
        if self.args.lut_mode == "table":
            state.update(table=torch.from_numpy(self.table), edges=torch.from_numpy(self.edges))
        else:
            state.update(mu=torch.from_numpy(self.mu), sd=torch.from_numpy(self.sd),
                         proj=torch.from_numpy(self.proj), emb=torch.from_numpy(self.emb),
                         quality=torch.from_numpy(self.quality),
                         latency=torch.from_numpy(self.latency))
        return state
