"""LQR datasets: generation and a validating loader for ``lqr_dataset.npz``.

Keys of the file (n samples, N steps)::

    initial_states      [n, 2]      float64  (position, velocity)
    control_sequences   [n, N, 1]   float64  LQR-optimal accelerations
    state_trajectories  [n, N+1, 2] float64  optimal trajectories, starting at the initial state
    costs               [n]         float64  optimal quadratic costs
    feedback_gains      [N, 1, 2]   float64  the Riccati gains K_k (u_k = -K_k x_k)
    system_json         str         the DoubleIntegrator (horizon, bound, cost weights) as JSON
    generator_json      str         the generator arguments (seed, ranges) as JSON

The loader checks every shape, that the trajectories are the simulation of the stored controls,
and that the stored costs equal the recomputed quadratic cost; a file that fails is refused
with an error naming it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from . import lqr
from .system import DoubleIntegrator

DATASET_FILE = "lqr_dataset.npz"


@dataclass(frozen=True)
class LQRDataset:
    """An in-memory LQR dataset (see the module docstring for the meaning of each array)."""

    system: DoubleIntegrator
    initial_states: np.ndarray
    control_sequences: np.ndarray
    state_trajectories: np.ndarray
    costs: np.ndarray
    feedback_gains: np.ndarray
    generator: dict[str, Any]

    def __len__(self) -> int:
        return int(self.initial_states.shape[0])


def generate(
    system: DoubleIntegrator,
    num_samples: int,
    seed: int,
    position_range: float,
    velocity_range: float,
) -> LQRDataset:
    """Sample initial states uniformly in the box and solve each with the LQR oracle."""
    if num_samples <= 0:
        raise ValueError(f"--num_samples must be > 0, got {num_samples}")
    for name, v in (("position_range", position_range), ("velocity_range", velocity_range)):
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"--{name} must be a finite number > 0, got {v!r}")
    umax = lqr.max_abs_control(system, position_range, velocity_range)
    if umax > system.control_bound:
        raise ValueError(
            f"the LQR-optimal control reaches |u| = {umax:.3f} on the initial-state box "
            f"[-{position_range}, {position_range}] x [-{velocity_range}, {velocity_range}], above "
            f"--control_bound {system.control_bound}: the bound would be active and LQR would not "
            "be the optimum. Raise --control_bound or shrink --position_range/--velocity_range."
        )
    rng = np.random.default_rng(seed)
    scale = np.array([position_range, velocity_range])
    x0 = rng.uniform(-1.0, 1.0, size=(num_samples, 2)) * scale
    sol = lqr.solve(system)
    controls, traj, costs = lqr.rollout(system, x0, sol)
    return LQRDataset(
        system=system,
        initial_states=x0,
        control_sequences=controls,
        state_trajectories=traj,
        costs=costs,
        feedback_gains=sol.gains,
        generator={
            "num_samples": int(num_samples),
            "seed": int(seed),
            "position_range": float(position_range),
            "velocity_range": float(velocity_range),
        },
    )


def save(dataset: LQRDataset, path: str | os.PathLike[str]) -> None:
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                initial_states=dataset.initial_states,
                control_sequences=dataset.control_sequences,
                state_trajectories=dataset.state_trajectories,
                costs=dataset.costs,
                feedback_gains=dataset.feedback_gains,
                system_json=np.array(json.dumps(dataset.system.to_dict())),
                generator_json=np.array(json.dumps(dataset.generator)),
            )

    io.write_with(path, writer)


def load(path: str | os.PathLike[str]) -> LQRDataset:
    """Load and validate an ``lqr_dataset.npz`` (a directory holding one is accepted too)."""
    path = Path(path)
    if path.is_dir():
        path = path / DATASET_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"LQR dataset not found: {path} (create it with python -m fastctrl.recursive_control.generate)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"LQR dataset {path} is not a readable .npz file: {e}") from e
    required = (
        "initial_states",
        "control_sequences",
        "state_trajectories",
        "costs",
        "feedback_gains",
        "system_json",
        "generator_json",
    )
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"LQR dataset {path} lacks the arrays {missing}; has {sorted(arrays)}")
    try:
        system = DoubleIntegrator(**json.loads(str(arrays["system_json"])))
        generator = json.loads(str(arrays["generator_json"]))
    except (TypeError, ValueError) as e:
        raise ValueError(f"LQR dataset {path}: bad system_json/generator_json: {e}") from e
    x0 = arrays["initial_states"].astype(np.float64)
    u = arrays["control_sequences"].astype(np.float64)
    traj = arrays["state_trajectories"].astype(np.float64)
    costs = arrays["costs"].astype(np.float64)
    gains = arrays["feedback_gains"].astype(np.float64)
    n, N = x0.shape[0] if x0.ndim == 2 else -1, system.num_steps
    expected = {
        "initial_states": (x0, (n, 2)),
        "control_sequences": (u, (n, N, 1)),
        "state_trajectories": (traj, (n, N + 1, 2)),
        "costs": (costs, (n,)),
        "feedback_gains": (gains, (N, 1, 2)),
    }
    for key, (arr, shape) in expected.items():
        if arr.shape != shape or n <= 0:
            raise ValueError(
                f"LQR dataset {path}: {key} has shape {arr.shape}, expected {shape} "
                f"(n samples, N={N} steps from system_json)"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"LQR dataset {path}: {key} contains NaN or inf")
    sim = system.simulate(x0, u)
    if not np.allclose(sim, traj, rtol=1e-9, atol=1e-9):
        raise ValueError(
            f"LQR dataset {path}: state_trajectories are not the simulation of control_sequences "
            f"(max difference {np.abs(sim - traj).max():.3g})"
        )
    recomputed = system.cost(traj, u)
    if not np.allclose(recomputed, costs, rtol=1e-9, atol=1e-12):
        raise ValueError(
            f"LQR dataset {path}: costs differ from the quadratic cost of the stored trajectories "
            f"(max difference {np.abs(recomputed - costs).max():.3g})"
        )
    return LQRDataset(
        system=system,
        initial_states=x0,
        control_sequences=u,
        state_trajectories=traj,
        costs=costs,
        feedback_gains=gains,
        generator=generator,
    )
