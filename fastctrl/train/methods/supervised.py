"""Supervised: learning from whole profile rows, by labels or by the row's rewards.

The oracle label of a (request, budget) is the config with the best reward in the profile row
of that request, the reward averaged over every measured latency repeat (reading a row costs
``C x S`` env_steps). ``loss="cross_entropy"`` fits those labels per head. The label uses what
the controller cannot see (the answer's length, the latency noise, a noisy answer's luck), so
requests that look alike carry different labels and the per-head modes of such a mix can be a
config that misses the budget: on the default profile, cross-entropy imitation often ends below
its own untrained policy.

``loss="cell_labels"`` (the default) denoises the label first: a context's label is the config
with the best mean reward over every pool context of its cell (the same task type and budget
ratio), one joint config per cell, fitted per head by cross-entropy. Its heads agree on one
config: the controller learns each cell's Bayes decision under what it cannot see (what the
lookup table's ``table`` mode decides), served through the decision engines.
``loss="expected_reward"`` (cost-sensitive classification) maximises ``sum_c p(c | x) r(x, c)``
under the factorised head distribution, with the whole reward row as the target; its optimum
for an observation is the config best on average over the requests that look like it, but
gradient ascent does not always get there (on the noisy family it ends on one cheap config at
every budget, below the best static config).

Rows arrive as the profile is read: each step profiles the next train requests, adds their
rows to the pool and makes ``updates_per_step`` gradient updates on the pool, so the learning
curve is the model trained on the first k profiled requests for growing k, on the same
env_step axis as the trained-online methods. Rare labels are handled by inverse-frequency class
weights per head (``weighted_loss``, over the pool so far; the label losses only) or by weighted
sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ...cli import need_at_least
from ...env import Contexts, ProfileEnv
from .base import Method, grouped_log_prob
from .row_pool import RowPool, labelled_rows


@dataclass
class SupervisedConfig:
    """The supervised method's own hyper-parameters."""

    loss: Literal["cell_labels", "cross_entropy", "expected_reward"] = "cell_labels"
    """Fit the best config of each (task type, budget ratio) cell per head, fit each request's
    own oracle label per head, or maximise the expected reward of the whole row."""
    class_balance: Literal["none", "weighted_loss", "weighted_sampling"] = "none"
    """Rare labels: none, inverse-label-frequency class weights (the label losses only), or
    sampling rows by those weights (any loss)."""
    label_requests: int = 0
    """Train requests whose whole profile row is read for labels (0: all)."""
    updates_per_step: int = 100
    """Gradient updates (batch_size labels each) after each profiled chunk of requests."""

    def __post_init__(self) -> None:
        need_at_least(self, 0, "label_requests")
        need_at_least(self, 1, "updates_per_step")


def oracle_labels(env: ProfileEnv, reqs: np.ndarray) -> tuple[Contexts, np.ndarray]:
    """Every context of the rows of ``reqs`` with its best config (flat index) by the mean reward
    over the measured repeats (reads the rows: ``C x S`` env_steps each)."""
    ctx, rewards = labelled_rows(env, reqs)
    return ctx, rewards.argmax(1)


def cell_labels(task_types: np.ndarray, ratios: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """For each context, the config with the best mean reward over the contexts of its cell
    (same task type, same budget ratio): ``rewards`` is ``[n, C]``, the result ``[n]``."""
    keys = np.stack(
        [
            np.unique(np.asarray(task_types).astype(str), return_inverse=True)[1],
            np.unique(ratios, return_inverse=True)[1],
        ],
        1,
    )
    _, cell = np.unique(keys, axis=0, return_inverse=True)
    cell = cell.reshape(-1)
    sums = np.zeros((cell.max() + 1, rewards.shape[1]))
    np.add.at(sums, cell, rewards)
    return sums.argmax(1)[cell]


class Supervised(Method):
    name = "supervised"
    Config = SupervisedConfig
    cost_timer = "label_generation_s"
    # classification on a small label pool: validation utility after 120k env_steps on
    # synthetic_profile(500) peaked at -0.008 with lr 1e-3 vs -0.16 with the shared 1e-4
    loop_defaults = {"lr": 1e-3}
    args: SupervisedConfig

    def setup(self) -> None:
        self.pool = RowPool(self.env, self.rng, self.device, self.args.label_requests)
        self.labels = np.zeros(0, dtype=np.int64)

    @property
    def exhausted(self) -> bool:
        return self.pool.exhausted(self.rows_per_step)

    @property
    def iterations_per_epoch(self) -> int:
        """Steps until every train request has been profiled once."""
        return self.profiling_steps(self.pool.n_requests)

    def relabel(self) -> None:
        """Labels and class weights of the whole pool (they follow the grown pool)."""
        rewards = self.pool.raw_rewards
        if self.args.loss == "cell_labels":  # the cells' best configs
            self.labels = cell_labels(
                self.env.profile.task_types[self.pool.ctx.req], self.pool.ctx.ratio, rewards
            )
        else:
            self.labels = rewards.argmax(1)
        idx = self.env.profile.config_indices[self.labels]  # [N, n_knobs]
        self.label_idx = torch.from_numpy(idx).to(self.device)
        self.class_weights = []
        sample_w = np.ones(len(idx))
        for k, size in enumerate(self.env.space.sizes):
            counts = np.bincount(idx[:, k], minlength=size).astype(np.float64)
            w = np.where(counts > 0, counts.sum() / (size * np.maximum(counts, 1)), 0.0)
            self.class_weights.append(torch.tensor(w, dtype=torch.float32, device=self.device))
            sample_w *= w[idx[:, k]] ** (1.0 / len(self.env.space.sizes))
        self.sample_p = sample_w / sample_w.sum()

    def _next_batch(self) -> np.ndarray:
        bs = self.cfg.loop.batch_size
        if self.args.class_balance == "weighted_sampling":
            return self.rng.choice(len(self.labels), size=bs, p=self.sample_p)
        return self.pool.next_batch(bs)

    def update(self) -> float:
        """One gradient step on a batch of the label pool; returns the loss."""
        b = self._next_batch()
        image, text, budget, task = self.inputs(self.pool.ctx.take(b))
        self.controller.train()
        logits = self.controller(image, text, budget, task)
        if self.args.loss == "expected_reward":
            return self._expected_reward_update(logits, b)
        loss = torch.zeros((), device=self.device)
        for k, name in enumerate(self.controller.knob_names):
            w = self.class_weights[k] if self.args.class_balance == "weighted_loss" else None
            loss = loss + F.cross_entropy(logits[name], self.label_idx[b, k], weight=w)
        self.apply_update(loss)
        return float(loss.detach())

    def _expected_reward_update(self, logits: dict[str, torch.Tensor], b: np.ndarray) -> float:
        """Ascend ``sum_c p(c | x) r(x, c)``, ``p`` the product of the per-head softmaxes."""
        actions = {k: v.expand(len(b), -1) for k, v in self.pool.all_configs.items()}
        loss = -(grouped_log_prob(logits, actions).exp() * self.pool.rewards[b]).sum(1).mean()
        self.apply_update(loss)
        return float(loss.detach())

    def train_step(self) -> dict[str, float]:
        with self.timer(self.cost_timer):
            self.pool.read(self.rows_per_step)
        self.relabel()
        losses = [self.update() for _ in range(self.args.updates_per_step)]
        return {"loss": float(np.mean(losses)), "labels": float(len(self.labels))}

    def extra_state(self) -> dict[str, Any]:
        return self.pool.state()

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool.load_state(state)
        self.relabel()

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """The supervised method's own hyper-parameters for ``python -m fastctrl.tune``."""
        return {
            "loss": trial.suggest_categorical(
                "loss", ["cell_labels", "cross_entropy", "expected_reward"]
            ),
            "class_balance": trial.suggest_categorical(
                "class_balance", ["none", "weighted_loss", "weighted_sampling"]
            ),
            "updates_per_step": trial.suggest_int("updates_per_step", 10, 300, log=True),
        }
