"""The safe fallback: where validation cannot show the learned policy beats the best static
config, the static config is served instead.

A small table per (task slot, budget bin): ``use_policy[slot, k]`` says whether requests of
that task type (slot 0: unknown task) with a budget in bin ``k`` keep the policy's decision;
otherwise they run ``static[k]``, the best static config of that budget on the profile's train
split (the E5 ``best_static`` baseline). Bin ``k`` holds budgets from ``budget_ms[k]`` up to the
next edge. A budget below the first edge (a server's request whose queueing ate most of its
budget) runs ``static[0]`` whatever the cell says: the policy was never trained or validated
there, and what it extrapolates is no evidence. A budget is never given a static config
fitted for a larger budget, except that one below the grid gets the tightest one fitted.

It is applied after the engine's argmax in every decision engine (torch and Triton on the
device, int8 on the host lists the C++ call returns), so evaluation, the hook and the server
run it alike. How the table is fitted (a paired bootstrap on validation) is
:func:`fastctrl.env.safe_fallback.fit_fallback`.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

FALLBACK_FILE = "fallback.json"


@dataclass
class SafeFallback:
    budget_ms: np.ndarray
    """``[K]`` ascending lower edges of the budget bins (the validation budgets)."""
    static: np.ndarray
    """``[K, n_knobs]`` grid indices of the best static config of each bin."""
    use_policy: np.ndarray
    """``[n_slots, K]`` bool: keep the policy's decision (else the bin's static config)."""
    knob_names: tuple[str, ...]
    task_types: tuple[str, ...] = ()
    """Slot ``1 + i`` is ``task_types[i]``; slot 0 is an unknown task."""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """Per cell: the validation statistics that decided it (for the record, not used)."""

    def __post_init__(self) -> None:
        self.budget_ms = np.asarray(self.budget_ms, dtype=np.float64).reshape(-1)
        self.static = np.asarray(self.static, dtype=np.int64)
        self.use_policy = np.asarray(self.use_policy, dtype=bool)
        k = len(self.budget_ms)
        if (
            k == 0
            or not np.all(np.isfinite(self.budget_ms))
            or np.any(np.diff(self.budget_ms) <= 0)
        ):
            raise ValueError(
                f"budget_ms must be finite and strictly ascending, got {self.budget_ms}"
            )
        if self.static.shape != (k, len(self.knob_names)):
            raise ValueError(
                f"static must be [{k}, {len(self.knob_names)}] (bins x knobs), got "
                f"{list(self.static.shape)}"
            )
        if self.use_policy.shape != (self.n_slots, k):
            raise ValueError(
                f"use_policy must be [{self.n_slots}, {k}] (task slots x bins), got "
                f"{list(self.use_policy.shape)}"
            )
        self._tensors: dict[torch.device, tuple[torch.Tensor, ...]] = {}
        # edges in float32, as budgets reach the engines; the host path's as Python lists
        self._edges32 = self.budget_ms.astype(np.float32)
        self._edges = self._edges32.astype(np.float64).tolist()
        self._keep = self.use_policy.tolist()
        self._static_rows = self.static.tolist()

    @property
    def n_slots(self) -> int:
        return len(self.task_types) + 1

    # ------------------------------------------------------------------ applying
    def bins(self, budget_ms: np.ndarray) -> np.ndarray:
        """Bin of each budget; -1 below the grid. Compared in float32, the precision budgets
        reach the engines in: a grid budget rounded to float32 stays in its own bin."""
        b = np.asarray(budget_ms, dtype=np.float32)
        return np.searchsorted(self._edges32, b, "right") - 1

    def apply_array(
        self, indices: np.ndarray, budget_ms: Any, slots: np.ndarray | None = None
    ) -> np.ndarray:
        """``[B, n_knobs]`` decisions with the fallback applied (a new array)."""
        b = len(indices)
        k = self.bins(np.broadcast_to(np.asarray(budget_ms, dtype=np.float64).reshape(-1), (b,)))
        s = np.zeros(b, dtype=np.int64) if slots is None else np.asarray(slots).reshape(-1)
        keep = self.use_policy[s, np.maximum(k, 0)] & (k >= 0)
        return np.where(keep[:, None], indices, self.static[np.maximum(k, 0)])

    def apply_rows(
        self, rows: list[list[int]], budget_ms: np.ndarray, slots: np.ndarray | None = None
    ) -> list[list[int]]:
        """The same on host lists (the int8 engine's ``decide_rows``), in plain Python: a
        served request is one row, where numpy's per-call overhead was a third of the
        decision path (cProfile of the digits server)."""
        budgets = np.asarray(budget_ms, dtype=np.float32).astype(np.float64).reshape(-1).tolist()
        if len(budgets) == 1 and len(rows) != 1:
            budgets = budgets * len(rows)
        cells = [0] * len(rows) if slots is None else np.asarray(slots).reshape(-1).tolist()
        out = []
        for row, b, s in zip(rows, budgets, cells, strict=True):
            k = bisect.bisect_right(self._edges, b) - 1
            out.append(row if k >= 0 and self._keep[s][k] else list(self._static_rows[max(k, 0)]))
        return out

    def apply_tensor(
        self, indices: torch.Tensor, budget_ms: torch.Tensor, slots: torch.Tensor | None
    ) -> torch.Tensor:
        """The same on the device, without a host sync (torch and Triton engines)."""
        edges, static, keep = self._on(indices.device)
        k = torch.bucketize(budget_ms.to(edges.dtype), edges, right=True) - 1
        in_grid = k >= 0
        k = k.clamp_(min=0)
        s = torch.zeros_like(k) if slots is None else slots.reshape(-1).to(k.device)
        return torch.where((keep[s, k] & in_grid).unsqueeze(1), indices, static[k])

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        hit = self._tensors.get(device)
        if hit is None:
            hit = self._tensors[device] = (
                torch.from_numpy(self._edges32).to(device),
                torch.from_numpy(self.static).to(device),
                torch.from_numpy(self.use_policy).to(device),
            )
        return hit

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "fastctrl-safe-fallback-v1",
            "knob_names": list(self.knob_names),
            "task_types": list(self.task_types),
            "budget_ms": self.budget_ms.tolist(),
            "static": self.static.tolist(),
            "use_policy": self.use_policy.tolist(),
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "fallback") -> SafeFallback:
        if not isinstance(d, dict) or d.get("format") != "fastctrl-safe-fallback-v1":
            raise ValueError(f"{source}: not a fastctrl safe-fallback table (format v1)")
        try:
            return cls(
                budget_ms=np.asarray(d["budget_ms"], dtype=np.float64),
                static=np.asarray(d["static"], dtype=np.int64),
                use_policy=np.asarray(d["use_policy"], dtype=bool),
                knob_names=tuple(d["knob_names"]),
                task_types=tuple(d.get("task_types", ())),
                evidence=list(d.get("evidence", [])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{source}: malformed safe-fallback table: {e}") from e

    def save(self, directory: str | Path) -> None:
        from ..io import write_json

        write_json(Path(directory) / FALLBACK_FILE, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> SafeFallback | None:
        """The table saved in ``directory``, or ``None`` when it has none."""
        path = Path(directory) / FALLBACK_FILE
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        return cls.from_dict(d, str(path))

    def check_matches(self, knob_names: tuple[str, ...], task_types: tuple[str, ...]) -> None:
        """The table must name the knobs and task types of the policy it guards."""
        if tuple(knob_names) != self.knob_names or tuple(task_types) != self.task_types:
            raise ValueError(
                f"safe-fallback table is for knobs {list(self.knob_names)} and task types "
                f"{list(self.task_types)}, the policy has {list(knob_names)} and "
                f"{list(task_types)}"
            )
