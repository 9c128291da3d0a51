"""TinyRecursiveControl: one small shared network refines a control sequence over cycles.

The refinement core is :class:`fastctrl.policy.recursive.RecursiveRefiner` (shared with the VLM
controller's ``arch="recursive"`` body). :class:`TinyRecursiveControl` uses it for the double
integrator: the context is the initial state, the answer is the normalised control sequence,
and the feedback is the final-state error obtained by simulating the current controls through
the (exact, differentiable) dynamics. Controls are bounded by construction:
``u = control_bound * tanh(y)``.

Two options make it generalise beyond its training box (issue 17):

* ``scale_equivariant``: the unconstrained optimum is linear in the initial state, so the
  network sees ``x_0 / ||x_0||_inf`` and its answer is multiplied by ``||x_0||_inf`` before the
  bound is applied by clipping (``u = clip(||x_0|| * bound / state_scale * y, -bound, bound)``).
  The feedback is the clipped controls (in the network's units) and their final state divided
  by ``||x_0||_inf``; where the bound binds, the refinement sees what clipping did and can
  redistribute the effort. One more input says how far outside the training box the state is,
  ``log(max(||x_0||_inf / state_scale, 1))``: zero inside the box (where the bound never binds,
  which the data generator guarantees), so there the model is exactly homogeneous of degree
  one; its weights start at zero, so training on the box alone leaves them there, and
  fine-tuning beyond the box (:mod:`.finetune`) can learn what the bound changes.
* ``max_num_steps > 0``: the model is conditioned on the step count N and the horizon T (two
  extra context inputs), outputs ``max_num_steps`` controls of which the first N are used,
  and its feedback simulates the (N, T) system; it accepts every ``N <= max_num_steps`` and
  is accurate at the step counts it was trained on (not between them: see the README). These
  inputs' weights start at zero too: trained at one horizon, the model's T input stays unused
  and another T reaches it only through the simulated feedback.

Checkpoints (``best_model.pt``, written by :mod:`.train`) are plain dicts of tensors and numbers
in the ``fastctrl-trc`` format; :func:`load_checkpoint` rebuilds the model from one.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..policy.recursive import RecursiveRefiner
from ..train import checkpoint
from .system import CONTROL_DIM, STATE_DIM, DoubleIntegrator

CHECKPOINT_FORMAT = "fastctrl-trc"
CHECKPOINT_VERSION = 2
# Version 1 (before the scale_equivariant / max_num_steps options) reads as version 2 with both off.
READABLE_VERSIONS = (1, 2)

ModelSize = Literal["small", "medium", "large"]

MODEL_SIZES: dict[str, dict[str, int]] = {
    # Parameter counts with the default 15-step system are in the tests. ``small`` runs 2 core
    # applications per forward to keep a batch of 1000 within the inference target; 3 outer x
    # 2 inner cycles at the same width cost more per call (bench/bench_control.py times both).
    "small": {"latent_dim": 128, "hidden_dim": 320, "num_outer_cycles": 2, "num_inner_cycles": 1},
    "medium": {"latent_dim": 256, "hidden_dim": 880, "num_outer_cycles": 3, "num_inner_cycles": 2},
    "large": {"latent_dim": 512, "hidden_dim": 2250, "num_outer_cycles": 3, "num_inner_cycles": 2},
}


@dataclass
class TRCConfig:
    """Everything needed to rebuild a :class:`TinyRecursiveControl` (stored in checkpoints)."""

    num_steps: int = 15
    """Control steps N (the output is N accelerations)."""
    time_horizon: float = 5.0
    """Horizon in seconds (fixes dt and the simulated feedback)."""
    control_bound: float = 10.0
    """|u| <= control_bound, enforced by u = control_bound * tanh(y)."""
    state_scale: float = 2.0
    """Initial states and final-state errors are divided by this before entering the network."""
    latent_dim: int = 128
    """Size of the latent z."""
    hidden_dim: int = 320
    """Hidden width of the shared core."""
    num_outer_cycles: int = 2
    """Control-sequence refinements."""
    num_inner_cycles: int = 1
    """Latent updates per refinement."""
    scale_equivariant: bool = False
    """Normalise the initial state by its largest component, rescale the controls by it, bound
    them by clipping and feed the clipped controls back (see the module docstring)."""
    max_num_steps: int = 0
    """0: serve num_steps and time_horizon only. Otherwise condition on the step count and the
    horizon and serve any N in [1, max_num_steps]."""

    def __post_init__(self) -> None:
        for name in (
            "num_steps",
            "latent_dim",
            "hidden_dim",
            "num_outer_cycles",
            "num_inner_cycles",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"--{name} must be a positive int, got {v!r}")
        if not isinstance(self.scale_equivariant, bool):
            raise ValueError(f"--scale_equivariant must be a bool, got {self.scale_equivariant!r}")
        m = self.max_num_steps
        if isinstance(m, bool) or not isinstance(m, int) or m < 0 or 0 < m < self.num_steps:
            raise ValueError(
                f"--max_num_steps must be 0 or an int >= num_steps ({self.num_steps}), got {m!r}"
            )
        for name in ("time_horizon", "control_bound", "state_scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0 or v == float("inf"):
                raise ValueError(f"--{name} must be a finite number > 0, got {v!r}")

    @classmethod
    def for_size(
        cls, size: str, system: DoubleIntegrator, state_scale: float = 2.0, **overrides: Any
    ) -> TRCConfig:
        if size not in MODEL_SIZES:
            raise ValueError(f"--model_size must be one of {sorted(MODEL_SIZES)}, got {size!r}")
        kw: dict[str, Any] = dict(MODEL_SIZES[size])
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(
            num_steps=system.num_steps,
            time_horizon=float(system.time_horizon),
            control_bound=float(system.control_bound),
            state_scale=float(state_scale),
            **kw,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TRCConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TRCConfig: unknown keys {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def conditioned(self) -> bool:
        """Conditioned on the step count and horizon (serves other N and T)."""
        return self.max_num_steps > 0

    @property
    def out_steps(self) -> int:
        return self.max_num_steps if self.conditioned else self.num_steps


class TinyRecursiveControl(nn.Module):
    """Initial state [B, 2] -> bounded control sequence [B, N] for the double integrator."""

    def __init__(self, config: TRCConfig) -> None:
        super().__init__()
        self.config = config
        a_pow_n, g = _final_state_maps(config.num_steps, config.time_horizon, config.out_steps)
        self.register_buffer(
            "a_pow_n", torch.tensor(a_pow_n, dtype=torch.float32), persistent=False
        )
        self.register_buffer("g", torch.tensor(g, dtype=torch.float32), persistent=False)
        out = config.out_steps * CONTROL_DIM
        # equivariant: the distance outside the box as an input, the clipped controls as
        # feedback; conditioned: (N, T) relative to the defaults as inputs
        in_dim = (
            STATE_DIM + (1 if config.scale_equivariant else 0) + (2 if config.conditioned else 0)
        )
        feedback_dim = STATE_DIM + (out if config.scale_equivariant else 0)
        self.refiner = RecursiveRefiner(
            in_dim=in_dim,
            out_dim=out,
            latent_dim=config.latent_dim,
            hidden_dim=config.hidden_dim,
            num_outer_cycles=config.num_outer_cycles,
            num_inner_cycles=config.num_inner_cycles,
            feedback_dim=feedback_dim,
        )
        # Inputs beyond the state start with zero weights: one that training never varies
        # (the box excess on the box, T trained at one horizon) keeps them and has no effect.
        with torch.no_grad():
            self.refiner.context_encoder[0].weight[:, STATE_DIM:].zero_()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def resolve(self, num_steps: int | None, time_horizon: float | None) -> tuple[int, float]:
        """The (N, T) a call serves; a model that is not conditioned serves only its own."""
        c = self.config
        n = c.num_steps if num_steps is None else num_steps
        t = float(c.time_horizon if time_horizon is None else time_horizon)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= c.out_steps:
            raise ValueError(
                f"TinyRecursiveControl: num_steps must be an int in [1, {c.out_steps}], got {n!r}"
            )
        if not (t > 0 and math.isfinite(t)):
            raise ValueError(f"TinyRecursiveControl: time_horizon must be > 0, got {t!r}")
        if not c.conditioned and (n != c.num_steps or not math.isclose(t, c.time_horizon)):
            raise ValueError(
                f"TinyRecursiveControl: this model serves only num_steps="
                f"{c.num_steps}, time_horizon={c.time_horizon} (it was not "
                f"trained conditioned on them; see --max_num_steps)"
            )
        return n, t

    def forward(
        self,
        initial_states: torch.Tensor,
        return_all: bool = False,
        num_steps: int | None = None,
        time_horizon: float | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Controls [B, N] (or every cycle's controls with ``return_all``)."""
        outs = self.forward_all(initial_states, num_steps, time_horizon)
        controls = [u for u, _ in outs]
        return controls if return_all else controls[-1]

    def forward_all(
        self,
        initial_states: torch.Tensor,
        num_steps: int | None = None,
        time_horizon: float | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(bounded controls [B, N], controls before the bound [B, N]) for every cycle.

        Before the bound: ``bound * tanh``'s argument times the bound (tanh models), the
        unclipped rescaled answer (equivariant models); training losses may use it where the
        bound has no gradient.
        """
        if initial_states.ndim != 2 or initial_states.shape[1] != STATE_DIM:
            raise ValueError(
                f"TinyRecursiveControl: initial_states must be [B, {STATE_DIM}], "
                f"got {tuple(initial_states.shape)}"
            )
        c = self.config
        n, t = self.resolve(num_steps, time_horizon)
        bound = c.control_bound
        if n == c.num_steps and t == c.time_horizon:
            a_pow_n, g = self.a_pow_n, self.g
        else:
            an, gn = _final_state_maps(n, t, c.out_steps)
            a_pow_n = torch.tensor(an, dtype=self.g.dtype, device=self.g.device)
            g = torch.tensor(gn, dtype=self.g.dtype, device=self.g.device)
        x0 = initial_states
        if c.scale_equivariant:
            # ||x0||_inf, floored so that x0 = 0 maps to (almost) zero controls
            norm = x0.abs().amax(dim=1, keepdim=True).clamp_min(1e-6 * c.state_scale)
            unit = norm * (bound / c.state_scale)  # the network's unit of control
        else:
            norm = torch.full_like(x0[:, :1], c.state_scale)
            unit = norm  # unused
        context = x0 / norm
        if c.scale_equivariant:
            outside = torch.log((norm / c.state_scale).clamp_min(1.0))
            context = torch.cat([context, outside], dim=1)
        if c.conditioned:
            cond = torch.tensor(
                [n / c.num_steps - 1.0, t / c.time_horizon - 1.0], dtype=x0.dtype, device=x0.device
            )
            context = torch.cat([context, cond.expand(x0.shape[0], 2)], dim=1)
        mask = (
            None
            if n == c.out_steps
            else (torch.arange(c.out_steps, device=x0.device) < n).to(x0.dtype)
        )

        def bounded(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if c.scale_equivariant:
                pre = unit * y
                u = pre.clamp(-bound, bound)
            else:
                pre = bound * y
                u = bound * torch.tanh(y)
            if mask is not None:
                pre, u = pre * mask, u * mask
            return u, pre

        def feedback(y: torch.Tensor) -> torch.Tensor:
            u, _ = bounded(y)
            err = (x0 @ a_pow_n.T + u @ g.T) / norm
            return torch.cat([u / unit, err], dim=1) if c.scale_equivariant else err

        ys = self.refiner(context, feedback=feedback, return_all=True)
        assert isinstance(ys, list)
        return [(u[:, :n], pre[:, :n]) for u, pre in map(bounded, ys)]


def _final_state_maps(
    num_steps: int, time_horizon: float, out_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """(A^N [2, 2], G [2, out_steps]) with G's columns past N zero (padded outputs)."""
    system = DoubleIntegrator(num_steps=num_steps, time_horizon=time_horizon)
    a_pow_n, g = system.final_state_maps()
    padded = np.zeros((STATE_DIM, out_steps))
    padded[:, :num_steps] = g
    return a_pow_n, padded


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[TinyRecursiveControl, dict[str, Any]]:
    """Rebuild the model from a checkpoint written by :func:`fastctrl.recursive_control.supervised_training.train`
    (eval mode, CPU); returns it with the checkpoint dict."""
    ckpt = checkpoint.load_checkpoint(path, CHECKPOINT_FORMAT, what="TinyRecursiveControl")
    if ckpt.get("version") not in READABLE_VERSIONS:
        raise ValueError(
            f"TinyRecursiveControl: {path} has version {ckpt.get('version')!r}, "
            f"this code reads versions {list(READABLE_VERSIONS)}"
        )
    model = TinyRecursiveControl(TRCConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
