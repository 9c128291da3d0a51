"""Live counters of a hook (:class:`HookStats`) and the clock they are read with."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class HookStats:
    """Live counters of a hook. Times are in ms (``perf_counter`` on CPU, CUDA events on GPU).

    A *decision forward* is a forward that ran the controller (prefill); decode steps reuse
    the held decision and are counted in ``decode_forwards``.
    """

    decisions: int = 0
    """Decision forwards (one per request batch at prefill; pinned configs included)."""
    decode_forwards: int = 0
    """Forwards that reused a held decision (generate() decode steps)."""
    guardrail_replaced: int = 0
    """Request decisions the latency guardrail replaced (predicted to miss their budget)."""
    configs: Counter[tuple[int, ...]] = field(default_factory=Counter)
    """Config (knob values, in knob order) that each decision forward ran -> count."""
    request_configs: Counter[tuple[int, ...]] = field(default_factory=Counter)
    """Config each request asked for (before the batch minimum) -> count."""
    knob_names: tuple[str, ...] = ()
    timer: str = "perf_counter"
    _controller_ms: list[float] = field(default_factory=list, repr=False)
    _forward_ms: list[float] = field(default_factory=list, repr=False)
    _pending: list[tuple[Any, Any, Any, Any]] = field(default_factory=list, repr=False)

    def record(self, ctrl: tuple[Any, Any], forward: tuple[Any, Any]) -> None:
        """One decision forward's ``(start, end)`` stamps (:func:`now`): CUDA events are read
        when the stats are, so timing adds no sync to the forward."""
        if isinstance(ctrl[0], float):
            self._controller_ms.append((ctrl[1] - ctrl[0]) * 1e3)
            self._forward_ms.append((forward[1] - forward[0]) * 1e3)
        else:
            self._pending.append((*ctrl, *forward))

    def _resolve(self) -> None:
        for c0, c1, f0, f1 in self._pending:
            self._controller_ms.append(elapsed_ms(c0, c1))
            self._forward_ms.append(elapsed_ms(f0, f1))
        self._pending.clear()

    @property
    def controller_ms(self) -> list[float]:
        """Decision time per forward that ran the controller: vision mask, feature pooling,
        the engine call and the batch config (pinned forwards and decode steps do not run it
        and are not listed)."""
        self._resolve()
        return self._controller_ms

    @property
    def forward_ms(self) -> list[float]:
        """Whole top-level forward time (controller included) of the same forwards."""
        self._resolve()
        return self._forward_ms

    def take_times(self) -> tuple[list[float], list[float]]:
        """``(controller_ms, forward_ms)`` recorded so far, and start the lists afresh."""
        self._resolve()
        out = (self._controller_ms, self._forward_ms)
        self._controller_ms, self._forward_ms = [], []
        return out

    @property
    def controller_share(self) -> float:
        """Controller time / forward time over all decision forwards (nan before any)."""
        total = sum(self.forward_ms)
        return sum(self.controller_ms) / total if total > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        def _med(x: list[float]) -> float:
            return float(np.median(x)) if x else math.nan

        return {
            "decisions": self.decisions,
            "decode_forwards": self.decode_forwards,
            "guardrail_replaced": self.guardrail_replaced,
            "configs": {self._key(k): v for k, v in self.configs.items()},
            "request_configs": {self._key(k): v for k, v in self.request_configs.items()},
            "controller_ms_p50": _med(self.controller_ms),
            "forward_ms_p50": _med(self.forward_ms),
            "controller_share": self.controller_share,
            "timer": self.timer,
        }

    def _key(self, values: tuple[int, ...]) -> str:
        return ",".join(f"{n}={v}" for n, v in zip(self.knob_names, values, strict=True))


def now(device: torch.device) -> Any:
    """A time stamp: ``perf_counter`` on CPU, a recorded CUDA event on GPU."""
    if device.type == "cuda":
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev
    return time.perf_counter()


def elapsed_ms(start: Any, end: Any) -> float:
    """Milliseconds between two :func:`now` stamps (synchronises on the end event)."""
    if isinstance(start, float):
        return (end - start) * 1e3
    end.synchronize()
    return float(start.elapsed_time(end))
