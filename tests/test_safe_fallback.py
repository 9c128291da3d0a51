"""The safe fallback: the table, the same decisions from every engine, the checkpoint, and the
fit on validation (the policy only where a paired bootstrap shows it beats best static)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fastctrl import Controller, make_engine  # noqa: E402
from fastctrl.engines.int8_engine import available_isas  # noqa: E402
from fastctrl.env import ProfileEnv, StaticPolicy  # noqa: E402
from fastctrl.env.evaluation import to_flat  # noqa: E402
from fastctrl.env.safe_fallback import fit_fallback, paired_bounds, summary  # noqa: E402
from fastctrl.policy.fallback import FALLBACK_FILE, SafeFallback  # noqa: E402
from fastctrl.profile import synthetic_profile  # noqa: E402

from .conftest import small_config  # noqa: E402

TASKS = ("a", "b", "c")


def _controller() -> Controller:
    torch.manual_seed(3)
    c = Controller(small_config(task_types=list(TASKS))).eval()
    with torch.no_grad():  # task vectors that move decisions (they start at zero)
        c.task_embed.weight.normal_(0.0, 5.0)
    return c


def _table(c: Controller) -> SafeFallback:
    ref = c.config.ref_latency_ms
    rng = np.random.default_rng(0)
    use = rng.random((len(TASKS) + 1, 4)) < 0.5
    use[0, 0], use[1, 0] = True, False  # both kinds of cell, whatever the draw
    static = np.stack([rng.integers(0, n, 4) for n in c.space.sizes], 1)
    return SafeFallback(
        budget_ms=np.array([0.3, 0.6, 0.9, 1.2]) * ref,
        static=static,
        use_policy=use,
        knob_names=c.knob_names,
        task_types=TASKS,
    )


def _inputs(c: Controller, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((n, c.config.image_dim), dtype=np.float32)
    text = rng.standard_normal((n, c.config.text_dim), dtype=np.float32)
    budget = (rng.uniform(0.1, 1.6, n) * c.config.ref_latency_ms).astype(np.float32)
    slots = rng.integers(0, len(TASKS) + 1, n)
    return image, text, budget, slots


def test_bins_floor_the_budget():
    fb = SafeFallback(
        budget_ms=np.array([10.0, 20.0, 40.0]),
        static=np.array([[0], [1], [2]]),
        use_policy=np.array([[False, False, False]]),
        knob_names=("k",),
    )
    # never a static config of a larger budget; below the grid: -1
    np.testing.assert_array_equal(fb.bins([5, 10, 19.9, 20, 39, 40, 1e6]), [-1, 0, 0, 1, 1, 2, 2])
    got = fb.apply_array(np.full((4, 1), 9), np.array([5.0, 25.0, 45.0, 15.0]))
    np.testing.assert_array_equal(got[:, 0], [0, 1, 2, 0])
    got_t = fb.apply_tensor(torch.full((4, 1), 9), torch.tensor([5.0, 25.0, 45.0, 15.0]), None)
    np.testing.assert_array_equal(got_t.numpy()[:, 0], [0, 1, 2, 0])
    # below the grid the policy is never kept, even where every cell keeps it
    fb = SafeFallback(fb.budget_ms, fb.static, np.ones_like(fb.use_policy), fb.knob_names)
    budgets = np.array([5.0, 25.0, 9.9, 15.0])
    want = [0, 9, 0, 9]
    np.testing.assert_array_equal(fb.apply_array(np.full((4, 1), 9), budgets)[:, 0], want)
    got_t = fb.apply_tensor(torch.full((4, 1), 9), torch.from_numpy(budgets), None)
    np.testing.assert_array_equal(got_t.numpy()[:, 0], want)
    assert [r[0] for r in fb.apply_rows([[9]] * 4, budgets)] == want
    assert fb.apply_rows([[9]] * 2, np.array([25.0, 30.0])) == [[9], [9]]


def test_a_grid_budget_in_float32_stays_in_its_bin():
    """Budgets reach the engines as float32: a grid budget rounded down to float32 must not
    fall below its edge (below the grid the policy is never kept)."""
    edges = np.array([6.958537, 9.940767, 13.9170761])  # not representable in float32
    fb = SafeFallback(edges, np.array([[0], [1], [2]]), np.ones((1, 3), bool), ("k",))
    b32 = edges.astype(np.float32)
    assert (b32.astype(np.float64) != edges).any(), "premise: float32 moves some edge"
    np.testing.assert_array_equal(fb.bins(b32), [0, 1, 2])
    assert fb.apply_rows([[9]] * 3, b32) == [[9]] * 3
    got = fb.apply_tensor(torch.full((3, 1), 9), torch.from_numpy(b32), None)
    np.testing.assert_array_equal(got.numpy()[:, 0], [9, 9, 9])


@pytest.mark.parametrize("kind", ["torch", "triton", *[f"int8:{isa}" for isa in available_isas()]])
def test_every_engine_applies_the_same_table(kind):
    c = _controller()
    raw_engine = make_engine(c, "torch")
    image, text, budget, slots = _inputs(c, 200)
    raw = raw_engine.decide(image, text, budget, task=slots)
    table = _table(c)
    c.set_fallback(table)
    want = table.apply_array(raw, budget, slots)
    assert (want != raw).any(), "premise: the table changes some decisions"
    assert (want == raw).all(1).any(), "premise: the table keeps some decisions"
    if kind.startswith("int8"):
        eng = make_engine(c, "int8", isa=kind.split(":")[1])
        # int8 decisions may differ from fp32 on near-ties: compare with its own raw argmax
        c.set_fallback(None)
        raw8 = make_engine(c, "int8", isa=kind.split(":")[1])
        c.set_fallback(table)
        want = table.apply_array(raw8.decide(image, text, budget, task=slots), budget, slots)
        t = [torch.from_numpy(a) for a in (image, text, budget, slots)]
        rows = eng.decide_rows(*t)
        np.testing.assert_array_equal(np.asarray(rows), want)
    else:
        eng = make_engine(c, kind)
    np.testing.assert_array_equal(eng.decide(image, text, budget, task=slots), want)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    c = _controller()
    table = _table(c)
    c.set_fallback(table)
    c.save_pretrained(tmp_path)
    loaded = Controller.from_pretrained(tmp_path)
    assert loaded.fallback is not None
    np.testing.assert_array_equal(loaded.fallback.use_policy, table.use_policy)
    np.testing.assert_array_equal(loaded.fallback.static, table.static)
    image, text, budget, slots = _inputs(c, 50)
    np.testing.assert_array_equal(
        make_engine(loaded, "torch").decide(image, text, budget, task=slots),
        make_engine(c, "torch").decide(image, text, budget, task=slots),
    )
    # a raw controller saved over a guarded one removes the stale table
    c.set_fallback(None)
    c.save_pretrained(tmp_path)
    assert not (tmp_path / FALLBACK_FILE).exists()
    assert Controller.from_pretrained(tmp_path).fallback is None
    # corrupt and mismatched tables name the file and what is wrong
    (tmp_path / FALLBACK_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="fallback.json: not valid JSON"):
        Controller.from_pretrained(tmp_path)
    d = table.to_dict()
    (tmp_path / FALLBACK_FILE).write_text(json.dumps({**d, "use_policy": [[True]]}))
    with pytest.raises(ValueError, match="use_policy must be"):
        Controller.from_pretrained(tmp_path)
    (tmp_path / FALLBACK_FILE).write_text(json.dumps({**d, "task_types": ["x", "y", "z"]}))
    with pytest.raises(ValueError, match="task types"):
        Controller.from_pretrained(tmp_path)


def test_paired_bounds():
    rng = np.random.default_rng(0)
    assert paired_bounds(np.full(100, 0.01), 0.95, 500, rng) == pytest.approx((0.01, 0.01))
    assert paired_bounds(np.zeros(100), 0.95, 500, rng) == (0.0, 0.0)
    noisy = rng.normal(0.001, 1.0, 200)  # a tiny mean gain, far inside the noise
    low, high = paired_bounds(noisy, 0.95, 2000, rng)
    assert low < 0 < high


@pytest.fixture(scope="module")
def envs():
    prof = synthetic_profile(600, seed=2)
    return ProfileEnv(prof, "train", seed=0), ProfileEnv(prof, "val", seed=0)


def _decide_flat(env: ProfileEnv, choose):
    """A policy deciding through per-context flat configs ``choose(ctx) -> [n]``."""

    def decide(ctx, tasks):
        del tasks
        return env.profile.config_indices[choose(ctx)]

    return decide


def test_fit_falls_back_where_the_policy_is_not_better(envs):
    train, val = envs
    static = StaticPolicy.fit(train)
    tasks = tuple(sorted(set(train.profile.task_types.astype(str))))
    names = train.space.names

    def static_flat(ctx):
        return to_flat(val, static.decide(ctx, val))

    # the static policy itself: no cell can show a gain
    same = fit_fallback(_decide_flat(val, static_flat), names, tasks, train, val, seed=0)
    assert not same.use_policy.any()
    # the cheapest config everywhere: worse than static at loose budgets, kept nowhere there
    cheapest = int(np.argmin(val.profile.mean_latency.mean(0)))
    bad = fit_fallback(
        _decide_flat(val, lambda ctx: np.full(len(ctx), cheapest)), names, tasks, train, val
    )
    assert not bad.use_policy[:, -1].any()
    # the hindsight oracle beats static in every cell with enough requests
    oracle = fit_fallback(
        _decide_flat(val, lambda ctx: val.expected_rewards(ctx).argmax(1)), names, tasks, train, val
    )
    assert oracle.use_policy.all()
    # the static configs are the best_static baseline's, one per budget, ascending budgets
    np.testing.assert_array_equal(oracle.static, train.profile.config_indices[static.configs])
    assert np.all(np.diff(oracle.budget_ms) > 0)
    cells = {(e["task"], e["budget_ratio"]) for e in oracle.evidence if e["task"] != "*"}
    assert len(cells) == oracle.use_policy.size  # one per (slot, budget), plus pooled rows
    # the validation gains: kept everywhere, the deployed gain is the raw one; kept nowhere, 0
    s_oracle, s_same = summary(oracle, 0.95), summary(same, 0.95)
    assert s_oracle["val_gain_deployed"] == pytest.approx(s_oracle["val_gain_raw"])
    assert s_oracle["val_gain_raw"] > 0
    assert s_same["val_gain_raw"] == 0 and s_same["val_gain_deployed"] == 0
    s_bad = summary(bad, 0.95)
    assert s_bad["val_gain_raw"] < 0 <= s_bad["val_gain_deployed"]


def test_fit_pooled_over_task_types(envs):
    """cells="budget": one cell per budget for every known task type (slot 0 apart)."""
    train, val = envs
    tasks = tuple(sorted(set(train.profile.task_types.astype(str))))
    cheapest = int(np.argmin(val.profile.mean_latency.mean(0)))
    fb = fit_fallback(
        _decide_flat(val, lambda ctx: np.full(len(ctx), cheapest)),
        train.space.names,
        tasks,
        train,
        val,
        cells="budget",
    )
    assert (fb.use_policy[1:] == fb.use_policy[1]).all()
    assert {e["task"] for e in fb.evidence} == {"", "*"}
    assert not fb.use_policy[:, -1].any()
    assert summary(fb, 0.95)["val_gain_raw"] < 0


def test_hierarchical_cells_keep_the_policy_where_the_budget_shows_it(envs):
    """A policy that is the oracle for one task type and static for the others: per-task cells
    keep it for that task only; the pooled budget shows a gain, so hierarchical cells keep it
    for the tasks whose own cells show no loss (all of them here: static = no loss)."""
    train, val = envs
    tasks = tuple(sorted(set(train.profile.task_types.astype(str))))
    static = StaticPolicy.fit(train)
    best = tasks[0]

    def choose(ctx):
        flat = to_flat(val, static.decide(ctx, val))
        oracle = val.expected_rewards(ctx).argmax(1)
        mine = val.profile.task_types[ctx.req].astype(str) == best
        return np.where(mine, oracle, flat)

    decide = _decide_flat(val, choose)
    names = train.space.names
    own = fit_fallback(decide, names, tasks, train, val, cells="task_budget")
    assert own.use_policy[1].all() and not own.use_policy[2:].any()
    hier = fit_fallback(decide, names, tasks, train, val, cells="hierarchical")
    assert hier.use_policy[1:].all()
    s = summary(hier, 0.95)
    assert s["val_gain_deployed"] == pytest.approx(s["val_gain_raw"]) and s["val_gain_raw"] > 0
    with pytest.raises(ValueError, match="cells must be one of"):
        fit_fallback(decide, names, tasks, train, val, cells="nope")


def test_fit_needs_global_budgets(envs):
    train, _ = envs
    val = ProfileEnv(train.profile, "val", baseline="request")
    with pytest.raises(ValueError, match="budget_baseline global"):
        fit_fallback(lambda ctx, t: None, train.space.names, (), train, val)
