"""Profiles: what each config cost and bought per request, and where they come from.

- :mod:`.table`: the profile table + feature store (:class:`Profile`, validation, files).
- Sources: :mod:`.sweep` (a model swept over a dataset through the hook, with :mod:`.metrics`
  scoring the answers), :mod:`.importers` (the GRPO guide's exp5/exp6 layout),
  :mod:`.synthetic` (the documented simulator, + the features' probe :func:`probe_r2`),
  :mod:`.synthetic_noisy` (its noisy-answer family, like a real VQA profile),
  :mod:`.synthetic_vqa` (a built-in image set).
- ``python -m fastctrl.profile`` (:mod:`.cli`).
"""

from __future__ import annotations

from .cli import main
from .synthetic import hidden_factor_r2, probe_r2, synthetic_profile
from .synthetic_noisy import NOISY_GRIDS, noisy_vqa_profile
from .table import SPLITS, FeatureStore, Profile, ProfileError, ValidationReport, assign_splits

__all__ = [
    "NOISY_GRIDS",
    "SPLITS",
    "FeatureStore",
    "Profile",
    "ProfileError",
    "ValidationReport",
    "assign_splits",
    "hidden_factor_r2",
    "main",
    "noisy_vqa_profile",
    "probe_r2",
    "synthetic_profile",
]
