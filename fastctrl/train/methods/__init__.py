"""The five training methods, one file each, behind one interface (:class:`Method`).

Adding a method: one file with a :class:`Method` subclass and its ``Config``, and one line in
``_ALL`` below; its name then appears in ``--method``, the E5 comparison and the tuner.
"""

from __future__ import annotations

from typing import Literal

from .base import Method
from .dpo import DPO
from .grpo import GRPO
from .lut import LookupTable
from .ppo import PPO
from .supervised import Supervised

_ALL: tuple[type[Method], ...] = (LookupTable, Supervised, PPO, DPO, GRPO)

#: method name -> class, in the order reports list them
METHODS: dict[str, type[Method]] = {m.name: m for m in _ALL}
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
#: the ``--method`` choices (built from the registry, so they are spelled once)
MethodName = Literal[METHOD_NAMES]  # type: ignore[valid-type]

__all__ = ["METHODS", "METHOD_NAMES", "Method", "MethodName"]
