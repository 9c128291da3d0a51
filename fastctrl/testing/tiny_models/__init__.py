"""Tiny random-weight VLMs of every supported family, and a toy processor for each.

Nothing is downloaded: models are built from their transformers config classes with small sizes
and seeded random weights. They exist for tests, benchmarks and the profiler demo; their
outputs mean nothing, but their compute has the real structure (vision tower, projector,
MoE routers and experts or dense MLPs, decoder blocks, KV cache).

Each family group registers :class:`TinySpec` entries (``register_tiny``) from its own module;
:func:`build_tiny` builds one by name, :class:`TinyProcessor` / :func:`tiny_inputs` make its
inputs (the spec is found from the model, so a tiny model reloaded with ``from_pretrained``
works too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .common import BOS, EOS, IMAGE, PAD, VEND, VIDEO, VOCAB, VSTART, decode_text, encode_text


@dataclass(frozen=True)
class TinySpec:
    """One tiny model: how to build it, recognise it and make its inputs."""

    name: str
    """Registry key, e.g. ``"llava-qwen3-moe"`` (the CLI offers ``tiny-<name>``)."""
    build: Callable[..., nn.Module]
    """``build(seed=0, **kwargs)`` -> model in eval mode; kwargs ``hidden`` and ``layers``
    at least are honoured (benchmarks use ``hidden``)."""
    matches: Callable[[nn.Module], bool]
    """Whether a model is one of these (by class and text model type)."""
    process: Callable[[nn.Module, Sequence[np.ndarray], Sequence[str]], dict[str, torch.Tensor]]
    """``(model, images HxWx3 uint8, prompts)`` -> model inputs, left-padded batch."""
    image_size: int = 32
    """Side of the square test images ``tiny_inputs`` draws."""


_TINY: dict[str, TinySpec] = {}


def register_tiny(spec: TinySpec) -> TinySpec:
    if spec.name in _TINY:
        raise ValueError(f"tiny model {spec.name!r} is registered twice")
    _TINY[spec.name] = spec
    return spec


def tiny_families() -> tuple[str, ...]:
    """Names of every registered tiny model, in registration order."""
    return tuple(_TINY)


def tiny_spec(name_or_model: str | nn.Module) -> TinySpec:
    if isinstance(name_or_model, str):
        spec = _TINY.get(name_or_model)
        if spec is None:
            raise ValueError(
                f"unknown tiny model family {name_or_model!r}; choose one of {tiny_families()}"
            )
        return spec
    for spec in _TINY.values():
        if spec.matches(name_or_model):
            return spec
    raise TypeError(f"no tiny model spec matches {type(name_or_model).__name__}")


def sweep_grids(model: nn.Module) -> dict[str, list[int]]:
    """Every knob that applies to ``model`` on the grid the family tests and benchmarks sweep
    (its top = the unmodified model): max_crops [1, 2, 4], top_k [1, k/2, k] on MoE models,
    every block count."""
    from ...model_hook.families import find_adapter

    a = find_adapter(model)
    grids = {"max_crops": [1, 2, 4]}
    if a.is_moe:
        k = a.native_top_k
        grids["top_k"] = sorted({1, max(1, k // 2), k})
    grids["num_active_blocks"] = list(range(1, a.num_layers + 1))
    return grids


def build_tiny(family: str, seed: int = 0, **kwargs: Any) -> nn.Module:
    return tiny_spec(family).build(seed, **kwargs)


class TinyProcessor:
    """Turns (images, prompts) into model inputs for a tiny model (left padding)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.spec = tiny_spec(model)
        self.family = self.spec.name

    def __call__(self, images: Sequence[Any], prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        return self.spec.process(self.model, images, prompts)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return decode_text(ids)


def tiny_inputs(
    model: nn.Module, batch: int = 1, seed: int = 0, prompts: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """Random square images and short prompts of different lengths, processed for ``model``."""
    spec = tiny_spec(model)
    rng = np.random.default_rng(seed)
    s = spec.image_size
    images = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for _ in range(batch)]
    if prompts is None:
        words = ["what", "color", "is", "the", "shape", "how", "many", "dots"]
        prompts = [" ".join(rng.choice(words, size=2 + i % 3)) + "?" for i in range(batch)]
    return TinyProcessor(model)(images, prompts)


# every module here but the shared builders is a family group that registers itself (imported
# last: they use register_tiny); the first two families first, so their order is stable
import importlib  # noqa: E402
import pkgutil  # noqa: E402

_SHARED_MODULES = ("common", "configs", "text_models")
for _mod in ["base_families"] + sorted(
    m.name
    for m in pkgutil.iter_modules(__path__)
    if m.name not in ("base_families", *_SHARED_MODULES)
):
    importlib.import_module(f"{__name__}.{_mod}")

FAMILIES = tiny_families()

__all__ = [
    "BOS",
    "EOS",
    "FAMILIES",
    "IMAGE",
    "PAD",
    "VEND",
    "VIDEO",
    "VOCAB",
    "VSTART",
    "TinyProcessor",
    "TinySpec",
    "sweep_grids",
    "build_tiny",
    "decode_text",
    "encode_text",
    "register_tiny",
    "tiny_families",
    "tiny_inputs",
    "tiny_spec",
]
