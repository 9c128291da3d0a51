"""The hook's one decision call: pooled features + budgets -> the engine -> the batch's config.

:func:`decide` is what every decision forward of :func:`fastctrl.hook` runs after pooling, and
what evaluation's ``controller_overhead_ms`` times (``fastctrl.env.evaluation``), so the
overhead reported is the overhead served:

1. one ``engine.decide_tensors(image, text, budget)`` call on tensors already on the engine's
   device (features as pooled, in the model's dtype; the engine casts at its own boundary),
   or ``engine.decide_rows`` where the engine has it (the int8 engine: the same decisions,
   returned as host lists by the C++ call);
2. ONE host read of the ``[B, n_knobs]`` decisions (``tolist()``; on CUDA the only sync of the
   decision: the config decides tensor shapes, so it has to reach the host);
3. the batch's config: the per-knob minimum of the requests' grid indices (grids are
   ascending, so the tightest budget binds every knob), as a :class:`~fastctrl.space.Config`
   validated once per distinct index tuple.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..space import ActionSpace, Config


class ConfigCache:
    """Grid indices -> :class:`Config` (and its knob values), built and validated once each.

    A :class:`Config` validates its indices and builds its ``values`` dict on every access;
    a decision forward needs both, so they are memoised per distinct index tuple (at most
    ``space.n_configs`` entries).
    """

    def __init__(self, space: ActionSpace) -> None:
        self.space = space
        self._configs: dict[tuple[int, ...], CachedConfig] = {}

    def get(self, indices: tuple[int, ...]) -> CachedConfig:
        """The config at these grid indices; out-of-range indices raise ValueError."""
        hit = self._configs.get(indices)
        if hit is None:
            config = Config(self.space, tuple(int(i) for i in indices))
            values = config.values
            hit = self._configs[indices] = CachedConfig(config, values, tuple(values.values()))
        return hit


@dataclass(frozen=True)
class CachedConfig:
    config: Config
    values: dict[str, int]
    """knob -> value (do not mutate: shared by every forward that runs this config)"""
    key: tuple[int, ...]
    """the values in knob order (the key of ``HookStats.configs``)"""


@dataclass
class Decision:
    """What one decision returned."""

    per_request: torch.Tensor | None
    """``[B, n_knobs]`` grid indices as the engine returned them (on the engine's device);
    ``None`` when the engine gave host lists (``decide_rows``)."""
    rows: list[list[int]]
    """The same indices on the host (the one host read)."""
    config: CachedConfig
    """The config the batch runs: the per-knob minimum of ``rows``."""


def batch_indices(rows: list[list[int]]) -> tuple[int, ...]:
    """The grid indices a batch runs as one config: the per-knob minimum of its requests'
    (grids ascend, so the tightest request binds each knob)."""
    return tuple(rows[0]) if len(rows) == 1 else tuple(min(col) for col in zip(*rows, strict=True))


def decide(
    engine: Any,
    configs: ConfigCache,
    image: torch.Tensor,
    text: torch.Tensor,
    budget: torch.Tensor,
    task: torch.Tensor | None = None,
) -> Decision:
    """One engine call on validated inputs (``[B, D]`` features, a float32 ``[B]`` budget and
    optional int64 ``[B]`` task slots, on ``engine.device``), then the batch config.
    ``engine`` is anything with ``decide_tensors`` (an :class:`~fastctrl.engines.Engine` or a
    stand-in)."""
    args = (image, text, budget) if task is None else (image, text, budget, task)
    rows_fn = getattr(engine, "decide_rows", None)
    if rows_fn is not None:  # the int8 engine: host lists straight from C++
        idx, rows = None, rows_fn(*args)
    else:
        idx = engine.decide_tensors(*args)
        rows = idx.tolist()
    bsz, n = int(image.shape[0]), len(configs.space)
    if len(rows) != bsz or any(len(r) != n for r in rows):
        shape = list(idx.shape) if idx is not None else [len(rows), len(rows[0]) if rows else 0]
        raise RuntimeError(f"decision engine returned shape {shape}, expected [{bsz}, {n}]")
    return Decision(idx, rows, configs.get(batch_indices(rows)))


def budget_tensor(budget: np.ndarray, bsz: int, device: torch.device) -> torch.Tensor:
    """A validated float32 ``[1]`` or ``[bsz]`` budget as a contiguous float32 ``[bsz]``
    tensor on ``device``."""
    if budget.shape[0] not in (1, bsz):
        raise ValueError(
            f"budget_ms must be a scalar or have one entry per request ({bsz}), got "
            f"{budget.shape[0]} values"
        )
    full = np.broadcast_to(budget, (bsz,)) if budget.shape[0] != bsz else budget
    return torch.from_numpy(np.ascontiguousarray(full, dtype=np.float32)).to(device)


class BudgetCache:
    """:func:`budget_tensor` of one budget array, made once per (device, batch size).

    The hook's default budget is validated once (at ``hook()`` / ``set_budget``); its tensor is
    made here once instead of a host-to-device copy per forward.
    """

    def __init__(self) -> None:
        self._source: np.ndarray | None = None
        self._tensors: dict[tuple[torch.device, int], torch.Tensor] = {}

    def tensor(self, budget: np.ndarray, bsz: int, device: torch.device) -> torch.Tensor:
        if budget is not self._source:  # set_budget gave a new array
            self._source, self._tensors = budget, {}
        key = (device, bsz)
        t = self._tensors.get(key)
        if t is None:
            t = self._tensors[key] = budget_tensor(budget, bsz, device)
        return t


__all__ = [
    "BudgetCache",
    "batch_indices",
    "CachedConfig",
    "ConfigCache",
    "Decision",
    "budget_tensor",
    "decide",
]
