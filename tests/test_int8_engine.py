"""INT8 C++ engine: every ISA bit-exact to the scalar oracle, packing, accuracy, bad input, GIL."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
import torch

# fastctrl._C imported, not importorskip'd: without the built extension these tests fail
from fastctrl import _C, Controller, ControllerConfig, EngineUnavailableError, make_engine
from fastctrl.engines.int8_engine import Int8Engine
from fastctrl.policy.export import argmax_per_head, export_weights, reference_logits

from .conftest import random_inputs

ISAS = list(_C.available_isas())
FAST_ISAS = [i for i in ISAS if i != "scalar"]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- dispatch, packing
def test_available_isas_are_compiled_and_start_with_scalar():
    assert ISAS[0] == "scalar"
    assert set(ISAS) <= set(_C.compiled_isas()) <= {"scalar", "avx2", "avx512_vnni", "amx"}
    print(f"compiled {_C.compiled_isas()}, available here {ISAS}")


@pytest.mark.parametrize("n,k", [(1, 1), (15, 256), (64, 4), (65, 37), (130, 2049)])
def test_pack_unpack_round_trip(n, k):
    w = _rng(n * k).integers(-127, 128, (n, k)).astype(np.int8)
    p = _C.PackedMatrix(w)
    assert (p.n, p.k, p.kp % 4, p.np % 64) == (n, k, 0, 0)
    np.testing.assert_array_equal(p.unpack(), w)
    np.testing.assert_array_equal(p.compensation(), 128 * w.astype(np.int64).sum(1))


def test_pack_rejects_bad_weights():
    with pytest.raises(ValueError, match=r"\[-127, 127\]"):
        _C.PackedMatrix(np.full((2, 3), -128, np.int8))
    with pytest.raises(TypeError, match="int8"):
        _C.PackedMatrix(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        _C.PackedMatrix(np.zeros((0, 3), np.int8))


def test_quantize_weights_per_channel():
    w = _rng(1).standard_normal((33, 70)).astype(np.float32)
    w[5] = 0.0
    q, s = _C.quantize_weights(w)
    np.testing.assert_allclose(s, np.abs(w).max(1) / 127, rtol=1e-6)
    assert q.dtype == np.int8 and np.abs(q.astype(int)).max() == 127 and s[5] == 0
    err = np.abs(w - q * s[:, None])
    assert (err <= s[:, None] / 2 * (1 + 1e-5)).all()


# ----------------------------------------------------------------------------- kernels bit-exact
def _gemm_cases():
    r = _rng(2)
    cases = []
    for m, k, n in [
        (1, 1, 1),
        (1, 37, 15),
        (7, 91, 65),
        (13, 2048, 128),
        (6, 255, 64),
        (17, 4, 129),
        (5, 33, 200),
    ]:
        cases.append(
            (f"random {m}x{k}x{n}", r.integers(-128, 128, (m, k)), r.integers(-127, 128, (n, k)))
        )
    # Values that saturate vpmaddubsw's int16 pair sums with a naive u8 shift: 2*255*127.
    m, k, n = 9, 131, 67
    cases.append(("all +127", np.full((m, k), 127), np.full((n, k), 127)))
    cases.append(("+-127 opposite", np.full((m, k), -127), np.full((n, k), 127)))
    cases.append(("-128 activations", np.full((m, k), -128), np.full((n, k), -127)))
    alt = np.where(np.arange(k) % 2 == 0, 127, -127)
    cases.append(("alternating", np.tile(alt, (m, 1)), np.tile(alt, (n, 1))))
    return [(name, a.astype(np.int8), w.astype(np.int8)) for name, a, w in cases]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", _gemm_cases(), ids=lambda c: c[0])
def test_gemm_bit_exact(isa, case):
    _, a, w = case
    p = _C.PackedMatrix(w)
    exact = a.astype(np.int64) @ w.astype(np.int64).T
    got = _C.gemm_s8s8_s32(a, p, isa)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, exact)
    np.testing.assert_array_equal(got, _C.gemm_s8s8_s32(a, p, "scalar"))


def _nonneg_cases():
    r = _rng(21)
    cases = []
    for m, k, n in [
        (1, 1, 1),
        (1, 256, 15),
        (2, 129, 70),
        (3, 128, 256),
        (4, 37, 33),
        (7, 256, 256),
        (13, 2048, 17),
        (64, 288, 256),
    ]:
        cases.append(
            (f"random {m}x{k}x{n}", r.integers(0, 128, (m, k)), r.integers(-127, 128, (n, k)))
        )
    # the largest vpmaddubsw pair sums without the sign trick: 2 * 127 * 127 = 32258 < 32767
    m, k, n = 9, 131, 67
    cases.append(("all +127", np.full((m, k), 127), np.full((n, k), 127)))
    cases.append(("+127 x -127", np.full((m, k), 127), np.full((n, k), -127)))
    alt = np.where(np.arange(k) % 2 == 0, 127, -127)
    cases.append(("alternating weights", np.full((m, k), 127), np.tile(alt, (n, 1))))
    cases.append(("zeros", np.zeros((m, k)), r.integers(-127, 128, (n, k))))
    return [(name, a.astype(np.int8), w.astype(np.int8)) for name, a, w in cases]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", _nonneg_cases(), ids=lambda c: c[0])
def test_gemm_nonneg_bit_exact(isa, case):
    """The kernel for A in [0, 127] (ReLU outputs; AVX2 skips its sign handling there)."""
    _, a, w = case
    p = _C.PackedMatrix(w)
    exact = a.astype(np.int64) @ w.astype(np.int64).T
    got = _C.gemm_s8s8_s32(a, p, isa, nonneg=True)
    np.testing.assert_array_equal(got, exact)
    np.testing.assert_array_equal(got, _C.gemm_s8s8_s32(a, p, isa))


def test_gemm_nonneg_refuses_negative_activations():
    p = _C.PackedMatrix(np.ones((3, 5), np.int8))
    with pytest.raises(ValueError, match=r"nonneg=True needs every value of a in \[0, 127\]"):
        _C.gemm_s8s8_s32(np.full((2, 5), -1, np.int8), p, "scalar", nonneg=True)


@pytest.mark.parametrize("isa", FAST_ISAS)
def test_gemm_all_batch_sizes(isa):
    r = _rng(3)
    w = r.integers(-127, 128, (70, 258)).astype(np.int8)
    p = _C.PackedMatrix(w)
    for m in (1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 47, 48, 49, 4096):
        a = r.integers(-128, 128, (m, 258)).astype(np.int8)
        np.testing.assert_array_equal(
            _C.gemm_s8s8_s32(a, p, isa), _C.gemm_s8s8_s32(a, p, "scalar"), err_msg=f"M={m}"
        )
        u = np.abs(a.astype(np.int16)).clip(0, 127).astype(np.int8)
        np.testing.assert_array_equal(
            _C.gemm_s8s8_s32(u, p, isa, nonneg=True),
            _C.gemm_s8s8_s32(u, p, "scalar"),
            err_msg=f"M={m} nonneg",
        )


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_rows_bit_exact_and_round_half_even(isa):
    # Row 0: max 127 so the multiplier is 1 and x*inv lands exactly on .5 ties.
    ties = np.array([[127, 0.5, 1.5, 2.5, -0.5, -2.5, -127, 126.5]], np.float32)
    q, s = _C.quantize_rows(ties, isa)
    np.testing.assert_array_equal(q, [[127, 0, 2, 2, 0, -2, -127, 126]])
    assert s[0] == np.float32(1.0)
    r = _rng(4)
    for k in (1, 15, 16, 17, 33, 2049):
        x = (r.standard_normal((5, k)) * 10 ** r.uniform(-8, 8, (5, 1))).astype(np.float32)
        x[1] = 0.0
        x[2] = 1e-35  # below the tiny threshold: quantises to zero
        q, s = _C.quantize_rows(x, isa)
        qs, ss = _C.quantize_rows(x, "scalar")
        np.testing.assert_array_equal(q, qs)
        np.testing.assert_array_equal(s, ss)
        amax = np.abs(x).max(1)
        inv = np.where(amax >= 1e-30, np.float32(127) / np.maximum(amax, 1e-30), 0)
        expect = np.clip(np.rint(x * inv.astype(np.float32)[:, None]), -127, 127)
        np.testing.assert_array_equal(q, expect.astype(np.int8))


@pytest.fixture(scope="module")
def default_controller() -> Controller:
    torch.manual_seed(0)
    return Controller(ControllerConfig()).eval()


@pytest.mark.parametrize("isa", FAST_ISAS)
def test_engine_bit_exact_across_isas(isa, default_controller, small_controller):
    cases = [(default_controller, b) for b in (1, 2, 7, 48, 49, 97)]
    cases += [(small_controller, b) for b in (1, 5, 300, 4096)]
    for c, batch in cases:
        img, txt, budget = random_inputs(c, batch, seed=batch)
        ref, fast = Int8Engine(c, "scalar"), Int8Engine(c, isa)
        np.testing.assert_array_equal(fast.decide(img, txt, budget), ref.decide(img, txt, budget))
        # Identical final fp32 logits mean identical int32 accumulators and identical glue.
        np.testing.assert_array_equal(fast.logits(img, txt, budget), ref.logits(img, txt, budget))


def test_argmax_ties_go_to_lowest_index(small_controller):
    c = Controller(small_controller.config).eval()
    with torch.no_grad():
        for h in c.heads.values():
            h.weight.zero_()
            h.bias.zero_()
        c.heads["top_k"].bias.copy_(torch.tensor([0.0, 1.0, 1.0, 0.5]))
    img, txt, budget = random_inputs(c, 6)
    for isa in ISAS:
        d = Int8Engine(c, isa).decide(img, txt, budget)
        np.testing.assert_array_equal(d, np.tile([0, 1, 0], (6, 1)))


# ----------------------------------------------------------------------------- accuracy
def test_agreement_with_fp32_reference(default_controller):
    c = default_controller
    img, txt, budget = random_inputs(c, 4096, seed=7)
    budget = np.geomspace(0.05, 3.0, 4096).astype(np.float32) * c.config.ref_latency_ms
    ref = make_engine(c, "torch").decide(img, txt, budget)
    got = Int8Engine(c).decide(img, txt, budget)
    rate = (got == ref).mean(0)
    print(
        "int8 vs fp32 decision agreement per knob "
        + ", ".join(f"{n}={r:.4f}" for n, r in zip(c.knob_names, rate, strict=True))
    )
    assert (rate >= 0.97).all(), rate


def _linear_bound(w, x, e, scale_w):
    """Worst-case |int8 y - fp64 y| of one Linear (no bias) given the fp64 input x [B, K] and a
    bound e [B, K] on the engine's input error. The engine quantises its input x^ (|x^-x|<=e)
    with step sx = max|x^|/127 (error <= sx/2) and W with step sw (error <= sw/2 per channel):
      y^ - y = (W^-W) x~ + W (x~-x^) + W (x^-x),   |x~| <= |x| + e + sx/2,
    plus fp32 rounding of the epilogue (a few roundings of 2^-24 each on terms bounded by
    |W| |x|): 1e-5 relative is > 100 unit roundoffs."""
    sx = (np.abs(x) + e).max(1, keepdims=True) / 127
    xt = np.abs(x) + e + sx / 2
    aw = np.abs(w)
    return (
        xt @ (scale_w[:, None] / 2 * np.ones_like(w)).T
        + (sx / 2 + e) @ aw.T
        + 1e-5 * (np.abs(x) @ aw.T)
        + 1e-6
    )


def _linear_sigma(w, x, s, scale_w):
    """Std of the same error if every rounding error is independent and uniform (variance
    step^2 / 12): the typical size, where _linear_bound is the worst case. s: input error std."""
    sx = np.abs(x).max(1, keepdims=True) / 127
    w2 = w**2
    return np.sqrt(
        (sx**2 / 12 + s**2) @ w2.T + (x**2) @ (scale_w[:, None] ** 2 / 12 * np.ones_like(w)).T
    )


def _int8_logit_bound(c: Controller, img, txt, budget, linear=_linear_bound):
    w = export_weights(c)
    sw = {}
    for name, mat in (("img", w.img_w), ("txt", w.txt_w), ("head", w.head_w)):
        sw[name] = _C.quantize_weights(mat)[1].astype(np.float64)
    f64 = np.float64
    x_i, x_t = img.astype(f64), txt.astype(f64)
    h_i = np.maximum(x_i @ w.img_w.T.astype(f64) + w.img_b, 0)
    h_t = np.maximum(x_t @ w.txt_w.T.astype(f64) + w.txt_b, 0)
    e_i = linear(w.img_w.astype(f64), x_i, np.zeros_like(x_i), sw["img"])
    e_t = linear(w.txt_w.astype(f64), x_t, np.zeros_like(x_t), sw["txt"])
    b = budget.astype(f64) * w.inv_ref_latency
    freqs = w.budget_freqs.astype(f64)[None, :]
    ang = np.log(b)[:, None] * freqs  # the spec: sin/cos of ln(budget / ref) * freqs
    enc = np.concatenate([np.sin(ang), np.cos(ang)], 1)
    # fp32 b (relative error <= 2^-23) moves ln(b) by <= 2^-23; fp32 logf, the product and
    # sinf/cosf add < 1 ulp each: error <= freq 2^-22 + |ang| 2^-21 + 2^-23.
    e_ang = freqs * 2.0**-22 + np.abs(ang) * 2.0**-21 + 2.0**-23
    e_enc = np.concatenate([e_ang, e_ang], 1)
    ni, nt = h_i.shape[1], h_t.shape[1]
    w0 = w.trunk_w[0].astype(f64)
    z = np.maximum(np.concatenate([h_i, h_t, enc], 1) @ w0.T + w.trunk_b[0], 0)
    if linear is _linear_sigma:
        e_enc = np.zeros_like(e_enc)
    e = sum(
        linear(seg, x, ex, _C.quantize_weights(seg.astype(np.float32))[1])
        for seg, x, ex in (
            (w0[:, :ni], h_i, e_i),
            (w0[:, ni : ni + nt], h_t, e_t),
            (w0[:, ni + nt :], enc, e_enc),
        )
    )
    for tw, tb in zip(w.trunk_w[1:], w.trunk_b[1:], strict=True):
        e = linear(tw.astype(f64), z, e, _C.quantize_weights(tw)[1].astype(f64))
        z = np.maximum(z @ tw.T.astype(f64) + tb, 0)
    return linear(w.head_w.astype(f64), z, e, sw["head"])


@pytest.mark.parametrize("which", ["small", "default"])
def test_logits_within_quantisation_bound(which, small_controller, default_controller):
    c = small_controller if which == "small" else default_controller
    c = Controller(c.config).eval()
    c.load_state_dict((small_controller if which == "small" else default_controller).state_dict())
    r = _rng(5)
    cfg = c.config
    c.fit_input_normalization(
        r.normal(3, 2, (64, cfg.image_dim)).astype(np.float32),
        r.normal(-1, 5, (64, cfg.text_dim)).astype(np.float32),
    )
    img = r.normal(3, 2, (256, cfg.image_dim)).astype(np.float32)
    txt = r.normal(-1, 5, (256, cfg.text_dim)).astype(np.float32)
    budget = r.uniform(5, 200, 256).astype(np.float32)
    ref = reference_logits(export_weights(c), img, txt, budget)
    bound = _int8_logit_bound(c, img, txt, budget)
    sigma = _int8_logit_bound(c, img, txt, budget, linear=_linear_sigma)
    for isa in ISAS:
        got = Int8Engine(c, isa).logits(img, txt, budget).astype(np.float64)
        err = np.abs(got - ref)
        print(
            f"{which}/{isa}: max |int8 - fp64| = {err.max():.4g}, max err/bound = "
            f"{(err / bound).max():.2e}, max err/sigma = {(err / sigma).max():.2f}, "
            f"rms err/sigma = {np.sqrt(((err / sigma) ** 2).mean()):.2f}"
        )
        assert (err <= bound).all()
        # Independent uniform rounding errors: the logit error is close to Gaussian with std
        # `sigma`; 6 sigma is exceeded with probability ~2e-9 per logit (a few thousand here).
        assert (err <= 6 * sigma + 1e-6).all()
        # Decisions must agree wherever the fp64 winner's margin exceeds both error bounds.
        sizes = export_weights(c).head_sizes
        got_dec = Int8Engine(c, isa).decide(img, txt, budget)
        safe = _safe_rows(ref, bound, sizes)
        np.testing.assert_array_equal(got_dec[safe], argmax_per_head(ref, sizes)[safe])


def _safe_rows(ref, bound, sizes):
    """[B, n_heads] mask: the fp64 winner beats every other logit by more than both bounds."""
    out = np.zeros((ref.shape[0], len(sizes)), bool)
    o = 0
    for k, s in enumerate(sizes):
        lg, bd = ref[:, o : o + s], bound[:, o : o + s]
        best = lg.argmax(1)
        rows = np.arange(len(lg))
        gap = lg[rows, best][:, None] - lg - bd[rows, best][:, None] - bd
        gap[rows, best] = np.inf
        out[:, k] = (gap > 0).all(1)
        o += s
    return out


# ----------------------------------------------------------------------------- engine behaviour
def test_engine_input_types_and_budgets(small_controller):
    c = small_controller
    e = Int8Engine(c)
    img, txt, budget = random_inputs(c, 9)
    base = e.decide(img, txt, budget)
    assert base.dtype == np.int64 and base.shape == (9, 3)
    for dt in (np.float16, np.float64):
        d = e.decide(
            img.astype(dt).astype(np.float32).astype(dt),
            txt.astype(dt).astype(np.float32).astype(dt),
            budget,
        )
        ref = e.decide(img.astype(dt).astype(np.float32), txt.astype(dt).astype(np.float32), budget)
        np.testing.assert_array_equal(d, ref)
    t = e.decide(
        torch.from_numpy(img).double(), torch.from_numpy(txt).double(), torch.from_numpy(budget)
    )
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int64 and t.device.type == "cpu"
    np.testing.assert_array_equal(t.numpy(), base)
    for scalar in (
        40.0,
        40,
        np.float32(40.0),
        np.float64(40.0),
        np.array(40.0),
        np.array([40.0]),
        torch.tensor(40.0),
    ):
        np.testing.assert_array_equal(
            e.decide(img, txt, scalar), e.decide(img, txt, np.full(9, 40.0, np.float32))
        )
    np.testing.assert_array_equal(e.decide(img, txt, budget.astype(np.float64)), base)
    np.testing.assert_array_equal(e.decide(img[3:4], txt[3:4], float(budget[3])), base[3:4])
    assert make_engine(c, "int8", isa="scalar").isa == "scalar"
    assert make_engine(c, "auto").kind == "int8"


def test_unknown_or_missing_isa_and_missing_extension(small_controller, monkeypatch):
    with pytest.raises(EngineUnavailableError, match="not available"):
        Int8Engine(small_controller, "neon")
    import fastctrl

    monkeypatch.setitem(sys.modules, "fastctrl._C", None)
    monkeypatch.delattr(fastctrl, "_C", raising=False)
    with pytest.raises(EngineUnavailableError, match="fastctrl._C"):
        Int8Engine(small_controller)
    assert make_engine(small_controller, "auto").kind == "torch"


def test_absurd_finite_inputs_do_not_crash(small_controller):
    e = Int8Engine(small_controller)
    img, txt, budget = random_inputs(small_controller, 4)
    huge = np.where(img > 0, np.float32(3.4e38), np.float32(-3.4e38))
    for x in (img * np.float32(1e-38), img * np.float32(1e-30), img * np.float32(1e30), huge):
        d = e.decide(x, txt * np.float32(1e30), budget)
        assert d.shape == (4, 3) and (d >= 0).all()
    d = e.decide(img, txt, np.float32(3e38))
    assert (d >= 0).all()


# ----------------------------------------------------------------------------- bad input, raw
def test_raw_binding_validates_everything(small_controller):
    m = Int8Engine(small_controller)._model
    img, txt, budget = random_inputs(small_controller, 4)
    nan, inf = img.copy(), txt.copy()
    nan[2, 1] = np.nan
    inf[3, 0] = -np.inf
    cases = [
        ((img[:, :-1].copy(), txt, budget), ValueError, "image_feat must have 37 features"),
        ((img[0], txt, budget), ValueError, r"image_feat must be 2-D"),
        ((img[None], txt, budget), ValueError, r"image_feat must be 2-D"),
        ((img.astype(np.float64), txt, budget), TypeError, "image_feat must be float32"),
        ((img, txt.astype(np.float16), budget), TypeError, "lang_feat must be float32"),
        ((img.tolist(), txt, budget), TypeError, "image_feat must be a numpy array"),
        ((np.asfortranarray(img), txt, budget), ValueError, "image_feat must be C-contiguous"),
        (
            (img, np.zeros((4, 182), np.float32)[:, ::2], budget),
            ValueError,
            "lang_feat must be C-contiguous",
        ),
        ((nan, txt, budget), ValueError, "image_feat contains NaN or inf"),
        ((img, inf, budget), ValueError, "lang_feat contains NaN or inf"),
        ((img[:0], txt[:0], budget[:0]), ValueError, "image_feat is an empty batch"),
        ((img, txt[:3], budget), ValueError, "same batch size"),
        ((img, txt, 0.0), ValueError, "budget_ms"),
        ((img, txt, -5), ValueError, "budget_ms"),
        ((img, txt, float("nan")), ValueError, "budget_ms"),
        ((img, txt, np.array([1.0, 2.0, -1.0, 3.0])), ValueError, "budget_ms"),
        ((img, txt, budget[:3]), ValueError, r"budget_ms .* one entry per request \(4\)"),
        ((img, txt, True), TypeError, "budget_ms .* bool"),
        ((img, txt, "10"), TypeError, "budget_ms"),
        ((img, txt, np.array(["a"] * 4)), TypeError, "budget_ms must be numeric"),
        ((img, txt, 10**400), OverflowError, "too large"),
    ]
    for args, exc, match in cases:
        with pytest.raises(exc, match=match):
            m.decide(*args)
        with pytest.raises(exc, match=match):
            m.logits(*args)


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of ``a`` whose data starts 1 byte past an aligned address."""
    buf = np.zeros(a.nbytes + 8, np.uint8)
    start = (-buf.ctypes.data) % 8 + 1
    buf[start : start + a.nbytes] = np.frombuffer(a.astype(np.float32).tobytes(), np.uint8)
    x = np.frombuffer(buf.data, np.float32, count=a.size, offset=start).reshape(a.shape)
    assert x.ctypes.data % 4 != 0 and not x.flags.aligned and x.flags.c_contiguous
    return x


def test_misaligned_float32_views_are_refused_raw_and_copied_by_the_engine(small_controller):
    """np.frombuffer(..., offset=1) is a valid float32 array whose data is not 4-byte aligned
    (reading it as float* is undefined behaviour). The raw binding refuses it, naming the
    argument; Int8Engine (numpy or torch in) decides on an aligned copy, bit-identically."""
    img, txt, budget = random_inputs(small_controller, 5, seed=12)
    for isa in ISAS:
        e = Int8Engine(small_controller, isa)
        want, want_lg = e.decide(img, txt, budget), e.logits(img, txt, budget)
        cases = (
            ((_misaligned(img), txt, budget), "image_feat"),
            ((img, _misaligned(txt), budget), "lang_feat"),
            ((img, txt, _misaligned(budget)), "budget_ms"),
        )
        for args, name in cases:
            for fn in (e._model.decide, e._model.logits, e._model.decide_list):
                with pytest.raises(
                    ValueError, match=f"{name} is a float32 view whose data is not 4-byte aligned"
                ):
                    fn(*args)
            with pytest.raises(_C.MisalignedError):
                e._model.decide(*args)
            np.testing.assert_array_equal(e.decide(*args), want)
            np.testing.assert_array_equal(e.logits(*args), want_lg)
            t = tuple(torch.from_numpy(a) for a in args)  # torch views of the same memory
            np.testing.assert_array_equal(e.decide(*t).numpy(), want)
            np.testing.assert_array_equal(e.decide_tensors(*t).numpy(), want)
            assert e.decide_rows(*t) == want.tolist()
        with pytest.raises(ValueError, match="x is a float32 view"):
            _C.quantize_rows(_misaligned(img), isa)
    with pytest.raises(ValueError, match="w is a float32 view"):
        _C.quantize_weights(_misaligned(img))
    # weights are converted at load anyway: a misaligned one is copied, same model
    w = export_weights(small_controller)
    args = Int8Engine.model_args(w, "scalar")
    args[2] = _misaligned(w.txt_w)
    np.testing.assert_array_equal(
        _C.Int8Model(*args).decide(img, txt, budget),
        Int8Engine(small_controller, "scalar").decide(img, txt, budget),
    )


def test_raw_kernels_validate(small_controller):
    p = _C.PackedMatrix(np.ones((3, 5), np.int8))
    with pytest.raises(ValueError, match="K = 5"):
        _C.gemm_s8s8_s32(np.ones((2, 4), np.int8), p, "scalar")
    with pytest.raises(TypeError, match="a must be int8"):
        _C.gemm_s8s8_s32(np.ones((2, 5), np.int16), p, "scalar")
    with pytest.raises(ValueError, match="isa 'sse9' is not available"):
        _C.gemm_s8s8_s32(np.ones((2, 5), np.int8), p, "sse9")
    with pytest.raises(ValueError, match="x contains NaN"):
        _C.quantize_rows(np.array([[1.0, np.inf]], np.float32), "scalar")
    w = export_weights(small_controller)
    args = Int8Engine.model_args(w, "scalar")
    bad = list(args)
    bad[6] = w.head_w[:, :-1]
    with pytest.raises(ValueError, match="head_w must have shape"):
        _C.Int8Model(*bad)
    bad = list(args)
    bad[1] = np.full_like(w.img_b, np.nan)
    with pytest.raises(ValueError, match="img_b contains NaN"):
        _C.Int8Model(*bad)


# ----------------------------------------------------------------------------- threads
def test_gil_released_and_threads_agree(small_controller):
    e = Int8Engine(small_controller)
    img, txt, budget = random_inputs(small_controller, 20000, seed=11)
    expect = e.decide(img, txt, budget)
    results: list[np.ndarray] = []
    started, done = threading.Event(), threading.Event()

    def worker() -> None:
        started.set()
        results.append(e.decide(img, txt, budget))
        done.set()

    ticks = 0
    th = threading.Thread(target=worker)
    th.start()
    started.wait()
    while not done.is_set():  # runs only while the worker's C++ call has released the GIL
        ticks += 1
    th.join(timeout=60)
    other = threading.Thread(target=lambda: results.append(e.decide(img, txt, budget)))
    other.start()
    results.append(e.decide(img, txt, budget))
    other.join(timeout=60)
    assert len(results) == 3 and all((r == expect).all() for r in results)
    assert ticks > 100, ticks
