"""E5 analysis: turn finished (method, seed) runs into the comparison's JSON and report.

Inputs are each run's ``training_stats.json`` (validation curves at regular env_step
intervals, timers, val references) and ``eval_results.json`` (test split, per budget, through
the decision engine). Every number in the outputs is read from those files.

:func:`statistics` is ``e5_statistics.json``: per metric (:func:`metric_specs`), the per-seed
values of every method with their IQM and 95% CI (:mod:`.stats`), the baselines' values, and
the probability of improvement between every pair of methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..env import Metrics, PolicyEval
from ..train.records import (
    CURVE_METRICS,
    CurvePoint,
    EvalResults,
    TrainingStats,
    read_eval_results,
    read_training_stats,
)
from . import stats as S

#: the baselines the report lists, in this order, when the runs have them
BASELINES = ("oracle", "oracle_expected", "best_static", "full", "random")


@dataclass
class RunRecords:
    """What one finished (method, seed) run wrote."""

    stats: TrainingStats
    eval: EvalResults


Runs = dict[str, dict[int, RunRecords]]


def load_runs(run_dirs: dict[tuple[str, int], Path]) -> Runs:
    """``{method: {seed: RunRecords}}`` from run directories (methods in the order given,
    seeds ascending)."""
    out: Runs = {}
    for (method, seed), d in sorted(run_dirs.items(), key=lambda kv: kv[0][1]):
        out.setdefault(method, {})[seed] = RunRecords(read_training_stats(d), read_eval_results(d))
    order = list(dict.fromkeys(m for m, _ in run_dirs))
    return {m: out[m] for m in order}


def _mean_std(xs: list[float]) -> dict[str, float | None]:
    a = np.asarray([x for x in xs if x is not None], dtype=np.float64)
    if len(a) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(len(a))}


def training_curves(runs: Runs) -> dict[str, Any]:
    return {
        m: {
            str(seed): [
                {
                    "env_steps": h.env_steps,
                    "wall_s": h.wall_s,
                    **{k: getattr(h, k) for k in CURVE_METRICS},
                }
                for h in r.stats.history
            ]
            for seed, r in seeds.items()
        }
        for m, seeds in runs.items()
    }


def validation_selection(runs: Runs) -> dict[str, Any]:
    """Which method the validation split picks, as a user without the test split would.

    Each run keeps its best validation point (the policy it is evaluated and served with), so
    a method's validation score is that point's utility, averaged over its seeds; the method
    with the highest mean is ``chosen``. The test split is not read."""
    per_method: dict[str, Any] = {}
    for m, seeds in runs.items():
        best = {
            str(seed): max(h.utility for h in r.stats.history)
            for seed, r in seeds.items()
            if r.stats.history
        }
        per_method[m] = {"per_seed": best, **_mean_std(list(best.values()))}
    ranked = sorted(
        (m for m in per_method if per_method[m]["mean"] is not None),
        key=lambda m: -per_method[m]["mean"],
    )
    return {
        "rule": "highest mean over seeds of each run's best validation utility",
        "chosen": ranked[0] if ranked else None,
        "ranking": ranked,
        "methods": per_method,
    }


def first_reach(history: list[CurvePoint], ok) -> int | None:
    for h in history:
        if ok(h):
            return int(h.env_steps)
    return None


def sample_efficiency(runs: Runs, slo_threshold: float, quality_fraction: float) -> dict[str, Any]:
    """env_steps until the validation curve first has SLO violation <= ``slo_threshold``, first
    has quality >= ``quality_fraction`` x the full model's, and first has both."""
    out: dict[str, Any] = {
        "thresholds": {
            "slo_violation_rate_max": slo_threshold,
            "quality_fraction_of_full_model": quality_fraction,
        },
        "methods": {},
    }
    for m, seeds in runs.items():
        per_seed: dict[str, dict[str, int | None]] = {}
        for seed, r in seeds.items():
            hist = r.stats.history
            q_need = quality_fraction * r.stats.val_references["full"].quality_mean
            per_seed[str(seed)] = {
                "slo": first_reach(hist, lambda h: h.slo_violation_rate <= slo_threshold),
                "quality": first_reach(hist, lambda h, q=q_need: h.quality_mean >= q),
                "both": first_reach(
                    hist,
                    lambda h, q=q_need: (
                        h.quality_mean >= q and h.slo_violation_rate <= slo_threshold
                    ),
                ),
            }
        summary = {}
        for key in ("slo", "quality", "both"):
            vals = [v[key] for v in per_seed.values()]
            reached = [v for v in vals if v is not None]
            summary[key] = {
                **_mean_std(reached),
                "reached": f"{len(reached)}/{len(vals)}",
                "status": "reached"
                if len(reached) == len(vals)
                else ("not reached" if not reached else "reached by some seeds"),
            }
        out["methods"][m] = {"per_seed": per_seed, **summary}
    return out


def final_frontiers(runs: Runs) -> dict[str, Any]:
    """Per method (mean over seeds) and for the oracle / best-static baselines: the
    (latency_p95, quality) point at each budget of the test split."""

    def points(results: list[PolicyEval]) -> list[dict[str, float]]:
        def mean(b: str, key: str) -> float:
            return float(np.mean([getattr(r.per_budget[b], key) for r in results]))

        return [
            {
                "budget_ratio": float(b),
                "latency_p95": mean(b, "latency_p95"),
                "quality_mean": mean(b, "quality_mean"),
                "utility": mean(b, "utility"),
                "slo_violation_rate": mean(b, "slo_violation_rate"),
            }
            for b in results[0].per_budget
        ]

    out: dict[str, Any] = {"methods": {}, "baselines": {}}
    any_run: list[EvalResults] = []
    for m, seeds in runs.items():
        any_run = [r.eval for r in seeds.values()]
        out["methods"][m] = points([e.controller for e in any_run])
    if any_run:
        for b in BASELINES:
            if all(b in e.baselines for e in any_run):
                out["baselines"][b] = points([e.baselines[b] for e in any_run])
    return out


def overhead_analysis(runs: Runs) -> dict[str, Any]:
    out = {}
    for m, seeds in runs.items():
        timers = [r.stats.timers for r in seeds.values()]
        keys = sorted({k for t in timers for k in t})
        out[m] = {
            "method_specific_timer": next(iter(seeds.values())).stats.cost_timer,
            **{k: _mean_std([t.get(k, 0.0) for t in timers]) for k in keys},
            "total_training_time_s": _mean_std([r.stats.train_time_s for r in seeds.values()]),
            "controller_overhead_ms": _mean_std(
                [r.eval.controller.controller_overhead_ms for r in seeds.values()]
            ),
            "engine": sorted({r.eval.engine for r in seeds.values()}),
            "env_steps": _mean_std([r.eval.env_steps for r in seeds.values()]),
        }
    return out


def stability_analysis(runs: Runs) -> dict[str, Any]:
    """Across seeds: std of the final test utility. Within a run: std of the validation
    utility over the second half of its evaluation points (how much it still moves), and the
    mean reward std across contexts at the end."""
    out = {}
    for m, seeds in runs.items():
        finals = [r.eval.controller.overall.utility for r in seeds.values()]
        within = []
        for r in seeds.values():
            u = np.asarray([h.utility for h in r.stats.history], dtype=np.float64)
            within.append(float(u[len(u) // 2 :].std()) if len(u) > 1 else 0.0)
        out[m] = {
            "final_utility": _mean_std(finals),
            "utility_std_across_seeds": float(np.std(finals)),
            "utility_std_within_run_second_half": _mean_std(within),
            "reward_std_across_contexts": _mean_std(
                [r.eval.controller.overall.reward_std for r in seeds.values()]
            ),
        }
    return out


# ---------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class MetricSpec:
    """One per-seed metric of the statistics."""

    label: str
    higher_is_better: bool
    statistic: Literal["iqm", "std"] = "iqm"
    """``iqm``: IQM over seeds; ``std``: the spread across seeds (stability)."""
    fmt: str = ".3f"


def budget_keys(runs: Runs) -> list[str]:
    any_run = next(iter(next(iter(runs.values())).values()))
    return list(any_run.eval.controller.per_budget)


def metric_specs(budgets: list[str]) -> dict[str, MetricSpec]:
    """Every metric ``e5_statistics.json`` has, by name (the names claims refer to)."""
    specs = {
        "final_utility": MetricSpec("test utility (mean reward)", True),
        "final_quality": MetricSpec("test quality (mean accuracy)", True),
        "final_slo_violation": MetricSpec("test SLO violation rate", False, fmt=".1%"),
        "gap_to_oracle_pct": MetricSpec("gap to the oracle's test utility, %", False, fmt=".1f"),
        "gap_closed": MetricSpec("share of the best-static -> oracle gap closed (test)", True),
        "final_utility_std": MetricSpec(
            "std of the final test utility across seeds", False, "std", ".4f"
        ),
        "within_run_utility_std": MetricSpec(
            "std of the validation utility over the second half of a run", False, fmt=".4f"
        ),
        "env_steps_to_slo": MetricSpec("env_steps to the SLO threshold", False, fmt=",.0f"),
        "env_steps_to_quality": MetricSpec("env_steps to the quality threshold", False, fmt=",.0f"),
        "env_steps_to_both": MetricSpec("env_steps to both thresholds", False, fmt=",.0f"),
        "train_s_per_1k_env_steps": MetricSpec(
            "training wall time per 1,000 env_steps, s", False, fmt=".3f"
        ),
        "decision_us": MetricSpec("decision latency at batch 1 (median), us", False, fmt=".1f"),
        "env_steps": MetricSpec("env_steps used", False, fmt=",.0f"),
    }
    for b in budgets:
        specs[f"utility@{b}"] = MetricSpec(f"test utility at budget {b}", True)
        specs[f"quality@{b}"] = MetricSpec(f"test quality at budget {b}", True)
        specs[f"slo_violation@{b}"] = MetricSpec(
            f"test SLO violation at budget {b}", False, fmt=".1%"
        )
        specs[f"gap_closed@{b}"] = MetricSpec(f"share of the gap closed at budget {b}", True)
    return specs


def _eval_metrics(e: PolicyEval, budgets: list[str]) -> dict[str, float | None]:
    def block(m: Metrics, suffix: str = "") -> dict[str, float | None]:
        if suffix:
            return {
                f"utility{suffix}": m.utility,
                f"quality{suffix}": m.quality_mean,
                f"slo_violation{suffix}": m.slo_violation_rate,
                f"gap_closed{suffix}": m.gap_closed,
            }
        return {
            "final_utility": m.utility,
            "final_quality": m.quality_mean,
            "final_slo_violation": m.slo_violation_rate,
            "gap_to_oracle_pct": m.gap_to_oracle_pct,
            "gap_closed": m.gap_closed,
        }

    out = block(e.overall)
    for b in budgets:
        if b in e.per_budget:
            out.update(block(e.per_budget[b], f"@{b}"))
    return out


def _budget(r: RunRecords) -> int:
    """The run's env-step budget (``--max_env_steps``): the common censoring point of the
    to-threshold metrics."""
    budget = (r.stats.config.get("loop") or {}).get("max_env_steps") or 0
    return int(budget or (r.stats.history[-1].env_steps if r.stats.history else 0))


def seed_values(
    runs: Runs, slo_threshold: float, quality_fraction: float
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, int]]]:
    """``({metric: {method: [value per seed]}}, {threshold metric: {method: seeds that
    reached it}})``, seeds in ascending order."""
    budgets = budget_keys(runs)
    values: dict[str, dict[str, list[float]]] = {}
    reached: dict[str, dict[str, int]] = {}

    def add(metric: str, method: str, v: float | None) -> None:
        if v is not None and np.isfinite(v):
            values.setdefault(metric, {}).setdefault(method, []).append(float(v))

    for m, seeds in runs.items():
        for _, r in sorted(seeds.items()):
            for k, v in _eval_metrics(r.eval.controller, budgets).items():
                add(k, m, v)
            hist = r.stats.history
            u = np.asarray([h.utility for h in hist], dtype=np.float64)
            add("within_run_utility_std", m, float(u[len(u) // 2 :].std()) if len(u) > 1 else 0.0)
            q_need = quality_fraction * r.stats.val_references["full"].quality_mean
            checks = {
                "slo": lambda h: h.slo_violation_rate <= slo_threshold,
                "quality": lambda h, q=q_need: h.quality_mean >= q,
                "both": lambda h, q=q_need: (
                    h.quality_mean >= q and h.slo_violation_rate <= slo_threshold
                ),
            }
            for key, ok in checks.items():
                steps = first_reach(hist, ok)
                reached.setdefault(f"env_steps_to_{key}", {}).setdefault(m, 0)
                if steps is not None:
                    reached[f"env_steps_to_{key}"][m] += 1
                # censored at the common budget: a seed that never gets there counts as the
                # budget, and one that gets there only past it (the last update overshoots)
                # counts no better
                add(
                    f"env_steps_to_{key}",
                    m,
                    _budget(r) if steps is None else min(steps, _budget(r)),
                )
            if r.eval.env_steps > 0:
                add("train_s_per_1k_env_steps", m, 1000.0 * r.stats.train_time_s / r.eval.env_steps)
            add("env_steps", m, r.eval.env_steps)
            ms = r.eval.controller.controller_overhead_ms
            add("decision_us", m, 1000.0 * ms if ms is not None else None)
        if m in values.get("final_utility", {}):
            values.setdefault("final_utility_std", {})[m] = list(values["final_utility"][m])
    return values, reached


def baseline_values(runs: Runs) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{baseline: {metric: {"value", "spread", "n_runs"}}}`` over every run: the value is the
    median over runs, the spread max - min (0 when the data seed is shared: the baselines do not
    depend on the training seed, except the random policy)."""
    budgets = budget_keys(runs)
    collected: dict[str, dict[str, list[float]]] = {}
    for seeds in runs.values():
        for r in seeds.values():
            for name, e in r.eval.baselines.items():
                for k, v in _eval_metrics(e, budgets).items():
                    if v is not None and np.isfinite(v):
                        collected.setdefault(name, {}).setdefault(k, []).append(float(v))
    ordered = [b for b in BASELINES if b in collected] + sorted(
        b for b in collected if b not in BASELINES
    )
    return {
        b: {
            k: {"value": float(np.median(v)), "spread": float(np.ptp(v)), "n_runs": len(v)}
            for k, v in collected[b].items()
        }
        for b in ordered
    }


def statistics(
    runs: Runs,
    slo_threshold: float,
    quality_fraction: float,
    *,
    seed: int = 0,
    reps: int = S.DEFAULT_REPS,
) -> dict[str, Any]:
    """``e5_statistics.json``: IQM [95% CI] over seeds of every metric per method, the
    baselines' values and P(X > Y) of final test utility between every pair of methods."""
    values, reached = seed_values(runs, slo_threshold, quality_fraction)
    out = summarize(
        values,
        metric_specs(budget_keys(runs)),
        seeds={m: sorted(s) for m, s in runs.items()},
        baselines=baseline_values(runs),
        reached=reached,
        seed=seed,
        reps=reps,
    )
    out["validation_selection"] = validation_selection(runs)
    out["method"]["thresholds"] = {
        "slo_violation_rate_max": slo_threshold,
        "quality_fraction_of_full_model": quality_fraction,
        "not_reached": "counts as the env-step budget",
    }
    return out


def summarize(
    values: dict[str, dict[str, list[float]]],
    specs: dict[str, MetricSpec],
    *,
    seeds: dict[str, list[int]],
    baselines: dict[str, dict[str, dict[str, float | int]]] | None = None,
    reached: dict[str, dict[str, int]] | None = None,
    seed: int = 0,
    reps: int = S.DEFAULT_REPS,
) -> dict[str, Any]:
    """The statistics of per-seed ``values`` (``{metric: {method: [value per seed]}}``): what
    :func:`statistics` computes from runs, callable on any values."""
    reached = reached or {}
    methods = list(seeds)
    out_metrics: dict[str, Any] = {}
    for name, spec in specs.items():
        per_method = {}
        for m in methods:
            v = values.get(name, {}).get(m)
            if not v:
                continue
            fn = S.iqm if spec.statistic == "iqm" else S.spread
            est = fn(v, key=f"{name}:{m}", seed=seed, reps=reps)
            per_method[m] = {**est.to_dict(), "values": list(v)}
            if name in reached:
                per_method[m]["reached"] = reached[name][m]
        out_metrics[name] = {
            "label": spec.label,
            "higher_is_better": spec.higher_is_better,
            "statistic": spec.statistic,
            "fmt": spec.fmt,
            "methods": per_method,
        }
    finals = values.get("final_utility", {})
    poi: dict[str, dict[str, Any]] = {}
    for x in methods:
        for y in methods:
            if x != y and x in finals and y in finals:
                poi.setdefault(x, {})[y] = S.probability_of_improvement(
                    finals[x], finals[y], key=f"final_utility:{x}>{y}", seed=seed, reps=reps
                ).to_dict()
    return {
        "method": {
            "aggregate": "IQM over seeds (rliable.metrics.aggregate_iqm: the 25%-trimmed "
            "mean); std across seeds for final_utility_std",
            "interval": f"{S.CONFIDENCE:.0%} percentile bootstrap over seeds (stratified by "
            "method; scipy.stats.bootstrap)",
            "reps": reps,
            "seed": seed,
            "confidence": S.CONFIDENCE,
            "not_distinguishable": "the two intervals overlap",
        },
        "seeds": seeds,
        "metrics": out_metrics,
        "baselines": baselines or {},
        "probability_of_improvement": {"metric": "final_utility", "pairs": poi},
    }


def estimate(stats: dict[str, Any], metric: str, name: str) -> S.Estimate | None:
    """The estimate of a method, or a baseline's value (as a point), from
    ``e5_statistics.json``; None when it has none."""
    block = stats["metrics"].get(metric, {}).get("methods", {}).get(name)
    if block is not None:
        return S.Estimate.from_dict(block)
    base = stats["baselines"].get(name, {}).get(metric)
    return S.point(base["value"]) if base is not None else None
