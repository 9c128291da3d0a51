"""The adapter interface: everything family-specific that :func:`fastctrl.hook` needs.

A model family (e.g. LLaVA with an OLMoE language model) is one subclass of :class:`Adapter`
in its own file, registered with :func:`register`, that declares its transformers classes
(base model, MoE router, experts, where the vision tower sits); finding the base model inside a
``...ForConditionalGeneration``, its routers and experts is done here once for every family.
The hook itself (:mod:`fastctrl.inengine.handle`) is family-agnostic: it only talks to the
modules and helpers an adapter exposes.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

log = logging.getLogger(__name__)

#: ``experts_implementation`` values whose cost is proportional to tokens x top_k
#: (transformers 5.x ``integrations/moe.py``: eager loops over hit experts, grouped_mm and
#: batched_mm process S = tokens * top_k token-expert pairs).
TOPK_PROPORTIONAL_IMPLS = ("eager", "grouped_mm", "batched_mm")


class UnsupportedModelError(TypeError):
    """``fastctrl.hook`` was given a model no adapter knows."""


class Adapter(ABC):
    """Family-specific access to a transformers VLM whose language model is a mixture of experts.

    Subclasses set :attr:`family`, :attr:`description` and the class declarations below, and
    implement the abstract methods.
    """

    #: short family name, e.g. ``"llava-olmoe"``
    family: ClassVar[str] = ""
    #: one line for error messages: which transformers classes this adapter accepts
    description: ClassVar[str] = ""
    #: the transformers base model (a name in ``transformers``), bare or as ``model.model``
    base_class: ClassVar[str] = ""
    #: ``"module:Class"`` of the MoE router (reads ``top_k`` at call time) and of the experts
    router_class: ClassVar[str] = ""
    experts_class: ClassVar[str] = ""
    #: attribute of the base model holding the vision encoder
    vision_tower_attr: ClassVar[str] = "vision_tower"

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        base = self.base_model(model)
        if base is None:
            raise UnsupportedModelError(f"{type(model).__name__} is not a {self.base_class}")
        self.base = base
        lm = base.language_model
        router, experts = _resolve(self.router_class), _resolve(self.experts_class)
        self._routers = [m for m in lm.modules() if isinstance(m, router)]
        self._experts = [m for m in lm.modules() if isinstance(m, experts)]
        self._vision_ids: dict[torch.device, torch.Tensor] = {}

    # ------------------------------------------------------------------ matching
    @classmethod
    def base_model(cls, model: nn.Module) -> nn.Module | None:
        """The ``base_class`` instance: ``model`` itself or its ``.model``; ``None`` if neither."""
        import transformers

        base_cls = getattr(transformers, cls.base_class)
        if isinstance(model, base_cls):
            return model
        inner = getattr(model, "model", None)
        return inner if isinstance(inner, base_cls) else None

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        """Whether this adapter handles ``model`` (default: it wraps ``base_class``)."""
        return cls.base_model(model) is not None

    # ------------------------------------------------------------------ modules
    @property
    def language_model(self) -> nn.Module:
        """The decoder stack called with ``inputs_embeds`` (hooked to apply the decision)."""
        return self.base.language_model

    @property
    def vision_tower(self) -> nn.Module:
        """The vision encoder whose output is pooled into the image feature."""
        return getattr(self.base, self.vision_tower_attr)

    @property
    def embed_tokens(self) -> nn.Module:
        """The token embedding; its output is pooled into the text feature."""
        return self.language_model.get_input_embeddings()

    @property
    def decoder_layers(self) -> Sequence[nn.Module]:
        return list(self.language_model.layers)

    @property
    def routers(self) -> list[nn.Module]:
        """Every MoE router; each reads its ``top_k`` attribute at call time."""
        return self._routers

    @property
    def experts(self) -> list[nn.Module]:
        """Every experts module (checked for an implementation whose cost falls with top_k)."""
        return self._experts

    # ------------------------------------------------------------------ sizes
    @property
    @abstractmethod
    def vision_token_ids(self) -> tuple[int, ...]:
        """Placeholder token ids whose embeddings are replaced by vision tokens."""

    @property
    @abstractmethod
    def image_dim(self) -> int:
        """Size of the pooled image feature this adapter produces."""

    @property
    def text_dim(self) -> int:
        return int(self.embed_tokens.weight.shape[1])

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers)

    @property
    def num_experts(self) -> int:
        return int(self.routers[0].num_experts)

    @property
    def native_top_k(self) -> int:
        return int(self.routers[0].top_k)

    # ------------------------------------------------------------------ features
    @abstractmethod
    def pool_images(self, args: tuple[Any, ...], kwargs: dict[str, Any],
                    output: Any) -> tuple[torch.Tensor, list[int]]:
        """From one vision-tower call: ``[n_images, image_dim]`` pooled features and the number
        of language-model vision tokens each image becomes (in sequence order)."""

    def vision_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` bool: positions holding vision tokens (one op, no host-to-device copy:
        the placeholder ids are a scalar compare, or an ``isin`` against a cached tensor)."""
        ids = self.vision_token_ids
        if len(ids) == 1:
            return input_ids == ids[0]
        dev = input_ids.device
        t = self._vision_ids.get(dev)
        if t is None:
            t = self._vision_ids[dev] = torch.tensor(ids, device=dev)
        return torch.isin(input_ids, t)

    # ------------------------------------------------------------------ applying
    def select_extra(self, kwargs: dict[str, Any], keep_idx: torch.Tensor,
                     keep_mask: torch.Tensor) -> None:
        """Subset family-specific language-model kwargs to the kept positions, in place.

        ``keep_idx`` is ``[B, L']`` (kept positions, ascending), ``keep_mask`` ``[B, L]``.
        The hook already handled ``inputs_embeds``, ``attention_mask`` and ``position_ids``;
        the default has nothing else to subset.
        """
        return None

    def skipped_layer_output(self, hidden_states: torch.Tensor) -> Any:
        """What a skipped decoder layer returns (identity on the residual stream)."""
        return hidden_states

    def check_experts_implementation(self) -> None:
        """Warn where the experts implementation would not get cheaper with a smaller top_k."""
        for mod in self.experts[:1]:
            cfg = getattr(mod, "config", None)
            impl = getattr(cfg, "_experts_implementation", None) or "eager"
            if impl not in TOPK_PROPORTIONAL_IMPLS:
                log.warning(
                    "%s: experts_implementation=%r is not one fastctrl has checked "
                    "(%s); top_k is applied but its compute may not fall with top_k",
                    self.family, impl, ", ".join(TOPK_PROPORTIONAL_IMPLS),
                )


def _resolve(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_REGISTRY: list[type[Adapter]] = []


def register(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make an adapter discoverable by :func:`find_adapter`."""
    if not cls.family:
        raise ValueError(f"{cls.__name__} must set a family name")
    _REGISTRY.append(cls)
    return cls


def supported_families() -> list[str]:
    return [f"{c.family} ({c.description})" for c in _REGISTRY]


def find_adapter(model: nn.Module) -> Adapter:
    """The adapter for ``model``, or :class:`UnsupportedModelError` listing the families."""
    if not isinstance(model, nn.Module):
        raise UnsupportedModelError(
            f"model must be a transformers nn.Module, got {type(model).__name__}"
        )
    for cls in _REGISTRY:
        if cls.matches(model):
            return cls(model)
    families = "; ".join(supported_families()) or "(none registered)"
    raise UnsupportedModelError(
        f"fastctrl.hook does not support {type(model).__name__}: no adapter matches it. "
        f"Supported families: {families}. A new family is one new file in "
        "fastctrl/inengine/families/ with an Adapter subclass."
    )
