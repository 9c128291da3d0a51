"""Host facts every benchmark records in ``extra_info`` (the library's own helper)."""

from __future__ import annotations

from fastctrl.sysinfo import cpu_model

__all__ = ["cpu_model"]
