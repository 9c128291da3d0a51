"""E5 analysis: turn finished (method, seed) runs into the comparison's JSON and report.

Inputs are each run's ``training_stats.json`` (validation curves at regular env_step
intervals, timers, val references) and ``eval_results.json`` (test split, per budget, through
the decision engine). Every number in the outputs is read from those files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..env import PolicyEval
from ..train.records import (
    CURVE_METRICS,
    CurvePoint,
    EvalResults,
    TrainingStats,
    read_eval_results,
    read_training_stats,
)


@dataclass
class RunRecords:
    """What one finished (method, seed) run wrote."""

    stats: TrainingStats
    eval: EvalResults


Runs = dict[str, dict[int, RunRecords]]


def load_runs(run_dirs: dict[tuple[str, int], Path]) -> Runs:
    """``{method: {seed: RunRecords}}`` from run directories."""
    out: Runs = {}
    for (method, seed), d in sorted(run_dirs.items()):
        out.setdefault(method, {})[seed] = RunRecords(read_training_stats(d),
                                                      read_eval_results(d))
    return out


def _mean_std(xs: list[float]) -> dict[str, float | None]:
    a = np.asarray([x for x in xs if x is not None], dtype=np.float64)
    if len(a) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(len(a))}


def training_curves(runs: Runs) -> dict[str, Any]:
    return {m: {str(seed): [{"env_steps": h.env_steps, "wall_s": h.wall_s,
                             **{k: getattr(h, k) for k in CURVE_METRICS}}
                            for h in r.stats.history]
                for seed, r in seeds.items()}
            for m, seeds in runs.items()}


def first_reach(history: list[CurvePoint], ok) -> int | None:
    for h in history:
        if ok(h):
            return int(h.env_steps)
    return None


def sample_efficiency(runs: Runs, slo_threshold: float,
                      quality_fraction: float) -> dict[str, Any]:
    """env_steps until the validation curve first has SLO violation <= ``slo_threshold``, first
    has quality >= ``quality_fraction`` x the full model's, and first has both."""
    out: dict[str, Any] = {"thresholds": {"slo_violation_rate_max": slo_threshold,
                                          "quality_fraction_of_full_model": quality_fraction},
                           "methods": {}}
    for m, seeds in runs.items():
        per_seed: dict[str, dict[str, int | None]] = {}
        for seed, r in seeds.items():
            hist = r.stats.history
            q_need = quality_fraction * r.stats.val_references["full"].quality_mean
            per_seed[str(seed)] = {
                "slo": first_reach(hist, lambda h: h.slo_violation_rate <= slo_threshold),
                "quality": first_reach(hist, lambda h, q=q_need: h.quality_mean >= q),
                "both": first_reach(hist, lambda h, q=q_need: h.quality_mean >= q
                                    and h.slo_violation_rate <= slo_threshold),
            }
        summary = {}
        for key in ("slo", "quality", "both"):
            vals = [v[key] for v in per_seed.values()]
            reached = [v for v in vals if v is not None]
            summary[key] = {**_mean_std(reached), "reached": f"{len(reached)}/{len(vals)}",
                            "status": "reached" if len(reached) == len(vals) else
                            ("not reached" if not reached else "reached by some seeds")}
        out["methods"][m] = {"per_seed": per_seed, **summary}
    return out


def final_frontiers(runs: Runs) -> dict[str, Any]:
    """Per method (mean over seeds) and for the oracle / best-static baselines: the
    (latency_p95, quality) point at each budget of the test split."""
    def points(results: list[PolicyEval]) -> list[dict[str, float]]:
        def mean(b: str, key: str) -> float:
            return float(np.mean([getattr(r.per_budget[b], key) for r in results]))

        return [{"budget_ratio": float(b), "latency_p95": mean(b, "latency_p95"),
                 "quality_mean": mean(b, "quality_mean"), "utility": mean(b, "utility"),
                 "slo_violation_rate": mean(b, "slo_violation_rate")}
                for b in results[0].per_budget]

    out: dict[str, Any] = {"methods": {}, "baselines": {}}
    any_run: list[EvalResults] = []
    for m, seeds in runs.items():
        any_run = [r.eval for r in seeds.values()]
        out["methods"][m] = points([e.controller for e in any_run])
    if any_run:
        for b in ("oracle", "best_static"):
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
            "controller_overhead_ms": _mean_std([r.eval.controller.controller_overhead_ms
                                                 for r in seeds.values()]),
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
            within.append(float(u[len(u) // 2:].std()) if len(u) > 1 else 0.0)
        out[m] = {
            "final_utility": _mean_std(finals),
            "utility_std_across_seeds": float(np.std(finals)),
            "utility_std_within_run_second_half": _mean_std(within),
            "reward_std_across_contexts": _mean_std(
                [r.eval.controller.overall.reward_std for r in seeds.values()]),
        }
    return out
