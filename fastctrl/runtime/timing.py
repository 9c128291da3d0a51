"""Wall time of one model call, the same way in the profiler, the live evaluation and the
server: CUDA events (synchronised) on GPU, ``perf_counter`` on CPU."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


class CallTimer:
    """Wall time of one call in ms: CUDA events around it on GPU (synchronised), else
    ``perf_counter``."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.kind = "cuda_events" if self.cuda else "perf_counter"

    def time(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            out = fn()
            end.record()
            torch.cuda.synchronize()
            return out, float(start.elapsed_time(end))
        t0 = time.perf_counter()
        out = fn()
        return out, (time.perf_counter() - t0) * 1e3
