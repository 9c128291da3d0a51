"""The length-blind oracle (every hidden factor of the default synthetic profile known but the
answer's length): its length prior is the simulator's draw, it is the hindsight oracle when
told the length, it never beats the hindsight oracle, and its E5 reader refuses other data."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from fastctrl.compare.length_blind import length_blind_gaps, length_blind_reference
from fastctrl.compare.length_blind import main as length_blind_main
from fastctrl.env import ProfileEnv, evaluate_baselines, evaluate_policy
from fastctrl.env.length_blind import LengthBlindOracle, answer_length_prior
from fastctrl.profile.synthetic import ANSWER_MAX, ANSWER_SIGMA, TASKS, synthetic_profile
from fastctrl.profile.synthetic_noisy import noisy_vqa_profile

from .train_kit import synthetic_training


def test_the_length_prior_is_the_simulators_draw():
    rng = np.random.default_rng(0)
    for median in sorted({t.answer_median for t in TASKS.values()}):
        draws = np.clip(np.round(median * rng.lognormal(0.0, ANSWER_SIGMA, 400_000)), 1, ANSWER_MAX)
        freq = np.bincount(draws.astype(int), minlength=ANSWER_MAX + 1)[1:] / len(draws)
        prior = answer_length_prior(median)
        assert prior.shape == (ANSWER_MAX,) and prior.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(prior, freq, atol=3e-3)


class _ToldTheLength(LengthBlindOracle):
    """The same oracle, told each answer's true length."""

    def length_probs(self, ctx, env):
        return np.eye(ANSWER_MAX)[self.hidden["n_out"][ctx.req].astype(int) - 1]


def test_it_is_the_hindsight_oracle_when_told_the_length_and_below_it_without():
    prof = synthetic_profile(600, seed=3)
    train, test = ProfileEnv(prof, "train"), ProfileEnv(prof, "test")
    base = evaluate_baselines(train, test, measure_overhead=False)
    told = evaluate_policy(_ToldTheLength(prof), test, measure_overhead=False).overall
    blind = evaluate_policy(LengthBlindOracle(prof), test, measure_overhead=False).overall
    oracle, static = base["oracle"].overall.utility, base["best_static"].overall.utility
    # told the length, it differs from the hindsight oracle only by the measured noise draws
    assert told.utility == pytest.approx(oracle, abs=0.01)
    assert static < blind.utility < told.utility - 0.02


def test_it_needs_the_default_simulators_hidden_factors():
    prof = synthetic_profile(50, seed=0)
    assert LengthBlindOracle(prof.subset(np.arange(10))).hidden["v"].shape == (10,)
    prof.hidden = None
    with pytest.raises(ValueError, match="synthetic_profile"):
        LengthBlindOracle(prof)
    # the noisy family draws the same factors with other constants: refused, not misread
    with pytest.raises(ValueError, match="of fastctrl.profile.synthetic_noisy"):
        LengthBlindOracle(noisy_vqa_profile(50, seed=0))


def test_e5_reader_gaps_and_errors(tmp_path, capsys):
    from fastctrl.compare import main as compare_main
    from fastctrl.train.config import TrainConfig

    with pytest.raises(FileNotFoundError, match="output_dir: e5_statistics.json"):
        length_blind_gaps(tmp_path)
    args = ["--methods", "lut", "--seeds", "2", "--jobs", "1", "--bootstrap_reps", "200"]
    args += synthetic_training(300, 10000, 5000)
    out = tmp_path / "e5"
    assert compare_main([*args, "--output_dir", str(out)]) == 0
    res = length_blind_gaps(out)
    assert res["oracle_length_blind"] < res["oracle"]
    gap = res["methods"]["lut"]
    assert gap.n == 2 and gap.low <= gap.point <= gap.high
    length_blind_main(out)
    assert "lut: gap to the length-blind oracle" in capsys.readouterr().out
    # what the comparison wrote is the oracle recomputed from the runs' own files
    runs = [out / "runs" / f"lut_seed{s}" for s in (0, 1)]
    cfg = TrainConfig.from_dict(json.loads((runs[0] / "training_stats.json").read_text())["config"])
    utilities = [
        json.loads((r / "eval_results.json").read_text())["controller"]["overall"]["utility"]
        for r in runs
    ]
    mine = length_blind_reference(cfg, {"lut": utilities}, reps=200)
    assert res["oracle_length_blind"] == pytest.approx(mine["oracle_length_blind"])
    assert gap.point == pytest.approx(mine["methods"]["lut"].point)
    md = (out / "e5_report.md").read_text()
    assert "## Gap to the length-blind oracle" in md and f"| lut | {gap.fmt('.1f')} |" in md
    noisy = tmp_path / "noisy"
    assert compare_main([*args, "--synthetic_family", "noisy", "--output_dir", str(noisy)]) == 0
    with pytest.raises(ValueError, match="default synthetic profile only"):
        length_blind_gaps(noisy)
    with pytest.raises(SystemExit) as exit_:  # the command line: a clear error, status 2
        length_blind_main(noisy)
    assert exit_.value.code == 2 and "default synthetic profile only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="default synthetic profile only"):
        length_blind_reference(
            dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, synthetic_family="noisy")),
            {},
        )
    assert (
        "length_blind" not in json.loads((noisy / "e5_statistics.json").read_text())["statistics"]
    )
    assert "length-blind" not in (noisy / "e5_report.md").read_text()
