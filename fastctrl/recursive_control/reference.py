"""The exact optimum of the bounded double-integrator task, independent of the Riccati oracle.

Stacking the trajectory, ``x = Phi x_0 + Gam u`` ([2 (N + 1)] from the [N] controls), the cost
is the convex quadratic::

    J(u) = (Phi x_0 + Gam u)' Qbar (Phi x_0 + Gam u) + r u'u,   Qbar = diag(Q, ..., Q, Qf)

with Hessian ``2 H``, ``H = Gam' Qbar Gam + r I``. Its unconstrained minimiser is the LQR
optimum; where that satisfies ``|u| <= control_bound`` it is also the optimum of the bounded
problem (a convex problem whose unconstrained minimiser is feasible). Everywhere else the box
constraint binds and the optimum is the box-constrained QP, solved as a bounded least-squares
problem by scipy's ``lsq_linear(method="bvls")`` (an exact active-set method) and checked
against its KKT conditions. :class:`Optimum` records which of the two each state got.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear

from .system import STATE_DIM, DoubleIntegrator

# A solution whose relative KKT residual exceeds this is refused (bvls reaches ~1e-12).
KKT_TOLERANCE = 1e-7


@dataclass(frozen=True)
class Optimum:
    """The optimum of the bounded problem for each of n initial states."""

    controls: np.ndarray
    """[n, N] optimal controls (float64), all within the bound."""
    costs: np.ndarray
    """[n] optimal costs."""
    constrained: np.ndarray
    """[n] bool: the unconstrained (LQR) optimum violates the bound, so the QP was solved."""
    kkt_residual: np.ndarray
    """[n] KKT residual of the solution relative to the size of the gradient at u = 0."""

    @property
    def method(self) -> str:
        """``"lqr"`` when no state needed the QP, ``"lqr+qp"`` otherwise (for reports)."""
        return "lqr+qp" if bool(self.constrained.any()) else "lqr"


@dataclass(frozen=True)
class StackedProblem:
    """``x = Phi x_0 + Gam u`` and the cost weights, for one system."""

    phi: np.ndarray
    """[2 (N + 1), 2]."""
    gam: np.ndarray
    """[2 (N + 1), N]."""
    qbar: np.ndarray
    """[2 (N + 1)] diagonal of Qbar (the double integrator's weights are diagonal)."""
    r: float
    bound: float

    @property
    def hessian(self) -> np.ndarray:
        """H [N, N] (the cost's Hessian is 2 H)."""
        return self.gam.T @ (self.qbar[:, None] * self.gam) + self.r * np.eye(self.gam.shape[1])

    def linear_term(self, initial_states: np.ndarray) -> np.ndarray:
        """f [n, N] with ``J(u) = u'Hu + 2 f'u + const``."""
        return (initial_states @ self.phi.T * self.qbar) @ self.gam

    def cost(self, initial_states: np.ndarray, controls: np.ndarray) -> np.ndarray:
        x = initial_states @ self.phi.T + controls @ self.gam.T
        return np.einsum("ni,i,ni->n", x, self.qbar, x) + self.r * np.sum(controls**2, axis=1)


def stacked(system: DoubleIntegrator) -> StackedProblem:
    A, B, N = system.A, system.B, system.num_steps
    phi = np.zeros((STATE_DIM * (N + 1), STATE_DIM))
    gam = np.zeros((STATE_DIM * (N + 1), N))
    powers = [np.linalg.matrix_power(A, k) for k in range(N + 1)]
    for k in range(N + 1):
        phi[2 * k : 2 * k + 2] = powers[k]
        for j in range(k):
            gam[2 * k : 2 * k + 2, j] = (powers[k - 1 - j] @ B)[:, 0]
    q = np.diag(system.Q)
    qbar = np.concatenate([np.tile(q, N), np.diag(system.Qf)])
    return StackedProblem(
        phi=phi, gam=gam, qbar=qbar, r=float(system.r), bound=float(system.control_bound)
    )


def kkt_residual(
    problem: StackedProblem, initial_states: np.ndarray, controls: np.ndarray, atol: float = 1e-9
) -> np.ndarray:
    """Relative KKT residual [n] of bounded ``controls``: the projected gradient's largest entry
    over that of the gradient at u = 0 (zero exactly at the optimum).

    A control strictly inside the bound needs a zero gradient; one at +bound a gradient <= 0 (the
    cost would drop only by leaving the box), one at -bound a gradient >= 0.
    """
    f = problem.linear_term(initial_states)
    g = 2.0 * (controls @ problem.hessian + f)
    b = problem.bound
    at_upper = controls >= b - atol * b
    at_lower = controls <= -b + atol * b
    proj = np.where(at_upper, np.maximum(g, 0.0), np.where(at_lower, np.minimum(g, 0.0), g))
    excess = np.maximum(np.abs(controls) - b, 0.0)  # infeasibility counts too
    scale = np.maximum(np.abs(2.0 * f).max(axis=1), 1e-300)
    return np.maximum(np.abs(proj).max(axis=1) / scale, excess.max(axis=1) / b)


def optimum(system: DoubleIntegrator, initial_states: np.ndarray) -> Optimum:
    """The optimum of the bounded problem from each of the [n, 2] ``initial_states``."""
    x0 = np.asarray(initial_states, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[1] != STATE_DIM or not np.all(np.isfinite(x0)):
        raise ValueError(
            f"initial_states must be a finite [n, {STATE_DIM}] array, got shape {x0.shape}"
        )
    p = stacked(system)
    H = p.hessian
    f = p.linear_term(x0)
    u = -np.linalg.solve(H, f.T).T  # unconstrained minimiser (the LQR optimum)
    constrained = np.abs(u).max(axis=1) > p.bound
    if constrained.any():
        # min ||M u - d||^2 with M = [sqrt(Qbar) Gam; sqrt(r) I] is J(u) up to a constant
        sq = np.sqrt(p.qbar)
        M = np.vstack([sq[:, None] * p.gam, np.sqrt(p.r) * np.eye(system.num_steps)])
        for i in np.flatnonzero(constrained):
            d = np.concatenate([-sq * (p.phi @ x0[i]), np.zeros(system.num_steps)])
            # bvls stops after max_iter active-set changes (default N: too few far outside)
            sol = lsq_linear(
                M,
                d,
                bounds=(-p.bound, p.bound),
                method="bvls",
                tol=1e-14,
                max_iter=100 * system.num_steps,
            )
            u[i] = np.clip(sol.x, -p.bound, p.bound)
    res = kkt_residual(p, x0, u)
    if np.any(res > KKT_TOLERANCE):
        worst = int(np.argmax(res))
        raise RuntimeError(
            f"reference optimum: KKT residual {res[worst]:.2e} at state "
            f"{x0[worst].tolist()} exceeds {KKT_TOLERANCE:g}"
        )
    return Optimum(controls=u, costs=p.cost(x0, u), constrained=constrained, kkt_residual=res)
