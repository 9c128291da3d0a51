"""Finite-horizon LQR: the exact optimum of the double-integrator task.

The backward Riccati recursion (``P_N = Qf``)::

    K_k = (R + B' P_{k+1} B)^{-1} B' P_{k+1} A
    P_k = Q + A' P_{k+1} (A - B K_k)

gives the optimal feedback ``u_k = -K_k x_k`` and the optimal cost ``J*(x_0) = x_0' P_0 x_0``.
As the horizon grows, ``P_0`` tends to the solution of the discrete algebraic Riccati equation
(:func:`scipy.linalg.solve_discrete_are`), which the tests check.

The LQR optimum ignores the control bound; :func:`max_abs_control` gives the largest optimal
control over a box of initial states, and the data generator refuses a box on which the bound
would be active, so that the LQR solution is also the optimum of the bounded problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .system import DoubleIntegrator


@dataclass(frozen=True)
class LQRSolution:
    """Time-varying gains and cost-to-go matrices of a finite-horizon LQR problem."""

    gains: np.ndarray
    """K_k, [N, 1, 2]: the optimal control at step k is -K_k x_k."""
    cost_to_go: np.ndarray
    """P_k, [N + 1, 2, 2]: the optimal cost from state x at step k is x' P_k x."""


def riccati(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    Qf: np.ndarray,  # noqa: N803
    num_steps: int,
) -> LQRSolution:
    """Backward Riccati recursion over ``num_steps`` steps."""
    if num_steps <= 0:
        raise ValueError(f"num_steps must be > 0, got {num_steps}")
    n, m = B.shape
    P = np.asarray(Qf, dtype=np.float64)
    Ps = np.empty((num_steps + 1, n, n))
    Ks = np.empty((num_steps, m, n))
    Ps[num_steps] = P
    for k in range(num_steps - 1, -1, -1):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
        P = 0.5 * (P + P.T)
        Ks[k], Ps[k] = K, P
    return LQRSolution(gains=Ks, cost_to_go=Ps)


def solve(system: DoubleIntegrator) -> LQRSolution:
    return riccati(system.A, system.B, system.Q, system.R, system.Qf, system.num_steps)


def rollout(
    system: DoubleIntegrator, initial_states: np.ndarray, solution: LQRSolution | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal (controls [n, N, 1], trajectories [n, N + 1, 2], costs [n]) from [n, 2] states."""
    sol = solution if solution is not None else solve(system)
    x = np.asarray(initial_states, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"initial_states must be [n, 2], got {x.shape}")
    A, B = system.A, system.B
    n, N = x.shape[0], system.num_steps
    controls = np.empty((n, N, 1))
    traj = np.empty((n, N + 1, 2))
    traj[:, 0] = x
    for k in range(N):
        u = -x @ sol.gains[k].T
        controls[:, k] = u
        x = x @ A.T + u @ B.T
        traj[:, k + 1] = x
    costs = system.cost(traj, controls)
    return controls, traj, costs


def open_loop_map(system: DoubleIntegrator, solution: LQRSolution | None = None) -> np.ndarray:
    """M [N, 2] with optimal controls ``u = M x_0`` (the optimum is linear in the initial state)."""
    eye = np.eye(2)
    controls, _, _ = rollout(system, eye, solution)
    return controls[:, :, 0].T


def max_abs_control(
    system: DoubleIntegrator, position_range: float, velocity_range: float
) -> float:
    """Largest |u*| over initial states in [-p, p] x [-v, v]; attained at a corner (linear map)."""
    M = open_loop_map(system)
    corners = np.array([[position_range, velocity_range], [position_range, -velocity_range]])
    return float(np.abs(corners @ M.T).max())
