"""What each generalisation change buys: train the variants, then judge them on one sweep.

    python -m fastctrl.recursive_control.ablation --output_dir runs/control/ablation

Variants (``--variants`` picks some; each is trained with the pipeline's data, seeds and
epochs, one torch thread):

* ``baseline``: the original model (tanh output, training box only);
* ``equivariant``: the scale-equivariant model (:mod:`.model`);
* ``equivariant-wide``: the same, with a copy of every state scaled up to ``--wide_scale_max``
  and labelled with the bounded optimum (supervised on a wider box);
* ``baseline-ft`` / ``equivariant-ft``: those two fine-tuned on the rollout cost
  (:mod:`.finetune`) on states up to ``--finetune_scale_max`` x the box;
* ``final``: equivariant, conditioned on the step count (``--train_num_steps``), fine-tuned:
  the pipeline's generalizing preset.

All are judged by :func:`fastctrl.recursive_control.generalize.sweep` (bounded optimum as reference)
together with the clipped LQR feedback; writes ``ablation.json``, ``ablation_table.md`` and
``ablation.png`` in ``--output_dir``, the checkpoints in one directory per variant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..cli import need, need_positive
from . import generalize, run_command
from .finetune import finetune_stage
from .generate import GenerateArgs
from .generate import run as generate
from .model import ModelSize, load_checkpoint
from .supervised_training import TRCTrainConfig, train
from .system import DoubleIntegrator

log = logging.getLogger(__name__)

Variant = Literal[
    "baseline", "equivariant", "equivariant-wide", "baseline-ft", "equivariant-ft", "final"
]
VARIANTS: tuple[Variant, ...] = (
    "baseline",
    "equivariant",
    "equivariant-wide",
    "baseline-ft",
    "equivariant-ft",
    "final",
)
# fine-tuned variant -> the supervised variant it starts from
STARTS = {"baseline-ft": "baseline", "equivariant-ft": "equivariant", "final": "final-supervised"}


@dataclass
class AblationArgs(generalize.SweepArgs):
    """Train the generalisation variants of TinyRecursiveControl and judge them together."""

    output_dir: str = "runs/control/ablation"
    """Directory for the data, one directory per variant and the ablation report."""
    variants: tuple[Variant, ...] = VARIANTS
    """Which variants to train and judge."""
    num_train: int = 10000
    """Training trajectories (the pipeline's)."""
    train_seed: int = 42
    """Seed of the training initial states."""
    model_size: ModelSize = "small"
    """TinyRecursiveControl preset."""
    epochs: int = 60
    """Supervised epochs of the single-N variants (the baseline pipeline's)."""
    final_epochs: int = 150
    """Supervised epochs of final (the generalizing pipeline's: it learns three step counts)."""
    seed: int = 0
    """Training and fine-tuning seed."""
    wide_scale_max: float = 3.0
    """equivariant-wide: copies scaled by up to this."""
    train_num_steps: tuple[int, ...] = (10, 15, 20)
    """final: step counts it is conditioned on."""
    finetune_steps: int = 6000
    """Fine-tuning steps of the -ft variants and final."""
    finetune_scale_max: float = 8.0
    """Fine-tuning states are up to this x the training box."""
    finetune_lr: float = 3e-4
    """Fine-tuning learning rate."""
    success_threshold: float = 0.1
    """A rollout succeeds when its final-state error is below this."""
    quiet: bool = False
    """No progress bars; print only the table."""

    def __post_init__(self) -> None:
        super().__post_init__()
        need_positive(
            self,
            "num_train",
            "epochs",
            "final_epochs",
            "wide_scale_max",
            "finetune_steps",
            "finetune_scale_max",
            "finetune_lr",
            "success_threshold",
        )
        need(
            bool(self.variants) and all(v in VARIANTS for v in self.variants),
            f"--variants must be some of {VARIANTS}, got {self.variants!r}",
        )


def run(args: AblationArgs) -> dict[str, Any]:
    out = Path(args.output_dir)
    data = generate(
        GenerateArgs(
            num_samples=args.num_train,
            seed=args.train_seed,
            position_range=args.position_range,
            velocity_range=args.velocity_range,
            output_dir=str(out / "data"),
            quiet=True,
        )
    )
    supervised = {
        "baseline": {},
        "equivariant": {"scale_equivariant": True},
        "equivariant-wide": {"scale_equivariant": True, "scale_max": args.wide_scale_max},
        "final-supervised": {
            "scale_equivariant": True,
            "train_num_steps": tuple(args.train_num_steps),
        },
    }
    needed = {STARTS.get(v, v) for v in args.variants}
    checkpoints: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for name, extra in supervised.items():
        if name not in needed:
            continue
        t0 = time.perf_counter()
        epochs = args.final_epochs if name == "final-supervised" else args.epochs
        res = train(
            TRCTrainConfig(
                data=str(data),
                output_dir=str(out / name),
                model_size=args.model_size,
                epochs=epochs,
                seed=args.seed,
                quiet=args.quiet,
                **extra,
            )
        )
        checkpoints[name], seconds[name] = res.best_checkpoint, time.perf_counter() - t0
    for name, start in STARTS.items():
        if name not in args.variants:
            continue
        t0 = time.perf_counter()
        s = finetune_stage(checkpoints[start], out / name, args)
        checkpoints[name] = Path(s["best_checkpoint"])
        seconds[name] = seconds[start] + time.perf_counter() - t0
    policies: dict[str, generalize.Policy] = {}
    for name in args.variants:
        model, _ = load_checkpoint(checkpoints[name])
        policies[name] = generalize.model_policy(model)
    policies["saturated LQR feedback"] = generalize.saturated_lqr_policy
    result = generalize.sweep(
        policies, DoubleIntegrator(), args.sweep_args(), args.success_threshold
    )
    result["args"] = asdict(args)
    result["checkpoints"] = {k: str(v) for k, v in checkpoints.items()}
    result["train_seconds"] = seconds
    generalize.write(result, out / "ablation.json", out / "ablation_table.md", out / "ablation.png")
    return result


def command(args: AblationArgs) -> None:
    """Train the variants, sweep them and print the table (``fastctrl lqr ablation``)."""
    result = run(args)
    if not args.quiet:
        print(generalize.format_table(result))
        print(f"-> {Path(args.output_dir) / 'ablation.json'}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(AblationArgs, command, argv, name="ablation")


if __name__ == "__main__":
    raise SystemExit(main())
