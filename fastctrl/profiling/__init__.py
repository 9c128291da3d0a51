"""Profiling a transformers VLM over a config grid (``python -m fastctrl.profile``)."""

from __future__ import annotations

from .metrics import METRICS, agreement, exact_match, normalize_answer, vqa_accuracy
from .sweep import Request, SweepResult, as_requests, run_sweep, write_outputs

__all__ = [
    "METRICS",
    "Request",
    "SweepResult",
    "agreement",
    "as_requests",
    "exact_match",
    "normalize_answer",
    "run_sweep",
    "vqa_accuracy",
    "write_outputs",
]
