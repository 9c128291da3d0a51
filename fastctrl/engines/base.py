"""One interface for every decision engine, and the input checks they all share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_FLOAT_NP = (np.float16, np.float32, np.float64)
_FLOAT_TORCH = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class EngineUnavailableError(RuntimeError):
    """The requested engine cannot run here (missing extension, no Triton, no GPU...)."""


@dataclass
class CheckedInputs:
    """Validated inputs, still in the caller's framework (numpy or torch) and dtype."""

    image: Any
    text: Any
    budget: Any  # [B], same framework as the features, float32
    batch: int
    is_torch: bool


def _check_features(x: Any, name: str, dim: int) -> tuple[Any, bool]:
    if isinstance(x, torch.Tensor):
        is_torch = True
        if x.dtype not in _FLOAT_TORCH:
            raise TypeError(
                f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}"
            )
    elif isinstance(x, np.ndarray):
        is_torch = False
        if x.dtype.type not in _FLOAT_NP:
            raise TypeError(f"{name} must be float16, float32 or float64, got {x.dtype}")
    else:
        raise TypeError(f"{name} must be a numpy array or torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [B, {dim}], got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {list(x.shape)}); need B >= 1")
    if x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} features per row, got shape {list(x.shape)}")
    contiguous = x.is_contiguous() if is_torch else x.flags.c_contiguous
    if not contiguous:
        raise ValueError(
            f"{name} must be C-contiguous (use np.ascontiguousarray / tensor.contiguous())"
        )
    finite = bool(torch.isfinite(x).all()) if is_torch else bool(np.isfinite(x).all())
    if not finite:
        raise ValueError(f"{name} contains NaN or inf")
    return x, is_torch


def check_inputs(image: Any, text: Any, budget_ms: Any, image_dim: int,
                 text_dim: int) -> CheckedInputs:
    """Validate ``decide()`` arguments; raise an error naming the bad argument."""
    image, img_torch = _check_features(image, "image_feat", image_dim)
    text, txt_torch = _check_features(text, "lang_feat", text_dim)
    if img_torch != txt_torch:
        raise TypeError("image_feat and lang_feat must both be numpy arrays or both be tensors")
    if image.shape[0] != text.shape[0]:
        raise ValueError(
            f"image_feat and lang_feat must have the same batch size, got {image.shape[0]} "
            f"and {text.shape[0]}"
        )
    if img_torch and image.device != text.device:
        raise ValueError(
            f"image_feat and lang_feat must be on the same device, got {image.device} "
            f"and {text.device}"
        )
    batch = int(image.shape[0])
    budget = check_budget(budget_ms, batch)
    if img_torch:
        budget = torch.from_numpy(budget).to(image.device)
    return CheckedInputs(image, text, budget, batch, img_torch)


def check_budget(budget_ms: Any, batch: int) -> np.ndarray:
    """A scalar or ``[B]`` budget in ms -> float32 ``[B]``; finite and > 0."""
    if isinstance(budget_ms, bool):
        raise TypeError("budget_ms must be a number of milliseconds, got a bool")
    if isinstance(budget_ms, (int, float, np.floating, np.integer)):
        v = float(budget_ms)
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"budget_ms must be finite and > 0 ms, got {budget_ms!r}")
        return np.full(batch, v, dtype=np.float32)
    if isinstance(budget_ms, torch.Tensor):
        budget_ms = budget_ms.detach().cpu().numpy()
    if not isinstance(budget_ms, np.ndarray):
        raise TypeError(
            f"budget_ms must be a number, numpy array or tensor, got {type(budget_ms).__name__}"
        )
    if budget_ms.dtype.kind not in "fiu":
        raise TypeError(f"budget_ms must be numeric, got dtype {budget_ms.dtype}")
    b = budget_ms.astype(np.float32).reshape(-1)
    if b.size == 1 and batch != 1:
        b = np.full(batch, b[0], dtype=np.float32)
    if b.size != batch:
        raise ValueError(
            f"budget_ms must be a scalar or have one entry per request ({batch}), got "
            f"shape {list(budget_ms.shape)}"
        )
    if not np.isfinite(b).all() or (b <= 0).any():
        raise ValueError("budget_ms must be finite and > 0 ms for every request")
    return np.ascontiguousarray(b)


class Engine(ABC):
    """Turns features + budgets into decisions: ``[B, n_knobs]`` int64 grid indices.

    :meth:`decide` is the checked public call (numpy or torch in, the same kind out); it
    validates once and hands :meth:`decide_tensors` float tensors and a float32 budget already
    on :attr:`device`. A caller that has validated its inputs itself (the hook, at its
    boundary) calls :meth:`decide_tensors` directly.
    """

    #: short name: "torch", "triton" or "int8"
    kind: str = ""

    def __init__(self, image_dim: int, text_dim: int, knob_names: tuple[str, ...],
                 device: torch.device) -> None:
        self.image_dim = image_dim
        self.text_dim = text_dim
        self.knob_names = knob_names
        self.device = device
        """Where :meth:`decide_tensors` wants its inputs (and returns its decisions)."""

    def decide(self, image_feat: Any, lang_feat: Any, budget_ms: Any) -> Any:
        """Deterministic argmax decisions ``[B, n_knobs]`` (int64).

        numpy inputs give a numpy array, tensors give a tensor on the input's device.
        ``budget_ms`` is a positive number or one per request.
        """
        x = check_inputs(image_feat, lang_feat, budget_ms, self.image_dim, self.text_dim)
        if x.is_torch:
            img, txt, b = x.image, x.text, x.budget
        else:
            img, txt, b = (torch.from_numpy(a) for a in (x.image, x.text, x.budget))
        out_device = img.device
        idx = self.decide_tensors(*(t.to(self.device) for t in (img, txt, b)))
        return idx.to(out_device) if x.is_torch else idx.cpu().numpy()

    @abstractmethod
    def decide_tensors(self, image: torch.Tensor, text: torch.Tensor,
                       budget_ms: torch.Tensor) -> torch.Tensor:
        """Decisions for validated inputs: float ``[B, D]`` features and a float32 ``[B]``
        budget, all on :attr:`device`; no checks here."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_dim={self.image_dim}, text_dim={self.text_dim}, " \
               f"knobs={list(self.knob_names)})"
