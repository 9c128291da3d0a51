"""ONNX export of a trained TinyRecursiveControl.

    python -m fastctrl.control.export --checkpoint runs/control/supervised/best_model.pt \
        --output runs/control/supervised/model.onnx

The graph maps ``initial_states`` [batch, 2] (float32) to ``controls`` [batch, N]; the batch
dimension is dynamic. Running it needs the optional ``onnx`` extra (onnxruntime).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import io
from ._cli import parse_args
from .model import TinyRecursiveControl

log = logging.getLogger(__name__)

ONNX_OPSET = 17


def export_onnx(model: TinyRecursiveControl, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as ONNX (TorchScript-based exporter, dynamic batch) to ``path``."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as e:
        raise ImportError("ONNX export needs the 'onnx' package: pip install 'fastctrl[onnx]'"
                          ) from e
    model = model.eval()
    example = torch.zeros(2, 2)
    path = Path(path)

    def writer(tmp: Path) -> None:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
            # onnxscript; this model is a fixed unrolled graph, which the former handles.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(tmp), input_names=["initial_states"],
                output_names=["controls"], opset_version=ONNX_OPSET, dynamo=False,
                dynamic_axes={"initial_states": {0: "batch"}, "controls": {0: "batch"}},
            )

    io.write_with(path, writer)
    log.info("exported ONNX model to %s", path)
    return path


def run_onnx(path: str | os.PathLike[str], initial_states: np.ndarray) -> np.ndarray:
    """Controls [n, N] from an exported model with onnxruntime (CPU)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError("running ONNX models needs onnxruntime: pip install 'fastctrl[onnx]'"
                          ) from e
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(["controls"], {"initial_states": np.asarray(initial_states, np.float32)})
    return out


@dataclass
class ExportArgs:
    """Export a TinyRecursiveControl checkpoint to ONNX."""

    checkpoint: str = "runs/control/supervised/best_model.pt"
    """Checkpoint written by python -m fastctrl.control.train."""
    output: str = "runs/control/supervised/model.onnx"
    """Path of the ONNX file to write."""
    quiet: bool = False
    """Print nothing on success."""


def main(argv: Sequence[str] | None = None) -> None:
    from .train import load_checkpoint

    args = parse_args(ExportArgs, argv, prog="python -m fastctrl.control.export")
    try:
        model, _ = load_checkpoint(args.checkpoint)
        path = export_onnx(model, args.output)
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise SystemExit(f"error: {e}") from None
    if not args.quiet:
        print(f"exported {args.checkpoint} -> {path}")


if __name__ == "__main__":
    main()
