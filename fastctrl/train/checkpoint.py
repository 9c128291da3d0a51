"""Checkpoints as plain dicts of tensors, numbers and strings: written atomically, read with
``torch.load(..., weights_only=True)`` (no pickle of code), checked for their format.

Every trainer uses these two functions (the VLM controller loop's ``last_checkpoint.pt`` /
``best_checkpoint.pt``, TinyRecursiveControl's ``best_model.pt``); each names its own format.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .. import io


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` to ``path`` atomically."""
    io.write_with(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(
    path: str | os.PathLike[str],
    fmt: str,
    *,
    version: int | None = None,
    what: str = "checkpoint",
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` whose ``"format"`` is ``fmt`` (and
    ``"version"`` is ``version`` when given); errors name ``what`` and the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for a bad file
        raise ValueError(f"{what}: {path} is not a readable checkpoint: {e}") from e
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise ValueError(f"{what}: {path} is not a {fmt} checkpoint")
    if version is not None and state.get("version") != version:
        raise ValueError(
            f"{what}: {path} has version {state.get('version')!r}, this code reads "
            f"version {version}"
        )
    return state
