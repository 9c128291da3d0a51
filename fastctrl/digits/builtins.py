"""The digits benchmark's built-in names (``fastctrl.builtins`` entry point): the shipped
model ``fastctrl-digits`` and its measured profile under the same name."""

from __future__ import annotations

from typing import Any

from ..runtime.loading import load_pretrained
from ..runtime.registry import register_controller, register_model, register_profile
from . import DIGITS_MODEL, pretrained_dir, shipped_controller, shipped_profile


def load_digits(name: str, *, seed: int, dtype: str = "auto", **kw: Any) -> tuple[Any, Any]:
    """The trained digits VLM from the package. Its weights are stored in bfloat16 to halve
    the file; ``auto`` runs it in float32, the dtype it was profiled in."""
    del name, seed  # one trained model; nothing is random
    return load_pretrained(
        str(pretrained_dir()), dtype="float32" if dtype == "auto" else dtype, **kw
    )


def register() -> None:
    register_model(DIGITS_MODEL, load_digits, description="the trained handwritten-digits VLM")
    register_profile(DIGITS_MODEL, shipped_profile, description="the digits VLM's measured profile")
    register_controller(
        DIGITS_MODEL, shipped_controller, description="the digits VLM's shipped controller"
    )
