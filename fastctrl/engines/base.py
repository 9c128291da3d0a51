"""One interface for every decision engine, and the input checks they all share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..policy import Controller

_FLOAT_NP = (np.float16, np.float32, np.float64)
_FLOAT_TORCH = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT_TORCH = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


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


def _check_features(x: Any, name: str, dim: int) -> bool:
    """Type, dtype, shape and contiguity of one feature matrix (metadata only: no values read).
    Returns whether it is a tensor."""
    if isinstance(x, torch.Tensor):
        is_torch = True
        if x.dtype not in _FLOAT_TORCH:
            raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
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
    return is_torch


def capturing() -> bool:
    """Whether a CUDA graph is being captured on the current stream (no host syncs allowed)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _tensor_budget(budget_ms: Any, batch: int, device: torch.device) -> tuple[torch.Tensor, bool]:
    """A budget for tensor features: float32 ``[B]`` on ``device`` and whether its values still
    need the device-side check (a tensor budget; numbers and arrays are checked on the host).
    A number becomes a fill on the device, not a host-to-device copy (capture-safe)."""
    if isinstance(budget_ms, torch.Tensor) and not isinstance(budget_ms, bool):
        if not (budget_ms.is_floating_point() or budget_ms.dtype in _INT_TORCH):
            raise TypeError(f"budget_ms must be numeric, got dtype {budget_ms.dtype}")
        n = budget_ms.numel()
        if n not in (1, batch):
            raise ValueError(
                f"budget_ms must be a scalar or have one entry per request ({batch}), got "
                f"shape {list(budget_ms.shape)}"
            )
        if budget_ms.device != device and capturing():
            raise ValueError(
                f"budget_ms must be on {device} while a CUDA graph is captured "
                f"(a host-to-device copy cannot be captured), got {budget_ms.device}"
            )
        b = budget_ms.detach().to(device=device, dtype=torch.float32).reshape(-1)
        return (b.expand(batch).contiguous() if n == 1 and batch != 1 else b), True
    if isinstance(budget_ms, (int, float, np.floating, np.integer)) and not isinstance(
        budget_ms, bool
    ):
        v = float(check_budget(budget_ms, 1)[0])
        return torch.full((batch,), v, dtype=torch.float32, device=device), False
    b = check_budget(budget_ms, batch)
    if capturing():
        raise ValueError(
            "budget_ms must be a number or a tensor on the features' device while "
            "a CUDA graph is captured (a host-to-device copy cannot be captured)"
        )
    return torch.from_numpy(b).to(device), False


def _check_values(
    image: Any, text: Any, budget: Any, budget_on_device: bool, is_torch: bool
) -> None:
    """Finiteness of the features (and a tensor budget's values): one reduction and ONE host
    read for tensors (on CUDA one sync instead of three), skipped while a CUDA graph is
    captured (a sync cannot be captured; the caller vouches for its inputs there)."""
    if is_torch:
        if capturing():
            return
        ok = torch.isfinite(image).all() & torch.isfinite(text).all()
        if budget_on_device:
            ok = ok & (torch.isfinite(budget) & (budget > 0)).all()
        if bool(ok):
            return
        finite = lambda x: bool(torch.isfinite(x).all())  # noqa: E731  (error path only)
    else:
        finite = lambda x: bool(np.isfinite(x).all())  # noqa: E731
    if not finite(image):
        raise ValueError("image_feat contains NaN or inf")
    if not finite(text):
        raise ValueError("lang_feat contains NaN or inf")
    if budget_on_device:
        raise ValueError("budget_ms must be finite and > 0 ms for every request")


def check_inputs(
    image: Any, text: Any, budget_ms: Any, image_dim: int, text_dim: int
) -> CheckedInputs:
    """Validate ``decide()`` arguments; raise an error naming the bad argument.

    Tensors: metadata on the host; values (finiteness) in one device reduction with one host
    read, none while a CUDA graph is captured; a number budget becomes a device fill.
    """
    img_torch = _check_features(image, "image_feat", image_dim)
    txt_torch = _check_features(text, "lang_feat", text_dim)
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
    if img_torch:
        budget, on_device = _tensor_budget(budget_ms, batch, image.device)
    else:
        budget, on_device = check_budget(budget_ms, batch), False
    _check_values(image, text, budget, on_device, img_torch)
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
    b = _one_per_request(budget_ms, batch, np.float32, "budget_ms", "a scalar")
    if not np.isfinite(b).all() or (b <= 0).any():
        raise ValueError("budget_ms must be finite and > 0 ms for every request")
    return np.ascontiguousarray(b)


def _one_per_request(
    values: np.ndarray, batch: int, dtype: type, name: str, single: str
) -> np.ndarray:
    """``values`` flattened to ``dtype``, one per request: a single value is repeated for every
    request; any other count is an error naming argument ``name`` (``single``: what one value
    is called in it)."""
    flat = values.astype(dtype).reshape(-1)
    if flat.size == 1 and batch != 1:
        return np.full(batch, flat[0], dtype=dtype)
    if flat.size != batch:
        raise ValueError(
            f"{name} must be {single} or have one entry per request ({batch}), got "
            f"shape {list(values.shape)}"
        )
    return flat


class Engine(ABC):
    """Turns features + budgets into decisions: ``[B, n_knobs]`` int64 grid indices.

    :meth:`decide` is the checked public call (numpy or torch in, the same kind out); it
    validates once and hands :meth:`decide_tensors` float tensors and a float32 budget already
    on :attr:`device`. A caller that has validated its inputs itself (the hook, at its
    boundary) calls :meth:`decide_tensors` directly.
    """

    #: short name: "torch", "triton" or "int8"
    kind: str = ""

    def __init__(self, controller: Controller, device: torch.device) -> None:
        """The input sizes, knobs and task types of the ``controller`` this engine serves."""
        self.image_dim: int = controller.config.image_dim
        self.text_dim: int = controller.config.text_dim
        self.knob_names: tuple[str, ...] = controller.knob_names
        self.device = device
        """Where :meth:`decide_tensors` wants its inputs (and returns its decisions)."""
        self.task_types = tuple(controller.config.task_types)
        """The task types the controller takes as an input (empty: none)."""
        self.n_task_slots = len(self.task_types) + 1 if self.task_types else 0
        self._slot_of = {t: i + 1 for i, t in enumerate(self.task_types)}
        self.fallback = controller.fallback
        """The controller's safe-fallback table, applied after every argmax (or ``None``)."""

    def guarded(self, indices: Tensor, budget_ms: Tensor, task: Tensor | None) -> Tensor:
        """``[B, n_knobs]`` argmax decisions with the safe fallback applied (on the device)."""
        if self.fallback is None:
            return indices
        return self.fallback.apply_tensor(indices, budget_ms, task)

    def decide(self, image_feat: Any, lang_feat: Any, budget_ms: Any, task: Any = None) -> Any:
        """Deterministic argmax decisions ``[B, n_knobs]`` (int64).

        numpy inputs give a numpy array, tensors give a tensor on the input's device.
        ``budget_ms`` is a positive number or one per request; ``task`` the requests' task
        types (names, or slots from :meth:`task_slots`; ``None``: unknown).
        """
        x = check_inputs(image_feat, lang_feat, budget_ms, self.image_dim, self.text_dim)
        if x.is_torch:
            img, txt, b = x.image, x.text, x.budget
        else:
            img, txt, b = (torch.from_numpy(a) for a in (x.image, x.text, x.budget))
        out_device = img.device
        t = (
            torch.from_numpy(self.task_slots(task, x.batch)).to(self.device)
            if self.n_task_slots
            else None
        )
        idx = self.decide_tensors(*(v.to(self.device) for v in (img, txt, b)), t)
        return idx.to(out_device) if x.is_torch else idx.cpu().numpy()

    @abstractmethod
    def decide_tensors(
        self, image: Tensor, text: Tensor, budget_ms: Tensor, task: Tensor | None = None
    ) -> Tensor:
        """Decisions for validated inputs: float ``[B, D]`` features, a float32 ``[B]`` budget
        and int64 ``[B]`` task slots (or ``None``: unknown), all on :attr:`device`; no checks."""

    def task_slots(self, task: Any, batch: int) -> np.ndarray:
        """int64 ``[B]`` task slots: 0 for unknown, ``1 + i`` for ``task_types[i]``.

        ``task`` is ``None``, a name, a sequence of names, or integer slots (one, or one per
        request).
        """
        n = self.n_task_slots
        if task is None or n == 0:
            return np.zeros(batch, dtype=np.int64)
        if isinstance(task, str):  # one name for the batch (every served request): no arrays
            return np.full(batch, self._slot_of.get(task, 0), dtype=np.int64)
        if isinstance(task, torch.Tensor):
            task = task.detach().cpu().numpy()
        arr = np.asarray(task)
        if arr.dtype.kind in "OUS":
            arr = np.asarray([self._slot_of.get(str(t), 0) for t in arr.reshape(-1)], np.int64)
        elif arr.dtype.kind not in "iu":
            raise TypeError(f"task must be task-type names or integer slots, got {arr.dtype}")
        arr = _one_per_request(arr, batch, np.int64, "task", "one task")
        if (arr < 0).any() or (arr >= n).any():
            raise ValueError(f"task slots must be in [0, {n}) (0: unknown)")
        return arr

    def with_task(self, text: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """``[text, one_hot(task)]``: the text input of exported weights with task types."""
        if not self.n_task_slots:
            return text
        slots = (
            task
            if task is not None
            else torch.zeros(text.shape[0], dtype=torch.long, device=text.device)
        )
        one_hot = torch.nn.functional.one_hot(slots, self.n_task_slots).to(text.dtype)
        return torch.cat([text, one_hot], dim=1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_dim={self.image_dim}, text_dim={self.text_dim}, "
            f"knobs={list(self.knob_names)})"
        )
