"""Training curves of one run (matplotlib, without pyplot: importing this selects no backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..env import Metrics
from .records import CurvePoint


def figure(nrows: int, ncols: int, figsize: tuple[float, float], **kw: Any) -> tuple[Figure, Any]:
    """A figure drawn without pyplot: no global backend is chosen, nothing to close."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kw)


PANELS = (
    ("utility", "utility (mean reward)"),
    ("slo_violation_rate", "SLO violation rate"),
    ("quality_mean", "quality (mean accuracy)"),
    ("latency_p95", "latency p95 (ms)"),
)


def plot_training_curves(
    history: list[CurvePoint],
    references: dict[str, Metrics],
    path: str | Path,
    title: str = "training",
) -> None:
    """Validation metrics vs env_steps, with oracle / best-static reference lines."""
    fig, axes = figure(2, 2, (11, 7.5))
    steps = [h.env_steps for h in history]
    for ax, (key, label) in zip(axes.flat, PANELS, strict=True):
        ax.plot(steps, [getattr(h, key) for h in history], marker="o", ms=3, label="controller")
        for name, style in (("oracle", "--"), ("best_static", ":")):  # full is off-scale
            if name in references:
                ax.axhline(
                    getattr(references[name], key),
                    ls=style,
                    color="gray",
                    label=name.replace("_", " "),
                )
        ax.set_xlabel("env_steps (configurations evaluated)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110, format="png")
