"""Fused controller decision: projections + budget encoding + trunk + heads + per-head argmax.

One file per op (after Liger-Kernel): the ``@triton.jit`` kernel, its launcher
:func:`fused_controller` and the pure-torch fp32 reference :func:`fused_controller_ref` (the spec)
live side by side. The math is the one in ``fastctrl/policy/export.py``::

    h_img = relu(x_img @ img_w^T + img_b);  h_txt = relu(x_txt @ txt_w^T + txt_b)
    enc   = [sin(ln(budget) f - ln(ref) f), cos(...)]  (= sin(ln(budget / ref) f); linear: budget / ref)
    z     = relu([h_img, h_txt, enc] @ trunk_w[0]^T + trunk_b[0]); ...; logits = z @ head_w^T + b
    decision_k = first argmax of logits within head k

Weights are packed once (:func:`pack_weights`) into ONE contiguous fp32 buffer, every matrix
stored transposed (``[in, out]``, so tiles load along the contiguous output axis) and zero-padded
to the block sizes; the kernel gets a single weight pointer plus constexpr offsets. Zero padding
is exact: padded output columns get weight 0 and bias 0, so relu(0) = 0 and they feed zero rows
of the next layer. Only the caller's feature rows/columns need masks.

Intermediate activations (Triton cannot slice a register tensor): we chunk over the OUTPUT
columns of one layer while keeping its full K, and immediately accumulate each chunk into the
next layer, whose K axis is exactly those columns (``acc_next += relu(X @ Wa[:, c]) @ Wb[c, :]``).
So layers are consumed in pairs and every activation stays in registers; the only full-width
register tensors are the layer-pair outputs ``[BLOCK_B, hidden]``. We chose this over a
per-program global scratch buffer + barrier because it needs no scratch allocation, no
``tl.debug_barrier`` (whose ordering against Triton's software-pipelined loads we could not
verify without a GPU), and it reads each weight exactly once per program either way. The
projections are paired with trunk layer 0 the same way (their K, the feature dim, is streamed
from global memory in BLOCK_K chunks, re-read once per output chunk: 4x the *input* rows, which
are ~1/30 of the weight bytes per program at B=16). Pairing: [proj, trunk0], then
(trunk1, trunk2), (trunk3, trunk4), ...; a leftover trunk layer is paired with the heads,
otherwise the heads (N <= 16-64 columns) run alone with full K.

Importing this module imports triton; ``fastctrl.kernels`` itself does not (so ``import fastctrl``
works without triton). ``kernels/`` has no ``__init__.py`` on purpose: it is a namespace portion,
so from the repo root (``python -m ...`` puts the cwd first on sys.path) a regular package of the
same name wins -- the PyPI ``kernels`` that transformers >= 5.25 requires and imports on
``import transformers``; a regular ``kernels/__init__.py`` here shadowed it and broke that import.

TRITON_INTERPRET (triton 3.9): ``triton.knobs.runtime.interpret`` re-reads the environment on
every access, but it is consulted at *decoration* time: ``@triton.jit`` returns an
``InterpretedFunction`` or a ``JITFunction`` once, when this module is imported, and launching
just calls that object. So the variable must be set before this module is first imported;
:func:`get_kernel` re-wraps the kernel's Python function when the mode has changed since, so a
single pytest process works whichever order modules were imported in.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from fastctrl.policy.export import ENCODING_SINUSOIDAL, EngineWeights

#: Rows per program. 16 is the smallest M that tl.dot accepts on NVIDIA GPUs and wastes the
#: least work at B=1 (the decision path's common case). Latency not measured on a GPU yet (none
#: in the session that wrote this; bench/bench_triton.py compares 16 and 32). Measured statically
#: (ptxas for sm_90, default 768/2048 controller, 8 warps): 16 rows -> 128 registers, 88 B stack,
#: 90 KiB shared memory; 32 rows -> 255 registers (the cap), 108 KiB shared memory.
BLOCK_B = 16
#: K chunk of the projections (the only loops over caller memory). The [16, 128] input tile and
#: [128, 32] fp32 weight tile are 8 + 16 registers/thread at 8 warps. 128 rather than 64 also
#: halves the interpreter's loop trips (0.75 -> 0.45 s per program at the default 768/2048 dims,
#: measured on the CI CPU), which keeps the CPU test suite affordable.
BLOCK_K = 128
#: Output-column chunk of the first layer of each pair. With hidden=256 and 8 warps the two
#: fp32 weight tiles of a pair step ([256, 32] and [32, 256]) are 64 registers/thread each, the
#: two [16, 256] accumulators 16 each (register arithmetic; ptxas agrees, see BLOCK_B). The
#: 90 KiB of shared memory (multi-stage buffering of the weight tiles) fits sm_80/sm_90, not
#: 64 KiB parts such as the T4.
BLOCK_C = 32
NUM_WARPS = 8


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << max(0, (n - 1).bit_length()))


def _ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


@dataclass(frozen=True)
class PackedController:
    """Exported weights in one fp32 buffer + the constexprs that describe its layout."""

    buffer: torch.Tensor
    """1-D contiguous fp32 buffer on the device the kernel runs on."""
    meta: dict[str, int]
    """Kernel constexprs: true dims, padded dims, segment offsets (elements)."""
    head_sizes: tuple[int, ...]

    @functools.cached_property
    def kernel_constexprs(self) -> dict[str, int]:
        """The meta entries the kernel takes (built once: the launcher runs per decide())."""
        return {k: v for k, v in self.meta.items() if not k.startswith("TRUE_")}

    @property
    def device(self) -> torch.device:
        return self.buffer.device

    @property
    def image_dim(self) -> int:
        return self.meta["D_IMG"]

    @property
    def text_dim(self) -> int:
        return self.meta["D_TXT"]

    @property
    def n_heads(self) -> int:
        return len(self.head_sizes)

    def tensors(self) -> dict[str, Any]:
        """Unpadded ``[out, in]`` views of the buffer (what the reference and tests read)."""
        m, buf = self.meta, self.buffer
        true = self._true_dims

        def mat(off: int, rows_p: int, cols_p: int, rows: int, cols: int) -> torch.Tensor:
            return buf[off : off + rows_p * cols_p].view(rows_p, cols_p)[:rows, :cols].t()

        def vec(off: int, n: int) -> torch.Tensor:
            return buf[off : off + n]

        hp = m["HP"]
        t1 = [
            mat(m["OFF_T1_IMG"], m["PIP"], hp, true["p_img"], true["hidden"]),
            mat(m["OFF_T1_TXT"], m["PTP"], hp, true["p_txt"], true["hidden"]),
            mat(m["OFF_T1_ENC"], m["EP"], hp, true["enc"], true["hidden"]),
        ]
        trunk_w = [torch.cat(t1, dim=1)]
        trunk_b = [vec(m["OFF_T1_B"], true["hidden"])]
        for layer in range(1, m["N_TRUNK"]):
            off = m["OFF_TRUNK"] + (layer - 1) * (hp * hp + hp)
            trunk_w.append(mat(off, hp, hp, true["hidden"], true["hidden"]))
            trunk_b.append(vec(off + hp * hp, true["hidden"]))
        return {
            "img_w": mat(m["OFF_IMG_W"], m["DIP"], m["PIP"], m["D_IMG"], true["p_img"]),
            "img_b": vec(m["OFF_IMG_B"], true["p_img"]),
            "txt_w": mat(m["OFF_TXT_W"], m["DTP"], m["PTP"], m["D_TXT"], true["p_txt"]),
            "txt_b": vec(m["OFF_TXT_B"], true["p_txt"]),
            "trunk_w": trunk_w,
            "trunk_b": trunk_b,
            "head_w": mat(m["OFF_HEAD_W"], hp, m["NHP"], true["hidden"], m["N_OUT"]),
            "head_b": vec(m["OFF_HEAD_B"], m["N_OUT"]),
            "enc_scale": vec(m["OFF_ENC_SCALE"], true["enc"]),
            "enc_shift": vec(m["OFF_ENC_SHIFT"], true["enc"]),
        }

    @property
    def _true_dims(self) -> dict[str, int]:
        return {k[5:]: v for k, v in self.meta.items() if k.startswith("TRUE_")}


def pack_weights(w: EngineWeights, device: str | torch.device = "cpu") -> PackedController:
    """Pack exported weights once (at engine construction), transposed and zero-padded."""
    d_img, d_txt = w.image_dim, w.text_dim
    p_img, p_txt = w.img_w.shape[0], w.txt_w.shape[0]
    hidden = w.trunk_w[0].shape[0]
    enc = w.encoding_dim
    n_out = int(sum(w.head_sizes))
    n_trunk = len(w.trunk_w)
    hp = _pow2(hidden)
    bc = min(BLOCK_C, hp)
    dims = {
        "D_IMG": d_img,
        "D_TXT": d_txt,
        "N_OUT": n_out,
        "N_HEADS": len(w.head_sizes),
        "N_TRUNK": n_trunk,
        "DIP": _ceil_to(d_img, BLOCK_K),
        "DTP": _ceil_to(d_txt, BLOCK_K),
        "PIP": _ceil_to(p_img, bc),
        "PTP": _ceil_to(p_txt, bc),
        "HP": hp,
        "EP": _pow2(enc),
        "NHP": _pow2(n_out),
        "BLOCK_C": bc,
        "ENC_SIN": int(w.encoding == ENCODING_SINUSOIDAL),
        "ENC_HALF": len(w.budget_freqs) if w.encoding == ENCODING_SINUSOIDAL else 0,
    }
    segs: list[tuple[str, np.ndarray, tuple[int, ...]]] = []

    def put(name: str, a: np.ndarray, shape: tuple[int, ...]) -> None:
        segs.append((name, a, shape))

    put("IMG_W", w.img_w.T, (dims["DIP"], dims["PIP"]))
    put("IMG_B", w.img_b, (dims["PIP"],))
    put("TXT_W", w.txt_w.T, (dims["DTP"], dims["PTP"]))
    put("TXT_B", w.txt_b, (dims["PTP"],))
    t0 = w.trunk_w[0]
    put("T1_IMG", t0[:, :p_img].T, (dims["PIP"], hp))
    put("T1_TXT", t0[:, p_img : p_img + p_txt].T, (dims["PTP"], hp))
    put("T1_ENC", t0[:, p_img + p_txt :].T, (dims["EP"], hp))
    put("T1_B", w.trunk_b[0], (hp,))
    for i in range(1, n_trunk):  # trunk layer i: [hp, hp] weight then [hp] bias
        put(f"TRUNK{i}", w.trunk_w[i].T, (hp, hp))
        put(f"TRUNK{i}_B", w.trunk_b[i], (hp,))
    put("HEAD_W", w.head_w.T, (hp, dims["NHP"]))
    put("HEAD_B", w.head_b, (dims["NHP"],))
    if w.encoding == ENCODING_SINUSOIDAL:
        # ln(budget / ref) * f = ln(budget) * f + shift, shift = -ln(ref) * f rounded once
        # from fp64: one fma per column in the kernel, no division.
        half = np.asarray(w.budget_freqs, np.float64)
        scale = np.concatenate([half, half])
        shift = np.log(w.inv_ref_latency) * scale
    else:
        scale = np.array([w.inv_ref_latency], np.float64)
        shift = np.zeros(1)
    put("ENC_SCALE", scale.astype(np.float32), (dims["EP"],))
    put("ENC_SHIFT", shift.astype(np.float32), (dims["EP"],))
    head_id = np.concatenate([np.full(s, k, np.float32) for k, s in enumerate(w.head_sizes)])
    pad_id = np.full(dims["NHP"], -1.0, np.float32)
    pad_id[:n_out] = head_id
    put("HEAD_ID", pad_id, (dims["NHP"],))

    total = sum(math.prod(shape) for _, _, shape in segs)
    flat = np.zeros(total, np.float32)
    offs: dict[str, int] = {}
    off = 0
    for name, a, shape in segs:
        block = np.zeros(shape, np.float32)
        block[tuple(slice(0, s) for s in a.shape)] = a
        flat[off : off + block.size] = block.reshape(-1)
        offs[name] = off
        off += block.size
    meta = dict(dims)
    meta.update({f"OFF_{n}": o for n, o in offs.items() if not n.startswith("TRUNK")})
    # trunk layers 1.. are contiguous, HP*HP + HP apart; the kernel derives each from this one
    # (unused, hence any value, when there is a single trunk layer).
    meta["OFF_TRUNK"] = offs.get("TRUNK1", 0)
    meta.update({"TRUE_p_img": p_img, "TRUE_p_txt": p_txt, "TRUE_hidden": hidden, "TRUE_enc": enc})
    buf = torch.from_numpy(flat).to(device)
    return PackedController(buffer=buf, meta=meta, head_sizes=tuple(w.head_sizes))


# --------------------------------------------------------------------------------------- kernel
@triton.jit
def fused_controller_kernel(
    img_ptr,
    txt_ptr,
    budget_ptr,
    w_ptr,
    out_ptr,
    logits_ptr,
    B,
    D_IMG: tl.constexpr,
    D_TXT: tl.constexpr,
    N_OUT: tl.constexpr,
    N_HEADS: tl.constexpr,
    N_TRUNK: tl.constexpr,
    DIP: tl.constexpr,
    DTP: tl.constexpr,
    PIP: tl.constexpr,
    PTP: tl.constexpr,
    HP: tl.constexpr,
    EP: tl.constexpr,
    NHP: tl.constexpr,
    ENC_SIN: tl.constexpr,
    ENC_HALF: tl.constexpr,
    OFF_IMG_W: tl.constexpr,
    OFF_IMG_B: tl.constexpr,
    OFF_TXT_W: tl.constexpr,
    OFF_TXT_B: tl.constexpr,
    OFF_T1_IMG: tl.constexpr,
    OFF_T1_TXT: tl.constexpr,
    OFF_T1_ENC: tl.constexpr,
    OFF_T1_B: tl.constexpr,
    OFF_TRUNK: tl.constexpr,
    OFF_HEAD_W: tl.constexpr,
    OFF_HEAD_B: tl.constexpr,
    OFF_ENC_SCALE: tl.constexpr,
    OFF_ENC_SHIFT: tl.constexpr,
    OFF_HEAD_ID: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_C: tl.constexpr,
    STORE_LOGITS: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    rmask = rows < B
    rows64 = rows.to(tl.int64)  # row * feature_dim may pass 2**31 at large B
    kk = tl.arange(0, BLOCK_K)
    cc = tl.arange(0, BLOCK_C)
    hh = tl.arange(0, HP)

    # ---- pair 0: projections (chunked over their outputs) feed trunk layer 0 ------------
    acc = tl.zeros((BLOCK_B, HP), dtype=tl.float32)
    for c in range(0, PIP, BLOCK_C):
        h = tl.zeros((BLOCK_B, BLOCK_C), dtype=tl.float32)
        for k in range(0, DIP, BLOCK_K):
            cols = k + kk
            x = tl.load(
                img_ptr + rows64[:, None] * D_IMG + cols[None, :],
                mask=rmask[:, None] & (cols < D_IMG)[None, :],
                other=0.0,
            )
            w = tl.load(w_ptr + OFF_IMG_W + cols[:, None] * PIP + (c + cc)[None, :])
            h += tl.dot(x.to(tl.float32), w, input_precision="ieee")
        h = tl.maximum(h + tl.load(w_ptr + OFF_IMG_B + c + cc)[None, :], 0.0)
        w1 = tl.load(w_ptr + OFF_T1_IMG + (c + cc)[:, None] * HP + hh[None, :])
        acc += tl.dot(h, w1, input_precision="ieee")
    for c in range(0, PTP, BLOCK_C):
        h = tl.zeros((BLOCK_B, BLOCK_C), dtype=tl.float32)
        for k in range(0, DTP, BLOCK_K):
            cols = k + kk
            x = tl.load(
                txt_ptr + rows64[:, None] * D_TXT + cols[None, :],
                mask=rmask[:, None] & (cols < D_TXT)[None, :],
                other=0.0,
            )
            w = tl.load(w_ptr + OFF_TXT_W + cols[:, None] * PTP + (c + cc)[None, :])
            h += tl.dot(x.to(tl.float32), w, input_precision="ieee")
        h = tl.maximum(h + tl.load(w_ptr + OFF_TXT_B + c + cc)[None, :], 0.0)
        w1 = tl.load(w_ptr + OFF_T1_TXT + (c + cc)[:, None] * HP + hh[None, :])
        acc += tl.dot(h, w1, input_precision="ieee")

    # budget encoding, in-kernel from the [B] budget vector
    ee = tl.arange(0, EP)
    bud = tl.load(budget_ptr + rows, mask=rmask, other=1.0).to(tl.float32)
    if ENC_SIN:
        bud = tl.log(bud)
    ang = (
        bud[:, None] * tl.load(w_ptr + OFF_ENC_SCALE + ee)[None, :]
        + tl.load(w_ptr + OFF_ENC_SHIFT + ee)[None, :]
    )
    if ENC_SIN:
        # Explicit 2*pi range reduction (Cody-Waite, 6.28125 has 8 significant bits so
        # n * 6.28125 is exact for |n| < 2**16): the GPU's fast sin/cos are accurate on
        # [-pi, pi] only, while ln(budget / ref) * freq reaches tens of radians.
        n = tl.floor(ang * 0.15915494309189535 + 0.5)
        r = (ang - n * 6.28125) - n * 0.0019353071795864769
        enc = tl.where(ee[None, :] < ENC_HALF, tl.sin(r), tl.cos(r))
        enc = tl.where(ee[None, :] < 2 * ENC_HALF, enc, 0.0)
    else:
        enc = ang
    we = tl.load(w_ptr + OFF_T1_ENC + ee[:, None] * HP + hh[None, :])
    acc += tl.dot(enc, we, input_precision="ieee")
    z = tl.maximum(acc + tl.load(w_ptr + OFF_T1_B + hh)[None, :], 0.0)

    # ---- trunk layers (1, 2), (3, 4), ...: first chunked over N, second accumulated -----
    LAYER: tl.constexpr = HP * HP + HP
    for p in tl.static_range((N_TRUNK - 1) // 2):
        off_a = OFF_TRUNK + (2 * p) * LAYER
        off_b = off_a + LAYER
        acc = tl.zeros((BLOCK_B, HP), dtype=tl.float32)
        for c in range(0, HP, BLOCK_C):
            wa = tl.load(w_ptr + off_a + hh[:, None] * HP + (c + cc)[None, :])
            y = tl.dot(z, wa, input_precision="ieee")
            y = tl.maximum(y + tl.load(w_ptr + off_a + HP * HP + c + cc)[None, :], 0.0)
            wb = tl.load(w_ptr + off_b + (c + cc)[:, None] * HP + hh[None, :])
            acc += tl.dot(y, wb, input_precision="ieee")
        z = tl.maximum(acc + tl.load(w_ptr + off_b + HP * HP + hh)[None, :], 0.0)

    # ---- heads: paired with the leftover trunk layer, else alone with full K ------------
    oo = tl.arange(0, NHP)
    if (N_TRUNK - 1) % 2 == 1:
        off_a = OFF_TRUNK + (N_TRUNK - 2) * LAYER
        logits = tl.zeros((BLOCK_B, NHP), dtype=tl.float32)
        for c in range(0, HP, BLOCK_C):
            wa = tl.load(w_ptr + off_a + hh[:, None] * HP + (c + cc)[None, :])
            y = tl.dot(z, wa, input_precision="ieee")
            y = tl.maximum(y + tl.load(w_ptr + off_a + HP * HP + c + cc)[None, :], 0.0)
            wh = tl.load(w_ptr + OFF_HEAD_W + (c + cc)[:, None] * NHP + oo[None, :])
            logits += tl.dot(y, wh, input_precision="ieee")
    else:
        wh = tl.load(w_ptr + OFF_HEAD_W + hh[:, None] * NHP + oo[None, :])
        logits = tl.dot(z, wh, input_precision="ieee")
    logits += tl.load(w_ptr + OFF_HEAD_B + oo)[None, :]
    if STORE_LOGITS:
        tl.store(
            logits_ptr + rows64[:, None] * N_OUT + oo[None, :],
            logits,
            mask=rmask[:, None] & (oo < N_OUT)[None, :],
        )

    # ---- per-head argmax (first index on ties, as torch) -------------------------------
    head_id = tl.load(w_ptr + OFF_HEAD_ID + oo).to(tl.int32)  # -1 on padding columns
    for k in tl.static_range(N_HEADS):
        in_head = head_id == k
        lg = tl.where(in_head[None, :], logits, float("-inf"))
        best = tl.max(lg, axis=1)
        hit = (lg == best[:, None]) & in_head[None, :]
        idx = tl.min(tl.where(hit, oo[None, :], NHP), axis=1)
        start = tl.min(tl.where(in_head, oo, NHP), axis=0)
        tl.store(out_ptr + rows64 * N_HEADS + k, (idx - start).to(tl.int64), mask=rmask)


# ------------------------------------------------------------------------------------- launcher
def interpret_mode() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1) right now."""
    return bool(triton.knobs.runtime.interpret)


_rewrapped: dict[bool, Any] = {}


def get_kernel() -> Any:
    """The kernel decorated for the current mode (see the module docstring on TRITON_INTERPRET)."""
    from triton.runtime.interpreter import InterpretedFunction

    want = interpret_mode()
    if isinstance(fused_controller_kernel, InterpretedFunction) == want:
        return fused_controller_kernel
    if want not in _rewrapped:
        _rewrapped[want] = triton.jit(fused_controller_kernel.fn)
    return _rewrapped[want]


_FEATURE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def fused_controller(
    image: torch.Tensor,
    text: torch.Tensor,
    budget: torch.Tensor,
    packed: PackedController,
    *,
    return_logits: bool = False,
    block_b: int = BLOCK_B,
) -> Any:
    """Decisions ``[B, n_heads]`` int64 in ONE kernel launch (and fp32 logits if asked).

    ``image`` ``[B, image_dim]`` / ``text`` ``[B, text_dim]``: contiguous fp32, fp16 or bf16 on
    the packed weights' device; ``budget``: ``[B]`` ms (any float dtype, same device).
    Validation of values (finiteness, budgets > 0) is the engine's job (``check_inputs``).
    """
    batch = image.shape[0]
    for name, x, dim in (("image", image, packed.image_dim), ("text", text, packed.text_dim)):
        if x.dtype not in _FEATURE_DTYPES:
            raise TypeError(f"{name} must be float32, float16 or bfloat16, got {x.dtype}")
        if x.ndim != 2 or x.shape[0] != batch or x.shape[1] != dim or not x.is_contiguous():
            raise ValueError(
                f"{name} must be a contiguous [{batch}, {dim}] tensor, got "
                f"{list(x.shape)} (contiguous={x.is_contiguous()})"
            )
        if x.device != packed.device:
            raise ValueError(f"{name} is on {x.device}, the packed weights on {packed.device}")
    if budget.shape != (batch,) or budget.device != packed.device or not budget.is_contiguous():
        raise ValueError(
            f"budget must be a contiguous [{batch}] tensor on {packed.device}, got "
            f"{list(budget.shape)} on {budget.device}"
        )
    if block_b < 16 or block_b & (block_b - 1):
        raise ValueError(f"block_b must be a power of two >= 16 (tl.dot M), got {block_b}")
    out = torch.empty((batch, packed.n_heads), dtype=torch.int64, device=image.device)
    logits = (
        torch.empty((batch, packed.meta["N_OUT"]), dtype=torch.float32, device=image.device)
        if return_logits
        else out
    )
    grid = (triton.cdiv(batch, block_b),)
    args = (image, text, budget, packed.buffer, out, logits, batch)
    kwargs = dict(
        packed.kernel_constexprs,
        BLOCK_B=block_b,
        BLOCK_K=BLOCK_K,
        STORE_LOGITS=return_logits,
        num_warps=NUM_WARPS,
    )
    dev = image.device
    if dev.type == "cuda" and dev.index is not None and dev.index != torch.cuda.current_device():
        with torch.cuda.device(dev):  # triton launches on the current device
            get_kernel()[grid](*args, **kwargs)
    else:
        get_kernel()[grid](*args, **kwargs)
    return (out, logits) if return_logits else out


# ------------------------------------------------------------------------------------ reference
def fused_controller_ref(
    image: torch.Tensor,
    text: torch.Tensor,
    budget: torch.Tensor,
    packed: PackedController,
    compute_dtype: torch.dtype = torch.float32,
    tensors: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch reference: ``(decisions [B, n_heads] int64, logits [B, n_out])``.

    ``compute_dtype=float32`` is the spec. Another dtype runs the same math with weights,
    inputs and activations in that dtype ("plain torch in the same dtype", the yardstick of the
    kernel's error bound in the tests). ``tensors``: ``packed.tensors()`` made once by the
    caller (a benchmark of torch eager should not time building the views). No host syncs and
    static shapes: CUDA-graph capturable.
    """
    t = packed.tensors() if tensors is None else tensors
    dt = compute_dtype

    def lin(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, w.to(dt), b.to(dt))

    h_img = torch.relu(lin(image.to(dt), t["img_w"], t["img_b"]))
    h_txt = torch.relu(lin(text.to(dt), t["txt_w"], t["txt_b"]))
    bud = budget.to(dt)
    if packed.meta["ENC_SIN"]:
        bud = torch.log(bud)
    ang = bud[:, None] * t["enc_scale"].to(dt)[None, :] + t["enc_shift"].to(dt)[None, :]
    if packed.meta["ENC_SIN"]:
        half = packed.meta["ENC_HALF"]
        enc = torch.cat([torch.sin(ang[:, :half]), torch.cos(ang[:, half:])], dim=1)
    else:
        enc = ang
    z = torch.cat([h_img, h_txt, enc], dim=1)
    for w, b in zip(t["trunk_w"], t["trunk_b"], strict=True):
        z = torch.relu(lin(z, w, b))
    logits = lin(z, t["head_w"], t["head_b"])
    dec, o = [], 0
    for s in packed.head_sizes:
        dec.append(logits[:, o : o + s].argmax(dim=1))
        o += s
    return torch.stack(dec, dim=1), logits
