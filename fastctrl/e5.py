"""E5 analysis: turn finished (method, seed) runs into the comparison's JSON and report.

Inputs are each run's ``training_stats.json`` (validation curves at regular env_step
intervals, timers, val references) and ``eval_results.json`` (test split, per budget, through
the decision engine). Every number in the outputs is read from those files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CURVE_METRICS = ("utility", "quality_mean", "latency_p95", "slo_violation_rate", "reward_std")
METHOD_TIMERS = {"ppo": "critic_time_s", "dpo": "pair_generation_s", "grpo": "group_generation_s",
                 "supervised": "label_generation_s", "lut": "table_build_s"}


def load_runs(run_dirs: dict[tuple[str, int], Path]) -> dict[str, dict[int, dict[str, Any]]]:
    """``{method: {seed: {"stats": ..., "eval": ...}}}`` from run directories."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for (method, seed), d in sorted(run_dirs.items()):
        stats = json.loads((d / "training_stats.json").read_text())
        ev = json.loads((d / "eval_results.json").read_text())
        out.setdefault(method, {})[seed] = {"stats": stats, "eval": ev}
    return out


def _mean_std(xs: list[float]) -> dict[str, float | None]:
    a = np.asarray([x for x in xs if x is not None], dtype=np.float64)
    if len(a) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(len(a))}


def training_curves(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    return {m: {str(seed): [{"env_steps": h["env_steps"], "wall_s": h["wall_s"],
                             **{k: h[k] for k in CURVE_METRICS}}
                            for h in r["stats"]["history"]]
                for seed, r in seeds.items()}
            for m, seeds in runs.items()}


def first_reach(history: list[dict[str, Any]], ok) -> int | None:
    for h in history:
        if ok(h):
            return int(h["env_steps"])
    return None


def sample_efficiency(runs: dict[str, dict[int, dict[str, Any]]], slo_threshold: float,
                      quality_fraction: float) -> dict[str, Any]:
    """env_steps until the validation curve first has SLO violation <= ``slo_threshold``, first
    has quality >= ``quality_fraction`` x the full model's, and first has both."""
    out: dict[str, Any] = {"thresholds": {"slo_violation_rate_max": slo_threshold,
                                          "quality_fraction_of_full_model": quality_fraction},
                           "methods": {}}
    for m, seeds in runs.items():
        per_seed: dict[str, dict[str, int | None]] = {}
        for seed, r in seeds.items():
            hist = r["stats"]["history"]
            q_full = r["stats"]["val_references"]["full"]["quality_mean"]
            q_need = quality_fraction * q_full
            per_seed[str(seed)] = {
                "slo": first_reach(hist, lambda h: h["slo_violation_rate"] <= slo_threshold),
                "quality": first_reach(hist, lambda h, q=q_need: h["quality_mean"] >= q),
                "both": first_reach(hist, lambda h, q=q_need: h["quality_mean"] >= q
                                    and h["slo_violation_rate"] <= slo_threshold),
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


def final_frontiers(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per method (mean over seeds) and for the oracle / best-static baselines: the
    (latency_p95, quality) point at each budget of the test split."""
    def points(results: list[dict[str, Any]]) -> list[dict[str, float]]:
        budgets = list(results[0]["per_budget"])
        return [{"budget_ratio": float(b),
                 "latency_p95": float(np.mean([r["per_budget"][b]["latency_p95"]
                                               for r in results])),
                 "quality_mean": float(np.mean([r["per_budget"][b]["quality_mean"]
                                                for r in results])),
                 "utility": float(np.mean([r["per_budget"][b]["utility"] for r in results])),
                 "slo_violation_rate": float(np.mean([r["per_budget"][b]["slo_violation_rate"]
                                                      for r in results]))}
                for b in budgets]

    out: dict[str, Any] = {"methods": {}, "baselines": {}}
    any_run = None
    for m, seeds in runs.items():
        evs = [r["eval"] for r in seeds.values()]
        out["methods"][m] = points([e["controller"] for e in evs])
        any_run = evs
    if any_run:
        for b in ("oracle", "best_static"):
            out["baselines"][b] = points([e["baselines"][b] for e in any_run])
    return out


def overhead_analysis(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    out = {}
    for m, seeds in runs.items():
        timers = [r["stats"]["timers"] for r in seeds.values()]
        keys = sorted({k for t in timers for k in t})
        out[m] = {
            "method_specific_timer": METHOD_TIMERS.get(m),
            **{k: _mean_std([t.get(k, 0.0) for t in timers]) for k in keys},
            "total_training_time_s": _mean_std([r["stats"]["train_time_s"]
                                                for r in seeds.values()]),
            "controller_overhead_ms": _mean_std([r["eval"]["controller"]
                                                 ["controller_overhead_ms"]
                                                 for r in seeds.values()]),
            "engine": sorted({r["eval"]["engine"] for r in seeds.values()}),
            "env_steps": _mean_std([r["eval"]["env_steps"] for r in seeds.values()]),
        }
    return out


def stability_analysis(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Across seeds: std of the final test utility. Within a run: std of the validation
    utility over the second half of its evaluation points (how much it still moves), and the
    mean reward std across contexts at the end."""
    out = {}
    for m, seeds in runs.items():
        finals = [r["eval"]["controller"]["overall"]["utility"] for r in seeds.values()]
        within = []
        for r in seeds.values():
            u = np.asarray([h["utility"] for h in r["stats"]["history"]], dtype=np.float64)
            within.append(float(u[len(u) // 2:].std()) if len(u) > 1 else 0.0)
        out[m] = {
            "final_utility": _mean_std(finals),
            "utility_std_across_seeds": float(np.std(finals)),
            "utility_std_within_run_second_half": _mean_std(within),
            "reward_std_across_contexts": _mean_std(
                [r["eval"]["controller"]["overall"]["reward_std"] for r in seeds.values()]),
        }
    return out


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def report(meta: dict[str, Any], eff: dict[str, Any], fr: dict[str, Any], ov: dict[str, Any],
           st: dict[str, Any]) -> str:
    """e5_report.md: the tables and a short answer to each question, from these numbers."""
    methods = list(st)
    lines = ["# E5: which training method, and why", "",
             f"Profile: {meta['profile']}. Seeds: {meta['seeds']}. Reward: {meta['reward']}. "
             f"Budgets: {meta['budget_ratios']} x the {meta['budget_baseline']} baseline. "
             f"Config grid: {meta['n_configs']} configurations per request. Env-step budget per "
             f"run: {meta['max_env_steps'] or 'none'}. Evaluation: validation every "
             f"{meta['eval_every_steps']} env_steps; final numbers on the held-out test split "
             "through each method's decision engine.", "",
             "## Sample efficiency (env_steps, mean ± std over seeds)", "",
             f"Thresholds: SLO violation <= {eff['thresholds']['slo_violation_rate_max']:.0%}, "
             f"quality >= {eff['thresholds']['quality_fraction_of_full_model']:.0%} of the full "
             "model's.", "",
             "| method | to SLO threshold | to quality threshold | to both |", "|---|---|---|---|"]
    for m in methods:
        e = eff["methods"][m]
        cells = []
        for key in ("slo", "quality", "both"):
            c = e[key]
            cells.append(f"{c['status']}" if c["mean"] is None else
                         f"{c['mean']:,.0f} ± {c['std']:,.0f} ({c['reached']})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "## Overhead", "",
              "| method | method-specific time s | total training s | decision ms | env_steps |",
              "|---|---|---|---|---|"]
    for m in methods:
        o = ov[m]
        key = o["method_specific_timer"]
        spec = o.get(key, {}).get("mean") if key else None
        lines.append(f"| {m} | {key or '-'}: {_fmt(spec, '.1f')} | "
                     f"{_fmt(o['total_training_time_s']['mean'], '.1f')} | "
                     f"{_fmt(o['controller_overhead_ms']['mean'], '.4f')} | "
                     f"{_fmt(o['env_steps']['mean'], ',.0f')} |")
    budgets = [p["budget_ratio"] for p in next(iter(fr["methods"].values()))]
    lines += ["", "## Final metrics per budget (test split, mean over seeds)", "",
              "| method | " + " | ".join(f"{b:.2f}: utility / quality / SLO" for b in budgets)
              + " |", "|---|" + "---|" * len(budgets)]
    for name, pts in [*fr["methods"].items(), *fr["baselines"].items()]:
        lines.append(f"| {name} | " + " | ".join(
            f"{p['utility']:.3f} / {p['quality_mean']:.3f} / {p['slo_violation_rate']:.1%}"
            for p in pts) + " |")
    lines += ["", "## Stability", "", "| method | final utility | std across seeds | "
              "within-run std (2nd half) |", "|---|---|---|---|"]
    for m in methods:
        s = st[m]
        lines.append(f"| {m} | {_fmt(s['final_utility']['mean'])} | "
                     f"{s['utility_std_across_seeds']:.4f} | "
                     f"{_fmt(s['utility_std_within_run_second_half']['mean'], '.4f')} |")

    # ---- answers, computed from the tables above
    def best(keyfn, candidates, reverse=False):
        vals = [(keyfn(m), m) for m in candidates if keyfn(m) is not None]
        return sorted(vals, reverse=reverse)[0] if vals else (None, None)

    eff_both = best(lambda m: eff["methods"][m]["both"]["mean"]
                    if eff["methods"][m]["both"]["status"] == "reached" else None, methods)
    stable = best(lambda m: st[m]["utility_std_across_seeds"], methods)
    cheap_train = best(lambda m: ov[m]["total_training_time_s"]["mean"], methods)
    cheap_dec = best(lambda m: ov[m]["controller_overhead_ms"]["mean"], methods)
    top = best(lambda m: st[m]["final_utility"]["mean"], methods, reverse=True)
    oracle_u = np.mean([p["utility"] for p in fr["baselines"].get("oracle", [])]) \
        if fr["baselines"].get("oracle") else None
    lines += ["", "## Answers", ""]
    if eff_both[1] is None:
        firsts = []
        for key, label in (("slo", "the SLO threshold"), ("quality", "the quality threshold")):
            v, m = best(lambda m, key=key: eff["methods"][m][key]["mean"]
                        if eff["methods"][m][key]["status"] == "reached" else None, methods)
            firsts.append(f"{label}: {m} first ({v:,.0f} env_steps)" if m else
                          f"{label}: no method on every seed")
        lines.append("1. **Sample efficiency**: no method reached both thresholds on every "
                     "seed within the budget; " + "; ".join(firsts) + ".")
    else:
        lines.append(f"1. **Sample efficiency**: {eff_both[1]} reached both thresholds first "
                     f"({eff_both[0]:,.0f} env_steps on average).")
    lines.append(f"2. **Stability**: {stable[1]} has the smallest spread of final utility "
                 f"across seeds ({stable[0]:.4f}).")
    lines.append(f"3. **Overhead**: {cheap_train[1]} is cheapest to train "
                 f"({cheap_train[0]:.1f} s); the cheapest decision is {cheap_dec[1]} "
                 f"({cheap_dec[0]:.4f} ms).")
    gap = f" (oracle {oracle_u:.3f})" if oracle_u is not None else ""
    lines.append(f"4. **Final frontiers**: {top[1]} has the best mean test utility "
                 f"({top[0]:.3f}){gap}; per-budget points are in e5_final_frontiers.json and "
                 "figures/e5_final_frontiers.png.")
    expected = {"sample efficiency": eff_both[1], "stability": stable[1],
                "training overhead": cheap_train[1]}
    contra = [k for k, v in expected.items() if v != "grpo"]
    lines += ["", "Expected findings were: GRPO most sample-efficient, most stable, low overhead. "
              + ("The data agree." if not contra else
                 "The data contradict this for: " + ", ".join(
                     f"{k} (best: {expected[k] or 'none'})" for k in contra) + ".")]
    return "\n".join(lines) + "\n"
