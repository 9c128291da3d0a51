from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    # Triton reads TRITON_INTERPRET when @triton.jit decorates the kernel (first import of
    # fastctrl.kernels.fused_controller, see tests/test_triton_engine.py); set here, before
    # any test module is collected, so no import order can decorate it in the other mode
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastctrl import Controller, ControllerConfig

#: generate() settings no fast answer path reproduces (sampling, beam search, a logits
#: processor, a kwarg for the forward): at any max_new_tokens they go to generate() itself
GENERATE_ONLY = (
    dict(do_sample=True),
    dict(num_beams=2),
    dict(repetition_penalty=1.3),
    dict(some_forward_kwarg=3),
)


@pytest.fixture
def one_thread():
    """Tiny models and tensors are overhead-bound: one thread is faster and keeps a shared
    CPU from thrashing. Modules opt in with ``pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def llava():
    """The tiny random-weight LLaVA-OLMoE model (hook and profiler tests)."""
    from fastctrl.testing.tiny_models import build_tiny

    return build_tiny("llava-olmoe", seed=0)


@pytest.fixture
def controller() -> Controller:
    torch.manual_seed(0)
    return Controller(ControllerConfig()).eval()


def small_config(**overrides) -> ControllerConfig:
    """Odd sizes on purpose: feature dims that are not multiples of any block size."""
    sizes = dict(image_dim=37, text_dim=91, image_proj_dim=24, text_proj_dim=40, hidden_dim=48)
    grids = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4, 8], "num_active_blocks": [4, 6, 8, 10, 12]}
    return ControllerConfig(**{**sizes, "grids": grids, **overrides})


@pytest.fixture
def small_controller() -> Controller:
    torch.manual_seed(1)
    return Controller(small_config()).eval()


def random_inputs(controller: Controller, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    cfg = controller.config
    img = rng.standard_normal((batch, cfg.image_dim), dtype=np.float32)
    txt = rng.standard_normal((batch, cfg.text_dim), dtype=np.float32)
    budget = rng.uniform(0.2, 1.5, size=batch).astype(np.float32) * cfg.ref_latency_ms
    return img, txt, budget
