"""python -m fastctrl.compare on a tiny setting: every output, numbers that match the runs,
and an interrupted compare reusing finished runs."""

from __future__ import annotations

import json

import pytest

from fastctrl.compare import main

ARGS = ["--methods", "lut,grpo", "--seeds", "2", "--jobs", "1", "--synthetic_requests", "300",
        "--num_epochs", "2", "--max_env_steps", "20000", "--eval_every_steps", "4000",
        "--quiet"]
OUTPUTS = ["e5_training_curves.json", "e5_sample_efficiency.json", "e5_final_frontiers.json",
           "e5_overhead_analysis.json", "e5_stability_analysis.json", "e5_report.md",
           "figures/e5_learning_curves.png", "figures/e5_sample_efficiency.png",
           "figures/e5_final_frontiers.png", "figures/e5_overhead_comparison.png",
           "figures/e5_stability.png"]


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("e5")
    assert main([*ARGS, "--output_dir", str(out)]) == 0
    return out


def test_every_output_is_written(e5_dir):
    for name in OUTPUTS:
        assert (e5_dir / name).is_file(), name
        assert (e5_dir / name).stat().st_size > 0


def test_numbers_come_from_the_runs(e5_dir):
    curves = json.loads((e5_dir / "e5_training_curves.json").read_text())["training_curves"]
    assert set(curves) == {"lut", "grpo"} and set(curves["grpo"]) == {"0", "1"}
    for seed in ("0", "1"):
        stats = json.loads((e5_dir / "runs" / f"grpo_seed{seed}" /
                            "training_stats.json").read_text())
        assert [p["utility"] for p in curves["grpo"][seed]] == \
            [h["utility"] for h in stats["history"]]
        ev = json.loads((e5_dir / "runs" / f"grpo_seed{seed}" / "eval_results.json").read_text())
        assert curves["grpo"][seed][-1]["env_steps"] == ev["env_steps"]  # curve ends at the end
        assert stats["config"]["loop"]["max_env_steps"] == 20000  # the common budget of every run
    fr = json.loads((e5_dir / "e5_final_frontiers.json").read_text())["final_frontiers"]
    ev = [json.loads((e5_dir / "runs" / f"lut_seed{s}" / "eval_results.json").read_text())
          for s in (0, 1)]
    q = sum(e["controller"]["per_budget"]["0.50"]["quality_mean"] for e in ev) / 2
    assert fr["methods"]["lut"][1]["budget_ratio"] == 0.5
    assert fr["methods"]["lut"][1]["quality_mean"] == pytest.approx(q)
    assert set(fr["baselines"]) == {"oracle", "best_static"}
    eff = json.loads((e5_dir / "e5_sample_efficiency.json").read_text())["sample_efficiency"]
    for m in ("lut", "grpo"):
        for key in ("slo", "quality", "both"):
            block = eff["methods"][m][key]
            assert block["status"] in ("reached", "not reached", "reached by some seeds")
            assert (block["mean"] is None) == (block["status"] == "not reached")
    ov = json.loads((e5_dir / "e5_overhead_analysis.json").read_text())["overhead_analysis"]
    assert ov["grpo"]["method_specific_timer"] == "group_generation_s"
    assert ov["grpo"]["group_generation_s"]["mean"] > 0
    assert ov["grpo"]["controller_overhead_ms"]["mean"] > 0
    st = json.loads((e5_dir / "e5_stability_analysis.json").read_text())["stability_analysis"]
    finals = [json.loads((e5_dir / "runs" / f"grpo_seed{s}" / "eval_results.json").read_text())
              ["controller"]["overall"]["utility"] for s in (0, 1)]
    assert st["grpo"]["final_utility"]["mean"] == pytest.approx(sum(finals) / 2)
    report = (e5_dir / "e5_report.md").read_text()
    for heading in ("Sample efficiency", "Overhead", "Final metrics per budget", "Stability",
                    "Answers", "Expected findings"):
        assert heading in report


def test_a_rerun_reuses_finished_runs(e5_dir):
    marker = e5_dir / "runs" / "grpo_seed1" / "eval_results.json"
    before = marker.stat().st_mtime_ns
    (e5_dir / "runs" / "lut_seed0" / "eval_results.json").unlink()  # "interrupted" run
    assert main([*ARGS, "--output_dir", str(e5_dir)]) == 0
    assert marker.stat().st_mtime_ns == before
    assert (e5_dir / "runs" / "lut_seed0" / "eval_results.json").is_file()


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # a command-line error (tyro's or fastctrl.cli.fail's)
        return int(e.code)


def test_bad_arguments(tmp_path, capsys):
    assert _exit_code(["--methods", "sft", "--output_dir", str(tmp_path)]) == 2
    assert "--methods" in capsys.readouterr().err
    assert _exit_code(["--seeds", "0", "--output_dir", str(tmp_path)]) == 2
