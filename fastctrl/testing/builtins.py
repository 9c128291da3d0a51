"""The tiny test models' built-in names (``fastctrl.builtins`` entry point):
``tiny-<family>``, random weights from the run's seed, nothing downloaded."""

from __future__ import annotations

from typing import Any

from ..runtime.registry import register_model

TINY_PREFIX = "tiny-"


def load_tiny(name: str, *, seed: int, device: str | None = None, **kw: Any) -> tuple[Any, Any]:
    """A tiny model of the family ``name`` names, and its toy processor (the loading flags
    of a real checkpoint do not apply and are ignored)."""
    del kw
    from .tiny_models import TinyProcessor, build_tiny

    model = build_tiny(name.removeprefix(TINY_PREFIX), seed=seed)
    if device:
        model.to(device)
    return model, TinyProcessor(model)


def tiny_model_names() -> list[str]:
    from .tiny_models import tiny_families

    return [TINY_PREFIX + f for f in tiny_families()]


def register() -> None:
    register_model(
        TINY_PREFIX,
        load_tiny,
        description="tiny random-weight models, one per family",
        choices=tiny_model_names,
        random_weights=True,
    )
