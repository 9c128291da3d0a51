"""Profiles (what each config cost and bought per request), their features, and importers."""

from __future__ import annotations

from .profile import SPLITS, FeatureStore, Profile, ProfileError, ValidationReport, assign_splits
from .synthetic import synthetic_profile

__all__ = [
    "SPLITS",
    "FeatureStore",
    "Profile",
    "ProfileError",
    "ValidationReport",
    "assign_splits",
    "synthetic_profile",
]
