"""The INT8 C++ decision engine (``fastctrl._C``): runtime CPU dispatch, GIL released.

Weights are quantised once at load (symmetric per output channel, int8 in [-127, 127]) and
packed for the kernels; activations are quantised per row at call time; int32 accumulation,
fp32 bias/ReLU, argmax in C++. See ``csrc/engine.h`` for the numerics and ``bench/README.md``
for measured latency.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..policy import Controller
from ..policy.export import export_weights
from .base import Engine, EngineUnavailableError, check_inputs

_F32 = np.dtype(np.float32)
# Budget types the C++ binding parses itself; anything else (tensors, numpy scalars, bools)
# goes through check_budget first.
_FAST_BUDGET = frozenset({float, int, np.ndarray})


def _f32_arrays(*tensors: torch.Tensor) -> tuple[np.ndarray, ...]:
    """CPU float32 C-contiguous numpy views of tensors (a copy only where needed)."""
    return tuple(np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())
                 for t in tensors)


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
        super().__init__(controller.config.image_dim, controller.config.text_dim,
                         controller.knob_names, torch.device("cpu"))
        _C = _load_extension()
        isas = list(_C.available_isas())
        if isa is None:
            isa = isas[-1]
        elif isa not in isas:
            raise EngineUnavailableError(
                f"isa {isa!r} is not available here; compiled in and supported by this CPU: "
                f"{isas}"
            )
        w = export_weights(controller)
        self.isa: str = isa
        self.head_sizes = w.head_sizes
        self._model = _C.Int8Model(
            w.img_w, w.img_b, w.txt_w, w.txt_b, list(w.trunk_w), list(w.trunk_b), w.head_w,
            w.head_b, list(w.head_sizes), w.encoding, w.budget_freqs, w.inv_ref_latency, isa,
        )
        # Bound method cached: the B=1 fast path is one attribute load and one C++ call.
        self._decide = self._model.decide

    def decide(self, image_feat: Any, lang_feat: Any, budget_ms: Any) -> Any:
        # Fast path: float32 numpy arrays go straight to C++, which validates shape,
        # contiguity, finiteness and the budget itself and raises the same errors.
        if (type(image_feat) is np.ndarray and type(lang_feat) is np.ndarray
                and image_feat.dtype is _F32 and lang_feat.dtype is _F32
                and type(budget_ms) in _FAST_BUDGET):
            return self._decide(image_feat, lang_feat, budget_ms)
        return super().decide(image_feat, lang_feat, budget_ms)

    def decide_tensors(self, image: torch.Tensor, text: torch.Tensor,
                       budget_ms: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._decide(*_f32_arrays(image, text, budget_ms)))

    def logits(self, image_feat: Any, lang_feat: Any, budget_ms: Any) -> Any:
        """Dequantised fp32 logits ``[B, sum(head_sizes)]`` (knob order), as decide sees them."""
        x = check_inputs(image_feat, lang_feat, budget_ms, self.image_dim, self.text_dim)
        if x.is_torch:
            device = x.image.device
            out = self._model.logits(*_f32_arrays(x.image, x.text, x.budget))
            return torch.from_numpy(out).to(device)
        return self._model.logits(np.ascontiguousarray(x.image, dtype=np.float32),
                                  np.ascontiguousarray(x.text, dtype=np.float32), x.budget)

    def __repr__(self) -> str:
        return f"Int8Engine(isa={self.isa!r}, image_dim={self.image_dim}, " \
               f"text_dim={self.text_dim}, knobs={list(self.knob_names)})"
