"""The five training methods, one file each, behind one interface (:class:`Method`)."""

from __future__ import annotations

from .base import Method
from .config import METHOD_NAMES, TrainConfig
from .dpo import DPO
from .grpo import GRPO
from .lut import LookupTable
from .ppo import PPO
from .supervised import Supervised

METHODS: dict[str, type[Method]] = {
    "lut": LookupTable,
    "supervised": Supervised,
    "ppo": PPO,
    "dpo": DPO,
    "grpo": GRPO,
}
assert tuple(METHODS) == METHOD_NAMES

__all__ = ["METHODS", "METHOD_NAMES", "Method", "TrainConfig"]
