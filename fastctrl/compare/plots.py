"""The E5 comparison's figures (matplotlib, without pyplot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from ..train.plots import figure


def _colors(methods: list[str]) -> dict[str, Any]:
    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot_e5_learning_curves(
    curves: dict[str, dict[str, list[dict[str, Any]]]], path: str | Path
) -> None:
    """Utility, SLO violation and quality vs env_steps: mean with a +-1 std band over seeds
    (each seed's curve interpolated onto a common env_steps grid)."""
    import numpy as np

    panels = (
        ("utility", "utility (mean reward)"),
        ("slo_violation_rate", "SLO violation rate"),
        ("quality_mean", "quality (mean accuracy)"),
    )
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
                ys = np.stack(
                    [
                        np.interp(grid, [h["env_steps"] for h in r], [h[key] for h in r])
                        for r in runs
                    ]
                )
            mu, sd = ys.mean(0), ys.std(0)
            ax.plot(
                grid,
                mu,
                color=colors[m],
                label=f"{m} ({len(runs)} seeds)",
                marker="o" if len(grid) == 1 else None,
            )
            ax.fill_between(grid, mu - sd, mu + sd, color=colors[m], alpha=0.2)
            ax.set_xlabel("env_steps (configurations evaluated)")
            ax.set_ylabel(label)
            ax.set_xscale("symlog", linthresh=1e4)
            ax.grid(alpha=0.3)
    axes[0].set_ylim(bottom=max(axes[0].get_ylim()[0], -0.5))
    axes[0].legend(fontsize=8)
    fig.suptitle("E5 learning curves (validation split; mean ± std over seeds)")
    fig.savefig(path, dpi=110, format="png")


def _errbars(
    stats: dict[str, Any], metric: str, methods: list[str]
) -> tuple[list[float], list[list[float]]]:
    """IQM per method and its CI as matplotlib's asymmetric error bars (0 where no CI)."""
    block = stats["metrics"][metric]["methods"]
    pts, lo, hi = [], [], []
    for m in methods:
        e = block.get(m)
        p = e["point"] if e and e["point"] is not None else 0.0
        pts.append(p)
        lo.append(p - e["low"] if e and e["low"] is not None else 0.0)
        hi.append(e["high"] - p if e and e["high"] is not None else 0.0)
    return pts, [lo, hi]


def plot_e5_sample_efficiency(stats: dict[str, Any], path: str | Path) -> None:
    import numpy as np

    methods = list(stats["seeds"])
    keys = (("slo", "SLO threshold"), ("quality", "quality threshold"), ("both", "both"))
    fig, ax = figure(1, 1, (10, 5))
    width = 0.26
    x = np.arange(len(methods))
    for i, (key, label) in enumerate(keys):
        metric = f"env_steps_to_{key}"
        pts, err = _errbars(stats, metric, methods)
        bars = ax.bar(x + (i - 1) * width, pts, width, yerr=err, label=label, capsize=3)
        for bar, m in zip(bars, methods, strict=True):
            e = stats["metrics"][metric]["methods"].get(m, {})
            ax.annotate(
                f"reached {e.get('reached', 0)}/{e.get('n', 0)}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
            )
    ax.set_ylim(top=ax.get_ylim()[1] * 1.2)  # room for the labels above the bars
    ax.set_xticks(x, methods)
    ax.set_ylabel("env_steps to reach (IQM, 95% CI; not reached = the budget)")
    th = stats["method"].get(
        "thresholds",
        {"slo_violation_rate_max": float("nan"), "quality_fraction_of_full_model": float("nan")},
    )
    ax.set_title(
        f"E5 sample efficiency: SLO <= {th['slo_violation_rate_max']:.0%}, quality >= "
        f"{th['quality_fraction_of_full_model']:.0%} of the full model"
    )
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, dpi=110, format="png")


def plot_e5_final_utility(stats: dict[str, Any], path: str | Path) -> None:
    """Final test utility (IQM, 95% CI) with the baselines, and P(row > column)."""
    import numpy as np

    methods = list(stats["seeds"])
    fig, (a1, a2) = figure(1, 2, (13, 5))
    pts, err = _errbars(stats, "final_utility", methods)
    colors = _colors(methods)
    a1.bar(methods, pts, yerr=err, capsize=4, color=[colors[m] for m in methods])
    for b, style in (("oracle", "k--"), ("oracle_expected", "k-."), ("best_static", "k:")):
        v = stats["baselines"].get(b, {}).get("final_utility")
        if v is not None:
            a1.axhline(v["value"], linestyle=style[1:], color="k", label=b.replace("_", " "))
    lo = min(
        [p - e for p, e in zip(pts, err[0], strict=True)]
        + [v["final_utility"]["value"] for v in stats["baselines"].values() if "final_utility" in v]
    )
    a1.set_ylim(bottom=max(lo - 0.05, -0.5))
    a1.set_ylabel("test utility (IQM over seeds, 95% CI)")
    a1.set_title("final test utility")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3, axis="y")
    pairs = stats["probability_of_improvement"]["pairs"]
    mat = np.full((len(methods), len(methods)), np.nan)
    for i, x in enumerate(methods):
        for j, y in enumerate(methods):
            if y in pairs.get(x, {}):
                mat[i, j] = pairs[x][y]["point"]
    im = a2.imshow(mat, vmin=0, vmax=1, cmap="RdBu")
    for i in range(len(methods)):
        for j in range(len(methods)):
            if np.isfinite(mat[i, j]):
                a2.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=8)
    a2.set_xticks(range(len(methods)), methods)
    a2.set_yticks(range(len(methods)), methods)
    a2.set_title("P(row > column), final test utility")
    fig.colorbar(im, ax=a2)
    fig.suptitle("E5 final test utility")
    fig.savefig(path, dpi=110, format="png")


def plot_e5_frontiers(fr: dict[str, Any], path: str | Path) -> None:
    fig, ax = figure(1, 1, (8, 6))
    colors = _colors(list(fr["methods"]))
    for m, pts in fr["methods"].items():
        ax.plot(
            [p["latency_p95"] for p in pts],
            [p["quality_mean"] for p in pts],
            marker="o",
            color=colors[m],
            label=m,
        )
    for b, style in (("oracle", "k--"), ("oracle_expected", "k-."), ("best_static", "k:")):
        pts = fr["baselines"].get(b)
        if pts:
            ax.plot(
                [p["latency_p95"] for p in pts],
                [p["quality_mean"] for p in pts],
                style,
                marker="s",
                label=b.replace("_", " "),
            )
    ax.set_xlabel("latency p95 (ms)")
    ax.set_ylabel("quality (mean accuracy)")
    ax.set_title("E5 final frontiers (test split; one point per budget, mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110, format="png")


def plot_e5_overhead(stats: dict[str, Any], path: str | Path) -> None:
    methods = list(stats["seeds"])
    fig, (a1, a2) = figure(1, 2, (12, 4.8))
    pts, err = _errbars(stats, "train_s_per_1k_env_steps", methods)
    a1.bar(methods, pts, yerr=err, capsize=4, color="tab:gray")
    a1.set_ylabel("seconds per 1,000 env_steps (IQM, 95% CI)")
    a1.set_title("training cost per env_step")
    a1.grid(alpha=0.3, axis="y")
    pts, err = _errbars(stats, "decision_us", methods)
    a2.bar(methods, pts, yerr=err, capsize=4, color="tab:orange")
    a2.set_ylabel("microseconds per decision (batch 1, median; IQM, 95% CI)")
    a2.set_title("decision overhead through the engine")
    a2.grid(alpha=0.3, axis="y")
    fig.suptitle("E5 overhead")
    fig.savefig(path, dpi=110, format="png")


def plot_e5_stability(stats: dict[str, Any], path: str | Path) -> None:
    import numpy as np

    methods = list(stats["seeds"])
    x = np.arange(len(methods))
    fig, ax = figure(1, 1, (9, 4.8))
    pts, err = _errbars(stats, "final_utility_std", methods)
    ax.bar(
        x - 0.2,
        pts,
        0.4,
        yerr=err,
        capsize=3,
        label="final test utility: std across seeds (95% CI)",
    )
    pts, err = _errbars(stats, "within_run_utility_std", methods)
    ax.bar(
        x + 0.2,
        pts,
        0.4,
        yerr=err,
        capsize=3,
        label="validation utility: std within a run, second half (IQM, 95% CI)",
    )
    ax.set_xticks(x, methods)
    ax.set_ylabel("std of utility (mean reward)")
    ax.set_title("E5 stability")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, dpi=110, format="png")
