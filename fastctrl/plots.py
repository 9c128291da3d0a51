"""Figures (matplotlib, Agg backend): training curves and the E5 comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (
    ("utility", "utility (mean reward)"),
    ("slo_violation_rate", "SLO violation rate"),
    ("quality_mean", "quality (mean accuracy)"),
    ("latency_p95", "latency p95 (ms)"),
)


def plot_training_curves(history: list[dict[str, Any]], references: dict[str, dict[str, float]],
                         path: str | Path, title: str = "training") -> None:
    """Validation metrics vs env_steps, with oracle / best-static reference lines."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    steps = [h["env_steps"] for h in history]
    ref_key = {"quality_mean": "quality_mean"}
    for ax, (key, label) in zip(axes.flat, PANELS, strict=True):
        ax.plot(steps, [h[key] for h in history], marker="o", ms=3, label="controller")
        for name, style in (("oracle", "--"), ("best_static", ":")):
            if name in references:
                ax.axhline(references[name][ref_key.get(key, key)], ls=style, color="gray",
                           label=name.replace("_", " "))
        ax.set_xlabel("env_steps (configurations evaluated)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
