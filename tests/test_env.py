"""ProfileEnv, rewards, baselines and evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from fastctrl.env import (
    E5_BUDGET_RATIOS,
    ExpectedOraclePolicy,
    FullPolicy,
    Metrics,
    OraclePolicy,
    PolicyEval,
    ProfileEnv,
    StaticPolicy,
    add_static_gap_closed,
    evaluate_baselines,
    evaluate_policy,
    expected_quality_rewards,
    gap_reference,
    guide_budgets,
    oracle_static_margin,
    pareto_frontier,
    profile_frontier,
)
from fastctrl.env.evaluation import decision_metrics, to_flat
from fastctrl.env.reward import E5Reward, ShapedReward, make_reward
from fastctrl.profile import noisy_vqa_profile, synthetic_profile


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
    q, lat = a.profile_rows(ca.req[:3])  # every repeat of every config read, and charged
    assert q.shape == (3, prof.n_configs) and lat.shape == (3, prof.n_configs, prof.n_repeats)
    assert a.env_steps == 64 + 3 * prof.n_configs * prof.n_repeats == 64 + 3 * a.row_cost()
    np.testing.assert_array_equal(lat, prof.latency[ca.req[:3]])
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
    np.testing.assert_allclose(
        guide_budgets(np.array([10.0, 20.0])), [[8.0, 10.0, 12.0], [16.0, 20.0, 24.0]]
    )


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


# ---------------------------------------------------------------------------- expected quality
@pytest.fixture(scope="module")
def noisy():
    return noisy_vqa_profile(600, seed=2)


def test_env_hands_learners_measured_quality_only(noisy):
    assert not np.array_equal(noisy.quality, noisy.quality_expected)
    env = ProfileEnv(noisy, seed=0)
    ctx = env.sample_contexts(256)
    cfg = np.arange(256) % noisy.n_configs
    res = env.step(ctx, cfg)
    np.testing.assert_array_equal(res.quality, noisy.quality[ctx.req, cfg])
    np.testing.assert_allclose(res.quality * 3, np.round(res.quality * 3), atol=1e-6)
    q, _ = env.profile_rows(ctx.req[:8])
    np.testing.assert_array_equal(q, noisy.quality[ctx.req[:8]])
    # the hindsight rewards the table baselines are fit on are measured ones too
    ref = env.reward(
        noisy.quality[ctx.req].astype(np.float64)[:, :, None],
        noisy.latency[ctx.req].astype(np.float64),
        ctx.budget_ms[:, None, None],
    )
    np.testing.assert_allclose(env.expected_rewards(ctx), ref.mean(2))


def test_expected_oracle_and_gap_closed_share(noisy):
    train, test = ProfileEnv(noisy, "train"), ProfileEnv(noisy, "test")
    res = evaluate_baselines(train, test, measure_overhead=False)
    assert "oracle_expected" in res
    for name, pe in res.items():
        assert len(pe.per_budget) == len(test.budget_ratios) > 0, name  # the loops below run
        for blk in (pe.overall, *pe.per_budget.values()):
            assert blk.gap_closed_reference == "oracle_expected", name
            assert blk.utility_expected is not None and blk.quality_expected_mean is not None
    oe, st, orc = res["oracle_expected"], res["best_static"], res["oracle"]
    for k in ("overall", *oe.per_budget):
        b_oe, b_st, b_or = (
            (p.overall if k == "overall" else p.per_budget[k]) for p in (oe, st, orc)
        )
        assert b_oe.gap_closed == pytest.approx(1.0) and b_st.gap_closed == pytest.approx(0.0)
        assert b_oe.utility_expected > b_st.utility_expected, k
        # the hindsight oracle wins on measured quality (lucky answers) but not in expectation
        assert b_or.utility > b_oe.utility and b_or.utility_expected <= b_oe.utility_expected
        assert b_or.gap_closed <= 1.0 + 1e-9
    # it is the per-context maximum of the expected-quality reward
    ctx = test.all_contexts()
    best = expected_quality_rewards(test, ctx).max(1)
    chosen = to_flat(test, ExpectedOraclePolicy().decide(ctx, test))
    np.testing.assert_allclose(
        decision_metrics(test, ctx, chosen).utility_expected, best.mean(), rtol=1e-9
    )


def test_gap_closed_without_expected_quality_uses_the_hindsight_oracle(prof):
    train, test = ProfileEnv(prof, "train"), ProfileEnv(prof, "test")
    res = evaluate_baselines(train, test, measure_overhead=False)
    assert "oracle_expected" not in res and gap_reference(res) == "oracle"
    for name, pe in res.items():
        assert pe.overall.utility_expected is None and pe.overall.quality_expected_mean is None
        assert pe.overall.gap_closed_reference == "oracle", name
    u = {k: v.overall.utility for k, v in res.items()}
    want = (u["random"] - u["best_static"]) / (u["oracle"] - u["best_static"])
    assert res["random"].overall.gap_closed == pytest.approx(want)
    assert res["oracle"].overall.gap_closed == pytest.approx(1.0)
    with pytest.raises(ValueError, match="has no expected quality"):
        expected_quality_rewards(test, test.all_contexts())


def test_add_static_gap_closed_checks_its_inputs(noisy, prof):
    train, test = ProfileEnv(noisy, "train"), ProfileEnv(noisy, "test")
    res = evaluate_baselines(train, test, measure_overhead=False)
    plain = evaluate_policy(FullPolicy(), ProfileEnv(prof, "test"), measure_overhead=False)
    with pytest.raises(ValueError, match="no utility_expected"):
        add_static_gap_closed(plain, res)
    with pytest.raises(ValueError, match="best_static"):
        add_static_gap_closed(res["full"], {"oracle": res["oracle"]})
    short = evaluate_policy(FullPolicy(), test, ratios=(0.42,), measure_overhead=False)
    with pytest.raises(ValueError, match=r"lack budgets \['0.42'\]"):
        add_static_gap_closed(short, res)


def test_new_metrics_fields_round_trip_and_old_records_load(noisy):
    from fastctrl import io

    test = ProfileEnv(noisy, "test")
    res = evaluate_baselines(ProfileEnv(noisy, "train"), test, measure_overhead=False)
    back = io.from_json(PolicyEval, io.to_json(res["best_static"]))
    assert back == res["best_static"]
    old = {
        k: v
        for k, v in io.to_json(res["full"].overall).items()
        if k
        not in ("quality_expected_mean", "utility_expected", "gap_closed", "gap_closed_reference")
    }
    m = io.from_json(Metrics, old)
    assert m.utility_expected is None and m.gap_closed is None


def test_oracle_static_margin_on_expected_quality(noisy):
    rows = oracle_static_margin(noisy)  # auto: expected quality
    measured = oracle_static_margin(noisy, quality="measured")
    for r, rm in zip(rows, measured, strict=True):
        assert r["quality"] == "expected" and rm["quality"] == "measured"
        assert r["margin"] > 0.03, r
        # the hindsight oracle's measured margin is inflated by lucky answers
        assert rm["margin"] > r["margin"]
    with pytest.raises(ValueError, match="needs a profile with quality_expected"):
        oracle_static_margin(synthetic_profile(60, seed=0), quality="expected")
    with pytest.raises(ValueError, match="quality must be one of"):
        oracle_static_margin(noisy, quality="best")
