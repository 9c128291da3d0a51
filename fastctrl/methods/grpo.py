"""GRPO: group-relative policy optimisation on the contextual bandit.

For each (request, budget) the policy samples a group of G configs; each config's advantage is
its reward relative to the group, ``(R - mean_group) / (std_group + eps)`` (or ``R - mean_group``
with ``grpo_std_scaling`` off, as in the GRPO design). The update is the clipped-ratio
objective over ``update_epochs`` passes, with an optional KL penalty to the initial policy
(k3 estimator; weight ``kl_coef``, default 0). A config's log-prob is the sum over the three
heads. Groups whose rewards are all equal carry no signal: they are counted and reported.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..policy import Controller
from .base import Method, grouped_log_prob

EPS = 1e-6


class GRPO(Method):
    name = "grpo"

    def setup(self) -> None:
        self.counters.setdefault("zero_spread_groups", 0)
        self.counters.setdefault("groups", 0)
        self.reference = None
        if self.cfg.kl_coef > 0:
            self.reference = copy.deepcopy(self.controller).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        g = cfg.group_size
        with self.timer("group_generation_s"):
            ctx = self.env.sample_contexts(cfg.batch_size)
            image, text, budget = self.inputs(ctx)
            self.controller.eval()
            with torch.no_grad():
                logits = self.controller(image, text, budget)
                actions = self.sample(logits, g)                          # {knob: [B, G]}
                old_logp = grouped_log_prob(logits, actions)              # [B, G]
            flat = self.to_flat(actions)                                  # [B, G]
            res = self.env.step(ctx.repeat_each(g),
                                flat.reshape(-1))
            rewards = torch.as_tensor(res.reward, dtype=torch.float32,
                                      device=self.device).view(len(ctx), g)
            mean = rewards.mean(1, keepdim=True)
            std = rewards.std(1, keepdim=True)
            adv = rewards - mean
            if cfg.grpo_std_scaling:
                adv = adv / (std + EPS)
            zero = (std.squeeze(1) < 1e-8)
            self.counters["zero_spread_groups"] += int(zero.sum())
            self.counters["groups"] += len(ctx)
        self.controller.train()
        logs: dict[str, float] = {}
        for _ in range(cfg.update_epochs):
            new_logits = self.controller(image, text, budget)
            logp = grouped_log_prob(new_logits, actions)
            ratio = torch.exp(logp - old_logp)
            clipped = torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)
            pg_loss = -torch.min(ratio * adv, clipped * adv).mean()
            loss = pg_loss
            if cfg.grpo_ent_coef > 0:
                entropy = Controller.entropy(new_logits).mean()
                loss = loss - cfg.grpo_ent_coef * entropy
                logs["entropy"] = float(entropy.detach())
            if self.reference is not None:
                with torch.no_grad():
                    ref_logp = grouped_log_prob(self.reference(image, text, budget), actions)
                log_r = ref_logp - logp
                kl = (torch.exp(log_r) - log_r - 1).mean()
                loss = loss + cfg.kl_coef * kl
                logs["kl"] = float(kl.detach())
            self.apply_update(loss)
            logs["loss"] = float(pg_loss.detach())
        logs["reward_mean"] = float(rewards.mean())
        logs["clip_frac"] = float(((ratio - 1).abs() > cfg.clip_coef).float().mean())
        return logs

    def extra_state(self) -> dict[str, Any]:
        return {"reference": self.reference.state_dict() if self.reference is not None else {}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.reference is not None and state.get("reference"):
            self.reference.load_state_dict(state["reference"])
