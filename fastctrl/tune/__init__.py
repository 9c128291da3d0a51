"""``python -m fastctrl.tune``: one tuning protocol for every method (Optuna TPE, validation
split only, the same trial and env-step budget per method).

- :mod:`.space`: the search space (a shared part for the training loop, defined here, plus
  each method's own ``search_space``) and :func:`~.space.apply_params`.
- :mod:`.runner`: :func:`~.runner.run_trial`, one trial (plain dicts in and out, so another
  backend, e.g. Ray, can call it).
- :mod:`.cli`: the study (resumable, SQLite), its outputs and the command line.
"""

from __future__ import annotations

from .cli import TuneArgs, main, tune
from .runner import run_trial
from .search_space import apply_params, loop_space, suggest

__all__ = ["TuneArgs", "apply_params", "loop_space", "main", "run_trial", "suggest", "tune"]
