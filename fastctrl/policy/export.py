"""The weights every decision engine runs: a Controller exported to plain fp32 arrays.

Exporting folds the input standardisation into the projections, so an engine computes::

    h_img = relu(img_w @ x_img + img_b)          # img_w = W / std, img_b = b - img_w @ mean
    h_txt = relu(txt_w @ x_txt + txt_b)          # x_txt = [text, one-hot task] with task types
    b     = budget_ms / ref_latency_ms           # = budget_ms * inv_ref_latency
    enc   = [sin(ln(b)*freqs), cos(ln(b)*freqs)] # sinusoidal; linear: enc = [b]
    z     = relu(trunk_w[0] @ [h_img, h_txt, enc] + trunk_b[0]);  z = relu(trunk_w[i] @ z + ..)
    logits = head_w @ z + head_b;  decision_k = argmax(logits[head_offsets[k]:head_offsets[k+1]])

(dropout is inactive at inference). Argmax ties go to the lowest index, as in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .controller import Controller

ENCODING_SINUSOIDAL = 0
ENCODING_LINEAR = 1


@dataclass(frozen=True)
class EngineWeights:
    """A controller as C-contiguous fp32 numpy arrays (row-major, [out, in])."""

    img_w: np.ndarray
    img_b: np.ndarray
    txt_w: np.ndarray
    txt_b: np.ndarray
    trunk_w: tuple[np.ndarray, ...]
    trunk_b: tuple[np.ndarray, ...]
    head_w: np.ndarray
    head_b: np.ndarray
    head_sizes: tuple[int, ...]
    encoding: int
    budget_freqs: np.ndarray
    inv_ref_latency: float

    @property
    def image_dim(self) -> int:
        return int(self.img_w.shape[1])

    @property
    def text_dim(self) -> int:
        return int(self.txt_w.shape[1])

    @property
    def encoding_dim(self) -> int:
        return 2 * len(self.budget_freqs) if self.encoding == ENCODING_SINUSOIDAL else 1

    @property
    def head_offsets(self) -> tuple[int, ...]:
        offs = [0]
        for s in self.head_sizes:
            offs.append(offs[-1] + s)
        return tuple(offs)


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float64).numpy().astype(np.float32))


@torch.no_grad()
def export_weights(controller: Controller) -> EngineWeights:
    """Export (and fold) a Controller's weights; the result no longer tracks the module."""
    if controller.config.arch != "mlp":
        raise ValueError(
            f"decision engines implement arch='mlp' only, this controller is "
            f"arch={controller.config.arch!r}; use the torch engine"
        )
    cfg = controller.config

    def fold(linear: torch.nn.Linear, mean: torch.Tensor, std: torch.Tensor):
        w = linear.weight.double() / std.double()[None, :]
        b = linear.bias.double() - w @ mean.double()
        return _np(w), _np(b)

    img_w, img_b = fold(controller.image_proj, controller.image_mean, controller.image_std)
    txt_w, txt_b = fold(controller.text_proj, controller.text_mean, controller.text_std)
    if cfg.n_task_slots:
        # the task vector added to the text projection = extra one-hot input columns
        txt_w = np.ascontiguousarray(
            np.concatenate([txt_w, _np(controller.task_embed.weight).T], axis=1)
        )
    trunk = controller.trunk_linears()
    heads = [controller.heads[n] for n in controller.knob_names]
    encoding = ENCODING_SINUSOIDAL if cfg.budget_encoding == "sinusoidal" else ENCODING_LINEAR
    return EngineWeights(
        img_w=img_w,
        img_b=img_b,
        txt_w=txt_w,
        txt_b=txt_b,
        trunk_w=tuple(_np(layer.weight) for layer in trunk),
        trunk_b=tuple(_np(layer.bias) for layer in trunk),
        head_w=_np(torch.cat([h.weight for h in heads], 0)),
        head_b=_np(torch.cat([h.bias for h in heads], 0)),
        head_sizes=tuple(h.out_features for h in heads),
        encoding=encoding,
        budget_freqs=_np(controller.budget_freqs),
        inv_ref_latency=1.0 / cfg.ref_latency_ms,
    )


def reference_logits(
    w: EngineWeights, image: np.ndarray, text: np.ndarray, budget_ms: np.ndarray
) -> np.ndarray:
    """fp64 numpy evaluation of the exported weights: ``[B, sum(head_sizes)]`` logits."""
    x_i = image.astype(np.float64)
    x_t = text.astype(np.float64)
    h_i = np.maximum(x_i @ w.img_w.T.astype(np.float64) + w.img_b, 0.0)
    h_t = np.maximum(x_t @ w.txt_w.T.astype(np.float64) + w.txt_b, 0.0)
    b = budget_ms.astype(np.float64) * w.inv_ref_latency
    if w.encoding == ENCODING_SINUSOIDAL:
        ang = np.log(b)[:, None] * w.budget_freqs.astype(np.float64)[None, :]
        enc = np.concatenate([np.sin(ang), np.cos(ang)], axis=1)
    else:
        enc = b[:, None]
    z = np.concatenate([h_i, h_t, enc], axis=1)
    for tw, tb in zip(w.trunk_w, w.trunk_b, strict=True):
        z = np.maximum(z @ tw.T.astype(np.float64) + tb, 0.0)
    return z @ w.head_w.T.astype(np.float64) + w.head_b


def argmax_per_head(logits: np.ndarray, head_sizes: tuple[int, ...]) -> np.ndarray:
    """``[B, sum(sizes)]`` -> ``[B, n_heads]`` int64 argmax within each head's slice."""
    out = np.empty((logits.shape[0], len(head_sizes)), dtype=np.int64)
    o = 0
    for k, s in enumerate(head_sizes):
        out[:, k] = logits[:, o : o + s].argmax(1)
        o += s
    return out
