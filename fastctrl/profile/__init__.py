"""Profiles: what each config cost and bought per request, and where they come from.

- :mod:`.table`: the profile table + feature store (:class:`Profile`, validation, files).
- Sources: :mod:`.sweep` (a model swept over a dataset through the hook, with :mod:`.metrics`
  scoring the answers), :mod:`.importers` (the GRPO guide's exp5/exp6 layout),
  :mod:`.synthetic` (the documented simulator), :mod:`.synthetic_vqa` (a built-in image set).
- ``python -m fastctrl.profile`` (:mod:`.cli`).
"""

from __future__ import annotations

from .cli import main
from .synthetic import synthetic_profile
from .table import SPLITS, FeatureStore, Profile, ProfileError, ValidationReport, assign_splits

__all__ = [
    "SPLITS",
    "FeatureStore",
    "Profile",
    "ProfileError",
    "ValidationReport",
    "assign_splits",
    "main",
    "synthetic_profile",
]
