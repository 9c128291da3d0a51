"""ONNX export of a trained TinyRecursiveControl.

    python -m fastctrl.recursive_control.onnx_export --checkpoint runs/control/supervised/best_model.pt \
        --output_dir runs/control/supervised

The graph maps ``initial_states`` [batch, 2] (float32) to ``controls`` [batch, N]; the batch
dimension is dynamic. A model conditioned on the step count and horizon is exported for one
(N, T), its own unless ``--num_steps`` / ``--time_horizon`` say otherwise, so that every graph
keeps this interface. Running it needs the optional ``onnx`` extra (onnxruntime).
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
from torch import nn

from .. import io
from . import run_command
from .model import TinyRecursiveControl, load_checkpoint

log = logging.getLogger(__name__)

ONNX_OPSET = 17


class _ForSystem(nn.Module):
    """The model with its (N, T) fixed: the graph's only input is the initial states."""

    def __init__(self, model: TinyRecursiveControl, num_steps: int, time_horizon: float) -> None:
        super().__init__()
        self.model, self.num_steps, self.time_horizon = model, num_steps, time_horizon

    def forward(self, initial_states: torch.Tensor) -> torch.Tensor:
        u = self.model(initial_states, num_steps=self.num_steps, time_horizon=self.time_horizon)
        assert isinstance(u, torch.Tensor)
        return u


def export_onnx(
    model: TinyRecursiveControl,
    path: str | os.PathLike[str],
    num_steps: int | None = None,
    time_horizon: float | None = None,
) -> Path:
    """Write ``model`` as ONNX (TorchScript-based exporter, dynamic batch) to ``path``, for
    ``num_steps`` / ``time_horizon`` (default: the model's own; others need a conditioned
    model)."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as e:
        raise ImportError(
            "ONNX export needs the 'onnx' package: pip install 'fastctrl[onnx]'"
        ) from e
    n, t = model.resolve(num_steps, time_horizon)  # refuses an (N, T) the model cannot serve
    model = model.eval()
    graph = _ForSystem(model, n, t).eval()
    example = torch.zeros(2, 2)
    path = Path(path)

    def writer(tmp: Path) -> None:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
            # onnxscript; this model is a fixed unrolled graph, which the former handles.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (example,),
                str(tmp),
                input_names=["initial_states"],
                output_names=["controls"],
                opset_version=ONNX_OPSET,
                dynamo=False,
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
        raise ImportError(
            "running ONNX models needs onnxruntime: pip install 'fastctrl[onnx]'"
        ) from e
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(["controls"], {"initial_states": np.asarray(initial_states, np.float32)})
    return out


@dataclass
class ExportArgs:
    """Export a TinyRecursiveControl checkpoint to ONNX."""

    checkpoint: str = "runs/control/supervised/best_model.pt"
    """Checkpoint written by python -m fastctrl.recursive_control.supervised_training."""
    output_dir: str = "runs/control/supervised"
    """Where the ONNX file goes (model.onnx)."""
    num_steps: int | None = None
    """Export for this step count (a model conditioned on it; default: the model's own)."""
    time_horizon: float | None = None
    """Export for this horizon (a conditioned model; default: the model's own)."""
    quiet: bool = False
    """Print nothing on success."""


#: the file ``--output_dir`` gets
ONNX_FILE = "model.onnx"


def export_checkpoint(args: ExportArgs) -> Path:
    """Export the checkpoint ``args.checkpoint`` to ``<args.output_dir>/model.onnx``."""
    model, _ = load_checkpoint(args.checkpoint)
    return export_onnx(model, Path(args.output_dir) / ONNX_FILE, args.num_steps, args.time_horizon)


def command(args: ExportArgs) -> None:
    """Export and say where (``fastctrl lqr export``)."""
    path = export_checkpoint(args)
    if not args.quiet:
        print(f"exported {args.checkpoint} -> {path}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(ExportArgs, command, argv, name="onnx_export")


if __name__ == "__main__":
    raise SystemExit(main())
