"""DPO on sampled configs: preferences ranked by reward, against a frozen reference policy.

Each step samples ``dpo_samples`` configs per (request, budget) from the current policy, runs
them (env_steps), and pairs the best-rewarded (winner) with the worst (loser); ties carry no
preference and are counted. Loss::

    -log sigmoid(beta * ((logp_w - ref_w) - (logp_l - ref_l)))       beta = 0.1

Reference: the initial policy (``dpo_reference=initial``, the default), or a policy warm-started
by supervised learning on whole profile rows (``supervised``), which then is also where training
starts. The warm start is the first phase of the run, step by step on the loop's env-step grid
(its label reads count as env_steps, validation points fall inside it), and the reference is
frozen where it ends.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ...cli import need
from .base import Method, frozen_copy, grouped_log_prob
from .supervised import Supervised, SupervisedConfig


@dataclass
class DPOConfig:
    """DPO's own hyper-parameters."""

    dpo_beta: float = 0.1
    """Inverse temperature of the preference loss."""
    dpo_samples: int = 4
    """Configs sampled per (request, budget); the best and worst form a pair."""
    dpo_reference: Literal["initial", "supervised"] = "initial"
    """Frozen reference policy: the initial policy, or a warm start by supervised learning (the
    supervised method at its defaults over the whole train split; its profile reads count as
    env_steps)."""
    update_epochs: int = 4
    """Optimisation passes over each batch of pairs."""

    def __post_init__(self) -> None:
        need(self.dpo_samples >= 2, f"--dpo_samples must be >= 2, got {self.dpo_samples}")
        need(self.update_epochs >= 1, f"--update_epochs must be >= 1, got {self.update_epochs}")


class DPO(Method):
    name = "dpo"
    Config = DPOConfig
    cost_timer = "pair_generation_s"
    args: DPOConfig

    def setup(self) -> None:
        self.counters.setdefault("tied_pairs", 0)
        self.counters.setdefault("pairs", 0)
        self.warm: Supervised | None = None
        self.reference = None
        if self.args.dpo_reference == "supervised":
            warm_cfg = dataclasses.replace(
                self.cfg, method="supervised", method_args=SupervisedConfig()
            )
            self.warm = Supervised(warm_cfg, self.env, self.controller)
            self.warm.rng = self.rng
            self.warm.setup()
        else:
            self.reference = frozen_copy(self.controller)

    @property
    def warming(self) -> bool:
        """In the supervised warm start (its steps read profile rows; the reference is frozen
        when it ends)."""
        return self.reference is None

    def _warm_step(self) -> dict[str, float]:
        """One supervised step of the warm start: on the loop's env-step grid like any step."""
        assert self.warm is not None
        with self.timer("warm_start_s"):
            logs = self.warm.train_step() if not self.warm.exhausted else {}
            if self.warm.exhausted:
                self.reference = frozen_copy(self.controller)
        return {"warm_start_loss": logs.get("loss", float("nan"))}

    def train_step(self) -> dict[str, float]:
        if self.warming:
            return self._warm_step()
        cfg = self.args
        k = cfg.dpo_samples
        with self.timer(self.cost_timer):
            ctx = self.env.sample_contexts(self.cfg.loop.batch_size)
            image, text, budget, task = self.inputs(ctx)
            self.controller.eval()
            with torch.no_grad():
                actions = self.sample(self.controller(image, text, budget, task), k)  # [B, K]
            flat = self.to_flat(actions)
            res = self.env.step(ctx.repeat_each(k), flat.reshape(-1))
            rewards = torch.as_tensor(res.reward, dtype=torch.float32).view(len(ctx), k)
            w = rewards.argmax(1)
            lo = rewards.argmin(1)
            valid = rewards.max(1).values > rewards.min(1).values
            self.counters["pairs"] += len(ctx)
            self.counters["tied_pairs"] += int((~valid).sum())
            rows = torch.arange(len(ctx))
            pair = {
                n: torch.stack([a[rows, w], a[rows, lo]], 1)[valid] for n, a in actions.items()
            }  # [P, 2]
            image, text, budget, task = image[valid], text[valid], budget[valid], task[valid]
            if len(image) == 0:
                return {"loss": float("nan")}
            with torch.no_grad():
                ref = grouped_log_prob(self.reference(image, text, budget, task), pair)
        self.controller.train()
        for _ in range(cfg.update_epochs):
            logp = grouped_log_prob(self.controller(image, text, budget, task), pair)
            margin = (logp[:, 0] - ref[:, 0]) - (logp[:, 1] - ref[:, 1])
            loss = -F.logsigmoid(cfg.dpo_beta * margin).mean()
            self.apply_update(loss)
        return {
            "loss": float(loss.detach()),
            "reward_mean": float(rewards.mean()),
            "pref_accuracy": float((margin.detach() > 0).float().mean()),
        }

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.reference is not None:
            state["reference"] = self.reference.state_dict()
        if self.warm is not None:
            assert self.warm.optimizer is not None
            state["warm"] = self.warm.extra_state()
            state["warm_optimizer"] = self.warm.optimizer.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.warm is not None:
            assert self.warm.optimizer is not None
            self.warm.load_extra_state(state["warm"])
            self.warm.optimizer.load_state_dict(state["warm_optimizer"])
        if "reference" in state:
            self.reference = frozen_copy(self.controller)
            self.reference.load_state_dict(state["reference"])
        else:
            self.reference = None

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """DPO's own hyper-parameters for ``python -m fastctrl.tune`` (an Optuna trial)."""
        return {
            "dpo_beta": trial.suggest_float("dpo_beta", 0.01, 1.0, log=True),
            "dpo_samples": trial.suggest_categorical("dpo_samples", [2, 4, 8]),
            "dpo_reference": trial.suggest_categorical("dpo_reference", ["initial", "supervised"]),
            "update_epochs": trial.suggest_int("update_epochs", 1, 4),
        }
