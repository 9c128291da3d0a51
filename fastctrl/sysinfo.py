"""Host facts recorded beside measured latencies (profile sidecars, benchmarks): a latency
means little without the machine it was measured on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: Any = "cpu") -> dict[str, Any]:
    """CPU model, core count, platform and library versions; the GPU's name on CUDA."""
    import torch
    import transformers

    out = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
           "python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out
