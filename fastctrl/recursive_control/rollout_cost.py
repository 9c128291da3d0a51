"""How an open-loop control sequence is scored: simulated through the exact float64 dynamics
and compared with a reference cost (the LQR optimum, or the bounded optimum of
:mod:`.reference`)."""

from __future__ import annotations

import numpy as np

from .system import DoubleIntegrator


def rollout_metrics(
    system: DoubleIntegrator,
    initial_states: np.ndarray,
    controls: np.ndarray,
    lqr_costs: np.ndarray,
    success_threshold: float = 0.1,
) -> dict[str, float]:
    """Metrics of open-loop ``controls`` [n, N] from ``initial_states`` versus reference costs
    [n] (``lqr_costs``: the optimum the gap is measured from)."""
    traj = system.simulate(initial_states, controls)
    costs = system.cost(traj, controls)
    err = system.final_error(traj)
    per_sample_gap = 100.0 * (costs / np.maximum(lqr_costs, 1e-12) - 1.0)
    return {
        "mean_final_error": float(err.mean()),
        "median_final_error": float(np.median(err)),
        "max_final_error": float(err.max()),
        "success_rate": float((err < success_threshold).mean()),
        "mean_cost": float(costs.mean()),
        "cost_gap_percent": float(100.0 * (costs.mean() / lqr_costs.mean() - 1.0)),
        "median_per_sample_gap_percent": float(np.median(per_sample_gap)),
        "max_abs_control": float(np.abs(controls).max()),
    }
