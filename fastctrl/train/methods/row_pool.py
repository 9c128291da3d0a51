"""The pool of whole profile rows an offline method has read: every (request, budget ratio)
context of those rows with the reward of each config, shared by the supervised method and
GRPO's offline groups."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...env import Contexts, ProfileEnv


def labelled_rows(env: ProfileEnv, reqs: np.ndarray) -> tuple[Contexts, np.ndarray]:
    """Read the whole profile rows of ``reqs`` (counts ``C x S`` env_steps each) and return every
    (request, budget ratio) context with the ``[n, C]`` reward of each config, averaged over the
    measured repeats."""
    quality, latency = env.profile_rows(reqs)
    n_ratios = len(env.budget_ratios)
    ctx = env.contexts(np.tile(reqs, n_ratios), np.repeat(env.budget_ratios, len(reqs)))
    rewards = env.row_rewards(
        np.tile(quality, (n_ratios, 1)), np.tile(latency, (n_ratios, 1, 1)), ctx.budget_ms
    )
    return ctx, rewards


class RowPool:
    """Train requests in a seeded order, read ``n`` at a time into a growing pool of contexts.

    ``rewards`` holds each context's reward row centred on its mean (the centring changes no
    gradient of a row-wise objective, and reads as reward above the row's mean);
    ``all_configs`` is every config as per-knob actions ``[1, C]``, for joint log-probs of a
    whole row.
    """

    def __init__(
        self, env: ProfileEnv, rng: np.random.Generator, device: torch.device, limit: int = 0
    ) -> None:
        self.env, self.rng, self.device = env, rng, device
        self.requests = rng.permutation(env.requests)
        if limit:
            self.requests = self.requests[:limit]
        self.n_read = 0
        self.chunks: list[int] = []
        """Requests per :meth:`read`: the pool's order, which a resumed pool rebuilds."""
        self.ctx = env.contexts(np.zeros(0, dtype=np.int64), np.zeros(0))
        n_configs = env.profile.n_configs
        self.raw_rewards = np.zeros((0, n_configs))
        self.rewards = torch.zeros((0, n_configs), device=device)
        idx = torch.from_numpy(env.profile.config_indices).to(device)
        self.all_configs = {n: idx[None, :, i] for i, n in enumerate(env.space.names)}
        self._order = np.zeros(0, dtype=np.int64)

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    def exhausted(self, rows_per_step: int) -> bool:
        """Every request read, or not one more row fits the env-step budget."""
        return self.n_read >= len(self.requests) or rows_per_step == 0

    def read(self, n: int) -> tuple[Contexts, np.ndarray]:
        """Profile the next ``n`` requests into the pool; their contexts and reward rows."""
        chunk = self.requests[self.n_read : self.n_read + n]
        self.n_read += len(chunk)
        self.chunks.append(len(chunk))
        return self._add(chunk)

    def _add(self, reqs: np.ndarray) -> tuple[Contexts, np.ndarray]:
        ctx, rewards = labelled_rows(self.env, reqs)
        self.ctx = Contexts(
            *(np.concatenate([a, b]) for a, b in zip(_fields(self.ctx), _fields(ctx), strict=True))
        )
        self.raw_rewards = np.concatenate([self.raw_rewards, rewards])
        centred = (rewards - rewards.mean(1, keepdims=True)).astype(np.float32)
        self.rewards = torch.cat([self.rewards, torch.from_numpy(centred).to(self.device)])
        self._order = np.zeros(0, dtype=np.int64)  # a new permutation over the grown pool
        return ctx, rewards

    def next_batch(self, size: int) -> np.ndarray:
        """``size`` pool indices: the pool in seeded random order, one pass after another."""
        if len(self._order) < size:
            self._order = np.concatenate([self._order, self.rng.permutation(len(self.ctx))])
        batch, self._order = self._order[:size], self._order[size:]
        return batch

    def state(self) -> dict[str, Any]:
        return {
            "requests": torch.from_numpy(self.requests),
            "read": int(self.n_read),
            "chunks": torch.tensor(self.chunks, dtype=torch.int64),
            "order": torch.from_numpy(self._order),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Rebuild the pool from the rows read, chunk by chunk as they were read (the pool's
        order is what the saved batch order indexes); their cost is already in the env_steps."""
        self.requests = state["requests"].numpy()
        self.n_read = int(state["read"])
        self.chunks = [int(n) for n in state["chunks"].tolist()]
        steps = self.env.env_steps
        start = 0
        for n in self.chunks:
            self._add(self.requests[start : start + n])
            start += n
        self.env.env_steps = steps
        self._order = state["order"].numpy()


def _fields(ctx: Contexts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return ctx.req, ctx.budget_ms, ctx.ratio
