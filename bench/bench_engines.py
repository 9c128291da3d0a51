"""CPU decide() latency, one thread: fastctrl int8 (every ISA here) vs torch and onnxruntime.

    pytest bench/bench_engines.py --benchmark-only --benchmark-json=bench/results.json

Providers, all on the default Controller (768 + 2048 -> 128 + 128 (+32 budget) -> 256 -> 256 ->
6 + 4 + 5), numpy float32 inputs with one budget per row, one thread:

- ``torch-eager``: ``make_engine(c, "torch")`` (the fp32 reference, input checks included);
- ``torch-dynamic-int8``: ``torch.ao.quantization.quantize_dynamic`` on a copy of the
  Controller's Linear layers, same per-head argmax (no input checks: favours it slightly);
- ``onnxruntime-dynamic-int8``: the Controller (argmax inside the graph) exported to ONNX and
  ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights), skipped if not installed;
- ``fastctrl-int8-<isa>``: ``Int8Engine(c, isa)`` for each ISA this CPU supports.

Each batch is a pytest-benchmark group; bench/conftest.py prints the int8-vs-torch ratios at the
end and stores them in the JSON (``fastctrl_ratios``). ``cold`` rows evict the caches (a 64 MiB
write) before every round: the controller's 0.5 MB of int8 weights otherwise sit in L2.
"""

from __future__ import annotations

import copy
import platform
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sysinfo import cpu_model

import fastctrl
from fastctrl import Controller, ControllerConfig, make_engine

BATCHES = (1, 16, 256, 1024)
_C = pytest.importorskip("fastctrl._C", reason="fastctrl._C is not built")
ISAS = tuple(_C.available_isas())
PROVIDERS = ("torch-eager", "torch-dynamic-int8", "onnxruntime-dynamic-int8") + tuple(
    f"fastctrl-int8-{isa}" for isa in ISAS)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def controller() -> Controller:
    torch.manual_seed(0)
    return Controller(ControllerConfig()).eval()


def _inputs(c: Controller, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(batch)
    img = rng.standard_normal((batch, c.config.image_dim), dtype=np.float32)
    txt = rng.standard_normal((batch, c.config.text_dim), dtype=np.float32)
    budget = rng.uniform(0.2, 1.5, batch).astype(np.float32) * c.config.ref_latency_ms
    return img, txt, budget


def macs_per_row(c: Controller) -> int:
    """Multiply-adds of one decision: every Linear's in x out (what an int8 engine computes;
    the budget encoding's sin/cos and the argmax are not counted)."""
    return sum(m.in_features * m.out_features for m in c.modules()
               if isinstance(m, torch.nn.Linear))


class _TorchDynamicInt8:
    def __init__(self, c: Controller) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(c).eval(), {torch.nn.Linear}, dtype=torch.qint8)
        self.names = c.knob_names

    @torch.inference_mode()
    def decide(self, img: np.ndarray, txt: np.ndarray, budget: np.ndarray) -> np.ndarray:
        lg = self.model(torch.from_numpy(img), torch.from_numpy(txt), torch.from_numpy(budget))
        return torch.stack([lg[n].argmax(-1) for n in self.names], 1).numpy()


class _Decisions(torch.nn.Module):
    def __init__(self, c: Controller) -> None:
        super().__init__()
        self.c = c

    def forward(self, img: torch.Tensor, txt: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
        lg = self.c(img, txt, budget)
        return torch.stack([lg[n].argmax(-1) for n in self.c.knob_names], 1)


class _OrtDynamicInt8:
    def __init__(self, c: Controller, workdir: Path) -> None:
        ort = pytest.importorskip("onnxruntime")
        quant = pytest.importorskip("onnxruntime.quantization")
        fp32, int8 = workdir / "controller.onnx", workdir / "controller.int8.onnx"
        img, txt, budget = (torch.from_numpy(a) for a in _inputs(c, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Decisions(copy.deepcopy(c).eval()), (img, txt, budget), str(fp32),
                              input_names=["img", "txt", "budget"], output_names=["decisions"],
                              dynamic_axes={k: {0: "B"} for k in ("img", "txt", "budget")},
                              dynamo=False)
            quant.quantize_dynamic(str(fp32), str(int8), weight_type=quant.QuantType.QInt8)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(int8), opts, providers=["CPUExecutionProvider"])
        self.version = ort.__version__

    def decide(self, img: np.ndarray, txt: np.ndarray, budget: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"img": img, "txt": txt, "budget": budget})[0]


@pytest.fixture(scope="module")
def engines(controller: Controller, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out: dict[str, Any] = {
        "torch-eager": make_engine(controller, "torch"),
        "torch-dynamic-int8": _TorchDynamicInt8(controller),
    }
    for isa in ISAS:
        out[f"fastctrl-int8-{isa}"] = make_engine(controller, "int8", isa=isa)
    try:
        out["onnxruntime-dynamic-int8"] = _OrtDynamicInt8(controller,
                                                          tmp_path_factory.mktemp("onnx"))
    except pytest.skip.Exception:
        pass
    return out


def _versions() -> dict[str, str]:
    v = {"python": platform.python_version(), "torch": torch.__version__,
         "numpy": np.__version__, "fastctrl": fastctrl.__version__}
    try:
        import onnxruntime

        v["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return v


_EVICT = np.zeros(64 << 20, np.uint8)


def _evict_caches() -> None:
    _EVICT[::64] += 1  # touch every line of 64 MiB: pushes the weights out of L1/L2


def _run(benchmark: Any, engines: dict[str, Any], controller: Controller, provider: str,
         batch: int, cache: str) -> None:
    if provider not in engines:
        pytest.skip(f"{provider} is not available here")
    engine = engines[provider]
    img, txt, budget = _inputs(controller, batch)
    ref = engines["torch-eager"].decide(img, txt, budget)
    got = np.asarray(engine.decide(img, txt, budget))
    assert got.shape == ref.shape
    benchmark.group = f"decide B={batch} ({cache})"
    benchmark.extra_info.update({
        "provider": provider, "batch": batch, "cache": cache, "threads": 1,
        "macs_per_row": macs_per_row(controller),
        "torch_threads": torch.get_num_threads(), "cpu": cpu_model(),
        "isa": getattr(engine, "isa", "n/a"), "available_isas": list(ISAS),
        "agreement_vs_torch_eager": float((got == ref).mean()), **_versions(),
    })
    fn: Callable[[], Any] = lambda: engine.decide(img, txt, budget)  # noqa: E731
    if cache == "warm":
        benchmark(fn)
    else:
        benchmark.pedantic(fn, setup=_evict_caches, rounds=100 if batch == 1 else 20,
                           warmup_rounds=1)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_decide(benchmark, engines, controller, provider, batch):
    _run(benchmark, engines, controller, provider, batch, "warm")


@pytest.mark.parametrize("provider", ("torch-eager", "onnxruntime-dynamic-int8")
                         + tuple(f"fastctrl-int8-{isa}" for isa in ISAS if isa != "scalar"))
def test_decide_cold_cache(benchmark, engines, controller, provider):
    _run(benchmark, engines, controller, provider, 1, "cold")
