"""The adapter: everything family-specific that :func:`fastctrl.hook` needs, found generically.

One mechanism serves every family. Given a transformers VLM it finds, in this order:

- the **base model**: the model itself or its ``.model`` when it is one of the family's
  ``base_class`` names (``LlavaModel``, ``Qwen3VLMoeModel``, ...);
- the **language model** (``language_model`` / ``text_model``): the module called with the
  merged ``inputs_embeds``; its **decoder layers** (``.layers``, or ``.model.layers`` for a
  ``...ForCausalLM``) and its token embedding;
- the **routers**: every language-model module with an integer ``top_k`` attribute whose class
  name ends in ``Router`` (every MoE router in transformers 5.x reads ``self.top_k`` at call
  time), and the **experts** (class name ending in ``Experts``); a dense model has none;
- the **vision tower** (``vision_tower`` / ``visual`` / ``vision_model``) and the vision
  placeholder token ids (``image_token_id`` / ``image_token_index`` / ``video_token_id`` of the
  config).

A family is then a few class attributes in its own file (see ``families/*.py``); a family
overrides a method only where its model differs (its image feature, extra language-model
inputs to subset when vision tokens are removed, what a skipped layer returns). An unknown
model gets an error naming the part that was not found and how to declare it.

The image feature by default is the mean of the vision embeddings the language model receives
(its ``inputs_embeds`` at vision positions: what every family merges anyway, in the text hidden
size); a family may pool the vision tower's own output instead (``image_feature =
"vision_tower"`` with :meth:`Adapter.pool_images`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

#: ``experts_implementation`` values whose cost is proportional to tokens x top_k
#: (transformers 5.x ``integrations/moe.py``: eager loops over hit experts, grouped_mm and
#: batched_mm process S = tokens * top_k token-expert pairs).
TOPK_PROPORTIONAL_IMPLS = ("eager", "grouped_mm", "batched_mm")

LM_ATTRS = ("language_model", "text_model")
VISION_ATTRS = ("vision_tower", "visual", "vision_model")
IMAGE_TOKEN_ATTRS = ("image_token_id", "image_token_index")
VIDEO_TOKEN_ATTRS = ("video_token_id", "video_token_index")

#: how a family's routers treat the kept weights when top_k is lowered
Renormalisation = Literal["always", "attribute", "never", "none"]


class UnsupportedModelError(TypeError):
    """``fastctrl.hook`` was given a model no adapter knows, or one missing a part it needs."""


class Adapter:
    """Generic access to a transformers VLM; a family subclass only declares what differs.

    Class attributes a family sets (only ``family``, ``description`` and ``base_class`` are
    required):
    """

    #: short family name, e.g. ``"llava"``
    family: ClassVar[str] = ""
    #: one line for error messages: which transformers classes this adapter accepts
    description: ClassVar[str] = ""
    #: the transformers base model class name(s), found as the model itself or its ``.model``
    base_class: ClassVar[str | tuple[str, ...]] = ""
    #: ``text_config.model_type`` values accepted (empty: any)
    text_model_types: ClassVar[tuple[str, ...]] = ()
    #: ``"module:Class"`` of the router / experts when the name rule does not find them
    router_class: ClassVar[str] = ""
    experts_class: ClassVar[str] = ""
    #: attribute names, when not one of the common ones
    vision_tower_attr: ClassVar[str] = ""
    language_model_attr: ClassVar[str] = ""
    #: ``"merged"``: mean of the vision embeddings the LM receives (dim = text hidden size);
    #: ``"vision_tower"``: the family's :meth:`pool_images` on the vision tower's output
    image_feature: ClassVar[Literal["merged", "vision_tower"]] = "merged"
    #: whether expert compute falls with top_k (False: every expert runs on every token and
    #: top_k only zeroes scores, e.g. Llama 4's dense expert loop)
    topk_saves_compute: ClassVar[bool] = True
    #: routers' rule for the kept weights: renormalised always ("always"), by their
    #: ``norm_topk_prob`` attribute ("attribute"), never ("never"); "none" for dense models
    renormalises: ClassVar[Renormalisation] = "attribute"
    #: one line for the family table: whether and how ``max_crops`` cuts vision-encoder work
    vision_saving: ClassVar[str] = (
        "no: the vision tower encodes every token; max_crops "
        "removes vision tokens before the language model"
    )

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        base = self.base_model(model)
        if base is None:
            raise UnsupportedModelError(
                f"{type(model).__name__} is not (and does not hold as .model) a "
                f"{' / '.join(self.base_classes())}"
            )
        self.base = base
        self._lm = self._find_language_model()
        self._layers = self._find_layers()
        self._vision = self._find_vision_tower()
        self._routers = self._find(self.router_class, _is_router)
        self._experts = self._find(
            self.experts_class, lambda m: type(m).__name__.endswith("Experts")
        )
        self._vision_ids: dict[torch.device, torch.Tensor] = {}
        self._token_ids = self._find_vision_token_ids()

    # ------------------------------------------------------------------ matching
    @classmethod
    def base_classes(cls) -> tuple[str, ...]:
        return (cls.base_class,) if isinstance(cls.base_class, str) else tuple(cls.base_class)

    @classmethod
    def base_model(cls, model: nn.Module) -> nn.Module | None:
        """The base model: ``model`` itself or its ``.model``; ``None`` if neither."""
        import transformers

        types = tuple(t for n in cls.base_classes() if (t := getattr(transformers, n, None)))
        if not types:
            return None  # this transformers has no such class
        if isinstance(model, types):
            return model
        inner = getattr(model, "model", None)
        return inner if isinstance(inner, types) else None

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        """Whether this adapter handles ``model``: it wraps a ``base_class`` and, if the family
        restricts them, its text model type is one of ``text_model_types``."""
        base = cls.base_model(model)
        if base is None:
            return False
        if not cls.text_model_types:
            return True
        text = getattr(base.config, "text_config", None)
        return getattr(text, "model_type", None) in cls.text_model_types

    # ------------------------------------------------------------------ discovery
    def _missing(self, part: str, looked: str, declare: str) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"fastctrl.hook ({self.family}): could not find the {part} of "
            f"{type(self.model).__name__} (looked for {looked}). Declare it on the family's "
            f"Adapter subclass: {declare}."
        )

    def _find_language_model(self) -> nn.Module:
        names = (self.language_model_attr,) if self.language_model_attr else LM_ATTRS
        for n in names:
            lm = getattr(self.base, n, None)
            if isinstance(lm, nn.Module):
                return lm
        raise self._missing(
            "language model",
            f"attribute {' / '.join(names)} of {type(self.base).__name__}",
            "language_model_attr = '<name>'",
        )

    def _find_layers(self) -> list[nn.Module]:
        for holder in (self._lm, getattr(self._lm, "model", None)):
            layers = getattr(holder, "layers", None)
            if isinstance(layers, nn.ModuleList) and len(layers):
                return list(layers)
        raise self._missing(
            "decoder layers",
            f"{type(self._lm).__name__}.layers or .model.layers",
            "override the decoder_layers property",
        )

    def _find_vision_tower(self) -> nn.Module:
        names = (self.vision_tower_attr,) if self.vision_tower_attr else VISION_ATTRS
        for holder in (self.base, self.model):
            for n in names:
                m = getattr(holder, n, None)
                if isinstance(m, nn.Module):
                    return m
        raise self._missing(
            "vision tower", f"attribute {' / '.join(names)}", "vision_tower_attr = '<name>'"
        )

    def _find(self, declared: str, rule: Any) -> list[nn.Module]:
        if declared:
            cls = _resolve(declared)
            return [m for m in self._lm.modules() if isinstance(m, cls)]
        return [m for m in self._lm.modules() if rule(m)]

    def _find_vision_token_ids(self) -> tuple[int, ...]:
        cfg = self.base.config
        ids: list[int] = []
        for names in (IMAGE_TOKEN_ATTRS, VIDEO_TOKEN_ATTRS):
            for n in names:
                v = getattr(cfg, n, None)
                if isinstance(v, int) and v >= 0:
                    ids.append(v)
                    break
        if not ids:
            raise self._missing(
                "vision placeholder token id",
                f"config.{' / '.join(IMAGE_TOKEN_ATTRS)}",
                "override the vision_token_ids property",
            )
        return tuple(dict.fromkeys(ids))

    # ------------------------------------------------------------------ modules
    @property
    def language_model(self) -> nn.Module:
        """The decoder stack called with ``inputs_embeds`` (hooked to apply the decision)."""
        return self._lm

    @property
    def vision_tower(self) -> nn.Module:
        """The vision encoder (its output is pooled when ``image_feature == "vision_tower"``)."""
        return self._vision

    @property
    def embed_tokens(self) -> nn.Module:
        """The token embedding; its output is pooled into the text feature."""
        return self._lm.get_input_embeddings()

    @property
    def decoder_layers(self) -> Sequence[nn.Module]:
        return self._layers

    @property
    def routers(self) -> list[nn.Module]:
        """Every MoE router; each reads its ``top_k`` attribute at call time (empty: dense)."""
        return self._routers

    @property
    def experts(self) -> list[nn.Module]:
        """Every experts module (checked for an implementation whose cost falls with top_k)."""
        return self._experts

    @property
    def is_moe(self) -> bool:
        return bool(self._routers)

    # ------------------------------------------------------------------ sizes
    @property
    def vision_token_ids(self) -> tuple[int, ...]:
        """Placeholder token ids whose embeddings are replaced by vision tokens."""
        return self._token_ids

    @property
    def text_dim(self) -> int:
        return int(self.embed_tokens.weight.shape[1])

    @property
    def image_dim(self) -> int:
        """Size of the pooled image feature (the text hidden size for ``"merged"``)."""
        return self.text_dim

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers)

    @property
    def num_experts(self) -> int:
        """Routed experts per MoE layer (0 for a dense model)."""
        if not self._routers:
            return 0
        r = self._routers[0]
        for n in ("num_experts", "n_routed_experts", "num_local_experts"):
            v = getattr(r, n, None)
            if isinstance(v, int):
                return v
        w = getattr(r, "weight", None)
        if isinstance(w, torch.Tensor):
            return int(w.shape[0])
        raise self._missing(
            "router's expert count",
            f"{type(r).__name__}.num_experts / weight",
            "override the num_experts property",
        )

    @property
    def native_top_k(self) -> int:
        """The routers' top_k as loaded (0 for a dense model)."""
        return int(self._routers[0].top_k) if self._routers else 0

    # ------------------------------------------------------------------ features
    def pool_images(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> tuple[torch.Tensor, list[int]]:
        """For ``image_feature == "vision_tower"``: from one vision-tower call,
        ``[n_images, image_dim]`` pooled features and the number of language-model vision
        tokens each image becomes (in sequence order)."""
        raise NotImplementedError(f"{self.family} pools merged embeddings, not the tower")

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
    def select_extra(
        self, kwargs: dict[str, Any], keep_idx: torch.Tensor, keep_mask: torch.Tensor
    ) -> None:
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
        if self._routers and not self.topk_saves_compute:
            log.warning(
                "%s: every expert runs on every token in this family; top_k changes "
                "the routing weights but not the compute",
                self.family,
            )
        for mod in self.experts[:1]:
            cfg = getattr(mod, "config", None)
            impl = getattr(cfg, "_experts_implementation", None) or "eager"
            if impl not in TOPK_PROPORTIONAL_IMPLS:
                log.warning(
                    "%s: experts_implementation=%r is not one fastctrl has checked "
                    "(%s); top_k is applied but its compute may not fall with top_k",
                    self.family,
                    impl,
                    ", ".join(TOPK_PROPORTIONAL_IMPLS),
                )


def _is_router(m: nn.Module) -> bool:
    name = type(m).__name__.lower()
    return name.endswith("router") and isinstance(getattr(m, "top_k", None), int)


def _resolve(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_REGISTRY: list[type[Adapter]] = []


def register(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make an adapter discoverable by :func:`find_adapter`. Families that
    restrict ``text_model_types`` are tried before the catch-all ones of the same base."""
    if not cls.family or not cls.base_class:
        raise ValueError(f"{cls.__name__} must set family and base_class")
    if any(c.family == cls.family for c in _REGISTRY):
        raise ValueError(f"family {cls.family!r} is registered twice")
    _REGISTRY.append(cls)
    _REGISTRY.sort(key=lambda c: not c.text_model_types)  # stable: specific ones first
    return cls


def registered_adapters() -> list[type[Adapter]]:
    return list(_REGISTRY)


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
        "fastctrl/model_hook/families/ with an Adapter subclass declaring its base_class "
        "(and, where the generic search does not find them, its router / experts classes "
        "and language-model / vision-tower attributes)."
    )
