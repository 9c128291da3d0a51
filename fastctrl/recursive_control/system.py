"""The double integrator: position and velocity driven by a bounded acceleration.

Continuous time: ``p' = v``, ``v' = u``. With the control held constant over each of the
``num_steps`` intervals of length ``dt = time_horizon / num_steps`` (zero-order hold), the exact
discretisation is::

    x_{k+1} = A x_k + B u_k,   A = [[1, dt], [0, 1]],   B = [[dt^2 / 2], [dt]]

The task is to bring any initial state to the origin. A control sequence is judged by the
quadratic cost::

    J = sum_{k=0}^{N-1} (x_k' Q x_k + u_k' R u_k) + x_N' Qf x_N

and by its final-state error ``||x_N||``. Controls are bounded, ``|u_k| <= control_bound``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

STATE_DIM = 2
CONTROL_DIM = 1


@dataclass(frozen=True)
class DoubleIntegrator:
    """A double integrator, its horizon, its control bound and its quadratic cost."""

    num_steps: int = 15
    """Number of control steps N over the horizon."""
    time_horizon: float = 5.0
    """Length of the horizon in seconds."""
    control_bound: float = 10.0
    """Bound on the acceleration: every control satisfies |u| <= control_bound."""
    q_position: float = 1.0
    """Stage-cost weight on position squared (Q[0, 0])."""
    q_velocity: float = 1.0
    """Stage-cost weight on velocity squared (Q[1, 1])."""
    r: float = 0.1
    """Stage-cost weight on the control squared (R)."""
    qf_position: float = 10.0
    """Terminal-cost weight on position squared (Qf[0, 0])."""
    qf_velocity: float = 10.0
    """Terminal-cost weight on velocity squared (Qf[1, 1])."""

    def __post_init__(self) -> None:
        if (
            isinstance(self.num_steps, bool)
            or not isinstance(self.num_steps, (int, np.integer))
            or self.num_steps <= 0
        ):
            raise ValueError(f"--num_steps must be a positive integer, got {self.num_steps!r}")
        for name in ("time_horizon", "control_bound", "r"):
            v = float(getattr(self, name))
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"--{name} must be > 0 and finite, got {v!r}")
        for name in ("q_position", "q_velocity", "qf_position", "qf_velocity"):
            v = float(getattr(self, name))
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"--{name} must be >= 0 and finite, got {v!r}")

    # ---- matrices (float64) -------------------------------------------------------------
    @property
    def dt(self) -> float:
        return float(self.time_horizon) / int(self.num_steps)

    @property
    def A(self) -> np.ndarray:  # noqa: N802 (control-theory notation)
        return np.array([[1.0, self.dt], [0.0, 1.0]])

    @property
    def B(self) -> np.ndarray:  # noqa: N802
        return np.array([[0.5 * self.dt**2], [self.dt]])

    @property
    def Q(self) -> np.ndarray:  # noqa: N802
        return np.diag([float(self.q_position), float(self.q_velocity)])

    @property
    def R(self) -> np.ndarray:  # noqa: N802
        return np.array([[float(self.r)]])

    @property
    def Qf(self) -> np.ndarray:  # noqa: N802
        return np.diag([float(self.qf_position), float(self.qf_velocity)])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["num_steps"] = int(d["num_steps"])
        return {k: (v if k == "num_steps" else float(v)) for k, v in d.items()}

    # ---- simulation ---------------------------------------------------------------------
    def simulate(self, initial_states: np.ndarray, controls: np.ndarray) -> np.ndarray:
        """Roll out ``controls`` [n, N] or [n, N, 1] from ``initial_states`` [n, 2].

        Returns the trajectory [n, N + 1, 2] (float64), starting with the initial state.
        """
        x0, u = self._check(initial_states, controls)
        A, B = self.A, self.B
        traj = np.empty((x0.shape[0], self.num_steps + 1, STATE_DIM))
        traj[:, 0] = x0
        for k in range(self.num_steps):
            traj[:, k + 1] = traj[:, k] @ A.T + u[:, k, None] * B[:, 0]
        return traj

    def cost(self, trajectories: np.ndarray, controls: np.ndarray) -> np.ndarray:
        """Quadratic cost J [n] of trajectories [n, N + 1, 2] under controls [n, N(, 1)]."""
        traj = np.asarray(trajectories, dtype=np.float64)
        u = np.asarray(controls, dtype=np.float64).reshape(traj.shape[0], -1)
        if traj.shape[1:] != (self.num_steps + 1, STATE_DIM) or u.shape[1] != self.num_steps:
            raise ValueError(
                f"cost: expected trajectories [n, {self.num_steps + 1}, {STATE_DIM}] and controls "
                f"[n, {self.num_steps}], got {traj.shape} and {np.shape(controls)}"
            )
        x = traj[:, :-1]
        stage = np.einsum("nki,ij,nkj->n", x, self.Q, x) + float(self.r) * np.sum(u * u, axis=1)
        xf = traj[:, -1]
        return stage + np.einsum("ni,ij,nj->n", xf, self.Qf, xf)

    def final_error(self, trajectories: np.ndarray) -> np.ndarray:
        """Euclidean distance of the final state to the origin, [n]."""
        return np.linalg.norm(np.asarray(trajectories)[:, -1], axis=-1)

    def final_state_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(A^N [2, 2], G [2, N]) with ``x_N = A^N x_0 + G u`` (the closed-form rollout)."""
        A, B, n = self.A, self.B, self.num_steps
        G = np.empty((STATE_DIM, n))
        for k in range(n):
            G[:, k] = (np.linalg.matrix_power(A, n - 1 - k) @ B)[:, 0]
        return np.linalg.matrix_power(A, n), G

    def _check(
        self, initial_states: np.ndarray, controls: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        x0 = np.asarray(initial_states, dtype=np.float64)
        u = np.asarray(controls, dtype=np.float64)
        if x0.ndim != 2 or x0.shape[1] != STATE_DIM:
            raise ValueError(f"initial_states must be [n, {STATE_DIM}], got {x0.shape}")
        if u.ndim == 3 and u.shape[2] == CONTROL_DIM:
            u = u[..., 0]
        if u.shape != (x0.shape[0], self.num_steps):
            raise ValueError(
                f"controls must be [n, {self.num_steps}] or [n, {self.num_steps}, 1] with "
                f"n={x0.shape[0]}, got {np.shape(controls)}"
            )
        return x0, u


def final_state_torch(
    initial_states: torch.Tensor, controls: torch.Tensor, a_pow_n: torch.Tensor, g: torch.Tensor
) -> torch.Tensor:
    """Differentiable ``x_N = A^N x_0 + G u`` for [B, 2] states and [B, N] controls."""
    return initial_states @ a_pow_n.T + controls @ g.T
