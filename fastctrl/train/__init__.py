"""Training: the shared loop, five methods on one env and reward, checkpoints and records.

- :mod:`.config`: the shared base config (data, reward, loop, controller, run); each method's
  own config sits beside it in :mod:`.methods` (one file per method).
- :mod:`.loop`: :class:`~fastctrl.train.loop.Run` (evaluation points, early stopping,
  schedules, resumable checkpoints, outputs).
- :mod:`.records`: what a run writes and the E5 comparison reads.
- :mod:`.seeding`, :mod:`.schedules`, :mod:`.checkpoint`, :mod:`.plots`: helpers every trainer
  shares (also :mod:`fastctrl.recursive_control`).
- ``python -m fastctrl.train`` (:mod:`.cli`).
"""

from __future__ import annotations

from .cli import main

__all__ = ["main"]
