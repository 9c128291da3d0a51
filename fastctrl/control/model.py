"""TinyRecursiveControl: one small shared network refines a control sequence over cycles.

The refinement core is :class:`fastctrl.policy.recursive.RecursiveRefiner` (shared with the VLM
controller's ``arch="recursive"`` body). :class:`TinyRecursiveControl` uses it for the double
integrator: the context is the initial state, the answer is the normalised control sequence,
and the feedback is the final-state error obtained by simulating the current controls through
the (exact, differentiable) dynamics. Controls are bounded by construction:
``u = control_bound * tanh(y)``.

Checkpoints (``best_model.pt``, written by :mod:`.train`) are plain dicts of tensors and numbers
in the ``fastctrl-trc`` format; :func:`load_checkpoint` rebuilds the model from one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
from torch import nn

from ..policy.recursive import RecursiveRefiner
from ..train import checkpoint
from .system import CONTROL_DIM, STATE_DIM, DoubleIntegrator

CHECKPOINT_FORMAT = "fastctrl-trc"
CHECKPOINT_VERSION = 1

ModelSize = Literal["small", "medium", "large"]

MODEL_SIZES: dict[str, dict[str, int]] = {
    # Parameter counts with the default 15-step system are in the tests. ``small`` runs 2 core
    # applications per forward so that a batch of 1000 takes about 5-6 ms on 2 CPU threads
    # (3 outer x 2 inner cycles at the same width measured 11 ms; see bench/bench_control.py).
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

    def __post_init__(self) -> None:
        for name in ("num_steps", "latent_dim", "hidden_dim", "num_outer_cycles",
                     "num_inner_cycles"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"--{name} must be a positive int, got {v!r}")
        for name in ("time_horizon", "control_bound", "state_scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0 or v == float("inf"):
                raise ValueError(f"--{name} must be a finite number > 0, got {v!r}")

    @classmethod
    def for_size(cls, size: str, system: DoubleIntegrator, state_scale: float = 2.0,
                 **overrides: Any) -> TRCConfig:
        if size not in MODEL_SIZES:
            raise ValueError(f"--model_size must be one of {sorted(MODEL_SIZES)}, got {size!r}")
        kw: dict[str, Any] = dict(MODEL_SIZES[size])
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(num_steps=system.num_steps, time_horizon=float(system.time_horizon),
                   control_bound=float(system.control_bound), state_scale=float(state_scale), **kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TRCConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TRCConfig: unknown keys {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TinyRecursiveControl(nn.Module):
    """Initial state [B, 2] -> bounded control sequence [B, N] for the double integrator."""

    def __init__(self, config: TRCConfig) -> None:
        super().__init__()
        self.config = config
        system = DoubleIntegrator(num_steps=config.num_steps, time_horizon=config.time_horizon,
                                  control_bound=config.control_bound)
        a_pow_n, g = system.final_state_maps()
        self.register_buffer("a_pow_n", torch.tensor(a_pow_n, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("g", torch.tensor(g, dtype=torch.float32), persistent=False)
        self.refiner = RecursiveRefiner(
            in_dim=STATE_DIM, out_dim=config.num_steps * CONTROL_DIM,
            latent_dim=config.latent_dim, hidden_dim=config.hidden_dim,
            num_outer_cycles=config.num_outer_cycles, num_inner_cycles=config.num_inner_cycles,
            feedback_dim=STATE_DIM,
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, initial_states: torch.Tensor, return_all: bool = False
                ) -> torch.Tensor | list[torch.Tensor]:
        """Controls [B, N] (or every cycle's controls with ``return_all``)."""
        if initial_states.ndim != 2 or initial_states.shape[1] != STATE_DIM:
            raise ValueError(
                f"TinyRecursiveControl: initial_states must be [B, {STATE_DIM}], "
                f"got {tuple(initial_states.shape)}"
            )
        bound, scale = self.config.control_bound, self.config.state_scale

        def final_error(y: torch.Tensor) -> torch.Tensor:
            u = bound * torch.tanh(y)
            return (initial_states @ self.a_pow_n.T + u @ self.g.T) / scale

        ys = self.refiner(initial_states / scale, feedback=final_error, return_all=True)
        assert isinstance(ys, list)
        controls = [bound * torch.tanh(y) for y in ys]
        return controls if return_all else controls[-1]


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[TinyRecursiveControl, dict[str, Any]]:
    """Rebuild the model from a checkpoint written by :func:`fastctrl.control.train.train`
    (eval mode, CPU); returns it with the checkpoint dict."""
    ckpt = checkpoint.load_checkpoint(path, CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                                      what="TinyRecursiveControl")
    model = TinyRecursiveControl(TRCConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
