"""The fused Triton kernel vs its torch reference, and the triton engine's contract.

Without CUDA the kernels run in Triton's interpreter. In triton 3.9 ``TRITON_INTERPRET`` is read
(through ``triton.knobs``, which re-reads the environment on each access) when ``@triton.jit``
decorates the kernel, i.e. when ``fastctrl.kernels.fused_controller`` is first imported, not when
triton is imported nor at launch. This module sets it at collection time, before that import, so
the whole pytest process (including tests/test_engine_inputs.py, which then includes the triton
engine) runs the interpreter; ``get_kernel()`` re-wraps the kernel should the module have been
imported earlier in another mode. ``test_interpreter_mode_took_effect`` checks it.

Tolerances follow the flash-attention rule: the kernel's max logit error vs the reference must be
at most 2 x the error of plain torch in the input dtype + a per-dtype atol. For fp16/bf16 the
reference is the fp32 torch reference and "plain torch" the same math in fp16/bf16. For fp32,
plain torch fp32 *is* the fp32 reference, so both are measured against the fp64 evaluation of the
exported weights (``spec.reference_logits``) instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# imported, not importorskip'd: without triton these tests fail, they do not skip
from fastctrl.kernels import fused_controller as fc  # noqa: E402

from fastctrl import Controller, ControllerConfig, EngineUnavailableError, make_engine  # noqa: E402
from fastctrl.policy.export import argmax_per_head, export_weights, reference_logits  # noqa: E402

from .conftest import random_inputs, small_config  # noqa: E402

# no CUDA and TRITON_INTERPRET=0 in the environment: the tests fail (EngineUnavailableError says
# why), they are not skipped
DEVICE = "cpu" if fc.interpret_mode() else "cuda"

#: Per-dtype atol: about one unit in the last place of the dtype at unit logit scale (fp16
#: 2**-10 = 9.8e-4, bf16 2**-7 = 7.8e-3), the resolution of a result stored in that dtype; fp32:
#: 1e-6 = 8 ulps at 1.0, for when plain torch happens to be near-exact (summation-order
#: rounding is already what the 2x term measures).
ATOL = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


_CACHE: dict[str, tuple[Controller, object, fc.PackedController]] = {}


def _model(name: str) -> tuple[Controller, object, fc.PackedController]:
    """Controllers with non-trivial standardisation (folded into the projections on export)."""
    if name not in _CACHE:
        torch.manual_seed(3)
        cfg = {
            "small": small_config(),
            "default": ControllerConfig(),
            "trunk1": small_config(trunk_layers=1, hidden_dim=16),
            "trunk3": small_config(trunk_layers=3),
            "trunk4_linear": small_config(trunk_layers=4, budget_encoding="linear"),
        }[name]
        c = Controller(cfg).eval()
        g = torch.Generator().manual_seed(4)
        with torch.no_grad():
            c.image_mean.normal_(0.0, 0.5, generator=g)
            c.image_std.uniform_(0.5, 2.0, generator=g)
            c.text_mean.normal_(0.0, 0.5, generator=g)
            c.text_std.uniform_(0.5, 2.0, generator=g)
        w = export_weights(c)
        _CACHE[name] = (c, w, fc.pack_weights(w, DEVICE))
    return _CACHE[name]


def _inputs(c: Controller, batch: int, dtype: torch.dtype, seed: int = 0):
    img, txt, bud = random_inputs(c, batch, seed)
    to = lambda a: torch.from_numpy(a).to(DEVICE)  # noqa: E731
    return to(img).to(dtype), to(txt).to(dtype), to(bud)


def _check_kernel(name: str, batch: int, dtype: torch.dtype, block_b: int = fc.BLOCK_B) -> None:
    c, w, packed = _model(name)
    img, txt, bud = _inputs(c, batch, dtype)
    dec, logits = fc.fused_controller(img, txt, bud, packed, return_logits=True, block_b=block_b)
    assert dec.shape == (batch, len(w.head_sizes)) and dec.dtype == torch.int64
    assert logits.shape == (batch, sum(w.head_sizes))
    if dtype == torch.float32:
        ref = torch.from_numpy(
            reference_logits(w, img.cpu().numpy(), txt.cpu().numpy(), bud.cpu().numpy())
        )
        pt = fc.fused_controller_ref(img, txt, bud, packed)[1]
    else:
        ref = fc.fused_controller_ref(img, txt, bud, packed)[1]
        pt = fc.fused_controller_ref(img, txt, bud, packed, compute_dtype=dtype)[1]
    ref = ref.double().cpu()
    err = (logits.double().cpu() - ref).abs().max().item()
    err_pt = (pt.double().cpu() - ref).abs().max().item()
    bound = 2 * err_pt + ATOL[dtype]
    assert err <= bound, f"{name} B={batch} {dtype}: kernel err {err:.3g} > bound {bound:.3g}"

    # argmax: must agree wherever the reference's top-2 margin exceeds 2 x the error bound
    # (each logit may move by <= bound); on the rest only the agreement rate is reported.
    ref_np = ref.numpy()
    want = argmax_per_head(ref_np, w.head_sizes)
    got = dec.cpu().numpy()
    margins, o = [], 0
    for s in w.head_sizes:
        top = np.sort(ref_np[:, o : o + s], axis=1)
        margins.append(top[:, -1] - top[:, -2] if s > 1 else np.full(batch, np.inf))
        o += s
    margin = np.stack(margins, axis=1)
    sure = margin > 2 * bound
    np.testing.assert_array_equal(got[sure], want[sure])
    close = ~sure
    rate = float((got[close] == want[close]).mean()) if close.any() else 1.0
    print(
        f"\n[triton] {name:14s} B={batch:5d} {str(dtype):15s} block_b={block_b}: "
        f"err={err:.2e} torch_{str(dtype)[6:]}_err={err_pt:.2e} bound={bound:.2e}; "
        f"asserted {int(sure.sum())}/{sure.size} decisions, agreement on the "
        f"{int(close.sum())} near-ties {rate:.3f}"
    )


# ------------------------------------------------------------------------------ kernel vs ref
def test_interpreter_mode_took_effect():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: kernels run compiled, not interpreted")
    from triton.runtime.interpreter import InterpretedFunction

    assert fc.interpret_mode()
    assert isinstance(fc.get_kernel(), InterpretedFunction)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("batch", [1, 2, 15, 16, 17])
def test_kernel_small_odd_dims(batch, dtype):
    """37/91 feature dims, 24/40 projections, hidden 48: nothing is a multiple of a block."""
    _check_kernel("small", batch, DTYPES[dtype])


@pytest.mark.parametrize(
    ("batch", "dtype"), [(1, "fp32"), (17, "fp32"), (16, "fp16"), (17, "bf16")]
)
def test_kernel_default_dims(batch, dtype):
    """The default 768/2048 controller (K = 2848); ~0.45 s per 16-row program interpreted."""
    _check_kernel("default", batch, DTYPES[dtype])


def test_kernel_large_batches():
    _check_kernel("default", 255, torch.float32)
    _check_kernel("small", 1024, torch.float16)


@pytest.mark.parametrize("name", ["trunk1", "trunk3", "trunk4_linear"])
def test_kernel_other_depths_and_linear_encoding(name):
    """Every layer-pairing path: heads alone (1, 3 trunk layers) or paired (2, 4)."""
    _check_kernel(name, 17, torch.float32)


def test_kernel_block_b_32():
    _check_kernel("small", 33, torch.float32, block_b=32)


def test_packing_round_trips_exported_weights():
    for name in ("small", "trunk4_linear"):
        _, w, packed = _model(name)
        t = packed.tensors()
        for key in ("img_w", "img_b", "txt_w", "txt_b", "head_w", "head_b"):
            np.testing.assert_array_equal(t[key].cpu().numpy(), getattr(w, key), err_msg=key)
        for got, want in zip(t["trunk_w"], w.trunk_w, strict=True):
            np.testing.assert_array_equal(got.cpu().numpy(), want)
        for got, want in zip(t["trunk_b"], w.trunk_b, strict=True):
            np.testing.assert_array_equal(got.cpu().numpy(), want)


def test_reference_matches_fp64_spec():
    _, w, packed = _model("small")
    img, txt, bud = random_inputs(_model("small")[0], 64, seed=5)
    dec, logits = fc.fused_controller_ref(
        torch.from_numpy(img), torch.from_numpy(txt), torch.from_numpy(bud), fc.pack_weights(w)
    )
    ref = reference_logits(w, img, txt, bud)
    np.testing.assert_allclose(logits.numpy(), ref, rtol=0, atol=1e-5)


def test_budget_encoding_large_angles():
    """Budgets far above ref_latency (angles ~ 1e3 rad) still match: range reduction works."""
    c, w, packed = _model("small")
    img, txt, _ = _inputs(c, 16, torch.float32)
    bud = torch.linspace(5.0, 2000.0, 16, device=DEVICE)
    _, logits = fc.fused_controller(img, txt, bud, packed, return_logits=True)
    pt = fc.fused_controller_ref(img, txt, bud, packed)[1]
    ref = reference_logits(w, img.cpu().numpy(), txt.cpu().numpy(), bud.cpu().numpy())
    err_pt = np.abs(pt.cpu().numpy() - ref).max()
    assert np.abs(logits.cpu().numpy() - ref).max() <= 2 * err_pt + ATOL[torch.float32]


# --------------------------------------------------------------------------------- the engine
@pytest.fixture
def engine(small_controller):
    return make_engine(small_controller, "triton")


def test_exactly_one_launch_per_decide(engine, small_controller, monkeypatch):
    kernel_cls = type(fc.get_kernel())
    calls = []
    original = kernel_cls.run

    def counting_run(self, *args, **kwargs):
        calls.append(kwargs.get("grid"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(kernel_cls, "run", counting_run)
    img, txt, bud = random_inputs(small_controller, 33)
    engine.decide(img, txt, bud)
    assert len(calls) == 1 and calls[0] == (3,)
    engine.decide(torch.from_numpy(img).to(DEVICE), torch.from_numpy(txt).to(DEVICE), 50.0)
    assert len(calls) == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_engine_matches_torch_engine(engine, small_controller, dtype):
    img, txt, bud = random_inputs(small_controller, 17, seed=2)
    torch_engine = make_engine(small_controller, "torch")
    ti, tt = (torch.from_numpy(a).to(DEVICE).to(dtype) for a in (img, txt))
    got = engine.decide(ti, tt, torch.from_numpy(bud))
    assert got.device.type == DEVICE and got.dtype == torch.int64 and got.shape == (17, 3)
    want = torch_engine.decide(ti.cpu(), tt.cpu(), torch.from_numpy(bud))
    # A different summation order may flip an exact near-tie: allow <= 1 in 51 decisions.
    assert (got.cpu() == want).float().mean().item() >= 50 / 51


def test_engine_numpy_in_numpy_out_and_scalar_budget(engine, small_controller):
    img, txt, bud = random_inputs(small_controller, 5)
    out = engine.decide(img, txt, bud)
    assert isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == (5, 3)
    np.testing.assert_array_equal(
        engine.decide(img, txt, 60.0), engine.decide(img, txt, np.full(5, 60.0, np.float32))
    )
    one = engine.decide(img[:1], txt[:1], np.float32(60.0))
    np.testing.assert_array_equal(one, engine.decide(img, txt, 60.0)[:1])


def test_decide_is_capture_safe(engine, small_controller, monkeypatch):
    """While a CUDA graph is captured, decide() on device tensors must not read a value on the
    host (no sync), nor copy from host memory. Without a GPU the capture is simulated:
    ``capturing()`` reports True and every host read of a tensor raises. Checks the code path,
    not a real capture (that needs a GPU: bench/bench_triton.py captures it)."""
    import fastctrl.engines.base as base

    img, txt, bud = random_inputs(small_controller, 19, seed=3)
    ti, tt = (torch.from_numpy(a).to(DEVICE) for a in (img, txt))
    tb = torch.from_numpy(bud).to(DEVICE)
    want_scalar, want_vec = engine.decide(ti, tt, 60.0), engine.decide(ti, tt, tb)

    def no_host_read(*_a, **_k):
        raise AssertionError("decide() read a tensor on the host while capturing")

    monkeypatch.setattr(base, "capturing", lambda: True)
    for name in ("__bool__", "item", "tolist", "numpy", "cpu", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, no_host_read)
    got_scalar, got_vec = engine.decide(ti, tt, 60.0), engine.decide(ti, tt, tb)
    # a budget that would need a host-to-device copy is refused, clearly, instead of copied
    with pytest.raises(ValueError, match="CUDA graph"):
        engine.decide(ti, tt, bud)
    monkeypatch.undo()
    assert torch.equal(got_scalar, want_scalar) and torch.equal(got_vec, want_vec)
    # outside a capture the same bad values are refused with one check for all three inputs
    bad = ti.clone()
    bad[4, 2] = float("nan")
    with pytest.raises(ValueError, match="image_feat contains NaN"):
        engine.decide(bad, tt, tb)
    with pytest.raises(ValueError, match="budget_ms must be finite and > 0"):
        engine.decide(ti, tt, -tb)


def test_engine_is_frozen_at_construction(small_controller):
    engine = make_engine(small_controller, "triton")
    img, txt, bud = random_inputs(small_controller, 8)
    before = engine.decide(img, txt, bud)
    with torch.no_grad():
        for p in small_controller.parameters():
            p.add_(1.0)
    np.testing.assert_array_equal(engine.decide(img, txt, bud), before)


def test_unavailable_on_cpu_without_interpreter(small_controller, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("with CUDA the engine is available without the interpreter")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(EngineUnavailableError, match="TRITON_INTERPRET=1"):
        make_engine(small_controller, "triton")


def test_unavailable_without_triton(small_controller, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` raise ImportError
    with pytest.raises(EngineUnavailableError, match="triton"):
        make_engine(small_controller, "triton")


def test_import_fastctrl_without_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import fastctrl\n"
        "from fastctrl import Controller, ControllerConfig, EngineUnavailableError, make_engine\n"
        "c = Controller(ControllerConfig(image_dim=8, text_dim=8))\n"
        "try:\n"
        "    make_engine(c, 'triton')\n"
        "except EngineUnavailableError as e:\n"
        "    assert 'triton' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('make_engine(triton) should have failed')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


_SHADOW_SCRIPT = """
import importlib.metadata, importlib.util, json
spec = importlib.util.find_spec("kernels")
try:
    pypi = importlib.metadata.version("kernels")
except importlib.metadata.PackageNotFoundError:
    pypi = None
import transformers.activations  # transformers >= 5.25 imports the PyPI kernels here
from fastctrl.kernels import fused_controller
print(json.dumps({"pypi": pypi, "origin": spec.origin if spec else None,
                  "fused": fused_controller.__file__}))
"""


def test_the_repo_kernels_dir_does_not_shadow_the_pypi_kernels_package():
    """From the repo root (the cwd is first on sys.path under ``python -m``), ``kernels`` must be
    the PyPI package when it is installed, never ``kernels/`` here, and ``import transformers``
    must work; ``fastctrl.kernels`` still resolves to ``kernels/``."""
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    assert not (repo / "kernels" / "__init__.py").exists(), (
        "kernels/__init__.py makes the repo dir a regular package that shadows PyPI kernels"
    )
    r = subprocess.run(
        [sys.executable, "-c", _SHADOW_SCRIPT],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(got["fused"]).resolve() == repo / "kernels" / "fused_controller.py"
    if got["pypi"] is not None:
        assert got["origin"] is not None
        assert not Path(got["origin"]).resolve().is_relative_to(repo / "kernels"), got


_AOT_SCRIPT = """
import json, sys
import torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from fastctrl import Controller, ControllerConfig
from fastctrl.policy.export import export_weights
from fastctrl.kernels import fused_controller as fc

packed = fc.pack_weights(export_weights(Controller(ControllerConfig())))
kernel = fc.get_kernel()
sig = {"img_ptr": "*bf16", "txt_ptr": "*bf16", "budget_ptr": "*fp32", "w_ptr": "*fp32",
       "out_ptr": "*i64", "logits_ptr": "*i64", "B": "i32"}
const = dict(packed.kernel_constexprs, BLOCK_B=fc.BLOCK_B, BLOCK_K=fc.BLOCK_K,
             STORE_LOGITS=False)
sig.update(dict.fromkeys(const, "constexpr"))
src = ASTSource(kernel, sig, constexprs={(kernel.arg_names.index(k),): v for k, v in const.items()})
try:
    ck = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": fc.NUM_WARPS})
except FileNotFoundError as e:  # a triton build without the bundled CUDA tools
    print(json.dumps({"skip": str(e)})); sys.exit(0)
print(json.dumps({"cubin_bytes": len(ck.asm["cubin"]), "shared": ck.metadata.shared}))
"""


def test_kernel_compiles_for_hopper():
    """Ahead-of-time compile to an sm_90 cubin (no GPU needed: the triton wheel bundles ptxas).

    The interpreter checks no GPU limit (tl.dot shapes, shared memory, registers); this catches
    what would otherwise only fail on a real GPU. A subprocess, because once the interpreter has
    run a kernel it has patched triton.language in this process. ~15 s, so only the default
    controller, with bf16 inputs (the most exotic load/convert path).
    """
    import json

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # triton 3.9's default, without its warning
    r = subprocess.run(
        [sys.executable, "-c", _AOT_SCRIPT], capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    if "skip" in info:
        pytest.skip(f"cannot compile for sm_90 here: {info['skip']}")
    assert info["cubin_bytes"] > 0
    assert info["shared"] <= 227 * 1024, info  # shared memory per block on H100
    print(f"\n[triton] sm_90 cubin {info}")
