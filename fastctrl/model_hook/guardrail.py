"""A latency guardrail applied after the decision engine: a decided config predicted to miss
its budget is replaced by the best config predicted to meet it.

The prediction is a table fitted on a profile's train split: per task type (and for requests
whose task is unknown, over all of them) and per config, a high quantile of the measured
latency (``quantile``, 0.9 by default) and the mean quality. A request keeps its decided
config when that config's predicted latency fits its budget; otherwise it gets the config of
highest mean quality among those predicted to fit, or, when none fits, the fastest one. It
reads no features: one table lookup per request after the engine's argmax, the same for every
engine (torch, int8, Triton), so the hook, the live evaluation and the server run it alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ALL_TASKS = ""


class LatencyGuardrail:
    def __init__(
        self,
        space_names: Sequence[str],
        config_indices: np.ndarray,
        latency: dict[str, np.ndarray],
        quality: dict[str, np.ndarray],
        quantile: float,
    ) -> None:
        self.names = tuple(space_names)
        self.config_indices = np.asarray(config_indices, dtype=np.int64)
        self._column = {tuple(int(i) for i in row): c for c, row in enumerate(self.config_indices)}
        self.latency, self.quality, self.quantile = latency, quality, quantile
        self.scale = 1.0
        """Multiplies every predicted latency (the server's host calibration)."""
        # per task: configs by descending quality (ties: faster first), for the replacement
        self._by_quality = {t: np.lexsort((latency[t], -quality[t])) for t in latency}

    @classmethod
    def fit(cls, profile: Any, quantile: float = 0.9) -> LatencyGuardrail:
        """From a :class:`~fastctrl.profile.table.Profile`'s train split."""
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        train = profile.split_indices("train")
        if train.size == 0:
            raise ValueError("the profile has no train split to fit the guardrail on")
        tasks = profile.task_types[train]
        lat = profile.latency[train]  # [R, C, repeats]
        qual = profile.quality[train]
        latency, quality = {}, {}
        for t in [ALL_TASKS, *sorted(set(tasks))]:
            rows = np.ones(len(train), bool) if t == ALL_TASKS else tasks == t
            per_config = lat[rows].transpose(1, 0, 2).reshape(lat.shape[1], -1)
            latency[t] = np.quantile(per_config, quantile, axis=1)
            quality[t] = qual[rows].mean(axis=0)
        return cls(profile.space.names, profile.config_indices, latency, quality, quantile)

    def apply(
        self, rows: list[list[int]], budget_ms: np.ndarray, task: Any
    ) -> tuple[list[list[int]], int]:
        """``rows`` with every decision predicted to miss its budget replaced; and how many
        were. ``task``: None, a name, or one per request (unknown names: all tasks)."""
        n = len(rows)
        flat = np.asarray(budget_ms, dtype=np.float64).reshape(-1)
        # per request: a python float (one budget for all: no broadcast array per call)
        budgets = [float(flat[0])] * n if flat.size == 1 else flat.tolist()
        tasks = [task] * n if task is None or isinstance(task, str) else list(task)
        out, replaced = [], 0
        for row, budget, t in zip(rows, budgets, tasks, strict=True):
            key = t if isinstance(t, str) and t in self.latency else ALL_TASKS
            col = self._column[tuple(row)]
            # the kept decision (the common case) reads one number, no scaled copy
            if self.latency[key][col] * self.scale <= budget:
                out.append(row)
                continue
            lat = self.latency[key] * self.scale
            fits = lat <= budget
            if fits.any():
                order = self._by_quality[key]
                best = int(order[np.argmax(fits[order])])
            else:
                best = int(np.argmin(lat))
            out.append([int(i) for i in self.config_indices[best]])
            replaced += 1
        return out, replaced
