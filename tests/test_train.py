"""Every method end to end from the CLI on a small synthetic profile; outputs, resume, seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fastctrl import Controller
from fastctrl.train import main
from fastctrl.train.cli import parse_train_args
from fastctrl.train.loop import Run
from fastctrl.train.methods import METHOD_NAMES
from fastctrl.train.records import EvalResults

from .train_kit import synthetic_training, training_run

SMALL = [*synthetic_training(300, 12000, 4000), "--eval_requests", "40", "--batch_size", "32"]
#: each method's own flags, only accepted with that --method
METHOD_FLAGS = {"ppo": ["--rollout_contexts", "64"]}
BUDGET_KEYS = {"quality_mean", "latency_p95", "slo_violation_rate", "utility", "gap_to_oracle"}


@pytest.mark.parametrize("method", [*METHOD_NAMES, "grpo:offline"])
def test_every_method_runs_end_to_end(tmp_path, method):
    method, _, groups = method.partition(":")
    flags = ["--groups", groups] if groups else []
    out = tmp_path / method
    assert (
        main(
            ["--method", method, "--output_dir", str(out), *SMALL, *flags]
            + METHOD_FLAGS.get(method, [])
        )
        == 0
    )
    for name in (
        "best_checkpoint.pt",
        "training_stats.json",
        "training_curves.png",
        "eval_results.json",
    ):
        assert (out / name).is_file(), name
    res = json.loads((out / "eval_results.json").read_text())
    assert res["method"] == method
    for policy in [res["controller"], *res["baselines"].values()]:
        assert BUDGET_KEYS <= set(policy["overall"])
        assert set(policy["per_budget"]) == {"0.35", "0.50", "0.70", "0.85", "1.00"}
        for block in policy["per_budget"].values():
            assert BUDGET_KEYS <= set(block)
        assert policy["controller_overhead_ms"] > 0
    assert res["controller"]["overall"]["gap_to_oracle"] >= -1e-9
    ckpt = torch.load(out / "best_checkpoint.pt", weights_only=True)
    stats = json.loads((out / "training_stats.json").read_text())
    entry = stats["history"][-1]
    for key in (
        "env_steps",
        "wall_s",
        "utility",
        "quality_mean",
        "latency_p95",
        "slo_violation_rate",
        "reward_std",
    ):
        assert key in entry, key
    assert "num_failed_updates" in entry["counters"]
    if method == "lut":
        assert "table" in ckpt["extra"]
        return
    assert (out / "controller" / "model.safetensors").is_file()
    # the deployed controller carries its safe fallback; the raw one is reported beside it
    assert (out / "controller" / "fallback.json").is_file()
    fb = res["safe_fallback"]
    assert fb["cells"] == len(fb["use_policy"]) * len(fb["budget_ms"]) > 0
    assert res["raw_controller"]["overall"]["utility"] is not None
    loaded = Controller.from_pretrained(out / "controller")
    assert loaded.fallback is not None
    state = ckpt["controller_state_dict"]
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert stats["history"][-1]["env_steps"] > 0
    # one env-step grid for every method: 0 (the untrained policy), every 4000, the end
    steps = [h["env_steps"] for h in stats["history"]]
    assert steps[0] == 0 and steps == sorted(steps)
    # the budget ends the run: an update may pass it (GRPO: 32 x 8 configs), an offline
    # method stops short of it by less than one profile row (180 configs x 5 repeats)
    assert 12000 - 900 < steps[-1] < 12000 + 2000, steps
    for k in (4000, 8000):
        assert any(k <= st < k + 2000 for st in steps), (k, steps)


def _cfg(tmp_path: Path, name: str, *flags: str):
    return parse_train_args(
        ["--method", "grpo", *synthetic_training(300, 9000, 3000), "--eval_requests", "40"]
        + ["--batch_size", "32", "--output_dir", str(tmp_path / name), *flags]
    )


def _run(tmp_path: Path, name: str, *flags: str) -> EvalResults:
    return Run(_cfg(tmp_path, name, *flags)).run()


@pytest.mark.parametrize("groups", ["sampled", "offline"])
def test_same_seed_same_result_and_resume(tmp_path, groups):
    """Offline groups: the resumed pool must be rebuilt in the order it was read (the saved
    batch order indexes it)."""
    tmp_path = tmp_path / groups
    a = _run(tmp_path, "a", "--seed", "5", "--groups", groups)
    b = _run(tmp_path, "b", "--seed", "5", "--groups", groups)
    for key in ("utility", "quality_mean", "slo_violation_rate"):
        assert getattr(a.controller.overall, key) == getattr(b.controller.overall, key)
    sa = json.loads((tmp_path / "a" / "training_stats.json").read_text())["history"]
    sb = json.loads((tmp_path / "b" / "training_stats.json").read_text())["history"]
    assert [h["utility"] for h in sa] == [h["utility"] for h in sb]
    # killed right after the checkpoint of the second validation point, resumed: the same
    # curve as uninterrupted
    run = Run(_cfg(tmp_path, "c", "--seed", "5", "--groups", groups))
    save = run.save_last

    def save_then_die(t0: float) -> None:
        save(t0)
        if len(run.history) == 3:  # env_steps 0, ~3000, ~6000
            raise KeyboardInterrupt

    run.save_last = save_then_die
    with pytest.raises(KeyboardInterrupt):
        run.run()
    # a checkpoint is resumed only with the settings it was trained with
    with pytest.raises(ValueError, match=r"--resume: .*loop.lr: checkpoint 2e-05, this run 0.001"):
        _run(
            tmp_path,
            "c",
            "--seed",
            "5",
            "--groups",
            groups,
            "--lr",
            "1e-3",
            "--resume",
            str(tmp_path / "c"),
        )
    c = _run(tmp_path, "c", "--seed", "5", "--groups", groups, "--resume", str(tmp_path / "c"))
    sc = json.loads((tmp_path / "c" / "training_stats.json").read_text())["history"]
    assert [h["utility"] for h in sc] == [h["utility"] for h in sa]
    assert [h["env_steps"] for h in sc] == [h["env_steps"] for h in sa]
    assert c.controller.overall.utility == a.controller.overall.utility


def test_dpo_warm_start_is_on_the_grid_and_resumes(tmp_path):
    """DPO's supervised warm start is the first phase of the run: validation points from
    env_steps 0 (the untrained policy) fall inside it, the reference is frozen where it ends,
    and a run killed inside it resumes to the uninterrupted curve."""
    flags = ["--method", "dpo", "--dpo_reference", "supervised", "--eval_requests", "40"]
    flags += synthetic_training(120, 90000, 9000)
    a = training_run(tmp_path / "a", *flags)
    a.run()
    cost = a.profile.n_configs * a.profile.n_repeats
    steps = [h.env_steps for h in a.history]
    warm_rows = a.method.warm.pool.n_requests
    assert steps[0] == 0 and steps[1] == -(-9000 // cost) * cost  # a point inside the warm start
    assert warm_rows * cost < 90000 and steps[-1] >= 90000  # then DPO's own steps
    assert a.method.reference is not None and a.method.counters["pairs"] > 0
    run = training_run(tmp_path / "b", *flags)
    save = run.save_last

    def save_then_die(t0: float) -> None:
        save(t0)
        if len(run.history) == 2:  # inside the warm start
            raise KeyboardInterrupt

    run.save_last = save_then_die
    with pytest.raises(KeyboardInterrupt):
        run.run()
    assert run.method.warming
    b = training_run(tmp_path / "b", *flags, "--resume", str(tmp_path / "b"))
    b.run()
    assert [h.env_steps for h in b.history] == steps
    assert [h.utility for h in b.history] == [h.utility for h in a.history]


def test_offline_methods_pay_for_every_measurement_they_read(tmp_path):
    """The lookup table, supervised labels and GRPO's offline groups read whole profile rows
    (every config, every latency repeat) in chunks: their curve is on the same env-step axis,
    never past the budget."""
    for method in ("lut", "supervised", "grpo"):
        flags = ["--groups", "offline"] if method == "grpo" else []
        run = training_run(
            tmp_path / method, "--method", method, *synthetic_training(300, 20000, 4500), *flags
        )
        run.fit()
        cost = run.profile.n_configs * run.profile.n_repeats
        steps = [h.env_steps for h in run.history]
        assert steps[0] == 0 and all(st % cost == 0 for st in steps), steps
        assert steps[-1] <= 20000 and 20000 - steps[-1] < cost  # as many rows as fit
        read = steps[-1] // cost
        assert read == len(run.method.reqs if method == "lut" else run.method.pool.ctx.req) // (
            1 if method == "lut" else len(run.train_env.budget_ratios)
        )


def test_supervised_labels_average_the_latency_repeats(tmp_path):
    from fastctrl.train.methods.supervised import oracle_labels

    run = training_run(tmp_path, "--method", "supervised", "--synthetic_requests", "200", "--quiet")
    env = run.train_env
    reqs = env.requests[:5]
    ctx, labels = oracle_labels(env, reqs)
    # the label is the best config by the reward averaged over every repeat: what the
    # evaluation's oracle computes from the same rows
    np.testing.assert_array_equal(labels, env.expected_rewards(ctx).argmax(1))


def test_synthetic_family_noisy_trains_on_the_noisy_profile(tmp_path):
    from fastctrl.profile.synthetic_noisy import NOISY_GRIDS

    run = training_run(
        tmp_path, "--synthetic_family", "noisy", "--synthetic_requests", "120", "--quiet"
    )
    prof = run.profile
    assert prof.quality_expected is not None
    assert prof.space.to_dict() == {k: list(v) for k, v in NOISY_GRIDS.items()}
    # measured quality is the mean of 3 answers: only 0, 1/3, 2/3 and 1 occur
    np.testing.assert_allclose(np.unique(np.round(prof.quality * 3)), [0, 1, 2, 3])
    with pytest.raises(SystemExit):
        parse_train_args(["--synthetic_family", "vqa"])


def test_supervised_expected_reward_takes_the_best_config_on_average(tmp_path):
    """Two rows that look the same to the controller (one context, read twice) and disagree on
    the best config: the expected-reward loss settles on the config best on their mean, which
    neither row's oracle label names."""
    run = training_run(
        tmp_path, "--method", "supervised", "--synthetic_requests", "200", "--lr", "1e-2", "--quiet"
    )
    m = run.method
    m.setup()
    m.pool.read(1)
    n_configs = m.env.profile.n_configs
    a, b, mean_best = 0, n_configs - 1, n_configs // 2
    rows = np.full((2, n_configs), -1.0, dtype=np.float32)
    rows[0, [a, mean_best]] = [1.0, 0.6]
    rows[1, [b, mean_best]] = [1.0, 0.6]
    m.pool.ctx = m.pool.ctx.take(np.zeros(2, dtype=np.int64))
    m.pool.rewards = torch.from_numpy(rows)
    m.labels = rows.argmax(1)
    for _ in range(300):
        m._expected_reward_update(m.controller(*m.inputs(m.pool.ctx)), np.array([0, 1]))
    with torch.no_grad():
        logits = m.controller(*m.inputs(m.pool.ctx.take(np.array([0]))))
    picked = m.to_flat({k: v.argmax(-1) for k, v in logits.items()})
    assert picked.tolist() == [mean_best], (picked, a, b)


def test_cell_labels_are_each_cells_best_config_on_average():
    """Two cells (task a / b at one ratio, task a at another): each context is labelled with the
    config best on its cell's mean reward, which no single row's own argmax has to name."""
    from fastctrl.train.methods.supervised import cell_labels

    rewards = np.array(
        [
            [1.0, 0.0, 0.7],  # a, 0.5: mean (0.5, 0.5, 0.7) -> 2
            [0.0, 1.0, 0.7],
            [0.0, 1.0, 0.0],  # b, 0.5: alone -> 1
            [0.9, 0.0, 0.0],  # a, 1.0: mean (0.6, 0.1, 0.3) -> 0
            [0.3, 0.2, 0.6],
        ]
    )
    tasks = np.array(["a", "a", "b", "a", "a"])
    ratios = np.array([0.5, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(cell_labels(tasks, ratios, rewards), [2, 2, 1, 0, 0])


def test_supervised_cell_labels_follow_the_pool(tmp_path):
    """With the default loss the pool's labels are the cells' best configs by the mean reward of
    the rows read so far: one config per (task type, budget ratio)."""
    from fastctrl.train.methods.supervised import cell_labels

    run = training_run(tmp_path, "--method", "supervised", "--synthetic_requests", "300", "--quiet")
    m = run.method
    assert m.args.loss == "cell_labels"
    m.setup()
    for n in (20, 40):
        m.pool.read(n)
        m.relabel()
        ctx = m.pool.ctx
        tasks = run.profile.task_types[ctx.req].astype(str)
        np.testing.assert_array_equal(
            m.labels, cell_labels(tasks, ctx.ratio, m.pool.rewards.cpu().numpy())
        )
        for key in set(zip(tasks, ctx.ratio, strict=True)):
            cell = (tasks == key[0]) & (ctx.ratio == key[1])
            assert len(set(m.labels[cell])) == 1
    assert len(m.labels) == 60 * len(run.train_env.budget_ratios)


@pytest.mark.slow
def test_every_method_learns_on_a_short_run(tmp_path):
    """Each method beats random and its own untrained policy on validation; the best one beats
    the best static config on the test split."""
    best_u, static_u = -np.inf, None
    for method in METHOD_NAMES:
        run = training_run(
            tmp_path / method, "--method", method, *synthetic_training(500, 120000, 20000)
        )
        res = run.run()
        first, best = run.history[0].utility, run.best["utility"]  # validation, both
        assert best > first + 0.05, (method, first, best)
        test_u = res.controller.overall.utility
        assert test_u > res.baselines["random"].overall.utility + 0.05, (method, test_u)
        best_u = max(best_u, test_u)
        static_u = res.baselines["best_static"].overall.utility
    assert best_u > static_u, (best_u, static_u)


def test_nan_updates_are_skipped_and_counted(tmp_path):
    run = training_run(tmp_path, "--synthetic_requests", "200", "--quiet")
    m = run.method
    before = {k: v.clone() for k, v in m.controller.state_dict().items()}
    p = next(m.controller.parameters())
    assert not m.apply_update(p.sum() * float("nan"))
    assert not m.apply_update(p.sum() * torch.tensor(float("inf")))
    assert m.counters["num_failed_updates"] == 2
    for k, v in m.controller.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--method", "sft"], "error: invalid choice 'sft' for argument '--method'"),
        (["--method", "lut", "--group_size", "4"], "Unrecognized options: --group_size"),
        (["--group_size", "1"], "--group_size must be >= 2"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--exp5_dir", "x"], "go together"),
        (["--profile", "/nonexistent/p.parquet"], "not found"),
        (["--resume", "/nonexistent"], "no checkpoint"),
    ],
)
def test_bad_arguments_fail_clearly(tmp_path, capsys, argv, match):
    try:
        code = main(
            [*argv, "--output_dir", str(tmp_path), "--synthetic_requests", "100", "--quiet"]
        )
    except SystemExit as e:  # tyro (a choice it does not know) or cli.fail
        code = e.code
    assert code == 2
    assert match in capsys.readouterr().err


def test_train_on_an_exp5_exp6_import(tmp_path):
    from .test_profile import _fixture_dirs

    exp5, exp6 = _fixture_dirs(tmp_path)
    # three requests are too few to split; give each its own split explicitly via the cache
    out = tmp_path / "run"
    code = main(
        [
            "--method",
            "lut",
            "--exp5_dir",
            str(exp5),
            "--exp6_dir",
            str(exp6),
            "--output_data_path",
            str(tmp_path / "prepared.parquet"),
            "--train_split",
            "0.5",
            "--output_dir",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    res = json.loads((out / "eval_results.json").read_text())
    assert res["n_test_requests"] >= 1
    assert np.isfinite(res["controller"]["overall"]["utility"])


@pytest.mark.parametrize(
    "module",
    [
        "fastctrl.train",
        "fastctrl.compare",
        "fastctrl.profile",
        "fastctrl.recursive_control.supervised_training",
        "fastctrl.recursive_control.pipeline",
    ],
)
def test_every_cli_explains_itself(module):
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "usage:" in res.stdout and "--" in res.stdout
