"""Figures of a live evaluation (matplotlib without pyplot, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .. import io
from .live import LiveResult

COLORS = {"controller": "tab:blue", "best_static": "tab:orange", "full": "tab:gray"}


def _save(fig: Figure, path: Path) -> None:
    io.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def plot_accuracy_vs_budget(res: LiveResult, path: str | Path) -> None:
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_acc, ax_slo = fig.subplots(1, 2)
    budgets = res.budgets_ms
    for name in COLORS:
        rows = [res.per_budget[f"{b:g}"].get(name) for b in budgets]
        if any(r is None for r in rows):
            continue
        ax_acc.plot(budgets, [r.accuracy for r in rows], "o-", color=COLORS[name], label=name)
        ax_slo.plot(budgets, [r.slo_attainment for r in rows], "o-", color=COLORS[name], label=name)
    ax_acc.set(xlabel="budget (ms)", ylabel=f"accuracy ({res.metric})", title="accuracy vs budget")
    ax_slo.set(
        xlabel="budget (ms)",
        ylabel="SLO attainment",
        ylim=(-0.02, 1.02),
        title="share of requests within budget",
    )
    ax_acc.legend()
    _save(fig, Path(path))


def plot_latency_per_budget(res: LiveResult, path: str | Path) -> None:
    n = len(res.budgets_ms)
    fig = Figure(figsize=(3.2 * n, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    for ax, b in zip(axes, res.budgets_ms, strict=True):
        rows = res.per_budget[f"{b:g}"]
        names = [x for x in COLORS if x in rows]
        ax.boxplot([rows[x].latency_ms for x in names], tick_labels=names, showfliers=True)
        ax.axhline(b, color="tab:red", linestyle="--", label="budget")
        ax.set(title=f"budget {b:g} ms", ylabel="latency (ms)")
        ax.tick_params(axis="x", labelrotation=30)
    axes[0].legend()
    _save(fig, Path(path))
