"""PPO on the contextual bandit (one-step episodes), after CleanRL's ppo.py.

Actor: the Controller. Critic: a value network on the same inputs (standardised features and
the encoded budget). Each rollout samples one config per context; the advantage is
``R - V(s)`` (no bootstrapping: an episode is one decision), normalised per minibatch. Loss:
clipped surrogate (0.2) - ent_coef * entropy for the actor, vf_coef * 0.5 (V - R)^2 for the
critic, ``ppo_update_epochs`` passes over ``num_minibatches`` minibatches, gradient clipping.
Actor and critic have separate optimizers (they share no parameters, so this is the same as
one summed loss) so the critic's cost is timed on its own (``critic_time_s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...cli import need_at_least
from ...policy import Controller, encode_budget
from .base import Method, grouped_log_prob, make_optimizer


@dataclass
class PPOConfig:
    """PPO's own hyper-parameters (CleanRL's defaults where CleanRL has one)."""

    clip_coef: float = 0.2
    """Clipping of the probability ratio (CleanRL default)."""
    ent_coef: float = 0.01
    """Entropy bonus (CleanRL default)."""
    vf_coef: float = 0.5
    """Value-loss weight (CleanRL default)."""
    num_minibatches: int = 4
    """Minibatches per rollout (CleanRL default)."""
    rollout_contexts: int = 256
    """Contexts per rollout (one sampled config each)."""
    ppo_update_epochs: int = 4
    """Optimisation passes over each rollout (CleanRL default)."""

    def __post_init__(self) -> None:
        need_at_least(self, 1, "num_minibatches", "rollout_contexts", "ppo_update_epochs")


class ValueNetwork(nn.Module):
    """V(image, text, budget, task): light projections + one hidden layer, on the actor's inputs."""

    def __init__(self, actor: Controller, proj: int = 64, hidden: int = 128) -> None:
        super().__init__()
        c = actor.config
        self.config = c
        for name in ("image_mean", "image_std", "text_mean", "text_std", "budget_freqs"):
            self.register_buffer(name, getattr(actor, name).detach().clone())
        self.image_proj = nn.Linear(c.image_dim, proj)
        self.text_proj = nn.Linear(c.text_dim, proj)
        self.task_embed = nn.Embedding(max(1, c.n_task_slots), proj)  # the actor's task input
        self.body = nn.Sequential(
            nn.Linear(2 * proj + c.encoding_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, budget: torch.Tensor, task: torch.Tensor
    ) -> torch.Tensor:
        h_i = torch.relu(self.image_proj((image - self.image_mean) / self.image_std))
        h_t = torch.relu(
            self.text_proj((text - self.text_mean) / self.text_std)
            + self.task_embed(task if self.config.n_task_slots else task * 0)
        )
        enc = encode_budget(budget, self.config, self.budget_freqs)
        return self.body(torch.cat([h_i, h_t, enc], 1)).squeeze(1)


class PPO(Method):
    name = "ppo"
    Config = PPOConfig
    cost_timer = "critic_time_s"
    args: PPOConfig

    def __init__(self, cfg, env, controller) -> None:
        super().__init__(cfg, env, controller)
        self.critic = ValueNetwork(controller).to(self.device)
        self.critic_opt = make_optimizer(list(self.critic.parameters()), cfg)

    @property
    def iterations_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.env.requests) / self.args.rollout_contexts))

    def train_step(self) -> dict[str, float]:
        cfg = self.args
        ctx = self.env.sample_contexts(cfg.rollout_contexts)
        image, text, budget, task = self.inputs(ctx)
        self.controller.eval()
        with torch.no_grad():
            logits = self.controller(image, text, budget, task)
            actions = self.sample(logits, 1)  # {knob: [N, 1]}
            old_logp = grouped_log_prob(logits, actions)[:, 0]
        res = self.env.step(ctx, self.to_flat(actions)[:, 0])
        returns = torch.as_tensor(res.reward, dtype=torch.float32, device=self.device)
        with self.timer(self.cost_timer), torch.no_grad():
            values = self.critic(image, text, budget, task)
        adv_all = returns - values
        n = len(ctx)
        mb = max(1, n // cfg.num_minibatches)
        logs: dict[str, list[float]] = {"pg_loss": [], "v_loss": [], "entropy": []}
        self.controller.train()
        for _ in range(cfg.ppo_update_epochs):
            perm = torch.randperm(n, generator=self.generator).to(self.device)
            for start in range(0, n, mb):
                i = perm[start : start + mb]
                new_logits = self.controller(image[i], text[i], budget[i], task[i])
                acts = {k: v[i] for k, v in actions.items()}
                logp = grouped_log_prob(new_logits, acts)[:, 0]
                entropy = Controller.entropy(new_logits).mean()
                adv = adv_all[i]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8) if len(i) > 1 else adv
                ratio = torch.exp(logp - old_logp[i])
                pg = torch.max(
                    -adv * ratio, -adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)
                )
                pg_loss = pg.mean()
                self.apply_update(pg_loss - cfg.ent_coef * entropy)
                with self.timer(self.cost_timer):
                    v_loss = (
                        0.5
                        * (
                            (self.critic(image[i], text[i], budget[i], task[i]) - returns[i]) ** 2
                        ).mean()
                    )
                    self.apply_update(
                        cfg.vf_coef * v_loss, list(self.critic.parameters()), self.critic_opt
                    )
                logs["pg_loss"].append(float(pg_loss.detach()))
                logs["v_loss"].append(float(v_loss.detach()))
                logs["entropy"].append(float(entropy.detach()))
        out = {k: sum(v) / len(v) for k, v in logs.items()}
        out["reward_mean"] = float(returns.mean())
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"critic": self.critic.state_dict(), "critic_opt": self.critic_opt.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.critic_opt.load_state_dict(state["critic_opt"])

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """PPO's own hyper-parameters for ``python -m fastctrl.tune`` (an Optuna trial)."""
        return {
            "clip_coef": trial.suggest_float("clip_coef", 0.1, 0.3),
            "ent_coef": trial.suggest_float("ent_coef", 1e-4, 1e-1, log=True),
            "vf_coef": trial.suggest_float("vf_coef", 0.25, 1.0),
            "num_minibatches": trial.suggest_categorical("num_minibatches", [1, 2, 4, 8]),
            "rollout_contexts": trial.suggest_categorical("rollout_contexts", [64, 128, 256, 512]),
            "ppo_update_epochs": trial.suggest_int("ppo_update_epochs", 1, 8),
        }
