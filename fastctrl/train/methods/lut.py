"""Training-free lookup table built from the profiling data.

``table`` mode: (task_type, budget bin) -> the config with the best mean reward over the train
split's requests in that cell (budget bins are log-spaced over the train budgets; an unseen
cell falls back to the best config of its budget bin over all tasks). ``knn`` mode: average the
reward of every config over the ``lut_neighbors`` train requests nearest in feature space
(standardised features, PCA to 32 dims), evaluated at the query's own budget. Rewards are
means over every measured latency repeat.

The table is built from the profile as it is read: each step reads the whole rows (every config,
every repeat: ``C x S`` env_steps per request) of the next train requests and rebuilds the
table, so the learning curve is the table built from the first k profiled requests for growing
k, on the same env_step axis as the trained methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ...cli import need_at_least
from ...env import Contexts, ProfileEnv
from ...policy.lookup_table import LookupTablePolicy
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
        env = self.env
        self.tasks = sorted(set(env.profile.task_types))
        self._order = self.rng.permutation(env.requests)
        if self.args.label_requests:
            self._order = self._order[: self.args.label_requests]
        self._read = 0
        self.reqs = np.zeros(0, dtype=np.int64)
        self.quality = np.zeros((0, env.profile.n_configs))
        self.latency = np.zeros((0, env.profile.n_configs, env.profile.n_repeats))
        # before any row is read the table runs the unmodified model (the full config) everywhere
        n_bins = self.args.lut_budget_bins
        self.edges = np.zeros(n_bins - 1)
        self.table = np.full((len(self.tasks), n_bins), env.profile.full_index, dtype=np.int64)

    @property
    def exhausted(self) -> bool:
        return self._read >= len(self._order) or self.rows_per_step == 0

    @property
    def iterations_per_epoch(self) -> int:
        """Steps until every train request has been profiled once."""
        return self.profiling_steps(len(self._order))

    def train_step(self) -> dict[str, float]:
        """Profile the next requests (whole rows) and rebuild the table from all read so far."""
        with self.timer(self.cost_timer):
            chunk = self._order[self._read : self._read + self.rows_per_step]
            self._read += len(chunk)
            q, lat = self.env.profile_rows(chunk)
            self.reqs = np.concatenate([self.reqs, chunk])
            self.quality = np.concatenate([self.quality, q])
            self.latency = np.concatenate([self.latency, lat])
            if self.args.lut_mode == "table":
                self._build_table()
            else:
                self._build_knn()
        return {"requests_read": float(self._read)}

    def _build_table(self) -> None:
        env, reqs = self.env, self.reqs
        n_ratios = len(env.budget_ratios)
        ctx = env.contexts(np.tile(reqs, n_ratios), np.repeat(env.budget_ratios, len(reqs)))
        rewards = env.row_rewards(
            np.tile(self.quality, (n_ratios, 1)),
            np.tile(self.latency, (n_ratios, 1, 1)),
            ctx.budget_ms,
        )
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
        # a (task, bin) cell no read request has yet falls back to its bin over all tasks
        self.table = np.where(counts > 0, sums.argmax(2), fallback[None, :])

    def _build_knn(self) -> None:
        feats, reqs = self.env.profile.features, self.reqs
        x = np.concatenate([feats.image[reqs], feats.text[reqs]], 1).astype(np.float64)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mu) / self.sd
        _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
        self.proj = vt[:PCA_DIMS].T
        self.emb = z @ self.proj

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        if self.args.lut_mode == "table" or not hasattr(self, "emb"):  # knn: no rows read yet
            task = np.searchsorted(self.tasks, env.profile.task_types[ctx.req].astype(str))
            task = np.clip(task, 0, len(self.tasks) - 1)
            flat = self.table[task, np.searchsorted(self.edges, ctx.budget_ms)]
        else:
            feats = env.profile.features
            x = np.concatenate([feats.image[ctx.req], feats.text[ctx.req]], 1)
            q = ((x - self.mu) / self.sd) @ self.proj
            d = ((q[:, None, :] - self.emb[None, :, :]) ** 2).sum(-1)
            k = min(self.args.lut_neighbors, len(self.emb))
            nn = np.argpartition(d, k - 1, axis=1)[:, :k]  # [n, k]
            r = env.reward(
                self.quality[nn][..., None],
                self.latency[nn],
                ctx.budget_ms[:, None, None, None],
                env.complexity[None, None, :, None],
            )  # [n, k, C, S]
            flat = r.mean(axis=(1, 3)).argmax(1)
        return env.profile.config_indices[flat]

    def serving_policy(self) -> LookupTablePolicy | None:
        """The table as a server runs it ((task type, budget) -> config); ``knn`` mode reads
        profile features per neighbour and is served by no hook path: ``None``."""
        if self.args.lut_mode != "table":
            return None
        prof = self.env.profile
        return LookupTablePolicy.from_flat(
            prof.space, self.tasks, self.edges, self.table, prof.config_indices
        )

    def policy(self, engine: str = "torch"):
        del engine  # a table needs no decision engine; its decide() is timed directly
        return self

    def policy_state(self) -> dict[str, Any]:
        """The table (or the neighbour index) as tensors: checkpoints load without pickle."""
        keys = (
            ("table", "edges")
            if self.args.lut_mode == "table" or not hasattr(self, "emb")
            else ("mu", "sd", "proj", "emb")
        )  # knn before any row: the full-config table
        return {k: torch.from_numpy(getattr(self, k).copy()) for k in keys}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        if "emb" not in state:
            for k in ("mu", "sd", "proj", "emb"):
                self.__dict__.pop(k, None)
        for k, v in state.items():
            setattr(self, k, v.numpy())
        if "emb" in state:  # knn: the neighbours of that point are the first len(emb) read
            n = len(self.emb)
            self.quality, self.latency = self.quality[:n], self.latency[:n]

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "mode": self.args.lut_mode,
            "tasks": list(self.tasks),
            "read": int(self._read),
            "order": torch.from_numpy(self._order),
            "quality": torch.from_numpy(self.quality),
            "latency": torch.from_numpy(self.latency),
        }
        if self.args.lut_mode == "table":
            state.update(table=torch.from_numpy(self.table), edges=torch.from_numpy(self.edges))
        else:
            state.update(
                mu=torch.from_numpy(self.mu),
                sd=torch.from_numpy(self.sd),
                proj=torch.from_numpy(self.proj),
                emb=torch.from_numpy(self.emb),
            )
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self._order = state["order"].numpy()
        self._read = int(state["read"])
        self.reqs = self._order[: self._read]
        self.quality, self.latency = state["quality"].numpy(), state["latency"].numpy()
        for key in ("table", "edges", "mu", "sd", "proj", "emb"):
            if key in state:
                setattr(self, key, state[key].numpy())

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """The lookup table's own settings for ``python -m fastctrl.tune`` (each mode has its
        own knob: budget bins for the table, neighbours for knn)."""
        mode = trial.suggest_categorical("lut_mode", ["table", "knn"])
        if mode == "table":
            return {
                "lut_mode": mode,
                "lut_budget_bins": trial.suggest_int("lut_budget_bins", 4, 32, log=True),
            }
        return {
            "lut_mode": mode,
            "lut_neighbors": trial.suggest_int("lut_neighbors", 4, 64, log=True),
        }
