"""The recursive refinement core of TinyRecursiveControl: one small shared network refines a
latent and an answer over outer / inner cycles.

Used by the VLM controller's ``arch="recursive"`` body (:mod:`fastctrl.policy.controller`) and
by :mod:`fastctrl.recursive_control`'s TinyRecursiveControl::

    e_x = ContextEncoder(context)                   # [B, latent]
    z   = e_x ;  y = InitialHead(z)                 # first answer  [B, out_dim]
    repeat num_outer_cycles:
        e_y = AnswerEncoder([y, feedback(y)])       # what the current answer does (optional)
        repeat num_inner_cycles:
            z = z + Core(z + e_x + e_y)             # Core: LayerNorm -> Linear -> GELU -> Linear
        y = y + AnswerHead(z)                       # residual refinement of the answer
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Feedback = Callable[[torch.Tensor], torch.Tensor]


class RecursiveRefiner(nn.Module):
    """Refine a latent and an output over outer/inner cycles with one shared small network.

    Args:
        in_dim: size of the context vector.
        out_dim: size of the output (the "answer": logits, a control sequence, ...).
        latent_dim: size of the latent ``z``.
        hidden_dim: hidden width of the shared core MLP.
        num_outer_cycles: answer refinements (each one re-reads the current answer).
        num_inner_cycles: latent updates per outer cycle (the core is applied this many times).
        feedback_dim: size of an optional feedback vector computed from the current answer
            (``forward(..., feedback=fn)``, ``fn(y) -> [B, feedback_dim]``); 0 for none.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        latent_dim: int = 128,
        hidden_dim: int = 256,
        num_outer_cycles: int = 3,
        num_inner_cycles: int = 2,
        feedback_dim: int = 0,
    ) -> None:
        super().__init__()
        for name, v in (
            ("in_dim", in_dim),
            ("out_dim", out_dim),
            ("latent_dim", latent_dim),
            ("hidden_dim", hidden_dim),
            ("num_outer_cycles", num_outer_cycles),
            ("num_inner_cycles", num_inner_cycles),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"RecursiveRefiner: {name} must be a positive int, got {v!r}")
        if isinstance(feedback_dim, bool) or not isinstance(feedback_dim, int) or feedback_dim < 0:
            raise ValueError(
                f"RecursiveRefiner: feedback_dim must be an int >= 0, got {feedback_dim!r}"
            )
        self.in_dim, self.out_dim, self.feedback_dim = in_dim, out_dim, feedback_dim
        self.num_outer_cycles, self.num_inner_cycles = num_outer_cycles, num_inner_cycles
        self.context_encoder = nn.Sequential(
            nn.Linear(in_dim, latent_dim), nn.GELU(), nn.Linear(latent_dim, latent_dim)
        )
        self.initial_head = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim, out_dim))
        self.answer_encoder = nn.Linear(out_dim + feedback_dim, latent_dim)
        self.core = nn.Sequential(
            nn.LayerNorm(latent_dim),
            nn.Linear(latent_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, latent_dim),
        )
        self.answer_head = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim, out_dim))

    def forward(
        self, context: torch.Tensor, feedback: Feedback | None = None, return_all: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """context [B, in_dim] -> output [B, out_dim] (or every cycle's output if return_all).

        With ``return_all`` the list holds the initial answer and the answer after each outer
        cycle (``num_outer_cycles + 1`` tensors); the last one is the output.
        """
        if context.ndim != 2 or context.shape[1] != self.in_dim:
            raise ValueError(
                f"RecursiveRefiner: context must be [B, {self.in_dim}], got {tuple(context.shape)}"
            )
        if (feedback is None) != (self.feedback_dim == 0):
            raise ValueError(
                f"RecursiveRefiner: built with feedback_dim={self.feedback_dim}; pass "
                f"{'no' if self.feedback_dim == 0 else 'a'} feedback function"
            )
        e_x = self.context_encoder(context)
        z = e_x
        y = self.initial_head(z)
        outputs = [y]
        for _ in range(self.num_outer_cycles):
            a = y if feedback is None else torch.cat([y, feedback(y)], dim=-1)
            e_y = self.answer_encoder(a)
            for _ in range(self.num_inner_cycles):
                z = z + self.core(z + e_x + e_y)
            y = y + self.answer_head(z)
            outputs.append(y)
        return outputs if return_all else y
