"""The INT8 C++ decision engine (``fastctrl._C``): runtime CPU dispatch, GIL released.

Weights are quantised once at load (symmetric per output channel, int8 in [-127, 127]) and
packed for the kernels; activations are quantised per row at call time; int32 accumulation,
fp32 bias/ReLU, argmax in C++. See ``csrc/engine.h`` for the numerics and ``bench/README.md``
for measured latency.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..policy import Controller
from ..policy.export import EngineWeights, export_weights
from .base import Engine, EngineUnavailableError, check_inputs

_F32 = np.dtype(np.float32)
# Budget types the C++ binding parses itself; anything else (tensors, numpy scalars, bools)
# goes through check_budget first.
_FAST_BUDGET = frozenset({float, int, np.ndarray})


def _aligned(*arrays: Any) -> tuple[Any, ...]:
    """Aligned copies of the numpy arrays among ``arrays`` (the binding refuses float32 views
    that are not 4-byte aligned, e.g. ``np.frombuffer(..., offset=1)``)."""
    return tuple(np.array(a) if isinstance(a, np.ndarray) else a for a in arrays)


def _f32_arrays(*tensors: torch.Tensor) -> tuple[np.ndarray, ...]:
    """numpy views of CPU tensors for the binding: no copy for float32 ones (``Tensor.numpy()``
    shares memory); other dtypes are cast once. The binding checks shape and contiguity."""
    out = []
    for t in tensors:
        if t.requires_grad:
            t = t.detach()
        if t.dtype is not torch.float32 or t.device.type != "cpu":
            t = t.to("cpu", torch.float32)
        out.append(t.numpy())
    return tuple(out)


def _load_extension() -> Any:
    try:
        from .. import _C
    except ImportError as e:
        raise EngineUnavailableError(
            f"the int8 engine needs the C++ extension fastctrl._C, which failed to import ({e}); "
            "rebuild with `pip install --no-build-isolation -e .`"
        ) from e
    return _C


def available_isas() -> list[str]:
    """ISA kernels compiled in and supported by this CPU (slowest first); [] without _C."""
    try:
        return list(_load_extension().available_isas())
    except EngineUnavailableError:
        return []


class Int8Engine(Engine):
    """INT8 CPU engine. ``isa`` picks a kernel (``scalar``, ``avx2``, ``avx512_vnni``, ``amx``;
    see ``fastctrl._C.available_isas()``); ``None`` takes the fastest one this CPU supports.
    Every ISA gives bit-identical decisions and logits."""

    kind = "int8"

    def __init__(self, controller: Controller, isa: str | None = None) -> None:
        super().__init__(controller, torch.device("cpu"))
        _C = _load_extension()
        isas = list(_C.available_isas())
        if isa is None:
            isa = isas[-1]
        elif isa not in isas:
            raise EngineUnavailableError(
                f"isa {isa!r} is not available here; compiled in and supported by this CPU: {isas}"
            )
        w = export_weights(controller)
        self.isa: str = isa
        self.head_sizes = w.head_sizes
        self._model = _C.Int8Model(*self.model_args(w, isa))
        # Bound method cached: the B=1 fast path is one attribute load and one C++ call.
        self._decide = self._model.decide
        self._decide_list = self._model.decide_list
        self._misaligned = _C.MisalignedError
        self._budget_view: tuple[torch.Tensor, np.ndarray] | None = None
        # [text, one_hot(task)] buffers per (thread, batch size): the C++ call releases the GIL
        self._task_bufs: dict[tuple[int, int], np.ndarray] = {}

    @staticmethod
    def model_args(w: EngineWeights, isa: str) -> list[Any]:
        """The positional arguments of ``_C.Int8Model`` for exported weights ``w`` on ``isa``."""
        return [
            w.img_w,
            w.img_b,
            w.txt_w,
            w.txt_b,
            list(w.trunk_w),
            list(w.trunk_b),
            w.head_w,
            w.head_b,
            list(w.head_sizes),
            w.encoding,
            w.budget_freqs,
            w.inv_ref_latency,
            isa,
        ]

    def decide(self, image_feat: Any, lang_feat: Any, budget_ms: Any, task: Any = None) -> Any:
        # Fast path: float32 numpy arrays go straight to C++, which validates shape,
        # contiguity, finiteness and the budget itself and raises the same errors.
        if (
            not self.n_task_slots
            and type(image_feat) is np.ndarray
            and type(lang_feat) is np.ndarray
            and image_feat.dtype is _F32
            and lang_feat.dtype is _F32
            and type(budget_ms) in _FAST_BUDGET
            and self.fallback is None
        ):
            try:
                return self._decide(image_feat, lang_feat, budget_ms)
            except self._misaligned:  # free when not raised: no check on the fast path
                return self._decide(*_aligned(image_feat, lang_feat, budget_ms))
        return super().decide(image_feat, lang_feat, budget_ms, task)

    def decide_tensors(
        self, image: Tensor, text: Tensor, budget_ms: Tensor, task: Tensor | None = None
    ) -> Tensor:
        # float32 CPU tensors go to C++ as numpy views (no copy, no checks here; the binding
        # validates shapes). Was 3 x (detach, .to, .numpy, np.ascontiguousarray) + C++: 22 us
        # vs 6.8 us for the C++ call alone at B=1 (tiny bench controller, loaded host, one
        # process).
        arrays = self._arrays(image, text, budget_ms, task)
        try:
            idx = torch.from_numpy(self._decide(*arrays))
        except self._misaligned:  # e.g. torch.frombuffer(..., offset=1)
            idx = torch.from_numpy(self._decide(*_aligned(*arrays)))
        return self.guarded(idx, budget_ms, task)

    def decide_rows(
        self, image: Tensor, text: Tensor, budget_ms: Tensor, task: Tensor | None = None
    ) -> list[list[int]]:
        """:meth:`decide_tensors` as host lists (what the hook reads): the C++ call builds
        them directly, without an int64 array and a tensor around it (~1.3 us of a ~7 us
        B=1 call, measured warm)."""
        arrays = self._arrays(image, text, budget_ms, task)
        try:
            rows = self._decide_list(*arrays)
        except self._misaligned:
            rows = self._decide_list(*_aligned(*arrays))
        if self.fallback is None:
            return rows
        slots = None if task is None else task.reshape(-1).cpu().numpy()
        return self.fallback.apply_rows(rows, arrays[-1], slots)

    def _arrays(
        self, image: Tensor, text: Tensor, budget_ms: Tensor, task: Tensor | None
    ) -> tuple[np.ndarray, ...]:
        if self.n_task_slots:
            return self._with_task_arrays(image, text, budget_ms, task)
        # The hook passes the same cached budget tensor every forward: its numpy view is kept
        # (one .numpy() call less per decision; each costs ~1 us warm, ~10 us cold in-forward).
        cached = self._budget_view  # one (tensor, view) pair: read and replaced atomically
        if cached is not None and budget_ms is cached[0]:
            return (*_f32_arrays(image, text), cached[1])
        arrays = _f32_arrays(image, text, budget_ms)
        if budget_ms.dtype is torch.float32 and budget_ms.device.type == "cpu":
            self._budget_view = (budget_ms, arrays[2])
        return arrays

    def _with_task_arrays(
        self, image: Tensor, text: Tensor, budget_ms: Tensor, task: Tensor | None
    ) -> tuple[np.ndarray, ...]:
        """The arrays with ``[text, one_hot(task)]`` written into a buffer kept per batch size
        (``with_task``'s one_hot + cat allocate twice per decision: ~15 us of a ~60 us B=1
        decision in the hook, measured with cProfile on the digits model)."""
        bsz, dim = int(text.shape[0]), int(text.shape[1])
        key = (threading.get_ident(), bsz)
        buf = self._task_bufs.get(key)
        if buf is None:
            buf = self._task_bufs[key] = np.zeros((bsz, dim + self.n_task_slots), np.float32)
        (text_np,) = _f32_arrays(text)
        buf[:, :dim] = text_np
        buf[:, dim:] = 0.0
        if bsz == 1:  # a served request: no index arrays
            buf[0, dim + (0 if task is None else int(task.reshape(-1)[0]))] = 1.0
        else:
            slots = np.zeros(bsz, np.int64) if task is None else task.reshape(-1).cpu().numpy()
            buf[np.arange(bsz), dim + slots] = 1.0
        image_np, budget_np = _f32_arrays(image, budget_ms)
        return image_np, buf, budget_np

    def logits(self, image_feat: Any, lang_feat: Any, budget_ms: Any) -> Any:
        """Dequantised fp32 logits ``[B, sum(head_sizes)]`` (knob order), as decide sees them."""
        x = check_inputs(image_feat, lang_feat, budget_ms, self.image_dim, self.text_dim)
        if x.is_torch:
            device = x.image.device
            text = self.with_task(x.text.float(), None)
            out = self._model.logits(*_aligned(*_f32_arrays(x.image, text, x.budget)))
            return torch.from_numpy(out).to(device)
        text = self.with_task(torch.from_numpy(np.asarray(x.text, dtype=np.float32)), None)
        return self._model.logits(
            *_aligned(
                np.ascontiguousarray(x.image, dtype=np.float32),
                np.ascontiguousarray(text.numpy()),
                x.budget,
            )
        )

    def __repr__(self) -> str:
        return (
            f"Int8Engine(isa={self.isa!r}, image_dim={self.image_dim}, "
            f"text_dim={self.text_dim}, knobs={list(self.knob_names)})"
        )
