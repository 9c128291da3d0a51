"""GRPO: group-relative policy optimisation on the contextual bandit.

Two ways to form a (request, budget)'s group (``groups``):

- ``sampled`` (the GRPO design): the policy samples G configs and the env runs each one (G
  env_steps);
- ``offline`` (the profile already holds every config's measurements: "use the offline data
  directly"): the group is every profiled config of the request, read as a whole profile row
  (``C x S`` env_steps, as the supervised method pays), and the rows read so far form a pool
  that later updates reuse. On the same env-step budget it sees far fewer requests (one row
  costs as much as ~110 sampled groups of 8) and, on the built-in profile, overfits them: see
  the GRPO docs page for the measured comparison; sampled groups stay the default.

Each config's advantage is its reward relative to the group, ``R - mean_group`` (divided by
``std_group + eps`` with ``grpo_std_scaling``). The update is the clipped-ratio objective over
``update_epochs`` passes, with an optional KL penalty to the initial policy (k3 estimator;
weight ``kl_coef``, default 0). A config's log-prob is the sum over the three heads. For an
offline group the objective is the sampled one's expectation under the policy that drew the
group: each config's clipped term weighted by its probability under the pre-update policy
(so the gradient at the first pass is the exact policy gradient of the group's advantages).
Sampled groups whose rewards are all equal carry no signal: they are counted and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ...cli import need
from ...policy import Controller
from .base import Method, frozen_copy, grouped_log_prob
from .row_pool import RowPool

EPS = 1e-6


@dataclass
class GRPOConfig:
    """GRPO's own hyper-parameters."""

    groups: Literal["sampled", "offline"] = "sampled"
    """offline: a request's group is every config of its profile row (read once, pooled);
    sampled: G configs sampled from the policy and run in the env."""
    offline_weighting: Literal["policy", "uniform"] = "policy"
    """offline groups: weight each config's term by its pre-update probability (the sampled
    objective's expectation) or uniformly (every config as one sampled member)."""
    updates_per_step: int = 5
    """offline groups: gradient updates (batch_size groups each) after each profiled chunk of
    requests (more overfit the pool: bench/results/grpo_variants.json)."""
    group_size: int = 8
    """sampled groups: configs sampled per (request, budget) group."""
    grpo_std_scaling: bool = False
    """Divide group advantages by the group std. Off by default (R - mean, as in the GRPO
    design): with the E5 reward's unbounded overshoot penalty, per-group std scaling prefers
    configs that usually win by a little and sometimes overshoot by a lot (more SLO violations
    and a lower utility when the default was set, on an earlier version of the synthetic
    profile; not re-measured since)."""
    clip_coef: float = 0.2
    """Clipping of the probability ratio."""
    kl_coef: float = 0.0
    """Weight of the KL penalty to the reference (initial) policy."""
    grpo_ent_coef: float = 0.03
    """Entropy bonus. Without it the three factorised heads collapse onto one config within a
    few hundred updates and groups stop carrying signal (zero reward spread)."""
    update_epochs: int = 4
    """Optimisation passes over each batch of groups."""

    def __post_init__(self) -> None:
        need(self.group_size >= 2, f"--group_size must be >= 2, got {self.group_size}")
        need(self.update_epochs >= 1, f"--update_epochs must be >= 1, got {self.update_epochs}")
        need(
            self.updates_per_step >= 1,
            f"--updates_per_step must be >= 1, got {self.updates_per_step}",
        )


class GRPO(Method):
    name = "grpo"
    Config = GRPOConfig
    cost_timer = "group_generation_s"
    # validation on the main job (bench/results/grpo_variants.json): with the shared 1e-4 the
    # validation utility peaks early and decays by the end of the default budget while SLO
    # violations rise; 2e-5 ends within 0.002 of its best
    loop_defaults = {"lr": 2e-5}
    args: GRPOConfig

    def setup(self) -> None:
        self.counters.setdefault("zero_spread_groups", 0)
        self.counters.setdefault("groups", 0)
        self.reference = frozen_copy(self.controller) if self.args.kl_coef > 0 else None
        self.pool = RowPool(self.env, self.rng, self.device) if self.offline else None

    @property
    def offline(self) -> bool:
        return self.args.groups == "offline"

    @property
    def exhausted(self) -> bool:
        return self.pool is not None and self.pool.exhausted(self.rows_per_step)

    @property
    def iterations_per_epoch(self) -> int:
        if self.pool is None:
            return super().iterations_per_epoch
        return self.profiling_steps(self.pool.n_requests)

    def train_step(self) -> dict[str, float]:
        return self._offline_step() if self.pool is not None else self._sampled_step()

    def _offline_step(self) -> dict[str, float]:
        """Profile the next chunk of train requests into the pool, then ``updates_per_step``
        updates on pooled groups (every config of a row)."""
        assert self.pool is not None
        with self.timer(self.cost_timer):
            self.pool.read(self.rows_per_step)
        logs: dict[str, list[float]] = {}
        for _ in range(self.args.updates_per_step):
            b = self.pool.next_batch(self.cfg.loop.batch_size)
            rewards = self.pool.rewards[b]  # [B, C]
            actions = {k: v.expand(len(b), -1) for k, v in self.pool.all_configs.items()}
            step = self._update(
                self.inputs(self.pool.ctx.take(b)),
                actions,
                rewards,
                weighted=self.args.offline_weighting == "policy",
            )
            for k, v in step.items():
                logs.setdefault(k, []).append(v)
        out = {k: float(np.mean(v)) for k, v in logs.items()}
        out["rows"] = float(self.pool.n_read)
        return out

    def _sampled_step(self) -> dict[str, float]:
        cfg = self.args
        g = cfg.group_size
        with self.timer(self.cost_timer):
            ctx = self.env.sample_contexts(self.cfg.loop.batch_size)
            image, text, budget, task = self.inputs(ctx)
            self.controller.eval()
            with torch.no_grad():
                logits = self.controller(image, text, budget, task)
                actions = self.sample(logits, g)  # {knob: [B, G]}
                old_logp = grouped_log_prob(logits, actions)  # [B, G]
            flat = self.to_flat(actions)  # [B, G]
            res = self.env.step(ctx.repeat_each(g), flat.reshape(-1))
            rewards = torch.as_tensor(res.reward, dtype=torch.float32, device=self.device).view(
                len(ctx), g
            )
            self.counters["zero_spread_groups"] += int((rewards.std(1) < 1e-8).sum())
            self.counters["groups"] += len(ctx)
        return self._update((image, text, budget, task), actions, rewards, old_logp=old_logp)

    def _update(
        self,
        inputs: tuple[torch.Tensor, ...],
        actions: dict[str, torch.Tensor],
        rewards: torch.Tensor,
        *,
        old_logp: torch.Tensor | None = None,
        weighted: bool = False,
    ) -> dict[str, float]:
        """``update_epochs`` clipped-ratio passes on ``[B, G]`` groups. ``weighted``: each
        member's term weighted by its pre-update probability (an enumerated, offline group)
        instead of averaged (a sampled group)."""
        cfg = self.args
        if old_logp is None:
            self.controller.eval()
            with torch.no_grad():
                old_logp = grouped_log_prob(self.controller(*inputs), actions)
        g = rewards.shape[1]
        weight = old_logp.exp() if weighted else torch.full_like(rewards, 1.0 / g)
        # the group's mean and std under the weights: for an enumerated group weighted by the
        # policy, the mean a sampled group of the same policy estimates
        mean = (weight * rewards).sum(1, keepdim=True) / weight.sum(1, keepdim=True)
        adv = rewards - mean
        if cfg.grpo_std_scaling:
            var = (weight * adv.square()).sum(1, keepdim=True) / weight.sum(1, keepdim=True)
            adv = adv / (var * g / max(g - 1, 1)).sqrt().add(EPS)
        self.controller.train()
        logs: dict[str, float] = {}
        for _ in range(cfg.update_epochs):
            new_logits = self.controller(*inputs)
            logp = grouped_log_prob(new_logits, actions)
            ratio = torch.exp(logp - old_logp)
            clipped = torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)
            pg_loss = -(weight * torch.min(ratio * adv, clipped * adv)).sum(1).mean()
            loss = pg_loss
            if cfg.grpo_ent_coef > 0:
                entropy = Controller.entropy(new_logits).mean()
                loss = loss - cfg.grpo_ent_coef * entropy
                logs["entropy"] = float(entropy.detach())
            if self.reference is not None:
                with torch.no_grad():
                    ref_logp = grouped_log_prob(self.reference(*inputs), actions)
                log_r = ref_logp - logp
                kl = (weight * (torch.exp(log_r) - log_r - 1)).sum(1).mean()
                loss = loss + cfg.kl_coef * kl
                logs["kl"] = float(kl.detach())
            self.apply_update(loss)
            logs["loss"] = float(pg_loss.detach())
        logs["reward_mean"] = float((weight * rewards).sum(1).mean())
        logs["clip_frac"] = float(((ratio - 1).abs() > cfg.clip_coef).float().mean())
        return logs

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "reference": self.reference.state_dict() if self.reference is not None else {}
        }
        if self.pool is not None:
            state["pool"] = self.pool.state()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.reference is not None and state.get("reference"):
            self.reference.load_state_dict(state["reference"])
        if self.pool is not None and "pool" in state:
            self.pool.load_state(state["pool"])

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """GRPO's own hyper-parameters for ``python -m fastctrl.tune`` (an Optuna trial)."""
        return {
            "groups": trial.suggest_categorical("groups", ["offline", "sampled"]),
            "updates_per_step": trial.suggest_int("updates_per_step", 10, 200, log=True),
            "group_size": trial.suggest_categorical("group_size", [4, 8, 16]),
            "grpo_std_scaling": trial.suggest_categorical("grpo_std_scaling", [False, True]),
            "clip_coef": trial.suggest_float("clip_coef", 0.1, 0.3),
            "kl_coef": trial.suggest_categorical("kl_coef", [0.0, 0.01, 0.05]),
            "grpo_ent_coef": trial.suggest_float("grpo_ent_coef", 1e-3, 1e-1, log=True),
            "update_epochs": trial.suggest_int("update_epochs", 1, 4),
        }
