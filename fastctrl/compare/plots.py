"""The E5 comparison's figures (matplotlib, without pyplot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from ..train.plots import figure


def _colors(methods: list[str]) -> dict[str, Any]:
    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot_e5_learning_curves(curves: dict[str, dict[str, list[dict[str, Any]]]],
                            path: str | Path) -> None:
    """Utility, SLO violation and quality vs env_steps: mean with a +-1 std band over seeds
    (each seed's curve interpolated onto a common env_steps grid)."""
    import numpy as np

    panels = (("utility", "utility (mean reward)"), ("slo_violation_rate", "SLO violation rate"),
              ("quality_mean", "quality (mean accuracy)"))
    fig, axes = figure(1, 3, (16, 4.8))
    colors = _colors(list(curves))
    for m, seeds in curves.items():
        runs = [r for r in seeds.values() if r]
        lo = max(r[0]["env_steps"] for r in runs)
        hi = min(r[-1]["env_steps"] for r in runs)
        grid = np.linspace(lo, hi, 60) if hi > lo else np.array([lo])
        for ax, (key, label) in zip(axes, panels, strict=True):
            if len(grid) == 1:  # offline methods: all steps spent up front -> final values
                ys = np.array([[r[-1][key]] for r in runs])
            else:
                ys = np.stack([np.interp(grid, [h["env_steps"] for h in r],
                                         [h[key] for h in r]) for r in runs])
            mu, sd = ys.mean(0), ys.std(0)
            ax.plot(grid, mu, color=colors[m], label=f"{m} ({len(runs)} seeds)",
                    marker="o" if len(grid) == 1 else None)
            ax.fill_between(grid, mu - sd, mu + sd, color=colors[m], alpha=0.2)
            ax.set_xlabel("env_steps (configurations evaluated)")
            ax.set_ylabel(label)
            ax.set_xscale("symlog", linthresh=1e4)
            ax.grid(alpha=0.3)
    axes[0].set_ylim(bottom=max(axes[0].get_ylim()[0], -0.5))
    axes[0].legend(fontsize=8)
    fig.suptitle("E5 learning curves (validation split; mean ± std over seeds)")
    fig.savefig(path, dpi=110, format="png")


def plot_e5_sample_efficiency(eff: dict[str, Any], path: str | Path) -> None:
    import numpy as np

    methods = list(eff["methods"])
    keys = (("slo", "SLO threshold"), ("quality", "quality threshold"), ("both", "both"))
    fig, ax = figure(1, 1, (10, 5))
    width = 0.26
    x = np.arange(len(methods))
    for i, (key, label) in enumerate(keys):
        means = [eff["methods"][m][key]["mean"] for m in methods]
        stds = [eff["methods"][m][key]["std"] or 0.0 for m in methods]
        heights = [v if v is not None else 0.0 for v in means]
        bars = ax.bar(x + (i - 1) * width, heights, width, yerr=stds, label=label, capsize=3)
        for b, m, v in zip(bars, methods, means, strict=True):
            status = eff["methods"][m][key]["reached"]
            ax.annotate("not reached" if v is None else status, (b.get_x() + b.get_width() / 2,
                        b.get_height()), ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(x, methods)
    ax.set_ylabel("env_steps to reach (mean ± std over seeds)")
    th = eff["thresholds"]
    ax.set_title(f"E5 sample efficiency: SLO <= {th['slo_violation_rate_max']:.0%}, quality >= "
                 f"{th['quality_fraction_of_full_model']:.0%} of the full model")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, dpi=110, format="png")


def plot_e5_frontiers(fr: dict[str, Any], path: str | Path) -> None:
    fig, ax = figure(1, 1, (8, 6))
    colors = _colors(list(fr["methods"]))
    for m, pts in fr["methods"].items():
        ax.plot([p["latency_p95"] for p in pts], [p["quality_mean"] for p in pts], marker="o",
                color=colors[m], label=m)
    for b, style in (("oracle", "k--"), ("best_static", "k:")):
        pts = fr["baselines"].get(b)
        if pts:
            ax.plot([p["latency_p95"] for p in pts], [p["quality_mean"] for p in pts], style,
                    marker="s", label=b.replace("_", " "))
    ax.set_xlabel("latency p95 (ms)")
    ax.set_ylabel("quality (mean accuracy)")
    ax.set_title("E5 final frontiers (test split; one point per budget, mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110, format="png")


def plot_e5_overhead(ov: dict[str, Any], path: str | Path) -> None:
    methods = list(ov)
    fig, (a1, a2) = figure(1, 2, (12, 4.8))
    total = [ov[m]["total_training_time_s"]["mean"] or 0.0 for m in methods]
    spec = [(ov[m].get(ov[m]["method_specific_timer"] or "", {}) or {}).get("mean") or 0.0
            for m in methods]
    a1.bar(methods, total, label="total training", color="lightgray")
    a1.bar(methods, spec, label="method-specific (critic / pairs / groups / labels / table)")
    a1.set_ylabel("seconds (mean over seeds)")
    a1.set_title("training time")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3, axis="y")
    dec = [(ov[m]["controller_overhead_ms"]["mean"] or 0.0) * 1000 for m in methods]
    a2.bar(methods, dec, color="tab:orange")
    a2.set_ylabel("microseconds per decision (batch 1, median)")
    a2.set_title("decision overhead through the engine")
    a2.grid(alpha=0.3, axis="y")
    fig.suptitle("E5 overhead")
    fig.savefig(path, dpi=110, format="png")


def plot_e5_stability(st: dict[str, Any], path: str | Path) -> None:
    import numpy as np

    methods = list(st)
    x = np.arange(len(methods))
    fig, ax = figure(1, 1, (9, 4.8))
    ax.bar(x - 0.2, [st[m]["utility_std_across_seeds"] for m in methods], 0.4,
           label="final test utility: std across seeds")
    ax.bar(x + 0.2, [st[m]["utility_std_within_run_second_half"]["mean"] or 0.0
                     for m in methods], 0.4,
           label="validation utility: std within a run (second half)")
    ax.set_xticks(x, methods)
    ax.set_ylabel("std of utility (mean reward)")
    ax.set_title("E5 stability")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, dpi=110, format="png")
