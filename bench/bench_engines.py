"""CPU decide() latency, one thread: fastctrl int8 (every ISA here) vs torch and onnxruntime.

    pytest bench/bench_engines.py --benchmark-only --benchmark-json=bench/results.json
    python bench/bench_engines.py [--seconds 10] [--clock thread_time] [--json out.json]

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

The script form times the same providers *interleaved*: each round runs every provider for a
short burst (rotating order; the burst's median call), so load that comes and goes on a shared
host hits all of them alike (pytest-benchmark times one provider after another: on the shared
2-core dev host the onnxruntime B=1 median moved between 61 and 113 us across two such runs). It prints medians,
the speedups, the int8 GMAC/s (``macs_per_row`` x batch / median) and, with
``FASTCTRL_PEAK_GMACS`` (or ``--peak-gmacs``), the fraction of the ISA's peak.
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
from speedups import BASELINES, speedup_cells
from sysinfo import cpu_model

import fastctrl
from fastctrl import Controller, ControllerConfig, make_engine

BATCHES = (1, 16, 256, 1024)
_C = pytest.importorskip("fastctrl._C", reason="fastctrl._C is not built")
ISAS = tuple(_C.available_isas())
PROVIDERS = BASELINES + tuple(f"fastctrl-int8-{isa}" for isa in ISAS)


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
    return sum(
        m.in_features * m.out_features for m in c.modules() if isinstance(m, torch.nn.Linear)
    )


class _TorchDynamicInt8:
    def __init__(self, c: Controller) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(c).eval(), {torch.nn.Linear}, dtype=torch.qint8
            )
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
            torch.onnx.export(
                _Decisions(copy.deepcopy(c).eval()),
                (img, txt, budget),
                str(fp32),
                input_names=["img", "txt", "budget"],
                output_names=["decisions"],
                dynamic_axes={k: {0: "B"} for k in ("img", "txt", "budget")},
                dynamo=False,
            )
            quant.quantize_dynamic(str(fp32), str(int8), weight_type=quant.QuantType.QInt8)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(int8), opts, providers=["CPUExecutionProvider"])
        self.version = ort.__version__

    def decide(self, img: np.ndarray, txt: np.ndarray, budget: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"img": img, "txt": txt, "budget": budget})[0]


def build_engines(controller: Controller, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "torch-eager": make_engine(controller, "torch"),
        "torch-dynamic-int8": _TorchDynamicInt8(controller),
    }
    for isa in ISAS:
        out[f"fastctrl-int8-{isa}"] = make_engine(controller, "int8", isa=isa)
    try:
        out["onnxruntime-dynamic-int8"] = _OrtDynamicInt8(controller, workdir)
    except pytest.skip.Exception:
        pass
    return out


@pytest.fixture(scope="module")
def engines(controller: Controller, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_engines(controller, tmp_path_factory.mktemp("onnx"))


def _versions() -> dict[str, str]:
    v = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "fastctrl": fastctrl.__version__,
    }
    try:
        import onnxruntime

        v["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return v


_EVICT = np.zeros(64 << 20, np.uint8)


def _evict_caches() -> None:
    _EVICT[::64] += 1  # touch every line of 64 MiB: pushes the weights out of L1/L2


def _run(
    benchmark: Any,
    engines: dict[str, Any],
    controller: Controller,
    provider: str,
    batch: int,
    cache: str,
) -> None:
    if provider not in engines:
        pytest.skip(f"{provider} is not available here")
    engine = engines[provider]
    img, txt, budget = _inputs(controller, batch)
    ref = engines["torch-eager"].decide(img, txt, budget)
    got = np.asarray(engine.decide(img, txt, budget))
    assert got.shape == ref.shape
    benchmark.group = f"decide B={batch} ({cache})"
    benchmark.extra_info.update(
        {
            "provider": provider,
            "batch": batch,
            "cache": cache,
            "threads": 1,
            "macs_per_row": macs_per_row(controller),
            "torch_threads": torch.get_num_threads(),
            "cpu": cpu_model(),
            "isa": getattr(engine, "isa", "n/a"),
            "available_isas": list(ISAS),
            "agreement_vs_torch_eager": float((got == ref).mean()),
            **_versions(),
        }
    )
    fn: Callable[[], Any] = lambda: engine.decide(img, txt, budget)  # noqa: E731
    if cache == "warm":
        benchmark(fn)
    else:
        benchmark.pedantic(
            fn, setup=_evict_caches, rounds=100 if batch == 1 else 20, warmup_rounds=1
        )


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_decide(benchmark, engines, controller, provider, batch):
    _run(benchmark, engines, controller, provider, batch, "warm")


@pytest.mark.parametrize(
    "provider",
    ("torch-eager", "onnxruntime-dynamic-int8")
    + tuple(f"fastctrl-int8-{isa}" for isa in ISAS if isa != "scalar"),
)
def test_decide_cold_cache(benchmark, engines, controller, provider):
    _run(benchmark, engines, controller, provider, 1, "cold")


# ---------------------------------------------------------------------------- script: interleaved
def interleaved(
    seconds: float,
    batches: tuple[int, ...],
    clock: Callable[[], float],
    providers: tuple[str, ...] | None = None,
    peak_gmacs: float | None = None,
    burst_s: float = 0.05,
) -> dict[str, Any]:
    """Median decide() time of every provider per batch, providers interleaved: each round
    runs every provider for a burst of about ``burst_s`` (rotating order) and keeps the
    burst's median call time; a provider's result is the median over rounds (about
    ``seconds`` per batch, at least 9 rounds). Bursts keep each provider's caches warm (single
    interleaved calls measured the previous provider's cache pollution instead: the int8
    engine took 79 us at B=1 that way vs 14-18 us in a warm loop)."""
    import statistics
    import tempfile
    import time

    torch.set_num_threads(1)
    torch.manual_seed(0)
    controller = Controller(ControllerConfig()).eval()
    macs = macs_per_row(controller)
    with tempfile.TemporaryDirectory() as d:
        engines = build_engines(controller, Path(d))
    names = [p for p in (providers or PROVIDERS) if p in engines]
    out: dict[str, Any] = {
        "cpu": cpu_model(),
        "available_isas": list(ISAS),
        "threads": 1,
        "clock": clock.__name__,
        "macs_per_row": macs,
        "burst_s": burst_s,
        "peak_gmacs": peak_gmacs,
        "versions": _versions(),
        "batches": {},
    }
    for batch in batches:
        img, txt, budget = _inputs(controller, batch)
        args = (img, txt, budget)
        fns = {p: (lambda e=engines[p], a=args: e.decide(*a)) for p in names}
        calls = {}
        for p, fn in fns.items():  # warm-up, and the calls per burst
            fn()
            t = time.perf_counter()
            fn()
            calls[p] = max(3, int(burst_s / max(time.perf_counter() - t, 1e-9)))
        rounds = max(9, int(seconds / (burst_s * len(names))))
        bursts: dict[str, list[float]] = {p: [] for p in names}
        for r in range(rounds):
            for i in range(len(names)):
                p = names[(r + i) % len(names)]
                ts = []
                for _ in range(calls[p]):
                    t = clock()
                    fns[p]()
                    ts.append(clock() - t)
                bursts[p].append(statistics.median(ts))
        med = {p: statistics.median(v) for p, v in bursts.items()}
        rows = {}
        for p in names:
            row: dict[str, Any] = {
                "median_us": med[p] * 1e6,
                "rounds": rounds,
                "calls_per_burst": calls[p],
                "gmacs": batch * macs / med[p] / 1e9,
            }
            for base in BASELINES:
                row[f"speedup_vs_{base}"] = med[base] / med[p] if base in med else None
            row["fraction_of_peak"] = row["gmacs"] / peak_gmacs if peak_gmacs else None
            rows[p] = row
        out["batches"][str(batch)] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import os
    import time

    p = argparse.ArgumentParser(description="decide() latency, providers interleaved")
    p.add_argument("--seconds", type=float, default=10.0, help="timing budget per batch")
    p.add_argument(
        "--clock",
        choices=("perf_counter", "thread_time"),
        default="perf_counter",
        help="wall time, or this thread's CPU time (excludes time slices lost to "
        "other processes; every provider runs on this one thread)",
    )
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--providers", default=None, help="comma-separated subset")
    p.add_argument(
        "--peak-gmacs",
        type=float,
        default=float(os.environ["FASTCTRL_PEAK_GMACS"])
        if os.environ.get("FASTCTRL_PEAK_GMACS")
        else None,
    )
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    rep = interleaved(
        args.seconds,
        tuple(int(b) for b in args.batches.split(",")),
        getattr(time, args.clock),
        tuple(args.providers.split(",")) if args.providers else None,
        args.peak_gmacs,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
    print(
        f"{rep['cpu']}, ISAs {rep['available_isas']}, one thread, clock {rep['clock']}, "
        f"{rep['macs_per_row']} MACs per row, peak {rep['peak_gmacs']} GMAC/s"
    )
    print(
        f"{'provider':28s} {'batch':>5s} {'median us':>11s} {'x eager':>8s} {'x dyn-int8':>10s} "
        f"{'x ort':>6s} {'GMAC/s':>7s} {'peak':>5s}"
    )
    for batch, rows in rep["batches"].items():
        for name, r in rows.items():
            sp = speedup_cells(r)
            fr = f"{100 * r['fraction_of_peak']:.0f}%" if r["fraction_of_peak"] else "-"
            print(
                f"{name:28s} {batch:>5s} {r['median_us']:11.1f} {sp[0]:>8s} {sp[1]:>10s} "
                f"{sp[2]:>6s} {r['gmacs']:7.1f} {fr:>5s}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
