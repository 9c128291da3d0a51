"""Supervised: cross-entropy per head on oracle labels.

The label of a (request, budget) is the config with the best reward in the profile row of that
request (read once at setup: one env_step per configuration read). Rare configs are handled by
inverse-frequency class weights per head (``weighted_loss``) or by weighted sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ...cli import need_at_least
from ...env import Contexts
from .base import Method


@dataclass
class SupervisedConfig:
    """The supervised method's own hyper-parameters."""

    class_balance: Literal["none", "weighted_loss", "weighted_sampling"] = "weighted_loss"
    """Rare labels: none, inverse-label-frequency class weights, or weighted sampling."""
    label_requests: int = 0
    """Train requests whose whole profile row is read for labels (0: all)."""

    def __post_init__(self) -> None:
        need_at_least(self, 0, "label_requests")


def oracle_labels(method: Method, label_requests: int) -> tuple[Contexts, np.ndarray]:
    """Read the profile rows of the label requests (``label_requests`` of the train split, 0:
    all) and return every (request, ratio) context with its best config (flat index). Counts
    one env_step per configuration read."""
    env = method.env
    reqs = method.rng.permutation(env.requests)
    if label_requests:
        reqs = reqs[:label_requests]
    quality, latency = env.profile_rows(reqs)
    ctx = env.contexts(np.tile(reqs, len(env.budget_ratios)),
                       np.repeat(env.budget_ratios, len(reqs)))
    q = np.tile(quality, (len(env.budget_ratios), 1))
    lat = np.tile(latency, (len(env.budget_ratios), 1))
    rewards = env.reward(q, lat, ctx.budget_ms[:, None], env.complexity[None, :])
    return ctx, rewards.argmax(1)


class Supervised(Method):
    name = "supervised"
    Config = SupervisedConfig
    cost_timer = "label_generation_s"
    args: SupervisedConfig

    def setup(self) -> None:
        with self.timer(self.cost_timer):
            self.ctx, self.labels = oracle_labels(self, self.args.label_requests)
        idx = self.env.profile.config_indices[self.labels]               # [N, n_knobs]
        self.label_idx = torch.from_numpy(idx).to(self.device)
        self.class_weights = []
        sample_w = np.ones(len(idx))
        for k, size in enumerate(self.env.space.sizes):
            counts = np.bincount(idx[:, k], minlength=size).astype(np.float64)
            w = np.where(counts > 0, counts.sum() / (size * np.maximum(counts, 1)), 0.0)
            self.class_weights.append(torch.tensor(w, dtype=torch.float32, device=self.device))
            sample_w *= w[idx[:, k]] ** (1.0 / len(self.env.space.sizes))
        self.sample_p = sample_w / sample_w.sum()
        self._order = np.array([], dtype=np.int64)

    @property
    def iterations_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.labels) / self.cfg.loop.batch_size))

    def _next_batch(self) -> np.ndarray:
        bs = self.cfg.loop.batch_size
        if self.args.class_balance == "weighted_sampling":
            return self.rng.choice(len(self.labels), size=bs, p=self.sample_p)
        if len(self._order) < bs:
            self._order = np.concatenate([self._order, self.rng.permutation(len(self.labels))])
        batch, self._order = self._order[:bs], self._order[bs:]
        return batch

    def train_step(self) -> dict[str, float]:
        b = self._next_batch()
        image, text, budget = self.inputs(self.ctx.take(b))
        self.controller.train()
        logits = self.controller(image, text, budget)
        loss = torch.zeros((), device=self.device)
        for k, name in enumerate(self.controller.knob_names):
            w = self.class_weights[k] if self.args.class_balance == "weighted_loss" else None
            loss = loss + F.cross_entropy(logits[name], self.label_idx[b, k], weight=w)
        self.apply_update(loss)
        return {"loss": float(loss.detach())}
