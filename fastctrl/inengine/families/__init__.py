"""One adapter per model family; importing this package registers them all."""

from __future__ import annotations

from . import llava_olmoe, qwen3_vl_moe
from .base import Adapter, UnsupportedModelError, find_adapter, register, supported_families

__all__ = [
    "Adapter",
    "UnsupportedModelError",
    "find_adapter",
    "llava_olmoe",
    "qwen3_vl_moe",
    "register",
    "supported_families",
]
