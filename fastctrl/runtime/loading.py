"""Load a served VLM the way its users do: ``from_pretrained`` from a hub id or a local
directory, with its own processor and chat template.

:func:`load_model` returns the model (eval mode) and a :class:`ChatProcessor`
(:func:`load_pretrained`), or a built-in model by its name: the callable
``processor(images, prompts) -> inputs`` the profiler and the live evaluator use, built on the
model's ``AutoProcessor``. Remote code is off unless asked for; offline, a hub id that is not
in the local cache fails with a message that says so. :class:`ModelArgs` is the flag group
that names the model and how to load it, the same for every command that loads one
(``fastctrl profile``, ``fastctrl evaluate``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

DTYPES = {
    "auto": "auto",
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


DType = Literal["auto", "float32", "float16", "bfloat16"]


class ModelLoadError(ValueError):
    """A model or its processor could not be loaded; the message says what and why."""


@dataclass
class ModelArgs:
    """The model and how it is loaded: the same flags for every command that loads one."""

    model: str = "tiny-llava-olmoe"
    """A built-in name (tiny-<family>: a tiny random-weight model, nothing downloaded;
    fastctrl-digits: the trained digits VLM), or a hub id / save_pretrained directory of a
    supported family (loaded with from_pretrained and its AutoProcessor)."""
    dtype: DType = "auto"
    """Weights dtype of a loaded model (auto: the checkpoint's)."""
    device: str | None = None
    """Device of a loaded model (default: cuda if available, else cpu)."""
    device_map: str | None = None
    """accelerate device map of a loaded model (e.g. auto); instead of --device."""
    attn_implementation: str | None = None
    """Attention implementation of a loaded model, e.g. sdpa, eager, flash_attention_2
    (default: the model's own)."""
    trust_remote_code: bool = False
    """Allow a model's own code from its repository (off unless asked)."""

    def __post_init__(self) -> None:
        from .registry import builtin_model

        if self.device is not None and self.device_map is not None:
            raise ValueError("give --device or --device_map, not both")
        builtin_model(self.model)  # a tiny-<family> name that names no family: an error

    def load(self, seed: int = 0) -> tuple[nn.Module, Any]:
        """``(model, processor)`` of ``--model`` (tiny random weights drawn from ``seed``)."""
        return load_model(
            self.model,
            seed=seed,
            dtype=self.dtype,
            device=self.device,
            device_map=self.device_map,
            attn_implementation=self.attn_implementation,
            trust_remote_code=self.trust_remote_code,
        )


class ChatProcessor:
    """``(images, prompts) -> model inputs`` through the model's own processor.

    Each prompt becomes one user turn holding the image and the question, rendered with the
    processor's chat template (``add_generation_prompt=True``); without a template the
    processor's image token is put before the question. Batches are left-padded (generation).
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        tok = getattr(processor, "tokenizer", None)
        if tok is None:
            raise ModelLoadError(
                f"{type(processor).__name__} has no tokenizer; fastctrl needs "
                "a multimodal processor (AutoProcessor of a VLM)"
            )
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.tokenizer = tok
        self.has_template = bool(getattr(processor, "chat_template", None))
        self.image_token = getattr(processor, "image_token", None) or "<image>"

    def render(self, prompt: str) -> str:
        if self.has_template:
            msgs = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
            ]
            return self.processor.apply_chat_template(
                msgs, add_generation_prompt=True, tokenize=False
            )
        return f"{self.image_token}{prompt}"

    def __call__(self, images: Sequence[Any], prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        text = [self.render(p) for p in prompts]
        out = self.processor(
            text=text, images=[[_rgb(im)] for im in images], return_tensors="pt", padding=True
        )
        return dict(out)

    def render_chat(self, messages: Sequence[dict[str, Any]]) -> str:
        """A whole conversation (``{"role", "content"}`` turns; content a str or a list of
        ``{"type": "text", "text"}`` / ``{"type": "image"}`` parts, images in order) as the
        prompt text the model's chat template makes of it, ready for the answer."""
        if self.has_template:
            return self.processor.apply_chat_template(
                list(messages), add_generation_prompt=True, tokenize=False
            )
        parts: list[str] = []
        for m in messages:
            content = m["content"]
            if isinstance(content, str):
                parts.append(content)
                continue
            parts += [self.image_token if c["type"] == "image" else c["text"] for c in content]
        return "".join(parts)

    def encode(
        self, texts: Sequence[str], images: Sequence[Sequence[Any]]
    ) -> dict[str, torch.Tensor]:
        """Rendered prompts and each prompt's images -> one left-padded batch of inputs."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} image lists but {len(texts)} prompts")
        out = self.processor(
            text=list(texts),
            images=[[_rgb(im) for im in ims] for ims in images],
            return_tensors="pt",
            padding=True,
        )
        return dict(out)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens).strip()


def _rgb(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    import numpy as np

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(
            f"images must be PIL images or HxWx3 uint8 arrays, got {arr.dtype} {list(arr.shape)}"
        )
    return Image.fromarray(arr)


def load_model(
    model_id: str,
    *,
    seed: int = 0,
    dtype: str = "auto",
    device: str | None = None,
    device_map: str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[nn.Module, Any]:
    """``(model, processor)`` for a built-in name (:mod:`fastctrl.runtime.registry`:
    ``fastctrl-digits``, ``tiny-<family>`` with weights from ``seed``), a hub id or a
    ``save_pretrained`` directory (:func:`load_pretrained`)."""
    from .registry import builtin_model

    kw: dict[str, Any] = dict(
        dtype=dtype,
        device=device,
        device_map=device_map,
        attn_implementation=attn_implementation,
        trust_remote_code=trust_remote_code,
    )
    entry = builtin_model(model_id)
    if entry is not None:
        return entry.load(model_id, seed=seed, **kw)
    return load_pretrained(model_id, **kw)


def load_pretrained(
    model_id: str,
    *,
    dtype: str = "auto",
    device: str | None = None,
    device_map: str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[nn.Module, ChatProcessor]:
    """``(model, processor)`` for a hub id or a local directory (``save_pretrained`` layout).

    ``dtype``: auto (the checkpoint's) / float32 / float16 / bfloat16; ``device``: where to
    put the model (default: cuda if available, else cpu) unless ``device_map`` (e.g.
    ``"auto"``, accelerate dispatch) is given; ``attn_implementation``: e.g. ``sdpa``,
    ``eager``, ``flash_attention_2``.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if device is not None and device_map is not None:
        raise ValueError("give device or device_map, not both")
    local = Path(model_id).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise ModelLoadError(f"{local} has no config.json: not a save_pretrained model directory")
    try:
        config = AutoConfig.from_pretrained(
            str(local) if local.exists() else model_id, trust_remote_code=trust_remote_code
        )
    except OSError as e:
        where = "directory" if local.exists() else "hub id (not a local path)"
        raise ModelLoadError(
            f"could not load the config of {model_id!r} as a {where}: {e}. Offline, a hub "
            "model must already be in the local Hugging Face cache; or pass a local "
            "directory written by save_pretrained"
        ) from e
    except ValueError as e:
        raise ModelLoadError(f"{model_id!r}: {e}") from e
    src = str(local) if local.exists() else model_id
    kw: dict[str, Any] = {"dtype": DTYPES[dtype], "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    if device_map:
        kw["device_map"] = device_map
    try:
        model = AutoModelForImageTextToText.from_pretrained(src, config=config, **kw)
    except ValueError as e:
        raise ModelLoadError(
            f"{model_id!r} ({type(config).__name__}) is not an image-text-to-"
            f"text model transformers can load: {e}"
        ) from e
    if device_map is None:
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.eval()
    try:
        proc = AutoProcessor.from_pretrained(src, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as e:
        raise ModelLoadError(
            f"{model_id!r} has no usable processor ({e}); fastctrl needs the "
            "model's processor (tokenizer + image processor) saved beside it "
            "(processor.save_pretrained)"
        ) from e
    if not hasattr(proc, "image_processor"):
        raise ModelLoadError(
            f"{model_id!r}: AutoProcessor gave a {type(proc).__name__} without "
            "an image processor (only a tokenizer is saved there?); save the "
            "model's full processor"
        )
    return model, ChatProcessor(proc)
