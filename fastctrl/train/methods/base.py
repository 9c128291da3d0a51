"""The interface every training method implements, and the machinery they share."""

from __future__ import annotations

import copy
import math
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ...engines import make_engine
from ...env import Contexts, EnginePolicy, Policy, ProfileEnv
from ...policy import Controller

if TYPE_CHECKING:
    from ..config import TrainConfig


class Method(ABC):
    """A training method: builds or trains a policy from a ProfileEnv.

    The loop (:func:`fastctrl.train.loop.run_training`) calls :meth:`setup` once, then
    :meth:`train_step` ``iterations_per_epoch`` times per epoch, evaluating in between. Each
    step consumes env_steps through the env; time spent on method-specific work (a critic,
    pair or group generation) is accumulated in :attr:`timers` under :attr:`cost_timer`.

    A new method is one file: a subclass with its ``name``, its own ``Config`` dataclass
    (the method's hyper-parameters only; ``cfg.method_args`` holds it, as :attr:`args`) and its
    ``cost_timer``, plus one line in the registry (``fastctrl/train/methods/__init__.py``).
    """

    name: ClassVar[str] = ""
    #: the method's own hyper-parameters (a dataclass; its field docstrings are the CLI help)
    Config: ClassVar[type]
    #: the timer that holds the method-specific cost (critic, pairs, groups, labels, table)
    cost_timer: ClassVar[str]
    #: False for methods that do not train the Controller (the lookup table)
    trains_controller: ClassVar[bool] = True
    #: the method's defaults for shared loop fields (LoopConfig), e.g. its learning rate
    loop_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: TrainConfig, env: ProfileEnv, controller: Controller) -> None:
        self.cfg = cfg
        self.args = cfg.method_args
        self.env = env
        self.controller = controller
        self.device = torch.device(cfg.run.device)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng([cfg.seed, 7])
        self.timers: dict[str, float] = {}
        self.counters: dict[str, int] = {"num_failed_updates": 0, "num_updates": 0}
        self.optimizer: torch.optim.Optimizer | None = None
        if self.trains_controller:
            self.optimizer = make_optimizer(self.parameters(), cfg)

    def serving_policy(self) -> Any | None:
        """What a method that trains no controller serves through the hook (saved beside the
        run, e.g. the lookup table), or ``None``."""
        return None

    # ------------------------------------------------------------------ to implement
    def setup(self) -> None:
        """One-off work before the first epoch (labels, tables, reference policies)."""

    @property
    def iterations_per_epoch(self) -> int:
        """Steps in one data pass (an epoch: a report unit, and ``--num_epochs``'s cap)."""
        return max(1, math.ceil(len(self.env.requests) / self.cfg.loop.batch_size))

    @property
    def exhausted(self) -> bool:
        """True when the method can learn nothing more (an offline method that has read every
        train request); the loop then ends the run before its env-step budget."""
        return False

    @property
    def rows_per_step(self) -> int:
        """Offline methods: train requests whose whole rows one step profiles: enough to reach
        the next point of the evaluation grid, never past the env-step budget (0 when not one
        more row fits)."""
        cost, loop = self.env.row_cost(), self.cfg.loop
        left = loop.max_env_steps - self.env.env_steps
        return min(-(-loop.eval_every_steps // cost), left // cost)

    def profiling_steps(self, n_requests: int) -> int:
        """Offline methods: steps to profile ``n_requests`` (their epoch)."""
        per_step = -(-self.cfg.loop.eval_every_steps // self.env.row_cost())
        return max(1, math.ceil(n_requests / per_step))

    def policy_state(self) -> Any:
        """What the deployable policy is (its weights); a copy, for best-checkpoint selection."""
        return copy.deepcopy(self.controller.state_dict())

    def load_policy_state(self, state: Any) -> None:
        self.controller.load_state_dict(state)

    @abstractmethod
    def train_step(self) -> dict[str, float]:
        """One update; returns scalar logs (losses...)."""

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.controller.parameters())

    def policy(self, engine: str = "torch") -> Policy:
        """The deployable policy, deciding through a decision engine."""
        return EnginePolicy(make_engine(self.controller, engine), name=self.name)

    def extra_state(self) -> dict[str, Any]:
        """Method-specific state for resuming (tensors, numbers, strings only)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        del state

    # ------------------------------------------------------------------ shared machinery
    @contextmanager
    def timer(self, key: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timers[key] = self.timers.get(key, 0.0) + time.perf_counter() - t0

    def inputs(self, ctx: Contexts) -> tuple[torch.Tensor, ...]:
        """The controller's inputs for contexts: ``(image, text, budget, task)``, where
        ``task`` is each request's task slot (the same observation every method has)."""
        image, text = self.env.features(ctx)
        task = self.controller.config.task_index(self.env.profile.task_types[ctx.req])
        return (
            torch.from_numpy(image).to(self.device),
            torch.from_numpy(text).to(self.device),
            torch.from_numpy(ctx.budget_ms.astype(np.float32)).to(self.device),
            torch.from_numpy(task).to(self.device),
        )

    def to_flat(self, actions: dict[str, torch.Tensor]) -> np.ndarray:
        """Per-knob index tensors (any shape) -> flat config indices (numpy)."""
        idx = torch.stack([actions[n].long() for n in self.controller.knob_names], -1)
        return self.env.space.flat_index(idx.cpu().numpy())

    def flat_to_actions(self, flat: np.ndarray) -> dict[str, torch.Tensor]:
        idx = torch.from_numpy(self.env.profile.config_indices[np.asarray(flat)])
        return {n: idx[..., i].to(self.device) for i, n in enumerate(self.controller.knob_names)}

    def apply_update(
        self,
        loss: torch.Tensor,
        params: list[torch.nn.Parameter] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> bool:
        """Backward + clip + step, unless the loss or a gradient is NaN/inf: then the update is
        skipped (never applied) and counted in ``num_failed_updates``."""
        optimizer = optimizer or self.optimizer
        assert optimizer is not None
        params = params if params is not None else self.parameters()
        optimizer.zero_grad(set_to_none=True)
        self.counters["num_updates"] += 1
        if not torch.isfinite(loss):
            self.counters["num_failed_updates"] += 1
            return False
        loss.backward()
        grads = [p.grad for p in params if p.grad is not None]
        if not all(torch.isfinite(g).all() for g in grads):
            optimizer.zero_grad(set_to_none=True)
            self.counters["num_failed_updates"] += 1
            return False
        torch.nn.utils.clip_grad_norm_(params, self.cfg.loop.max_grad_norm)
        optimizer.step()
        return True

    def sample(self, logits: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        """``n`` configs per row: ``{knob: [B, n]}`` indices, from the seeded generator."""
        out = {}
        for name, lg in logits.items():
            probs = torch.softmax(lg.detach().float(), -1).cpu()
            out[name] = torch.multinomial(probs, n, replacement=True, generator=self.generator).to(
                lg.device
            )
        return out


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    # foreach: one fused loop over all tensors instead of one per tensor (the per-tensor
    # loop was 9 ms of a 74 ms GRPO step in a profile of this repo's default controller)
    return torch.optim.AdamW(
        params, lr=cfg.loop.lr, weight_decay=cfg.loop.weight_decay, foreach=True
    )


def frozen_copy(controller: Controller) -> Controller:
    """An eval-mode copy with no gradients: the frozen reference policy of DPO and GRPO."""
    reference = copy.deepcopy(controller).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference


def grouped_log_prob(
    logits: dict[str, torch.Tensor], actions: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Joint log-prob of ``[B, n]`` actions under ``[B, K]`` per-knob logits -> ``[B, n]``
    (the sum over heads)."""
    total = None
    for name, lg in logits.items():
        lp = torch.log_softmax(lg.float(), -1).gather(1, actions[name].long())
        total = lp if total is None else total + lp
    assert total is not None
    return total
