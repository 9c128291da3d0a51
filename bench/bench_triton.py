"""GPU decide() latency: fused Triton kernel vs torch eager vs torch.compile, launch overhead
separated.

    pytest bench/bench_triton.py --benchmark-only --benchmark-json=triton.json

Skipped without CUDA (the interpreter is a test tool, not something to time). Default
Controller (768 + 2048 -> ... -> 6 + 6 + 5), CUDA float32 features, a scalar budget (the
hook's case), B = 1 .. 4096. Providers:

- ``triton``: ``make_engine(c, "triton").decide`` (the checked public call: metadata checks, one
  finiteness reduction + its sync, one kernel launch);
- ``triton-kernel``: the launcher alone (``fused_controller``: what the hook runs);
- ``torch-eager``: the same math in plain torch fp32 (``fused_controller_ref`` on weight views
  made once; no input checks: favours it slightly);
- ``torch-compile``: that function ``torch.compile``-d (inductor, default mode);
- ``torch-engine``: ``make_engine(c, "torch").decide`` (the Controller itself, with its input
  checks). Not in ``graph`` mode: the Controller checks budget values on the host, a sync that
  cannot be captured.

Each provider is timed three ways (the benchmark group is ``<mode> B=<batch>``, so
pytest-benchmark's relative column gives the ratios between providers):

- ``e2e``: the call then ``torch.cuda.synchronize()``: host + launch + device latency;
- ``launch``: the call alone, after a synchronize (GPU idle): host work and kernel launches,
  the device work is left queued (the launch overhead the GPU path pays per decision);
- ``graph``: the call captured once in a CUDA graph, then ``graph.replay()`` +
  synchronize: device time without Python or launch overhead. Capturing ``decide()`` itself is
  the check that the public call is graph-capturable (no host syncs, static shapes).

``extra_info`` records the GPU, versions, and the agreement with torch eager.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any

import pytest
import torch

from fastctrl import Controller, ControllerConfig, make_engine

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="the GPU benchmark needs a CUDA GPU"
)

BATCHES = (1, 16, 256, 1024, 4096)
PROVIDERS = ("triton", "triton-kernel", "torch-eager", "torch-compile", "torch-engine")
MODES = ("e2e", "launch", "graph")
BUDGET_MS = 60.0


@pytest.fixture(scope="module")
def controller() -> Controller:
    torch.manual_seed(0)
    return Controller(ControllerConfig()).eval()


@pytest.fixture(scope="module")
def engines(controller: Controller) -> dict[str, Any]:
    from fastctrl.kernels.fused_controller import fused_controller_ref

    triton_engine = make_engine(controller, "triton", device="cuda")
    packed = triton_engine.packed
    views = packed.tensors()
    tensors = {
        k: [t.contiguous() for t in v] if isinstance(v, list) else v.contiguous()
        for k, v in views.items()
    }

    def reference(img: torch.Tensor, txt: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
        return fused_controller_ref(img, txt, budget, packed, tensors=tensors)[0]

    return {
        "triton": triton_engine,
        "torch-engine": make_engine(controller, "torch", device="cuda"),
        "torch-eager": reference,
        "torch-compile": torch.compile(reference),
    }


def _inputs(controller: Controller, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(batch)
    cfg = controller.config
    img = torch.randn(batch, cfg.image_dim, device="cuda", generator=g)
    txt = torch.randn(batch, cfg.text_dim, device="cuda", generator=g)
    return img, txt


def _call(
    provider: str, engines: dict[str, Any], img: torch.Tensor, txt: torch.Tensor
) -> Callable[[], torch.Tensor]:
    budget = torch.full((img.shape[0],), BUDGET_MS, device="cuda")
    if provider == "triton-kernel":
        from fastctrl.kernels.fused_controller import fused_controller

        packed = engines["triton"].packed
        return lambda: fused_controller(img, txt, budget, packed)
    if provider in ("torch-eager", "torch-compile"):
        ref = engines[provider]
        return lambda: ref(img, txt, budget)
    engine = engines[provider]
    return lambda: engine.decide(img, txt, BUDGET_MS)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_decide(
    benchmark: Any,
    controller: Controller,
    engines: dict[str, Any],
    provider: str,
    batch: int,
    mode: str,
) -> None:
    import triton

    if mode == "graph" and provider == "torch-engine":
        pytest.skip("the Controller checks budget values on the host: not capturable")
    img, txt = _inputs(controller, batch)
    fn = _call(provider, engines, img, txt)
    with torch.inference_mode():
        # warm-up outside the timer: compiles the kernel / the graph for this shape
        for _ in range(3):
            got = fn()
        want = engines["torch-engine"].decide(img, txt, BUDGET_MS)
        torch.cuda.synchronize()
    agreement = (got == want).float().mean().item()
    assert agreement >= 0.99, f"{provider} disagrees with torch on {1 - agreement:.2%}"

    if mode == "e2e":

        def run() -> Any:
            with torch.inference_mode():
                out = fn()
            torch.cuda.synchronize()
            return out

        setup = None
    elif mode == "launch":

        def run() -> Any:
            with torch.inference_mode():
                return fn()

        def setup() -> None:  # start each round with an idle GPU: time the launch only
            torch.cuda.synchronize()
    else:
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            fn()  # warm-up on the capture stream, as torch.cuda.graphs recommends
        torch.cuda.current_stream().wait_stream(stream)
        with torch.inference_mode(), torch.cuda.graph(graph):
            out = fn()
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, got), f"{provider}: the captured graph decides differently"

        def run() -> Any:
            graph.replay()
            torch.cuda.synchronize()
            return out

        setup = None

    benchmark.group = f"{mode} B={batch}"
    benchmark.extra_info.update(
        {
            "provider": provider,
            "batch": batch,
            "mode": mode,
            "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "triton": triton.__version__,
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "agreement_with_torch": agreement,
        }
    )
    if setup is None:
        benchmark.pedantic(run, rounds=200, iterations=5, warmup_rounds=20)
    else:
        benchmark.pedantic(run, setup=setup, rounds=500, warmup_rounds=20)
    if mode == "launch":
        torch.cuda.synchronize()
