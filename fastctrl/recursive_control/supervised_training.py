"""Supervised training of TinyRecursiveControl on LQR-optimal controls.

    python -m fastctrl.recursive_control.supervised_training --data data/lqr_train/lqr_dataset.npz --model_size small \
        --epochs 100 --batch_size 64 --lr 1e-3 --patience 20 --scheduler cosine \
        --output_dir runs/control/supervised

Writes ``best_model.pt`` (lowest validation loss), ``last_model.pt``, ``training_stats.json``
and ``training_curves.png`` (and ``model.onnx`` with ``--export-onnx``). The loss is the mean
squared error between predicted and optimal controls (divided by the control bound) plus
``--final_state_weight`` times the mean squared difference of the final states they reach
(divided by the state scale); with ``--deep_supervision`` it is averaged over the answer of
every recursion cycle. Checkpoints are
plain dicts of tensors and numbers: ``torch.load(path, weights_only=True)`` reads them.

Generalisation options (issue 17; all off by default, which is the original trainer):
``--scale_equivariant`` builds the normalised model (:mod:`.model`) and measures its errors in
its own units (relative to each state's size); ``--scale_max S`` adds to every training and
validation state a copy scaled by a seeded factor in [1, S], labelled with the optimum of the
bounded problem (:mod:`.reference`: the QP where the bound binds); ``--train_num_steps`` and
``--train_time_horizons`` train one model conditioned on the step count and horizon over all
of their combinations (each batch is drawn for one of them; the targets are the optimum of that
system, which shares the dataset's cost weights and bound).
"""

from __future__ import annotations

import logging
import math
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import io
from ..cli import need, need_at_least, need_positive
from ..train.checkpoint import save_checkpoint
from ..train.plots import figure
from ..train.schedules import SchedulerKind, make_scheduler, step_scheduler
from ..train.seeding import seed_everything, torch_threads
from . import lqr_dataset, reference, run_command
from .model import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    MODEL_SIZES,
    ModelSize,
    TinyRecursiveControl,
    TRCConfig,
    load_checkpoint,
)
from .onnx_export import export_onnx

log = logging.getLogger(__name__)

BEST_FILE, LAST_FILE = "best_model.pt", "last_model.pt"
STATS_FILE, CURVES_FILE, ONNX_FILE = "training_stats.json", "training_curves.png", "model.onnx"


@dataclass
class TRCTrainConfig:
    """Train TinyRecursiveControl to imitate the LQR oracle."""

    data: str = "data/lqr_train/lqr_dataset.npz"
    """Training dataset (lqr_dataset.npz, or the directory holding it)."""
    output_dir: str = "runs/control/supervised"
    """Directory for checkpoints, training_stats.json and training_curves.png."""
    model_size: ModelSize = "small"
    """Preset size: small (~106K params), medium (~532K), large (~2.6M)."""
    latent_dim: int | None = None
    """Override the preset's latent size."""
    hidden_dim: int | None = None
    """Override the preset's core hidden width."""
    num_outer_cycles: int | None = None
    """Override the preset's number of control-sequence refinements."""
    num_inner_cycles: int | None = None
    """Override the preset's latent updates per refinement."""
    epochs: int = 100
    """Maximum number of passes over the training split."""
    batch_size: int = 64
    """Samples per optimisation step."""
    lr: float = 1e-3
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    scheduler: SchedulerKind = "cosine"
    """Learning-rate schedule, stepped once per epoch (plateau watches the validation loss)."""
    patience: int = 20
    """Stop after this many epochs without a better validation loss (0: never stop early)."""
    val_fraction: float = 0.1
    """Fraction of the dataset held out for validation (split fixed by --seed)."""
    deep_supervision: bool = True
    """Average the loss over the answer of every recursion cycle, not only the last one."""
    final_state_weight: float = 1.0
    """Weight of the final-state term: squared distance between the final states reached by
    the predicted and by the optimal controls (divided by the state scale)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0: no clipping)."""
    seed: int = 0
    """Seeds torch, numpy, python and the train/validation split."""
    device: str = "cpu"
    """Torch device (cpu, cuda, cuda:1, ...)."""
    num_threads: int = 1
    """Torch CPU threads while training (0: torch's default). Batches of 64 through a 100K model
    are too small to split: 4 epochs of the test model took 3.7 s on 1 thread, 9.9 s on 2, with
    the 2-core CPU shared."""
    export_onnx: bool = False
    """Also export the best model to model.onnx in --output_dir."""
    scale_equivariant: bool = False
    """Build the scale-equivariant model (normalised input, rescaled and clipped output)."""
    scale_max: float = 1.0
    """Add to each state a copy scaled by a factor drawn in [1, scale_max], labelled with the
    optimum of the bounded problem (1: the dataset only)."""
    train_num_steps: tuple[int, ...] = ()
    """Step counts to train a conditioned model on (empty: the dataset's only). The model then
    serves any N up to the largest."""
    train_time_horizons: tuple[float, ...] = ()
    """Horizons to train a conditioned model on (empty: the dataset's only)."""
    quiet: bool = False
    """No progress bar."""

    def __post_init__(self) -> None:
        need_positive(self, "epochs", "batch_size", "lr")
        need(
            not isinstance(self.scale_max, bool)
            and self.scale_max >= 1.0
            and math.isfinite(self.scale_max),
            f"--scale_max must be a finite number >= 1, got {self.scale_max!r}",
        )
        need(
            all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0
                for n in self.train_num_steps
            ),
            f"--train_num_steps must be positive ints, got {self.train_num_steps!r}",
        )
        need(
            all(t > 0 and math.isfinite(t) for t in self.train_time_horizons),
            f"--train_time_horizons must be finite numbers > 0, got {self.train_time_horizons!r}",
        )
        need_at_least(
            self, 0, "weight_decay", "patience", "grad_clip", "final_state_weight", "num_threads"
        )
        need_positive(
            self,
            *(
                name
                for name in ("latent_dim", "hidden_dim", "num_outer_cycles", "num_inner_cycles")
                if getattr(self, name) is not None
            ),
        )
        need(
            0.0 < self.val_fraction < 1.0,
            f"--val_fraction must be in (0, 1), got {self.val_fraction!r}",
        )
        need(
            self.model_size in MODEL_SIZES,
            f"--model_size must be one of {sorted(MODEL_SIZES)}, got {self.model_size!r}",
        )
        need(
            self.scheduler in typing.get_args(SchedulerKind),
            f"--scheduler must be cosine, step, plateau or none, got {self.scheduler!r}",
        )
        try:
            torch.device(self.device)
        except RuntimeError as e:
            raise ValueError(f"--device {self.device!r} is not a torch device: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    model: TinyRecursiveControl
    """The best model (lowest validation loss), in eval mode, on the CPU."""
    best_checkpoint: Path
    stats: dict[str, Any]


def _checkpoint(
    model: TinyRecursiveControl,
    cfg: TRCTrainConfig,
    system: dict[str, Any],
    epoch: int,
    val_loss: float,
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": model.config.to_dict(),
        "system": system,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "val_loss": float(val_loss),
        "train_config": cfg.to_dict(),
    }


def supervised_loss(
    model: TinyRecursiveControl,
    outputs: list[tuple[torch.Tensor, torch.Tensor]],
    x0: torch.Tensor,
    target: torch.Tensor,
    g: torch.Tensor,
    final_state_weight: float,
    deep: bool,
) -> torch.Tensor:
    """MSE of controls / bound, plus the weighted MSE of the final-state difference / scale.

    The final state is linear in the controls (``x_N = A^N x_0 + G u``), so the final-state
    difference of predicted and optimal controls is ``G (u - u*)``. Equivariant models are
    scored in their own units (bound and scale times ``||x_0||_inf / state_scale``, so a large
    state weighs as much as a small one) on the controls before clipping, which have a gradient
    where the clip has none and equal the target's value at the bound when they are right.
    """
    c = model.config
    if c.scale_equivariant:
        norm = x0.abs().amax(dim=1, keepdim=True).clamp_min(1e-6 * c.state_scale)
        bound, scale = norm * (c.control_bound / c.state_scale), norm
    else:
        bound, scale = torch.tensor(c.control_bound), torch.tensor(c.state_scale)
    terms = []
    for u, pre in outputs if deep else outputs[-1:]:
        diff = (pre if c.scale_equivariant else u) - target
        term = (diff / bound).pow(2).mean()
        if final_state_weight > 0:
            term = term + final_state_weight * (diff @ g.T / scale).pow(2).mean()
        terms.append(term)
    return torch.stack(terms).mean()


@dataclass
class _Task:
    """One (N, T) system the model is trained on, with its training and validation targets."""

    num_steps: int
    time_horizon: float
    g: torch.Tensor
    u_tr: torch.Tensor
    u_va: torch.Tensor


def _tasks(
    ds: lqr_dataset.LQRDataset,
    cfg: TRCTrainConfig,
    splits: dict[str, np.ndarray],
    states: dict[str, np.ndarray],
    device: torch.device,
) -> list[_Task]:
    """Targets of every (N, T) combination for the ``states`` of each split: the dataset's own
    controls where they apply (``splits``: its row indices; the states are not augmented),
    the optimum of the bounded problem (:func:`reference.optimum`) elsewhere."""
    base = ds.system
    augmented = cfg.scale_max > 1.0

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32, device=device)

    tasks = []
    for n in cfg.train_num_steps or (base.num_steps,):
        for t in cfg.train_time_horizons or (base.time_horizon,):
            system = replace(base, num_steps=int(n), time_horizon=float(t))
            if system == base and not augmented:
                targets = {k: ds.control_sequences[idx, :, 0] for k, idx in splits.items()}
            else:
                targets = {k: reference.optimum(system, x).controls for k, x in states.items()}
            _, g = system.final_state_maps()
            tasks.append(
                _Task(int(n), float(t), tensor(g), tensor(targets["train"]), tensor(targets["val"]))
            )
    return tasks


def _plot(history: list[dict[str, float]], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = figure(1, 2, (10, 4))
    ax1.semilogy(epochs, [h["train_loss"] for h in history], label="train")
    ax1.semilogy(epochs, [h["val_loss"] for h in history], label="validation (final answer)")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax1.set_title("TinyRecursiveControl: loss")
    ax2.plot(epochs, [h["lr"] for h in history])
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("learning rate")
    ax2.set_title("schedule")
    io.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def train(cfg: TRCTrainConfig) -> TrainResult:
    """Train, checkpoint and plot; returns the best model and the statistics."""
    with torch_threads(cfg.num_threads):
        return _train(cfg)


def _train(cfg: TRCTrainConfig) -> TrainResult:
    ds = lqr_dataset.load(cfg.data)
    system = ds.system
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    out = Path(cfg.output_dir)

    n = len(ds)
    n_val = max(1, int(round(n * cfg.val_fraction)))
    if n - n_val < 1:
        raise ValueError(
            f"--data {cfg.data}: {n} samples leave no training split with "
            f"--val_fraction {cfg.val_fraction}"
        )
    perm = np.random.default_rng(cfg.seed).permutation(n)
    splits = {"train": perm[n_val:], "val": perm[:n_val]}
    states = {k: ds.initial_states[idx] for k, idx in splits.items()}
    if cfg.scale_max > 1.0:
        rng = np.random.default_rng([cfg.seed, 17])  # its own stream: the split stays the same
        states = {
            k: np.concatenate([x, x * rng.uniform(1.0, cfg.scale_max, (len(x), 1))])
            for k, x in states.items()
        }
    tasks = _tasks(ds, cfg, splits, states, device)
    x_tr, x_va = (
        torch.tensor(states[k], dtype=torch.float32, device=device) for k in ("train", "val")
    )

    state_scale = float(
        max(ds.generator.get("position_range", 1.0), ds.generator.get("velocity_range", 1.0))
    )
    conditioned = {(t.num_steps, t.time_horizon) for t in tasks} != {
        (system.num_steps, float(system.time_horizon))
    }
    max_steps = max([system.num_steps, *(t.num_steps for t in tasks)]) if conditioned else 0
    mcfg = TRCConfig.for_size(
        cfg.model_size,
        system,
        state_scale=state_scale,
        latent_dim=cfg.latent_dim,
        hidden_dim=cfg.hidden_dim,
        num_outer_cycles=cfg.num_outer_cycles,
        num_inner_cycles=cfg.num_inner_cycles,
        scale_equivariant=cfg.scale_equivariant,
        max_num_steps=max_steps,
    )
    model = TinyRecursiveControl(mcfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # TinyRecursiveControl's own constants, stepped once per epoch: cosine to 1% of the peak,
    # step x0.1 every third of the epochs, plateau x0.5 on the validation loss.
    sched = make_scheduler(
        cfg.scheduler,
        opt,
        total_steps=cfg.epochs,
        eta_min=cfg.lr * 1e-2,
        step_gamma=0.1,
        plateau_mode="min",
        plateau_factor=0.5,
        plateau_patience=max(1, cfg.patience // 4 if cfg.patience else 5),
    )

    def loss_of(task: _Task, x: torch.Tensor, target: torch.Tensor, deep: bool) -> torch.Tensor:
        outputs = model.forward_all(x, task.num_steps, task.time_horizon)
        return supervised_loss(model, outputs, x, target, task.g, cfg.final_state_weight, deep)

    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    best_val, best_epoch, since_best = math.inf, 0, 0
    stopped_early = False
    t_start = time.perf_counter()
    sys_dict = system.to_dict()
    n_tr = x_tr.shape[0]
    bar = tqdm(range(1, cfg.epochs + 1), desc="train TRC", disable=cfg.quiet, unit="epoch")
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n_tr, generator=gen).to(device)
        total, count = 0.0, 0
        for i in range(0, n_tr, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            # one (N, T) per batch; with a single task this draws nothing (same stream as before)
            task = (
                tasks[int(torch.randint(len(tasks), (1,), generator=gen))]
                if len(tasks) > 1
                else tasks[0]
            )
            loss = loss_of(task, x_tr[idx], task.u_tr[idx], cfg.deep_supervision)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        model.eval()
        with torch.no_grad():
            val = float(np.mean([float(loss_of(t, x_va, t.u_va, deep=False)) for t in tasks]))
        lr_now = opt.param_groups[0]["lr"]
        step_scheduler(sched, val)
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / count,
                "val_loss": val,
                "lr": lr_now,
                "seconds": time.perf_counter() - t0,
            }
        )
        if not math.isfinite(val):
            raise FloatingPointError(
                f"validation loss became {val} at epoch {epoch}; try a lower --lr (now {cfg.lr})"
            )
        if val < best_val:
            best_val, best_epoch, since_best = val, epoch, 0
            save_checkpoint(_checkpoint(model, cfg, sys_dict, epoch, val), out / BEST_FILE)
        else:
            since_best += 1
        bar.set_postfix(train=f"{total / count:.2e}", val=f"{val:.2e}", best=f"{best_val:.2e}")
        log.debug("epoch %d train %.3e val %.3e", epoch, total / count, val)
        if cfg.patience and since_best >= cfg.patience:
            stopped_early = True
            break
    bar.close()
    save_checkpoint(
        _checkpoint(model, cfg, sys_dict, history[-1]["epoch"], history[-1]["val_loss"]),
        out / LAST_FILE,
    )
    stats = {
        "config": cfg.to_dict(),
        "model_config": mcfg.to_dict(),
        "num_parameters": model.num_parameters(),
        "num_train": int(n_tr),
        "num_val": int(x_va.shape[0]),
        "tasks": [{"num_steps": t.num_steps, "time_horizon": t.time_horizon} for t in tasks],
        "best_epoch": best_epoch,
        "best_val_loss": best_val,
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "train_seconds": time.perf_counter() - t_start,
    }
    best_model = finish_run(
        out, stats, history, _plot, STATS_FILE, CURVES_FILE, export=cfg.export_onnx
    )
    return TrainResult(model=best_model, best_checkpoint=out / BEST_FILE, stats=stats)


def finish_run(
    out: Path,
    stats: dict[str, Any],
    history: list[dict[str, Any]],
    plot: Callable[[list[dict[str, Any]], Path], None],
    stats_file: str,
    curves_file: str,
    export: bool,
) -> TinyRecursiveControl:
    """The end of a training or fine-tuning run in ``out``: ``stats`` (with the torch thread
    count and the ``history`` added) written to ``stats_file``, the history plotted to
    ``curves_file`` and, with ``export``, the best model (``BEST_FILE``) exported to ONNX.
    Returns the best model."""
    best_model, _ = load_checkpoint(out / BEST_FILE)
    stats.update(torch_threads=torch.get_num_threads(), history=history)
    io.write_json(out / stats_file, stats)
    plot(history, out / curves_file)
    if export:
        export_onnx(best_model, out / ONNX_FILE)
    return best_model


def command(cfg: TRCTrainConfig) -> None:
    """Train and print the outcome (``fastctrl lqr train``)."""
    res = train(cfg)
    s = res.stats
    if not cfg.quiet:
        print(
            f"trained {cfg.model_size} TRC ({s['num_parameters']:,} params) for "
            f"{s['epochs_run']} epochs in {s['train_seconds']:.1f}s; best val loss "
            f"{s['best_val_loss']:.3e} at epoch {s['best_epoch']} -> {res.best_checkpoint}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(TRCTrainConfig, command, argv, name="supervised_training")


if __name__ == "__main__":
    raise SystemExit(main())
