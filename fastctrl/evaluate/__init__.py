"""Live evaluation: a trained controller driving a real model through :func:`fastctrl.hook`
on held-out requests, beside the same model pinned at the best static config and at the full
config (:mod:`.live`, figures in :mod:`.plots`, ``python -m fastctrl.evaluate``: :mod:`.cli`).
Evaluation on the profile table lives in :mod:`fastctrl.env.evaluation`."""

from __future__ import annotations

from .live import LiveResult, PolicyResult, evaluate_live, static_configs

__all__ = ["LiveResult", "PolicyResult", "evaluate_live", "static_configs"]
