"""TinyRecursiveControl inference: one forward pass over a batch of initial states (CPU).

    pytest bench/bench_control.py --benchmark-only --benchmark-json=bench/control.json

fastctrl's target: a batch of 1000 in under 10 ms with the ``small`` preset on a 2-core CPU.
Providers side by side per (size, batch) group, with torch's default thread count (the
evaluator's setting): ``torch-eager`` (``torch.inference_mode``) and ``onnxruntime`` (the
exported graph, skipped if onnxruntime is not installed). The timed weights are the trained
checkpoint named by ``FASTCTRL_TRC_CHECKPOINT`` when set (size taken from it), otherwise a
seeded random initialisation: the compute is the same. ``extra_info`` carries the CPU model,
threads, versions, batch, size and parameter count. The ``generalizing`` variant is the
pipeline's default model since issue 17 (scale-equivariant, conditioned on the step count up to
20: a wider answer and feedback), timed at its default N = 15.

On a shared host the groups above drift with the load; to compare two trained checkpoints,
time them interleaved on one thread (torch and their ONNX exports, batch 1000)::

    python bench/bench_control.py runs/control_baseline/supervised/best_model.pt \
        runs/control/finetuned/best_model.pt --rounds 300
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sysinfo import cpu_model

from fastctrl.recursive_control import (
    MODEL_SIZES,
    DoubleIntegrator,
    TinyRecursiveControl,
    TRCConfig,
)

CHECKPOINT = os.environ.get("FASTCTRL_TRC_CHECKPOINT")
CASES = [
    ("small", 1000),
    ("small", 1),
    ("medium", 1000),
    ("large", 1000),
    ("small-generalizing", 1000),
    ("small-generalizing", 1),
]
GENERALIZING = {"scale_equivariant": True, "max_num_steps": 20}


def build(case: str) -> TinyRecursiveControl:
    size, _, variant = case.partition("-")
    extra = (
        GENERALIZING
        if variant == "generalizing"
        else {"scale_equivariant": False, "max_num_steps": 0}
    )
    if CHECKPOINT and MODEL_SIZES.get(size) is not None:
        from fastctrl.recursive_control.model import load_checkpoint

        model, _ = load_checkpoint(CHECKPOINT)
        if all(getattr(model.config, k) == v for k, v in {**MODEL_SIZES[size], **extra}.items()):
            return model
    torch.manual_seed(0)
    return TinyRecursiveControl(TRCConfig.for_size(size, DoubleIntegrator(), **extra)).eval()


def states(batch: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-2, 2, size=(batch, 2)).astype(np.float32)


def info(
    benchmark: Any, provider: str, size: str, batch: int, model: TinyRecursiveControl, threads: int
) -> None:
    """``size``: the case, a preset optionally followed by ``-generalizing``."""
    benchmark.group = f"trc-{size}-batch{batch}"
    benchmark.extra_info.update(
        {
            "trc_provider": provider,
            "model_size": size,
            "batch_size": batch,
            "num_parameters": model.num_parameters(),
            "threads": threads,
            "cpu": cpu_model(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "weights": "checkpoint" if CHECKPOINT else "random-init",
        }
    )


@pytest.mark.parametrize("size,batch", CASES)
def test_trc_torch_eager(benchmark: Any, size: str, batch: int) -> None:
    model = build(size)
    x = torch.from_numpy(states(batch))

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    info(benchmark, "torch-eager", size, batch, model, torch.get_num_threads())
    out = benchmark(run)
    assert out.shape == (batch, model.config.num_steps)


@pytest.mark.parametrize("size,batch", CASES)
def test_trc_onnxruntime(benchmark: Any, size: str, batch: int, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from fastctrl.recursive_control.onnx_export import export_onnx

    model = build(size)
    path = export_onnx(model, tmp_path / "trc.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"initial_states": states(batch)}
    info(benchmark, "onnxruntime", size, batch, model, opts.intra_op_num_threads)
    (out,) = benchmark(sess.run, ["controls"], feed)
    with torch.no_grad():
        ref = model(torch.from_numpy(feed["initial_states"])).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-3)


def interleaved(paths: list[str], rounds: int, batch: int = 1000) -> dict[str, np.ndarray]:
    """Wall times (ms) of each checkpoint's torch forward and ONNX run, taken in turn."""
    import onnxruntime as ort

    from fastctrl.recursive_control.model import load_checkpoint
    from fastctrl.recursive_control.onnx_export import export_onnx

    torch.set_num_threads(1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    x = torch.from_numpy(states(batch))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            model, _ = load_checkpoint(path)
            onnx = export_onnx(model, Path(tmp) / f"{i}.onnx")
            sess = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
            runs[f"{path} torch"] = lambda m=model: m(x)
            runs[f"{path} onnxruntime"] = lambda s=sess: s.run(
                ["controls"], {"initial_states": x.numpy()}
            )
        times: dict[str, list[float]] = {k: [] for k in runs}
        with torch.inference_mode():
            for r in range(rounds + 10):  # the first 10 rounds warm up
                for k, fn in runs.items():
                    t0 = time.perf_counter()
                    fn()
                    if r >= 10:
                        times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: np.array(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Interleaved 1-thread timing of TRC checkpoints")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--rounds", type=int, default=300)
    args = p.parse_args(argv)
    print(f"batch 1000, 1 thread, {args.rounds} interleaved rounds, {cpu_model()}")
    for k, v in interleaved(args.checkpoints, args.rounds).items():
        print(f"{k}: min {v.min():.2f} ms, median {np.median(v):.2f} ms")


if __name__ == "__main__":
    main()
