"""Generalisation beyond the training box: initial-state scales, step counts, horizons, cost
weights, each judged against the optimum of the bounded problem.

    python -m fastctrl.recursive_control.generalize --checkpoints runs/control/supervised/best_model.pt \
        --onnx runs/control/supervised/model.onnx --output_dir runs/control

Initial states are ``s * z`` with ``z`` uniform in the training box (the same ``z`` for every
scale ``s``, seeded by ``--sweep_seed``). Every condition is scored against
:func:`fastctrl.recursive_control.reference.optimum`: the LQR optimum where it respects the control bound,
the box-constrained QP elsewhere; each row says which (``reference``: ``lqr`` or ``lqr+qp``) and
for what fraction of states the bound binds. Other step counts, horizons and cost weights are
drawn in the training box (scale 1). A model not conditioned on the step count cannot serve
another N (the row says so); applied to another horizon or cost weights, it is judged on that
system although it does not know it changed.

Writes ``generalization.json``, ``generalization_table.md`` and ``generalization.png`` (gap and
success against scale) in ``--output_dir``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ..cli import need, need_positive
from ..train.plots import figure
from . import lqr, reference, run_command
from .model import TinyRecursiveControl, load_checkpoint
from .rollout_cost import rollout_metrics
from .system import DoubleIntegrator

log = logging.getLogger(__name__)

TABLE_FILE, FIGURE_FILE = "generalization_table.md", "generalization.png"
RESULTS_FILE = "generalization.json"

Policy = Callable[[DoubleIntegrator, np.ndarray], np.ndarray]
"""(system, initial states [n, 2]) -> controls [n, N]; raises :class:`NotServed` if it cannot."""


class NotServed(ValueError):
    """The policy cannot produce controls for this system (e.g. another step count)."""


WEIGHT_KEYS = ("q_position", "q_velocity", "r", "qf_position", "qf_velocity")


def parse_weights(spec: str) -> dict[str, float]:
    """``"r=0.01"`` or ``"qf_position=100,qf_velocity=100"`` -> the cost-weight overrides."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        need(
            bool(sep) and key in WEIGHT_KEYS,
            f"--cost_weights: {spec!r} must be key=value[,key=value] with keys in {WEIGHT_KEYS}",
        )
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"--cost_weights: {value!r} in {spec!r} is not a number") from None
    return out


@dataclass
class SweepArgs:
    """Where generalisation is measured (shared by generalize, evaluate, compare, pipeline)."""

    scales: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
    """Initial-state scales, in multiples of the training box."""
    step_counts: tuple[int, ...] = (10, 15, 20)
    """Step counts N (the horizon kept) drawn in the training box."""
    time_horizons: tuple[float, ...] = (4.0, 6.0)
    """Horizons T (N kept) drawn in the training box."""
    cost_weights: tuple[str, ...] = ("r=0.01", "r=1.0", "qf_position=100,qf_velocity=100")
    """Cost-weight variants, each key=value[,key=value] over q_position, q_velocity, r,
    qf_position, qf_velocity."""
    sweep_states: int = 1000
    """Initial states per condition."""
    sweep_seed: int = 2024
    """Seed of the sweep's states (not the training or test seed)."""
    position_range: float = 2.0
    """Training box: |position| <= position_range at scale 1."""
    velocity_range: float = 2.0
    """Training box: |velocity| <= velocity_range at scale 1."""

    def __post_init__(self) -> None:
        need_positive(self, "sweep_states", "position_range", "velocity_range")
        need(
            all(s > 0 and math.isfinite(s) for s in self.scales),
            f"--scales must be finite numbers > 0, got {self.scales!r}",
        )
        need(
            all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in self.step_counts),
            f"--step_counts must be positive ints, got {self.step_counts!r}",
        )
        need(
            all(t > 0 and math.isfinite(t) for t in self.time_horizons),
            f"--time_horizons must be finite numbers > 0, got {self.time_horizons!r}",
        )
        for spec in self.cost_weights:
            parse_weights(spec)

    def sweep_args(self) -> SweepArgs:
        """Just the sweep's fields (for a subclass such as the evaluator's arguments)."""
        return SweepArgs(**{k: getattr(self, k) for k in SweepArgs.__dataclass_fields__})


# ---------------------------------------------------------------- policies


def model_policy(model: TinyRecursiveControl) -> Policy:
    """A torch model: conditioned models get the system's (N, T); others serve their own N."""
    model = model.eval()

    def policy(system: DoubleIntegrator, x0: np.ndarray) -> np.ndarray:
        c = model.config
        if c.conditioned:
            if system.num_steps > c.out_steps:
                raise NotServed(f"the model serves N <= {c.out_steps}")
            n, t = system.num_steps, float(system.time_horizon)
        elif system.num_steps != c.num_steps:
            raise NotServed(f"the model outputs N={c.num_steps} controls only")
        else:
            n, t = None, None  # its own horizon, whatever the system's is
        with torch.inference_mode():
            u = model(torch.tensor(x0, dtype=torch.float32), num_steps=n, time_horizon=t)
        assert isinstance(u, torch.Tensor)
        return u.double().numpy()

    return policy


def onnx_policy(path: str | Path) -> Policy:
    """An exported model (onnxruntime): serves the step count it was exported for."""
    from .onnx_export import run_onnx

    def policy(system: DoubleIntegrator, x0: np.ndarray) -> np.ndarray:
        u = run_onnx(path, x0).astype(np.float64)
        if u.shape[1] != system.num_steps:
            raise NotServed(f"the ONNX graph outputs N={u.shape[1]} controls only")
        return u

    return policy


def saturated_lqr_policy(system: DoubleIntegrator, x0: np.ndarray) -> np.ndarray:
    """Classical baseline: the LQR feedback u_k = -K_k x_k, clipped to the bound at every step
    (it knows the system it is applied to)."""
    sol = lqr.solve(system)
    x = np.asarray(x0, dtype=np.float64)
    u = np.empty((x.shape[0], system.num_steps))
    for k in range(system.num_steps):
        u[:, k] = np.clip(-(x @ sol.gains[k].T)[:, 0], -system.control_bound, system.control_bound)
        x = x @ system.A.T + u[:, k, None] * system.B[:, 0]
    return u


# ---------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class Condition:
    kind: str
    """scale, steps, horizon or weights."""
    label: str
    scale: float
    system: DoubleIntegrator


def conditions(base: DoubleIntegrator, args: SweepArgs) -> list[Condition]:
    out = [Condition("scale", f"x{s:g}", float(s), base) for s in args.scales]
    out += [
        Condition("steps", f"N={n}", 1.0, replace(base, num_steps=int(n))) for n in args.step_counts
    ]
    out += [
        Condition("horizon", f"T={t:g}", 1.0, replace(base, time_horizon=float(t)))
        for t in args.time_horizons
    ]
    out += [
        Condition("weights", spec, 1.0, replace(base, **parse_weights(spec)))
        for spec in args.cost_weights
    ]
    return out


def unit_states(args: SweepArgs) -> np.ndarray:
    """The sweep's states at scale 1, uniform in the training box."""
    rng = np.random.default_rng(args.sweep_seed)
    box = np.array([args.position_range, args.velocity_range])
    return rng.uniform(-1.0, 1.0, size=(args.sweep_states, 2)) * box


def sweep(
    policies: dict[str, Policy],
    base: DoubleIntegrator,
    args: SweepArgs,
    success_threshold: float = 0.1,
) -> dict[str, Any]:
    """Every condition of ``args`` for every policy, scored against the bounded optimum."""
    z = unit_states(args)
    rows = []
    for cond in conditions(base, args):
        x0 = cond.scale * z
        opt = reference.optimum(cond.system, x0)
        ref = rollout_metrics(cond.system, x0, opt.controls, opt.costs, success_threshold)
        row: dict[str, Any] = {
            "kind": cond.kind,
            "label": cond.label,
            "scale": cond.scale,
            "system": cond.system.to_dict(),
            "reference": opt.method,
            "bound_active_fraction": float(opt.constrained.mean()),
            "reference_max_kkt_residual": float(opt.kkt_residual.max()),
            "reference_success_rate": ref["success_rate"],
            "reference_mean_cost": ref["mean_cost"],
            "reference_mean_final_error": ref["mean_final_error"],
            "policies": {},
        }
        for name, policy in policies.items():
            try:
                u = policy(cond.system, x0)
            except NotServed as e:
                row["policies"][name] = {"served": False, "why": str(e)}
                continue
            m = rollout_metrics(cond.system, x0, u, opt.costs, success_threshold)
            m["served"] = True
            m["bound_respected"] = bool(
                m["max_abs_control"] <= cond.system.control_bound * (1 + 1e-6)
            )
            row["policies"][name] = m
        rows.append(row)
    sweep_record = {
        k: list(v) if isinstance(v, tuple) else v  # as JSON reads back
        for k, v in ((k, getattr(args, k)) for k in SweepArgs.__dataclass_fields__)
    }
    return {
        "base_system": base.to_dict(),
        "sweep": sweep_record,
        "success_threshold": success_threshold,
        "policies": list(policies),
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """Markdown: one row per condition, gap / success per policy, then the reference."""
    names = result["policies"]
    head = (
        "| condition | bound binds | "
        + " | ".join(f"{n}: gap / success" for n in names)
        + " | optimum: success | reference |"
    )
    lines = [
        f"Gap = mean cost over the optimum's mean cost - 1; success = final error < "
        f"{result['success_threshold']}; {result['sweep']['sweep_states']} states per row, "
        f"scale s: s x the training box [-{result['sweep']['position_range']:g}, "
        f"{result['sweep']['position_range']:g}] x [-{result['sweep']['velocity_range']:g}, "
        f"{result['sweep']['velocity_range']:g}]",
        "",
        head,
        "|" + "---|" * (len(names) + 4),
    ]
    for row in result["rows"]:
        cells = []
        for n in names:
            m = row["policies"][n]
            cells.append(
                f"{m['cost_gap_percent']:.3g}% / {100 * m['success_rate']:.1f}%"
                if m["served"]
                else "n/a"
            )
        lines.append(
            f"| {row['label']} | {100 * row['bound_active_fraction']:.1f}% | "
            + " | ".join(cells)
            + f" | {100 * row['reference_success_rate']:.1f}% | {row['reference']} |"
        )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> None:
    """Gap (log) and success against scale, one line per policy, the optimum's success too."""
    rows = [r for r in result["rows"] if r["kind"] == "scale"]
    if not rows:
        return
    scales = [r["scale"] for r in rows]
    fig, (ax1, ax2) = figure(1, 2, (10, 4))
    for name in result["policies"]:
        ms = [r["policies"][name] for r in rows]
        if not all(m["served"] for m in ms):
            continue
        ax1.plot(scales, [max(m["cost_gap_percent"], 1e-4) for m in ms], marker="o", label=name)
        ax2.plot(scales, [100 * m["success_rate"] for m in ms], marker="o", label=name)
    ax2.plot(
        scales, [100 * r["reference_success_rate"] for r in rows], "k--", label="bounded optimum"
    )
    ax1.set_yscale("log")
    ax1.set_xlabel("initial-state scale (x training box)")
    ax1.set_ylabel("gap from the bounded optimum (percent)")
    ax1.set_title("cost gap")
    ax2.set_xlabel("initial-state scale (x training box)")
    ax2.set_ylabel(f"success (final error < {result['success_threshold']}), percent")
    ax2.set_title("success")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    io.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def write(
    result: dict[str, Any], output: str | Path | None, table: str | Path, figure_path: str | Path
) -> None:
    """The JSON at ``output`` (unless None), the Markdown table and the figure."""
    if output is not None:
        io.write_json(output, result)
    io.write_text(table, format_table(result) + "\n")
    plot(result, figure_path)


# ---------------------------------------------------------------- command line


@dataclass
class GeneralizeArgs(SweepArgs):
    """Generalisation of TinyRecursiveControl checkpoints / exported models beyond the box."""

    checkpoints: tuple[str, ...] = ("runs/control/supervised/best_model.pt",)
    """Checkpoints to judge (python -m fastctrl.recursive_control.supervised_training / finetune)."""
    labels: tuple[str, ...] = ()
    """A name per checkpoint (default: the checkpoint's parent directory)."""
    onnx: tuple[str, ...] = ()
    """Exported models to judge too (python -m fastctrl.recursive_control.onnx_export)."""
    saturated_lqr: bool = True
    """Also judge the clipped LQR feedback (a classical baseline that knows each system)."""
    success_threshold: float = 0.1
    """A rollout succeeds when its final-state error is below this."""
    output_dir: str = "runs/control"
    """Where generalization.json, generalization_table.md and generalization.png go."""
    quiet: bool = False
    """Print nothing on success."""

    def __post_init__(self) -> None:
        super().__post_init__()
        need_positive(self, "success_threshold")
        need(bool(self.checkpoints or self.onnx), "give --checkpoints and/or --onnx")
        need(
            not self.labels or len(self.labels) == len(self.checkpoints),
            f"--labels: {len(self.labels)} names for {len(self.checkpoints)} checkpoints",
        )


def run(args: GeneralizeArgs) -> dict[str, Any]:
    policies: dict[str, Policy] = {}
    base: DoubleIntegrator | None = None
    labels = args.labels or tuple(Path(c).parent.name or Path(c).stem for c in args.checkpoints)
    for label, path in zip(labels, args.checkpoints, strict=True):
        model, ckpt = load_checkpoint(path)
        system = DoubleIntegrator(**ckpt["system"])
        if base is None:
            base = system
        elif base != system:
            raise ValueError(f"--checkpoints: {path} was trained on {system}, the first on {base}")
        policies[label if label not in policies else f"{label}-{len(policies)}"] = model_policy(
            model
        )
    for path in args.onnx:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--onnx: no file at {path}")
        policies[f"onnx:{Path(path).name}"] = onnx_policy(path)
    if args.saturated_lqr:
        policies["saturated LQR feedback"] = saturated_lqr_policy
    result = sweep(policies, base or DoubleIntegrator(), args.sweep_args(), args.success_threshold)
    result["checkpoints"] = list(args.checkpoints)
    result["onnx"] = list(args.onnx)
    out = Path(args.output_dir)
    write(result, out / RESULTS_FILE, out / TABLE_FILE, out / FIGURE_FILE)
    return result


def command(args: GeneralizeArgs) -> None:
    """Sweep and print the table (``fastctrl lqr generalize``)."""
    result = run(args)
    if not args.quiet:
        print(format_table(result))
        print(f"-> {Path(args.output_dir) / RESULTS_FILE}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(GeneralizeArgs, command, argv, name="generalize")


if __name__ == "__main__":
    raise SystemExit(main())
