"""``e5_report.md``: the E5 tables and a short answer to each question, computed from the
analysis (:mod:`fastctrl.compare.analysis`), never typed in."""

from __future__ import annotations

from typing import Any

import numpy as np


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
