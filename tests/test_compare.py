"""The E5 comparison: its statistics (IQM, bootstrap CIs, probability of improvement) on
hand-checkable cases, expected findings checked as data, and python -m fastctrl.compare on a
tiny setting: every output, numbers that trace to the runs, one dataset for every seed, and an
interrupted compare reusing finished runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rliable import metrics as rly

from fastctrl.compare import main
from fastctrl.compare import stats as S
from fastctrl.compare.analysis import metric_specs, summarize
from fastctrl.compare.cli import CompareArgs
from fastctrl.compare.findings import Claim, Findings, check_findings, load_findings
from fastctrl.compare.gap_closed import gap_closed
from fastctrl.compare.gap_closed import main as gap_closed_main
from fastctrl.compare.report import report
from fastctrl.train.methods import METHODS

from .train_kit import TINY_TRAINING, synthetic_training

ARGS = ["--methods", "lut,grpo", "--seeds", "2", "--jobs", "1", "--bootstrap_reps", "500"]
ARGS += synthetic_training(300, 12000, 4000)
OUTPUTS = [
    "e5_training_curves.json",
    "e5_sample_efficiency.json",
    "e5_final_frontiers.json",
    "e5_overhead_analysis.json",
    "e5_stability_analysis.json",
    "e5_statistics.json",
    "e5_report.md",
    "figures/e5_learning_curves.png",
    "figures/e5_sample_efficiency.png",
    "figures/e5_final_frontiers.png",
    "figures/e5_final_utility.png",
    "figures/e5_overhead_comparison.png",
    "figures/e5_stability.png",
]


# ---------------------------------------------------------------------------- statistics
def test_iqm_of_known_arrays():
    e = S.iqm(np.arange(1.0, 9.0), key="k")  # 25% trimmed off each end: mean of 3, 4, 5, 6
    assert e.point == pytest.approx(4.5)
    assert e.point == pytest.approx(rly.aggregate_iqm(np.arange(1.0, 9.0)))
    assert e.low <= e.point <= e.high and e.low > 1 and e.high < 8
    assert S.iqm([1.0, 2.0, 3.0, 100.0]).point == pytest.approx(2.5)  # robust to the outlier
    const = S.iqm([0.7, 0.7, 0.7])
    assert (const.point, const.low, const.high) == pytest.approx((0.7, 0.7, 0.7))


def test_bootstrap_is_seeded_and_works_with_two_seeds():
    x = np.random.default_rng(1).normal(size=7)
    assert S.iqm(x, key="a", seed=3) == S.iqm(x, key="a", seed=3)
    assert S.iqm(x, key="a", seed=3).low != S.iqm(x, key="a", seed=4).low
    two = S.iqm([0.70, 0.74], key="two")  # --quick has 2 seeds: the CI spans them
    assert two.point == pytest.approx(0.72) and two.n == 2
    assert two.low == pytest.approx(0.70) and two.high == pytest.approx(0.74)
    one = S.iqm([0.7])  # no interval from one seed: nothing is distinguishable
    assert not one.has_interval
    assert S.compare(one, S.iqm([0.1, 0.11])) == "not distinguishable"
    with pytest.raises(ValueError, match="finite"):
        S.iqm([0.1, float("nan")], key="nan")


def test_probability_of_improvement():
    hi, lo = [5.0, 6.0, 7.0], [1.0, 2.0, 3.0]
    e = S.probability_of_improvement(hi, lo)
    assert (e.point, e.low, e.high) == (1.0, 1.0, 1.0)
    assert S.probability_of_improvement(lo, hi).point == 0.0
    same = S.probability_of_improvement(lo, lo)
    assert same.point == 0.5 and same.low < 0.5 < same.high
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)  # one distribution: ~0.5
    e = S.probability_of_improvement(x, y, key="xy")
    assert e.point == pytest.approx(rly.probability_of_improvement(x[:, None], y[:, None]))
    assert 0.3 < e.point < 0.7 and e.low < 0.5 < e.high
    assert S._poi_along(np.array([[1.0, 2.0]]), np.array([[2.0, 0.0]]))[0] == pytest.approx(
        rly.probability_of_improvement(np.array([[1.0], [2.0]]), np.array([[2.0], [0.0]]))
    )


def test_compare_says_not_distinguishable_when_intervals_overlap():
    a, b = S.Estimate(0.7, 0.65, 0.75, 5), S.Estimate(0.72, 0.70, 0.80, 5)
    assert S.compare(a, b) == "not distinguishable"
    assert S.describe("grpo", a, "lut", b) == "grpo and lut not distinguishable"
    c = S.Estimate(0.9, 0.85, 0.95, 5)
    assert S.compare(c, a) == "better" and S.compare(a, c) == "worse"
    assert S.compare(c, a, higher_is_better=False) == "worse"  # e.g. env_steps, latency
    assert S.describe("lut", a, "grpo", c) == "grpo better than lut"
    assert S.compare(c, S.point(0.8)) == "better"  # a baseline's value has no interval


# ---------------------------------------------------------------------------- findings, report
def _stats(values: dict[str, dict[str, list[float]]], baselines=None) -> dict:
    seeds = {m: list(range(len(v))) for m, v in values["final_utility"].items()}
    return summarize(values, metric_specs([]), seeds=seeds, baselines=baselines or {}, reps=500)


GRPO_LOW = {
    "final_utility": {
        "grpo": [0.60, 0.61, 0.62, 0.60, 0.61],
        "ppo": [0.70, 0.71, 0.72, 0.70, 0.71],
        "lut": [0.55, 0.75, 0.60, 0.72, 0.58],
    },
    "gap_to_oracle_pct": {"grpo": [3.0, 3.5, 4.0, 3.2, 3.8]},
}


def test_claims_are_checked_against_the_data():
    stats = _stats(
        GRPO_LOW,
        baselines={"best_static": {"final_utility": {"value": 0.5, "spread": 0.0, "n_runs": 15}}},
    )
    claims = [
        Claim("grpo best", "final_utility", "grpo", "best"),
        Claim("ppo best", "final_utility", "ppo", "best"),
        Claim("ppo best of ppo, grpo", "final_utility", "ppo", "best", among=["grpo"]),
        Claim("lut beats grpo", "final_utility", "lut", "better_than", other="grpo"),
        Claim("grpo beats static", "final_utility", "grpo", "better_than", other="best_static"),
        Claim("within 5%", "gap_to_oracle_pct", "grpo", "at_most", value=5.0),
        Claim("within 3.5%", "gap_to_oracle_pct", "grpo", "at_most", value=3.5),
        Claim("within 2%", "gap_to_oracle_pct", "grpo", "at_most", value=2.0),
        Claim("dpo best", "final_utility", "dpo", "best"),
        Claim("no such metric", "wall_clock", "grpo", "best"),
    ]
    got = [r.status for r in check_findings(stats, Findings(claims))]
    assert got == [
        "contradicted",
        "not distinguishable",
        "held",
        "not distinguishable",
        "held",
        "held",
        "not distinguishable",
        "contradicted",
        "not tested",
        "not tested",
    ]


def test_report_answers_and_findings_follow_the_data():
    claim = Claim("GRPO has the best final test utility", "final_utility", "grpo", "best")
    meta = {
        "profile": "fabricated",
        "data_seed": 0,
        "seeds": [0, 1, 2, 3, 4],
        "reward": "e5",
        "budget_ratios": [0.5],
        "budget_baseline": "global",
        "n_configs": 4,
        "max_env_steps": 1000,
        "eval_every_steps": 100,
        "jobs": 1,
    }
    stats = _stats(GRPO_LOW)
    md = report(meta, stats, check_findings(stats, Findings([claim])))
    assert "| GRPO has the best final test utility | **contradicted** |" in md
    ppo = rly.aggregate_iqm(np.array(GRPO_LOW["final_utility"]["ppo"]))
    assert f"best final test utility: **ppo** {ppo:.3f} [" in md  # the leader, with its CI
    assert "not distinguishable from lut" in md  # lut's interval overlaps ppo's
    swapped = {
        **GRPO_LOW,
        "final_utility": {
            "grpo": GRPO_LOW["final_utility"]["ppo"],
            "ppo": GRPO_LOW["final_utility"]["grpo"],
            "lut": [0.4, 0.41, 0.42, 0.4, 0.41],
        },
    }
    stats = _stats(swapped)
    md = report(meta, stats, check_findings(stats, Findings([claim])))
    assert "| GRPO has the best final test utility | **held** |" in md
    grpo = rly.aggregate_iqm(np.array(GRPO_LOW["final_utility"]["grpo"]))
    assert f"best final test utility: **grpo** {ppo:.3f} [" in md
    assert (
        f"better than ppo {grpo:.3f}" in md
        and "not distinguishable" not in md.split("best final test utility:")[1].split("\n")[0]
    )


def test_findings_file_errors_name_the_claim(tmp_path):
    default = load_findings()
    assert default.claims and {c.metric for c in default.claims} <= set(metric_specs(["0.50"]))
    bad = tmp_path / "f.json"
    bad.write_text(
        json.dumps(
            {
                "claims": [
                    {"claim": "x", "metric": "final_utility", "method": "grpo", "relation": "beats"}
                ]
            }
        )
    )
    with pytest.raises(ValueError, match=r"claims\[0\].*relation"):
        load_findings(bad)
    bad.write_text(
        json.dumps(
            {
                "claims": [
                    {
                        "claim": "x",
                        "metric": "final_utility",
                        "method": "grpo",
                        "relation": "at_most",
                    }
                ]
            }
        )
    )
    with pytest.raises(ValueError, match="needs 'value'"):
        load_findings(bad)


def test_tuned_params_reach_the_runs(tmp_path):
    d = tmp_path / "tune" / "lut"
    d.mkdir(parents=True)
    (d / "best_params.json").write_text(
        json.dumps({"params": {"lut_mode": "knn", "lut_neighbors": 8}})
    )
    args = CompareArgs(methods=("lut", "grpo"), tuned_dir=str(tmp_path / "tune"))
    cfg = args.train_config("lut", 3, tmp_path)
    assert (cfg.method_args.lut_mode, cfg.method_args.lut_neighbors, cfg.data.data_seed) == (
        "knn",
        8,
        0,
    )
    with pytest.raises(ValueError, match="--tuned_dir: no .*grpo"):
        args.train_config("grpo", 0, tmp_path)
    (d / "best_params.json").write_text(
        json.dumps(
            {
                "params": {"lut_mode": "table", "lut_budget_bins": 5},
                "trials": 4,
                "settings": {"loop": {"max_env_steps": 3000}},
            }
        )
    )
    out = tmp_path / "e5"
    assert (
        main(
            ["--methods", "lut", "--seeds", "1", "--jobs", "1", *TINY_TRAINING]
            + ["--tuned_dir", str(tmp_path / "tune"), "--output_dir", str(out)]
        )
        == 0
    )
    ran = _read(out / "runs" / "lut_seed0" / "training_stats.json")["config"]["method_args"]
    assert (ran["lut_mode"], ran["lut_budget_bins"]) == ("table", 5)
    assert (
        "lut (4 trials of 3000 env_steps): lut_mode=table, lut_budget_bins=5"
        in (out / "e5_report.md").read_text()
    )
    # untuned, each method keeps its own loop defaults (supervised's learning rate)
    sup = CompareArgs().train_config("supervised", 0, tmp_path)
    assert (
        sup.loop.lr
        == METHODS["supervised"].loop_defaults["lr"]
        != CompareArgs().train_config("grpo", 0, tmp_path).loop.lr
    )


# ---------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("e5")
    assert main([*ARGS, "--output_dir", str(out)]) == 0
    return out


def _read(path):
    return json.loads(path.read_text())


def test_every_output_is_written(e5_dir):
    for name in OUTPUTS:
        assert (e5_dir / name).is_file(), name
        assert (e5_dir / name).stat().st_size > 0


def test_numbers_come_from_the_runs(e5_dir):
    curves = _read(e5_dir / "e5_training_curves.json")["training_curves"]
    assert set(curves) == {"lut", "grpo"} and set(curves["grpo"]) == {"0", "1"}
    for seed in ("0", "1"):
        run = e5_dir / "runs" / f"grpo_seed{seed}"
        stats = _read(run / "training_stats.json")
        assert [p["utility"] for p in curves["grpo"][seed]] == [
            h["utility"] for h in stats["history"]
        ]
        ev = _read(run / "eval_results.json")
        assert curves["grpo"][seed][-1]["env_steps"] == ev["env_steps"]  # curve ends at the end
        assert ev["env_steps"] >= 12000  # the run spent the whole common budget
    fr = _read(e5_dir / "e5_final_frontiers.json")["final_frontiers"]
    ev = [_read(e5_dir / "runs" / f"lut_seed{s}" / "eval_results.json") for s in (0, 1)]
    q = sum(e["controller"]["per_budget"]["0.50"]["quality_mean"] for e in ev) / 2
    assert fr["methods"]["lut"][1]["budget_ratio"] == 0.5
    assert fr["methods"]["lut"][1]["quality_mean"] == pytest.approx(q)
    assert {"oracle", "best_static"} <= set(fr["baselines"])

    st = _read(e5_dir / "e5_statistics.json")["statistics"]
    finals = [
        _read(e5_dir / "runs" / f"grpo_seed{s}" / "eval_results.json")["controller"]["overall"][
            "utility"
        ]
        for s in (0, 1)
    ]
    block = st["metrics"]["final_utility"]["methods"]["grpo"]
    assert block["values"] == finals
    assert block["point"] == pytest.approx(rly.aggregate_iqm(np.array(finals)))
    assert block["low"] <= block["point"] <= block["high"]
    q05 = st["metrics"]["quality@0.50"]["methods"]["lut"]
    assert q05["values"] == [e["controller"]["per_budget"]["0.50"]["quality_mean"] for e in ev]
    for key in ("slo", "quality", "both"):
        b = st["metrics"][f"env_steps_to_{key}"]["methods"]["grpo"]
        # one value per seed, a seed that never got there censored at the 12000 budget
        assert len(b["values"]) == 2 and all(0 <= v <= 12000 for v in b["values"])
        assert 0 <= b["reached"] <= 2 and sum(v < 12000 for v in b["values"]) <= b["reached"]
    poi = st["probability_of_improvement"]["pairs"]
    assert poi["grpo"]["lut"]["point"] + poi["lut"]["grpo"]["point"] == pytest.approx(1.0)
    ov = _read(e5_dir / "e5_overhead_analysis.json")["overhead_analysis"]
    assert ov["grpo"]["method_specific_timer"] == "group_generation_s"
    assert ov["grpo"]["group_generation_s"]["mean"] > 0

    md = (e5_dir / "e5_report.md").read_text()
    for heading in (
        "Final test utility",
        "Sample efficiency",
        "Overhead",
        "Final metrics per budget",
        "Stability",
        "Answers",
        "Expected findings",
    ):
        assert f"## {heading}" in md
    assert (
        f"**grpo** {S.Estimate.from_dict(block).fmt('.3f')}" in md
        or f"grpo {S.Estimate.from_dict(block).fmt('.3f')}" in md
    )
    for r in st["expected_findings"]["results"]:
        assert f"| {r['claim']} | **{r['status']}** |" in md
    assert "cheapest to train" not in md


def test_the_method_chosen_on_validation_comes_from_the_runs_best_validation_points(e5_dir):
    """The selection a user makes without the test split: each run's best validation point
    (the policy it serves), averaged over seeds; the report names the winner."""
    best = {
        m: [
            max(
                h["utility"]
                for h in _read(e5_dir / "runs" / f"{m}_seed{s}" / "training_stats.json")["history"]
            )
            for s in (0, 1)
        ]
        for m in ("lut", "grpo")
    }
    means = {m: sum(v) / 2 for m, v in best.items()}
    sel = _read(e5_dir / "e5_statistics.json")["statistics"]["validation_selection"]
    for m in means:
        assert sel["methods"][m]["mean"] == pytest.approx(means[m])
        assert list(sel["methods"][m]["per_seed"].values()) == best[m]
    assert sel["chosen"] == max(means, key=means.get)
    assert sel["ranking"] == sorted(means, key=lambda m: -means[m])
    assert "Chosen on validation" in (e5_dir / "e5_report.md").read_text()
    assert f"**{sel['chosen']}**" in (e5_dir / "e5_report.md").read_text()


def test_gap_closed_is_the_iqm_of_the_runs(e5_dir, tmp_path):
    out = gap_closed(e5_dir)
    assert set(out) == {"lut", "grpo"}
    ev = [
        _read(e5_dir / "runs" / f"grpo_seed{s}" / "eval_results.json")["controller"] for s in (0, 1)
    ]
    assert ev[0]["overall"]["gap_closed_reference"] == "oracle"  # no expected quality
    overall, per = out["grpo"]
    assert overall.n == 2
    assert overall.point == pytest.approx(
        rly.aggregate_iqm(np.array([e["overall"]["gap_closed"] for e in ev]))
    )
    assert list(per) == list(ev[0]["per_budget"])
    assert per["0.50"].point == pytest.approx(
        rly.aggregate_iqm(np.array([e["per_budget"]["0.50"]["gap_closed"] for e in ev]))
    )
    md = (e5_dir / "e5_report.md").read_text()  # the report's table carries the same cells
    assert "## Share of the best-static -> oracle gap closed" in md
    assert "(the hindsight oracle - best static)" in md
    assert f"| grpo | {overall.fmt('.3f')} | " in md
    with pytest.raises(FileNotFoundError, match="output_dir: e5_statistics.json"):
        gap_closed(tmp_path)
    with pytest.raises(SystemExit) as exit_:  # the command line: a clear error, status 2
        gap_closed_main(tmp_path)
    assert exit_.value.code == 2
    (tmp_path / "e5_statistics.json").write_text('{"statistics": {"metrics": {}}}')
    with pytest.raises(ValueError, match="no gap_closed"):
        gap_closed(tmp_path)


def test_every_seed_shares_one_dataset(e5_dir):
    runs = [e5_dir / "runs" / f"{m}_seed{s}" for m in ("lut", "grpo") for s in (0, 1)]
    assert {_read(r / "training_stats.json")["config"]["data"]["data_seed"] for r in runs} == {0}
    # same test requests, so the oracle's and the best static config's numbers are identical
    # for every training seed; the trained policies differ
    for b in ("oracle", "best_static"):
        assert (
            len(
                {
                    json.dumps(_read(r / "eval_results.json")["baselines"][b]["overall"])
                    for r in runs
                }
            )
            == 1
        )
    g = [
        _read(e5_dir / "runs" / f"grpo_seed{s}" / "training_stats.json")["history"] for s in (0, 1)
    ]
    assert [h["utility"] for h in g[0]] != [h["utility"] for h in g[1]]
    st = _read(e5_dir / "e5_statistics.json")["statistics"]
    assert st["baselines"]["oracle"]["final_utility"]["spread"] == 0.0


def test_a_rerun_reuses_finished_runs(e5_dir):
    marker = e5_dir / "runs" / "grpo_seed1" / "eval_results.json"
    before = marker.stat().st_mtime_ns
    (e5_dir / "runs" / "lut_seed0" / "eval_results.json").unlink()  # "interrupted" run
    stats_before = _read(e5_dir / "e5_statistics.json")["statistics"]["metrics"]
    assert main([*ARGS, "--output_dir", str(e5_dir)]) == 0
    assert marker.stat().st_mtime_ns == before
    assert (e5_dir / "runs" / "lut_seed0" / "eval_results.json").is_file()
    stats_after = _read(e5_dir / "e5_statistics.json")["statistics"]["metrics"]
    # the same runs give the same statistics (a deterministic rerun, a seeded bootstrap)
    assert stats_after["final_utility"] == stats_before["final_utility"]


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    """A run dir left by a command with other settings (here another env-step budget) is
    trained again from the start, not continued from that checkpoint: the result is a fresh
    run's."""
    small = [
        "--methods",
        "grpo",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--synthetic_requests",
        "300",
        "--eval_every_steps",
        "4000",
        "--bootstrap_reps",
        "200",
        "--quiet",
    ]
    old, fresh = tmp_path / "old", tmp_path / "fresh"
    assert main([*small, "--max_env_steps", "8000", "--output_dir", str(old)]) == 0
    assert main([*small, "--max_env_steps", "12000", "--output_dir", str(old)]) == 0
    assert main([*small, "--max_env_steps", "12000", "--output_dir", str(fresh)]) == 0
    h_old, h_fresh = (
        _read(d / "runs" / "grpo_seed0" / "training_stats.json")["history"] for d in (old, fresh)
    )
    assert [h["env_steps"] for h in h_old] == [h["env_steps"] for h in h_fresh]
    assert [h["utility"] for h in h_old] == [h["utility"] for h in h_fresh]


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # a command-line error (tyro's or fastctrl.cli.fail's)
        return int(e.code)


def test_bad_arguments(tmp_path, capsys):
    assert _exit_code(["--methods", "sft", "--output_dir", str(tmp_path)]) == 2
    assert "--methods" in capsys.readouterr().err
    assert _exit_code(["--seeds", "0", "--output_dir", str(tmp_path)]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert _exit_code(["--quality_fraction", "1.5", "--output_dir", str(tmp_path)]) == 2
    assert "--quality_fraction" in capsys.readouterr().err
    missing = str(tmp_path / "nope.json")
    assert _exit_code(["--expected_findings", missing, "--output_dir", str(tmp_path)]) == 2
    assert "expected findings not found" in capsys.readouterr().err
    assert _exit_code(["--tuned_dir", str(tmp_path), "--output_dir", str(tmp_path)]) == 2
    assert "--tuned_dir" in capsys.readouterr().err
