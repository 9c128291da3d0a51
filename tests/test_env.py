"""ProfileEnv, rewards, baselines and evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from fastctrl.env import E5_BUDGET_RATIOS, ProfileEnv, guide_budgets
from fastctrl.env.baselines import OraclePolicy, StaticPolicy
from fastctrl.env.evaluation import (
    decision_metrics,
    evaluate_baselines,
    pareto_frontier,
    profile_frontier,
    to_flat,
)
from fastctrl.env.reward import E5Reward, ShapedReward, make_reward
from fastctrl.profile import synthetic_profile


@pytest.fixture(scope="module")
def prof():
    return synthetic_profile(400, seed=1)


def test_e5_reward_formula():
    r = E5Reward(lam=10.0)
    np.testing.assert_allclose(r(0.8, 90.0, 100.0), 0.8)
    np.testing.assert_allclose(r(0.8, 110.0, 100.0), 0.8 - 10.0 * 0.1)


def test_shaped_reward_formula():
    r = ShapedReward()
    inside = r(0.9, 50.0, 100.0, complexity=0.5)
    sig = 1 / (1 + np.exp(-(50.0 - 100.0) / 5.0))
    np.testing.assert_allclose(inside, 0.9 - 0.5 * sig - 0.05 * 0.5 + 0.1 * 0.5)
    over = r(0.9, 101.0, 100.0, complexity=0.5)
    sig = 1 / (1 + np.exp(-1.0 / 5.0))
    np.testing.assert_allclose(over, 0.9 - 0.5 * sig - 10.0 - 0.025)
    with pytest.raises(ValueError, match="reward must be"):
        make_reward("nope")
    with pytest.raises(ValueError, match="lambda"):
        E5Reward(lam=-1)


def test_env_counts_steps_and_is_seeded(prof):
    a, b = ProfileEnv(prof, seed=3), ProfileEnv(prof, seed=3)
    ca, cb = a.sample_contexts(64), b.sample_contexts(64)
    np.testing.assert_array_equal(ca.req, cb.req)
    cfg = np.arange(64) % prof.n_configs
    ra, rb = a.step(ca, cfg), b.step(cb, cfg)
    np.testing.assert_array_equal(ra.latency_ms, rb.latency_ms)
    assert a.env_steps == 64
    q, lat = a.profile_rows(ca.req[:3])
    assert q.shape == (3, prof.n_configs) and a.env_steps == 64 + 3 * prof.n_configs
    # the latency returned is one of the measured repeats
    i = 5
    assert ra.latency_ms[i] in prof.latency[ca.req[i], cfg[i]]
    assert set(np.unique(ca.ratio)) <= set(E5_BUDGET_RATIOS)
    assert set(prof.splits[ca.req]) == {"train"}


def test_budgets_per_request_and_global(prof):
    env = ProfileEnv(prof, "test", baseline="request")
    full = prof.mean_latency[:, prof.full_index]
    ctx = env.all_contexts((0.5,))
    np.testing.assert_allclose(ctx.budget_ms, 0.5 * full[ctx.req], rtol=1e-6)
    genv = ProfileEnv(prof, "test", baseline="global")
    gctx = genv.all_contexts((0.5,))
    train_mean = full[prof.split_indices("train")].mean()
    np.testing.assert_allclose(gctx.budget_ms, 0.5 * train_mean, rtol=1e-6)
    np.testing.assert_allclose(guide_budgets(np.array([10.0, 20.0])),
                               [[8.0, 10.0, 12.0], [16.0, 20.0, 24.0]])


def test_splits_never_share_requests(prof):
    sets = [set(prof.request_ids[prof.split_indices(s)]) for s in ("train", "val", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(len(s) for s in sets) == prof.n_requests


def test_oracle_is_an_upper_bound_and_baselines_are_ordered(prof):
    train, test = ProfileEnv(prof, "train"), ProfileEnv(prof, "test")
    res = evaluate_baselines(train, test, measure_overhead=False)
    u = {k: v.overall.utility for k, v in res.items()}
    assert u["oracle"] >= u["best_static"] >= u["random"]
    assert u["oracle"] > u["full"]
    for k, v in res.items():
        assert v.overall.gap_to_oracle >= -1e-9, k
        for blk in v.per_budget.values():
            assert blk.gap_to_oracle >= -1e-9
    # the oracle maximises expected reward per context, so no config beats it anywhere
    ctx = test.all_contexts()
    best = test.expected_rewards(ctx).max(1)
    chosen = to_flat(test, OraclePolicy().decide(ctx, test))
    m = decision_metrics(test, ctx, chosen)
    np.testing.assert_allclose(m.utility, best.mean(), rtol=1e-9)
    st = StaticPolicy.fit(train)
    assert set(st.ratios) == set(E5_BUDGET_RATIOS)


def test_pareto_frontier():
    lat = np.array([1.0, 2.0, 3.0, 2.5, 0.5])
    q = np.array([0.5, 0.7, 0.9, 0.6, 0.1])
    assert pareto_frontier(lat, q).tolist() == [4, 0, 1, 2]
    front = profile_frontier(synthetic_profile(60, seed=0), "train")
    lats = [p["latency_mean"] for p in front]
    qs = [p["quality_mean"] for p in front]
    assert lats == sorted(lats) and qs == sorted(qs)
