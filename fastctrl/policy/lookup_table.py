"""The lookup-table method's policy as something a server runs: (task type, budget) -> config.

The ``lut`` training method (``table`` mode, :mod:`fastctrl.train.methods.lut`) learns one
config per (task type, log-spaced budget bin) from the profile's train split. It reads no
features, so serving it needs no decision engine: the request's task type (the hook's
``task_type``, the dataset's ``task_type`` column) and its budget index the table, and the
config is pinned on the hooked model for that request. Saved without pickle, like a
controller: ``config.json`` (grid, task types, bin edges in ms) + ``table.safetensors``
(the per-knob grid indices of every cell).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..space import ActionSpace, Config

FORMAT_NAME = "fastctrl-lookup-table"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
TABLE_FILE = "table.safetensors"
#: where a training run of the ``lut`` method keeps it
RUN_SUBDIR = "lookup_table"


@dataclass
class LookupTablePolicy:
    """``indices[t, b]``: the grid indices (one per knob of ``space``) chosen for task type
    ``tasks[t]`` at budget bin ``b``; bin ``b`` holds budgets in ``(edges[b-1], edges[b]]``
    ms (``numpy.searchsorted`` on ``edges_ms``, as the method bins them in training)."""

    space: ActionSpace
    tasks: list[str]
    edges_ms: np.ndarray
    indices: np.ndarray

    def __post_init__(self) -> None:
        self.edges_ms = np.asarray(self.edges_ms, dtype=np.float64)
        self.indices = np.asarray(self.indices, dtype=np.int64)
        t, k = len(self.tasks), len(self.space.names)
        if self.indices.ndim != 3 or self.indices.shape[0] != t or self.indices.shape[2] != k:
            raise ValueError(
                f"indices must be [tasks={t}, bins, knobs={k}], got {list(self.indices.shape)}"
            )
        if self.edges_ms.shape != (self.indices.shape[1] - 1,):
            raise ValueError(
                f"edges_ms must hold bins - 1 = {self.indices.shape[1] - 1} "
                f"values, got {self.edges_ms.shape[0]}"
            )
        if not np.all(np.isfinite(self.edges_ms)) or np.any(np.diff(self.edges_ms) < 0):
            raise ValueError("edges_ms must be finite and ascending")
        sizes = np.array([len(self.space[n].values) for n in self.space.names])
        if self.indices.size and (self.indices.min() < 0 or np.any(self.indices >= sizes)):
            raise ValueError(f"indices out of the grid {self.space.to_dict()}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"task types must be unique, got {self.tasks}")

    @classmethod
    def from_flat(
        cls,
        space: ActionSpace,
        tasks: Sequence[str],
        edges_ms: np.ndarray,
        table: np.ndarray,
        config_indices: np.ndarray,
    ) -> LookupTablePolicy:
        """From the method's table of profile columns and the profile's column -> grid
        indices map (``Profile.config_indices``)."""
        return cls(
            space,
            [str(t) for t in tasks],
            edges_ms,
            np.asarray(config_indices)[np.asarray(table, dtype=np.int64)],
        )

    def decide(self, task_type: str | None, budget_ms: float) -> Config:
        """The config for one request."""
        if task_type not in self.tasks:
            raise ValueError(
                f"task_type {task_type!r}: the lookup table knows {self.tasks} "
                "(requests need the task_type the table was built on)"
            )
        if (
            not isinstance(budget_ms, (int, float))
            or not math.isfinite(budget_ms)
            or budget_ms <= 0
        ):
            raise ValueError(f"budget_ms must be a positive finite number, got {budget_ms!r}")
        b = int(np.searchsorted(self.edges_ms, budget_ms))
        return self.space.config(self.indices[self.tasks.index(task_type), b].tolist())

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``table.safetensors`` (each atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        io.write_tensors(directory / TABLE_FILE, {"indices": torch.from_numpy(self.indices.copy())})
        io.write_json(
            directory / CONFIG_FILE,
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "space": self.space.to_dict(),
                "tasks": self.tasks,
                "budget_edges_ms": [float(x) for x in self.edges_ms],
            },
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> LookupTablePolicy:
        """Load what :meth:`save_pretrained` wrote; refuse mismatched or corrupt files."""
        directory = Path(directory)
        meta = io.read_format_header(
            directory / CONFIG_FILE, "lookup table config", FORMAT_NAME, FORMAT_VERSION
        )
        missing = [k for k in ("space", "tasks", "budget_edges_ms") if k not in meta]
        if missing:
            raise ValueError(f"{directory / CONFIG_FILE}: missing {missing}")
        path = directory / TABLE_FILE
        state = io.read_tensors(path, "lookup table")
        if set(state) != {"indices"} or state["indices"].dtype != torch.int64:
            raise ValueError(
                f"{path}: expected one int64 tensor 'indices', got "
                f"{ {k: str(v.dtype) for k, v in state.items()} }"
            )
        return cls(
            ActionSpace.from_dict(meta["space"]),
            list(meta["tasks"]),
            np.asarray(meta["budget_edges_ms"], dtype=np.float64),
            state["indices"].numpy(),
        )


__all__ = ["LookupTablePolicy", "RUN_SUBDIR"]
