"""Interleaved wall-clock medians for the script forms of the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any


def interleaved_medians(
    fns: Mapping[Any, Callable[[], Any]], rounds: int, warmup: int
) -> dict[Any, float]:
    """Median ms per callable: ``warmup`` untimed rounds, then ``rounds`` timed ones, every
    round calling each callable once in turn, so load drift hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[Any, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(t) for k, t in times.items()}
