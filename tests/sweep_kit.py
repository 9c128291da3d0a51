"""Shared piece of the profiler tests: a quick sweep of a tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastctrl.profile.sweep import SweepResult, run_sweep
from fastctrl.space import ActionSpace
from fastctrl.testing.tiny_models import TinyProcessor

#: untimed warm-up off, one timed repeat, two new tokens, no progress bar
QUICK = dict(warmup=0, repeats=1, max_new_tokens=2, quiet=True)


def tiny_sweep(model, data: Any, space: ActionSpace, out: str | Path, **settings) -> SweepResult:
    """:func:`run_sweep` of a tiny model through its :class:`TinyProcessor`: the
    :data:`QUICK` settings unless ``settings`` say otherwise."""
    return run_sweep(model, TinyProcessor(model), data, space, out, **{**QUICK, **settings})
