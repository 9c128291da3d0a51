"""The E5 experiment: every method x seeds on one env-step budget, JSON + figures + report.

- :mod:`.cli`: ``python -m fastctrl.compare`` (runs the (method, seed) trainings, resumable).
- :mod:`.analysis`: curves, sample efficiency, frontiers, overhead, stability from the runs'
  records (:mod:`fastctrl.train.records`).
- :mod:`.report`: ``e5_report.md``; :mod:`.plots`: the figures.
"""

from __future__ import annotations

from .cli import main

__all__ = ["main"]
