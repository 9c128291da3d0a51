"""python -m fastctrl.tune on tiny trials: its outputs, a seeded study that resumes exactly as an
uninterrupted one, every method's search space, the test split never read, and clear errors."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pytest

from fastctrl.env import ProfileEnv
from fastctrl.train.config import TrainConfig, loop_for
from fastctrl.train.loop import Run
from fastctrl.train.methods import METHODS
from fastctrl.train.methods.grpo import GRPOConfig
from fastctrl.tune import apply_params, main, suggest
from fastctrl.tune.search_space import LOOP_PARAMS

from .train_kit import TINY_TRAINING, synthetic_training


@pytest.fixture(autouse=True)
def test_split_is_never_read(monkeypatch):
    """Any read of the test split's requests, features or rewards fails the test."""
    for name in ("all_contexts", "sample_contexts", "step", "profile_rows", "features"):
        original = getattr(ProfileEnv, name)

        def guarded(self, *a, _original=original, _name=name, **kw):
            assert self.split != "test", f"the tuner read the test split ({_name})"
            return _original(self, *a, **kw)

        monkeypatch.setattr(ProfileEnv, name, guarded)

    def no_finish(self, *a, **kw):
        raise AssertionError("the tuner ran Run.finish (the test-split evaluation)")

    monkeypatch.setattr(Run, "finish", no_finish)


def _tune(out, method: str, trials: int, *extra: str) -> int:
    return main(
        [
            "--method",
            method,
            "--trials",
            str(trials),
            "--output_dir",
            str(out),
            *TINY_TRAINING,
            *extra,
        ]
    )


def _trials(out) -> list[dict]:
    return json.loads((out / "trials.json").read_text())["trials"]


def _key(trials: list[dict]) -> list[tuple]:
    return [(t["number"], t["state"], t["params"], t["value"]) for t in trials]


def test_outputs_resume_and_determinism(tmp_path):
    a = tmp_path / "a"
    assert _tune(a, "lut", 2) == 0
    for name in (
        "study.db",
        "trials.json",
        "best_params.json",
        "search_space.json",
        "tune_summary.md",
    ):
        assert (a / name).is_file(), name
    first = _trials(a)
    assert len(first) == 2 and not any(t["interrupted"] for t in first)
    done = [t for t in first if t["state"] == "COMPLETE"]
    assert done and all(t["duration_s"] > 0 and 0 < t["env_steps"] <= 3000 for t in done)
    # a trial that fails is recorded with its error and counts towards --trials
    assert all(t["state"] == "COMPLETE" or t["error"] for t in first)
    best = json.loads((a / "best_params.json").read_text())
    assert best["value"] == max(t["value"] for t in done)
    assert best["params"] == next(t for t in first if t["number"] == best["trial"])["params"]
    assert best["train_command"].startswith("python -m fastctrl.train --method lut")
    space = json.loads((a / "search_space.json").read_text())
    assert space["loop"] == {}  # the lookup table trains nothing: only its own space
    assert "lut_mode" in space["own"]
    assert f"{best['value']:.4f}" in (a / "tune_summary.md").read_text()

    assert _tune(a, "lut", 3) == 0  # a rerun with more trials continues the study
    resumed = _trials(a)
    assert len(resumed) == 3 and _key(resumed[:2]) == _key(first)
    b = tmp_path / "b"
    assert _tune(b, "lut", 3) == 0  # one uninterrupted study with the same seed: the same
    assert _key(_trials(b)) == _key(resumed)
    assert _tune(b, "lut", 3) == 0 and len(_trials(b)) == 3  # already done: nothing to run
    # trial 0 is the defaults whatever the seed; another seed draws other suggestions
    assert first[0]["params"] == {"lut_mode": "table", "lut_budget_bins": 16}
    c = tmp_path / "c"
    _tune(c, "lut", 2, "--seed", "1")
    assert _trials(c)[0]["params"] == first[0]["params"]
    assert _trials(c)[1]["params"] != first[1]["params"]


def test_a_trained_method_trial(tmp_path):
    out = tmp_path / "grpo"
    assert _tune(out, "grpo", 1) == 0
    (trial,) = _trials(out)
    assert set(trial["params"]) >= set(LOOP_PARAMS) | {"group_size", "grpo_ent_coef"}
    # trial 0 trains the defaults: the loop's (with the method's own learning rate) and GRPO's
    loop, own = loop_for("grpo"), GRPOConfig()
    assert trial["params"]["lr"] == loop.lr and trial["params"]["batch_size"] == loop.batch_size
    assert trial["params"]["group_size"] == own.group_size
    assert trial["value"] == pytest.approx(trial["metrics"]["utility"])  # best validation
    assert trial["env_steps"] >= 3000 and 0 <= trial["best_env_steps"] <= trial["env_steps"]
    space = json.loads((out / "search_space.json").read_text())
    assert set(space["loop"]) == set(LOOP_PARAMS)
    assert space["own"]["group_size"]["text"] == "one of [4, 8, 16]"
    assert not list(out.glob(".trial-*"))  # the trial's checkpoints are cleaned up


@pytest.mark.parametrize("method", list(METHODS))
def test_search_spaces_set_the_methods_own_fields(method):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    own = {f.name for f in dataclasses.fields(METHODS[method].Config)}
    base = TrainConfig(method=method)
    for _ in range(6):  # enough draws to see conditional branches (lut's modes)
        params = suggest(study.ask(), method)
        loop = set(LOOP_PARAMS) if METHODS[method].trains_controller else set()
        assert set(params) - own == loop, params
        cfg = apply_params(base, params)  # the configs' own checks accept every draw
        for k, v in params.items():
            assert getattr(cfg.loop if k in loop else cfg.method_args, k) == v


def test_bad_arguments(tmp_path, capsys, monkeypatch):
    def code(argv: list[str]) -> int:
        try:
            return main(argv)
        except SystemExit as e:
            return int(e.code)

    assert code(["--help"]) == 0
    assert "--trials" in capsys.readouterr().out
    assert code(["--method", "sft", "--output_dir", str(tmp_path)]) == 2
    assert "--method" in capsys.readouterr().err
    assert code(["--method", "lut", "--trials", "0", "--output_dir", str(tmp_path)]) == 2
    assert "--trials" in capsys.readouterr().err
    out = tmp_path / "study"
    _tune(out, "lut", 1)  # a study with one trial (whether it completed does not matter here)
    assert (out / "study.db").is_file()
    other_budget = synthetic_training(200, 6000, 1500)
    assert (
        code(["--method", "lut", "--trials", "2", "--output_dir", str(out), *other_budget]) == 2
    )  # another env-step budget: not the same study
    err = capsys.readouterr().err
    assert "other settings" in err and "max_env_steps" in err
    with pytest.raises(ValueError, match="unknown hyper-parameters.*not_a_field"):
        apply_params(TrainConfig(method="grpo"), {"not_a_field": 1})
    with pytest.raises(ValueError, match="--group_size"):
        apply_params(TrainConfig(method="grpo"), {"group_size": 1})
    monkeypatch.delattr(METHODS["dpo"], "search_space")
    with pytest.raises(ValueError, match="DPO has no search_space"):
        suggest(optuna.create_study().ask(), "dpo")
