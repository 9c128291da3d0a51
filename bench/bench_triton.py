"""decide() latency: fused Triton kernel vs torch eager fp32, on the same GPU.

    pytest bench/bench_triton.py --benchmark-only --benchmark-json=triton.json

Skipped without CUDA (the interpreter is a test tool, not something to time). Each round calls
``decide()`` on CUDA tensors with a scalar budget (the hook's path) and then
``torch.cuda.synchronize()``, so a round is the full host + device latency of one decision batch,
including ``check_inputs`` (which synchronises on the finiteness check for both providers).
``triton-kernel`` times the launcher alone (no validation): the floor of the engine.
Collection: pytest only collects ``bench_*.py`` under ``pytest bench/`` once the project's
``python_files`` includes that pattern; naming the file always works.
Benchmarks are grouped per batch, so pytest-benchmark's relative column gives the ratios.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any

import pytest
import torch

from fastctrl import Controller, ControllerConfig, make_engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="the triton engine benchmark needs a CUDA GPU")

BATCHES = (1, 16, 256, 1024, 4096)
#: triton-kernel-b32: the launcher with 32 rows per program (default 16), to decide from
#: measurements whether large batches should use bigger row blocks (fewer weight re-reads).
PROVIDERS = ("torch", "triton", "triton-kernel", "triton-kernel-b32")
BUDGET_MS = 60.0


@pytest.fixture(scope="module")
def controller() -> Controller:
    torch.manual_seed(0)
    return Controller(ControllerConfig()).eval()


@pytest.fixture(scope="module")
def engines(controller: Controller) -> dict[str, Any]:
    return {
        "torch": make_engine(controller, "torch", device="cuda"),
        "triton": make_engine(controller, "triton", device="cuda"),
    }


def _inputs(controller: Controller, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(batch)
    cfg = controller.config
    img = torch.randn(batch, cfg.image_dim, device="cuda", generator=g)
    txt = torch.randn(batch, cfg.text_dim, device="cuda", generator=g)
    return img, txt


def _call(provider: str, engines: dict[str, Any], img: torch.Tensor,
          txt: torch.Tensor) -> Callable[[], torch.Tensor]:
    if provider.startswith("triton-kernel"):
        from fastctrl.kernels.fused_controller import fused_controller

        packed = engines["triton"].packed
        budget = torch.full((img.shape[0],), BUDGET_MS, device="cuda")
        block_b = 32 if provider.endswith("-b32") else 16
        return lambda: fused_controller(img, txt, budget, packed, block_b=block_b)
    engine = engines[provider]
    return lambda: engine.decide(img, txt, BUDGET_MS)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_decide(benchmark: Any, controller: Controller, engines: dict[str, Any], provider: str,
                batch: int) -> None:
    import triton

    img, txt = _inputs(controller, batch)
    fn = _call(provider, engines, img, txt)
    # warm-up outside the timer: compiles the kernel for this shape class, fills caches
    got = fn()
    want = engines["torch"].decide(img, txt, BUDGET_MS)
    torch.cuda.synchronize()
    agreement = (got == want).float().mean().item()
    assert agreement >= 0.99, f"{provider} disagrees with torch on {1 - agreement:.2%}"

    def run() -> torch.Tensor:
        out = fn()
        torch.cuda.synchronize()
        return out

    benchmark.group = f"decide B={batch}"
    benchmark.extra_info.update({
        "provider": provider,
        "batch": batch,
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "agreement_with_torch": agreement,
    })
    benchmark.pedantic(run, rounds=200, iterations=5, warmup_rounds=20)
