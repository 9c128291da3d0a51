"""Fine-tune TinyRecursiveControl on the control cost itself (the guide's optional RL step).

    python -m fastctrl.recursive_control.finetune --checkpoint runs/control/supervised/best_model.pt \
        --output_dir runs/control/finetuned --scale_max 8 --steps 6000 --lr 3e-4

No labels: the dynamics are linear and differentiable, so the cost ``J`` of the trajectory the
model's (bounded) controls produce is computed in torch (the stacked form of
:mod:`.reference`) and minimised directly, which is the policy-gradient objective with an exact
gradient. Initial states are ``s * z`` with ``z`` uniform in the training box and ``s``
uniform in ``[0, scale_max]``, so the bound binds for many of them. The loss is ``J`` over the
unconstrained optimum's cost ``x_0' P_0 x_0`` (closed form; a lower bound, so every state
weighs alike whatever its size), plus ``--bound_penalty`` times the squared excess of the
controls before clipping over the bound (clipped controls have no gradient; this keeps the
model able to come back inside). The controls stay within the bound by construction (tanh or
clip), whatever the fine-tuning does.

Fitting the states where the bound binds costs the same small network accuracy inside the
training box, where the supervised model was near-exact; ``--anchor_weight`` adds the
supervised loss of :mod:`.train` on a fresh batch of ``--anchor_batch_size`` states from the
training box, labelled with the optimum (the LQR solution there). Off by default: in a
3000-step trial with weight 1 it halved the in-box gap of the step-conditioned model but made
the gap and the success rate beyond the box worse.

Every ``--eval_every`` steps the relative gap to the bounded optimum (:func:`reference.optimum`)
on fixed validation states is measured; the best model is kept. Writes ``best_model.pt`` (the
checkpoint format of :mod:`.train`, with ``finetune_config``), ``finetune_stats.json`` and
``finetune_curves.png`` (and ``model.onnx`` with ``--export-onnx``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
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
from ..train.seeding import seed_everything, torch_threads
from . import lqr, reference, run_command
from .model import TinyRecursiveControl, load_checkpoint
from .supervised_training import BEST_FILE, finish_run, supervised_loss
from .system import DoubleIntegrator

log = logging.getLogger(__name__)

# the best checkpoint and its ONNX export have supervised training's names (BEST_FILE, ONNX_FILE)
STATS_FILE, CURVES_FILE = "finetune_stats.json", "finetune_curves.png"


@dataclass
class FinetuneArgs:
    """Fine-tune a TinyRecursiveControl checkpoint on the rollout cost (no labels)."""

    checkpoint: str = "runs/control/supervised/best_model.pt"
    """Checkpoint to start from (python -m fastctrl.recursive_control.supervised_training)."""
    output_dir: str = "runs/control/finetuned"
    """Directory for best_model.pt, finetune_stats.json and finetune_curves.png."""
    scale_max: float = 8.0
    """Initial states are s x the training box with s uniform in [0, scale_max]."""
    position_range: float = 2.0
    """Training box: |position| <= position_range at scale 1."""
    velocity_range: float = 2.0
    """Training box: |velocity| <= velocity_range at scale 1."""
    num_steps: tuple[int, ...] = ()
    """Step counts to fine-tune a conditioned model on (empty: those it was trained on)."""
    steps: int = 6000
    """Optimisation steps."""
    batch_size: int = 256
    """States per step (fresh ones every step)."""
    lr: float = 3e-4
    """Learning rate of AdamW (cosine to 1 percent of it over --steps)."""
    bound_penalty: float = 1.0
    """Weight of the squared excess of the unclipped controls over the bound (clip models)."""
    anchor_weight: float = 0.0
    """Weight of the supervised loss on training-box states with optimal labels (0: none)."""
    anchor_batch_size: int = 128
    """Training-box states per step for the anchor loss."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0: no clipping)."""
    val_states: int = 1000
    """Fixed validation states (same distribution) per step count."""
    eval_every: int = 100
    """Measure the validation gap every this many steps (and at the start and the end)."""
    seed: int = 0
    """Seeds the states and torch."""
    num_threads: int = 1
    """Torch CPU threads (0: torch's default)."""
    export_onnx: bool = False
    """Also export the best model to model.onnx in --output_dir."""
    quiet: bool = False
    """No progress bar."""

    def __post_init__(self) -> None:
        need_positive(
            self,
            "scale_max",
            "position_range",
            "velocity_range",
            "steps",
            "batch_size",
            "lr",
            "val_states",
            "eval_every",
            "anchor_batch_size",
        )
        need_at_least(self, 0, "bound_penalty", "anchor_weight", "grad_clip", "num_threads")
        need(math.isfinite(self.scale_max), f"--scale_max must be finite, got {self.scale_max}")
        need(
            all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in self.num_steps),
            f"--num_steps must be positive ints, got {self.num_steps!r}",
        )


class RolloutCost(torch.nn.Module):
    """Differentiable quadratic cost J [B] of controls [B, N] from states [B, 2] for one
    system, and the unconstrained optimum's cost ``x_0' P_0 x_0``."""

    def __init__(self, system: DoubleIntegrator) -> None:
        super().__init__()
        p = reference.stacked(system)
        self.r = p.r
        for name, value in (
            ("phi", p.phi),
            ("gam", p.gam),
            ("qbar", p.qbar),
            ("p0", lqr.solve(system).cost_to_go[0]),
        ):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32))

    def forward(self, x0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        x = x0 @ self.phi.T + u @ self.gam.T
        return (x * x * self.qbar).sum(dim=1) + self.r * (u * u).sum(dim=1)

    def lqr_cost(self, x0: torch.Tensor) -> torch.Tensor:
        return ((x0 @ self.p0) * x0).sum(dim=1)


@dataclass
class _Task:
    num_steps: int
    system: DoubleIntegrator
    cost: RolloutCost
    g: torch.Tensor
    """[2, N] final-state map of the controls (for the anchor loss)."""
    x_val: np.ndarray
    opt_val: np.ndarray
    """Bounded-optimum costs of x_val."""


def _box_states(rng: np.random.Generator, n: int, args: FinetuneArgs) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=(n, 2)) * np.array(
        [args.position_range, args.velocity_range]
    )


def _states(rng: np.random.Generator, n: int, args: FinetuneArgs) -> np.ndarray:
    return _box_states(rng, n, args) * rng.uniform(0.0, args.scale_max, size=(n, 1))


def _anchor_loss(model: TinyRecursiveControl, task: _Task, x_box: np.ndarray) -> torch.Tensor:
    """The supervised loss of :mod:`.train` on training-box states with optimal labels."""
    target = torch.tensor(reference.optimum(task.system, x_box).controls, dtype=torch.float32)
    x0 = torch.tensor(x_box, dtype=torch.float32)
    outputs = model.forward_all(x0, task.num_steps, task.system.time_horizon)
    return supervised_loss(model, outputs, x0, target, task.g, final_state_weight=1.0, deep=True)


def _loss(
    model: TinyRecursiveControl, task: _Task, x0: torch.Tensor, penalty: float
) -> torch.Tensor:
    u, pre = model.forward_all(x0, task.num_steps, task.system.time_horizon)[-1]
    ratio = task.cost(x0, u) / task.cost.lqr_cost(x0).clamp_min(1e-12)
    loss = ratio.mean()
    c = model.config
    if penalty > 0 and c.scale_equivariant:
        unit = x0.abs().amax(dim=1, keepdim=True).clamp_min(1e-6 * c.state_scale) * (
            c.control_bound / c.state_scale
        )
        loss = loss + penalty * ((pre.abs() - c.control_bound).clamp_min(0) / unit).pow(2).mean()
    return loss


def _validate(model: TinyRecursiveControl, tasks: list[_Task]) -> float:
    """Mean over tasks of the mean per-state gap (percent) to the bounded optimum."""
    gaps = []
    with torch.no_grad():
        for t in tasks:
            x = torch.tensor(t.x_val, dtype=torch.float32)
            u = model(x, num_steps=t.num_steps, time_horizon=t.system.time_horizon)
            assert isinstance(u, torch.Tensor)
            un = u.double().numpy()
            cost = t.system.cost(t.system.simulate(t.x_val, un), un)
            gaps.append(100.0 * float(np.mean(cost / np.maximum(t.opt_val, 1e-12) - 1.0)))
    return float(np.mean(gaps))


def finetune(args: FinetuneArgs) -> dict[str, Any]:
    with torch_threads(args.num_threads):
        return _finetune(args)


def finetune_stage(
    checkpoint: Path, output_dir: Path, settings: Any, **overrides: Any
) -> dict[str, Any]:
    """:func:`finetune` of ``checkpoint`` into ``output_dir`` as a stage of a larger run (the
    pipeline, the ablation): ``settings`` (that run's arguments) gives the steps, scale and
    learning rate (its ``finetune_steps``, ``finetune_scale_max``, ``finetune_lr``), the
    training box (``position_range``, ``velocity_range``), ``seed`` and ``quiet``;
    ``overrides`` set any other :class:`FinetuneArgs` field."""
    return finetune(
        FinetuneArgs(
            checkpoint=str(checkpoint),
            output_dir=str(output_dir),
            scale_max=settings.finetune_scale_max,
            position_range=settings.position_range,
            velocity_range=settings.velocity_range,
            steps=settings.finetune_steps,
            lr=settings.finetune_lr,
            seed=settings.seed,
            quiet=settings.quiet,
            **overrides,
        )
    )


def _finetune(args: FinetuneArgs) -> dict[str, Any]:
    model, ckpt = load_checkpoint(args.checkpoint)
    base = DoubleIntegrator(**ckpt["system"])
    c = model.config
    trained_on = ckpt.get("train_config", {}).get("train_num_steps") or [c.num_steps]
    step_counts = list(args.num_steps or trained_on)
    for n in step_counts:
        if n != c.num_steps and not c.conditioned:
            raise ValueError(f"--num_steps {n}: the model serves only N={c.num_steps}")
        if n > c.out_steps:
            raise ValueError(f"--num_steps {n}: the model serves N <= {c.out_steps}")
    seed_everything(args.seed)
    rng = np.random.default_rng([args.seed, 1])
    tasks = []
    for n in step_counts:
        system = replace(base, num_steps=int(n))
        x_val = _states(rng, args.val_states, args)
        g = torch.tensor(system.final_state_maps()[1], dtype=torch.float32)
        tasks.append(
            _Task(
                int(n),
                system,
                RolloutCost(system),
                g,
                x_val,
                reference.optimum(system, x_val).costs,
            )
        )

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=args.steps, eta_min=args.lr * 1e-2
    )
    out = Path(args.output_dir)
    history: list[dict[str, float | None]] = []
    t_start = time.perf_counter()

    def checkpoint(step: int, val: float) -> dict[str, Any]:
        return {
            **ckpt,
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "finetune_config": asdict(args),
            "finetune_step": int(step),
            "finetune_val_gap_percent": float(val),
        }

    start_gap = _validate(model, tasks)
    best_gap, best_step = start_gap, 0
    save_checkpoint(checkpoint(0, start_gap), out / BEST_FILE)
    history.append({"step": 0, "loss": None, "val_gap_percent": start_gap, "lr": args.lr})
    running: list[float] = []
    bar = tqdm(range(1, args.steps + 1), desc="finetune TRC", disable=args.quiet, unit="step")
    for step in bar:
        model.train()
        task = tasks[int(rng.integers(len(tasks)))]
        x0 = torch.tensor(_states(rng, args.batch_size, args), dtype=torch.float32)
        loss = _loss(model, task, x0, args.bound_penalty)
        if args.anchor_weight > 0:
            x_box = _box_states(rng, args.anchor_batch_size, args)
            loss = loss + args.anchor_weight * _anchor_loss(model, task, x_box)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        sched.step()
        running.append(float(loss.detach()))
        if not math.isfinite(running[-1]):
            raise FloatingPointError(
                f"fine-tuning loss became {running[-1]} at step {step}; "
                f"try a lower --lr (now {args.lr})"
            )
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            gap = _validate(model, tasks)
            history.append(
                {
                    "step": step,
                    "loss": float(np.mean(running)),
                    "val_gap_percent": gap,
                    "lr": opt.param_groups[0]["lr"],
                }
            )
            running = []
            if gap < best_gap:
                best_gap, best_step = gap, step
                save_checkpoint(checkpoint(step, gap), out / BEST_FILE)
            bar.set_postfix(val_gap=f"{gap:.3f}%", best=f"{best_gap:.3f}%")
    bar.close()
    stats = {
        "config": asdict(args),
        "start_checkpoint": str(args.checkpoint),
        "step_counts": step_counts,
        "val_gap_percent_before": start_gap,
        "val_gap_percent_best": best_gap,
        "best_step": best_step,
        "finetune_seconds": time.perf_counter() - t_start,
    }
    finish_run(out, stats, history, _plot, STATS_FILE, CURVES_FILE, export=args.export_onnx)
    stats["best_checkpoint"] = str(out / BEST_FILE)
    return stats


def _plot(history: list[dict[str, Any]], path: Path) -> None:
    fig, (ax1, ax2) = figure(1, 2, (10, 4))
    steps = [h["step"] for h in history]
    ax1.semilogy(steps, [max(h["val_gap_percent"], 1e-4) for h in history], marker="o")
    ax1.set_xlabel("step")
    ax1.set_ylabel("validation gap to the bounded optimum (percent)")
    ax1.set_title("TinyRecursiveControl: cost fine-tuning")
    ax2.plot(steps[1:], [h["loss"] for h in history[1:]])
    ax2.set_xlabel("step")
    ax2.set_ylabel("loss (cost / unconstrained optimum)")
    ax2.set_title("training loss")
    io.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def command(args: FinetuneArgs) -> None:
    """Fine-tune and print the gain (``fastctrl lqr finetune``)."""
    s = finetune(args)
    if not args.quiet:
        print(
            f"fine-tuned for {args.steps} steps in {s['finetune_seconds']:.1f}s: validation "
            f"gap {s['val_gap_percent_before']:.3f}% -> {s['val_gap_percent_best']:.3f}% "
            f"(step {s['best_step']}) -> {s['best_checkpoint']}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(FinetuneArgs, command, argv, name="finetune")


if __name__ == "__main__":
    raise SystemExit(main())
