"""``e5_report.md``: the E5 tables and a short answer to each question, every number read from
the statistics (:func:`fastctrl.compare.analysis.statistics`) with its uncertainty, and the
expected findings (data, :mod:`.findings`) marked held / contradicted / not distinguishable.
Nothing here states a conclusion of its own: each sentence is filled from the tables."""

from __future__ import annotations

from typing import Any

from . import stats as S
from .analysis import estimate
from .findings import ClaimResult

#: the columns of the final test utility table, after the method
FINAL_METRICS = ("final_utility", "final_quality", "final_slo_violation", "gap_to_oracle_pct")


def _est(stats: dict[str, Any], metric: str, name: str) -> S.Estimate | None:
    return estimate(stats, metric, name)


def _cell(stats: dict[str, Any], metric: str, name: str) -> str:
    block = stats["metrics"].get(metric)
    e = _est(stats, metric, name)
    if block is None or e is None:
        return "n/a"
    return e.fmt(block["fmt"]) if name in block["methods"] else format(e.point, block["fmt"])


def _row(*cells: str) -> str:
    """One row of a markdown table."""
    return "| " + " | ".join(cells) + " |"


def _head(*columns: str) -> list[str]:
    """The header row of a markdown table and the rule under it."""
    return [_row(*columns), "|" + "---|" * len(columns)]


def _reached(stats: dict[str, Any], metric: str, m: str) -> str:
    block = stats["metrics"][metric]["methods"].get(m)
    return f"{block['reached']}/{block['n']}" if block else "n/a"


def leader(stats: dict[str, Any], metric: str, methods: list[str]) -> str | None:
    """The method with the best IQM on ``metric`` (None when none has it)."""
    block = stats["metrics"].get(metric)
    if not block:
        return None
    have = [m for m in methods if m in block["methods"]]
    if not have:
        return None
    sign = -1.0 if block["higher_is_better"] else 1.0
    return min(have, key=lambda m: sign * block["methods"][m]["point"])


def standing(stats: dict[str, Any], metric: str, methods: list[str]) -> str:
    """``"grpo 0.737 [0.731, 0.742]; better than lut, ppo; not distinguishable from dpo"``."""
    best = leader(stats, metric, methods)
    if best is None:
        return "no method has this metric"
    block = stats["metrics"][metric]
    hib = block["higher_is_better"]
    mine = _est(stats, metric, best)
    assert mine is not None
    better, tied = [], []
    for m in methods:
        e = _est(stats, metric, m)
        if m == best or e is None or m not in block["methods"]:
            continue
        (better if S.compare(mine, e, hib) == "better" else tied).append(
            f"{m} {e.fmt(block['fmt'])}"
        )
    parts = [f"**{best}** {mine.fmt(block['fmt'])}"]
    if better:
        parts.append("better than " + ", ".join(better))
    if tied:
        parts.append("not distinguishable from " + ", ".join(tied))
    if not better and not tied:
        parts.append("the only method")
    return "; ".join(parts)


def _standings(stats: dict[str, Any], methods: list[str], *clauses: tuple[str, str]) -> str:
    """``"<what>: <the standing on metric>"`` for each ``(what, metric)``, as sentences."""
    return ". ".join(f"{what}: {standing(stats, metric, methods)}" for what, metric in clauses)


def report(
    meta: dict[str, Any],
    stats: dict[str, Any],
    findings: list[ClaimResult],
    findings_source: str = "",
) -> str:
    """e5_report.md from the meta block, ``e5_statistics.json``'s content and the checked
    expected findings."""
    methods = list(stats["seeds"])
    budgets = [k.split("@", 1)[1] for k in stats["metrics"] if k.startswith("utility@")]
    baselines = [b for b in ("oracle", "oracle_expected", "best_static") if b in stats["baselines"]]
    th = stats["method"].get(
        "thresholds",
        {"slo_violation_rate_max": float("nan"), "quality_fraction_of_full_model": float("nan")},
    )
    n_seeds = {len(s) for s in stats["seeds"].values()}
    lines = [
        "# E5: which training method, and why",
        "",
        f"Profile: {meta['profile']} (data seed {meta['data_seed']}, shared by every run). "
        f"Training seeds: {meta['seeds']}. Reward: {meta['reward']}. Budgets: "
        f"{meta['budget_ratios']} x the {meta['budget_baseline']} baseline. Config grid: "
        f"{meta['n_configs']} configurations per request. Env-step budget per run: "
        f"{meta['max_env_steps']:,}; validation every {meta['eval_every_steps']:,} env_steps. "
        "Methods are selected on the validation split; final numbers are on the held-out test "
        "split through each method's decision engine.",
        "",
        f"Statistics: every cell is the IQM over seeds [{stats['method']['confidence']:.0%} "
        f"stratified-bootstrap CI, {stats['method']['reps']:,} resamples, seed "
        f"{stats['method']['seed']}]; two methods whose intervals overlap are *not "
        "distinguishable*. Baselines are single values (with the data seed fixed they do not "
        "depend on the training seed)."
        + (
            " With one seed there are no intervals and nothing is distinguishable."
            if n_seeds == {1}
            else f" With {min(n_seeds)} seeds the intervals are coarse."
            if min(n_seeds) < 5
            else ""
        ),
    ]
    if meta.get("tuned"):
        lines += [
            "",
            f"Hyper-parameters: picked by `python -m fastctrl.tune` (validation split "
            f"only), from {meta['tuned_dir']}: "
            + "; ".join(
                f"{m} ({t['trials']} trials of {t['max_env_steps']} env_steps): "
                + (", ".join(f"{k}={v}" for k, v in t["params"].items()) or "defaults")
                for m, t in meta["tuned"].items()
            )
            + ".",
        ]
    else:
        lines += ["", "Hyper-parameters: each method's defaults."]

    # ---- final utility
    lines += [
        "",
        "## Final test utility",
        "",
        "| method | utility | quality | SLO violation | gap to oracle % | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for m in methods:
        seeds = str(len(stats["seeds"][m]))
        lines.append(_row(m, *(_cell(stats, k, m) for k in FINAL_METRICS), seeds))
    for b in baselines:
        lines.append(_row(f"{b} (baseline)", *(_cell(stats, k, b) for k in FINAL_METRICS), "-"))
    sel = stats.get("validation_selection")
    if sel and sel.get("chosen"):
        lines += [
            "",
            "Chosen on validation (the highest mean over seeds of each run's best "
            f"validation utility; the test split not read): **{sel['chosen']}**; "
            + ", ".join(f"{m} {sel['methods'][m]['mean']:.3f}" for m in sel["ranking"])
            + ".",
        ]
    poi = stats["probability_of_improvement"]["pairs"]
    if len(methods) > 1:
        lines += [
            "",
            "Probability of improvement P(row > column) of final test utility "
            "[95% CI] (0.5: no difference):",
            "",
            *_head("", *methods),
        ]
        for x in methods:
            row = []
            for y in methods:
                e = poi.get(x, {}).get(y)
                row.append("-" if e is None else S.Estimate.from_dict(e).fmt(".2f"))
            lines.append(_row(x, *row))

    # ---- the share of the best-static -> oracle gap each method closes
    if "gap_closed" in stats["metrics"]:
        ref = (
            "the expected-quality oracle"
            if "oracle_expected" in stats["baselines"]
            else "the hindsight oracle"
        )
        lines += [
            "",
            "## Share of the best-static -> oracle gap closed (test split)",
            "",
            f"(utility - best static) / ({ref} - best static), per run, then the IQM "
            "over seeds: 0 is the best static config, 1 the oracle, below 0 worse than "
            "the best static config.",
            "",
            *_head("method", "overall", *budgets),
        ]
        for m in methods:
            per_budget = (_cell(stats, f"gap_closed@{b}", m) for b in budgets)
            lines.append(_row(m, _cell(stats, "gap_closed", m), *per_budget))

    # ---- the reachable reference of the default simulator
    lb = stats.get("length_blind")
    if lb:
        oracle = stats["baselines"].get("oracle", {}).get("final_utility", {}).get("value")
        lines += [
            "",
            "## Gap to the length-blind oracle (test split)",
            "",
            f"The length-blind oracle knows every hidden factor of the simulator but the "
            f"answer's length, which it knows as its task's prior "
            f"(fastctrl/env/length_blind.py): test utility "
            f"{lb['oracle_length_blind']:.3f}"
            + (f", against the hindsight oracle's {oracle:.3f}" if oracle is not None else "")
            + ". A reference a controller can approach, not a bound: it "
            "sees every factor exactly and not the weak length hint in the features. "
            "Gap in % of its utility, IQM over seeds:",
            "",
            "| method | gap to the length-blind oracle % |",
            "|---|---|",
        ]
        for m in methods:
            e = lb["methods"].get(m)
            lines.append(_row(m, S.Estimate.from_dict(e).fmt(".1f") if e else "-"))

    # ---- per budget
    lines += [
        "",
        "## Final metrics per budget (test split)",
        "",
        *_head("method", *(f"{b}: utility / quality" for b in budgets)),
    ]
    for name in [*methods, *baselines]:
        cells = (
            f"{_cell(stats, f'utility@{b}', name)} / {_cell(stats, f'quality@{b}', name)}"
            for b in budgets
        )
        lines.append(_row(name, *cells))

    # ---- sample efficiency
    lines += [
        "",
        "## Sample efficiency (validation curves)",
        "",
        f"env_steps until the validation curve first has SLO violation <= "
        f"{th['slo_violation_rate_max']:.0%}, quality >= "
        f"{th['quality_fraction_of_full_model']:.0%} of the full model's, and both; a "
        "seed that never gets there counts as the whole budget (reached: seeds that did).",
        "",
        "| method | to SLO threshold | to quality threshold | to both |",
        "|---|---|---|---|",
    ]
    for m in methods:
        cells = (
            f"{_cell(stats, f'env_steps_to_{k}', m)} "
            f"(reached {_reached(stats, f'env_steps_to_{k}', m)})"
            for k in ("slo", "quality", "both")
        )
        lines.append(_row(m, *cells))

    # ---- overhead
    lines += [
        "",
        "## Overhead",
        "",
        "Training cost per env_step (the budget every method spends, so methods are "
        "compared per unit of interaction, not by total time) and the decision latency "
        "through the method's decision engine. Times are wall clock on the machine "
        f"that ran the comparison ({meta.get('jobs', '?')} runs in parallel).",
        "",
        "| method | training s per 1k env_steps | env_steps used | decision us |",
        "|---|---|---|---|",
    ]
    for m in methods:
        overhead = ("train_s_per_1k_env_steps", "env_steps", "decision_us")
        lines.append(_row(m, *(_cell(stats, k, m) for k in overhead)))

    # ---- stability
    lines += [
        "",
        "## Stability",
        "",
        "| method | std of final utility across seeds | within-run std (2nd half) |",
        "|---|---|---|",
    ]
    for m in methods:
        stds = (_cell(stats, k, m) for k in ("final_utility_std", "within_run_utility_std"))
        lines.append(_row(m, *stds))

    # ---- answers, each filled from the tables above
    lines += ["", "## Answers", ""]
    reached_any = any(
        v.get("reached", 0) > 0 for v in stats["metrics"]["env_steps_to_both"]["methods"].values()
    )
    if reached_any:
        eff = "fewest env_steps to both thresholds: " + standing(
            stats, "env_steps_to_both", methods
        )
    else:
        eff = (
            f"no method reached both thresholds on any seed within "
            f"{meta['max_env_steps']:,} env_steps; to the SLO threshold: "
            + standing(stats, "env_steps_to_slo", methods)
            + "; to the quality threshold: "
            + standing(stats, "env_steps_to_quality", methods)
        )
    lines.append(f"1. **Sample efficiency**: {eff}.")
    stability = _standings(
        stats,
        methods,
        ("smallest spread of final utility across seeds", "final_utility_std"),
        ("Smallest movement within a run", "within_run_utility_std"),
    )
    lines.append(f"2. **Stability**: {stability}.")
    overhead = _standings(
        stats,
        methods,
        ("least training time per 1k env_steps", "train_s_per_1k_env_steps"),
        ("Fastest decision", "decision_us"),
    )
    lines.append(f"3. **Overhead**: {overhead}.")
    top = leader(stats, "final_utility", methods)
    final = "best final test utility: " + standing(stats, "final_utility", methods)
    if top is not None and "oracle" in stats["baselines"]:
        final += (
            f" (oracle {_cell(stats, 'final_utility', 'oracle')}; {top}'s gap "
            f"{_cell(stats, 'gap_to_oracle_pct', top)}%)"
        )
    if top is not None and poi.get(top):
        final += f". P({top} > other): " + ", ".join(
            f"{y} {S.Estimate.from_dict(e).fmt('.2f')}" for y, e in poi[top].items()
        )
    lines.append(f"4. **Final frontiers**: {final}.")
    if "gap_closed" in stats["metrics"]:
        lines.append(
            "   Share of the best-static -> oracle gap closed: "
            + standing(stats, "gap_closed", methods)
            + "."
        )
    per_budget = [f"{b}: " + standing(stats, f"utility@{b}", methods) for b in budgets]
    lines.append("5. **Per budget** (test utility): " + " | ".join(per_budget) + ".")

    # ---- expected findings (data)
    counts = {
        s: sum(r.status == s for r in findings)
        for s in ("held", "contradicted", "not distinguishable", "not tested")
    }
    lines += [
        "",
        "## Expected findings",
        "",
        (f"{findings_source} " if findings_source else "")
        + f"{len(findings)} claims checked against the statistics above: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + ".",
        "",
        "| expected finding | status | evidence |",
        "|---|---|---|",
    ]
    for r in findings:
        lines.append(f"| {r.claim} | **{r.status}** | {r.evidence} |")
    return "\n".join(lines) + "\n"
