"""The noisy built-in profile family: answers as measured quality, expected quality for judging,
and a problem a controller can learn (the per-request optimum is predictable from features)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from fastctrl.env import ProfileEnv, evaluate_baselines, evaluate_policy, oracle_static_margin
from fastctrl.env.bandit import Contexts
from fastctrl.env.evaluation import E5_BUDGET_RATIOS, add_static_gap_closed
from fastctrl.profile import NOISY_GRIDS, hidden_factor_r2, noisy_vqa_profile, synthetic_profile
from fastctrl.profile.synthetic import _top_directions
from fastctrl.space import ActionSpace


@pytest.fixture(scope="module")
def prof():
    return noisy_vqa_profile(2000, seed=0)


def test_answers_redraw_alone():
    """(Seeded like the default family: tests/test_synthetic.py.) Another answer seed draws
    other answers of the same requests, configs and latencies."""
    a = noisy_vqa_profile(40, seed=5)
    c = noisy_vqa_profile(40, seed=5, answer_seed=1)
    np.testing.assert_array_equal(c.quality_expected, a.quality_expected)
    np.testing.assert_array_equal(c.latency, a.latency)
    np.testing.assert_array_equal(c.features.text, a.features.text)
    assert not np.array_equal(c.quality, a.quality)


def test_grid_dims_and_quality_values(prof):
    default = synthetic_profile(20, seed=0)
    assert prof.space == ActionSpace(NOISY_GRIDS) and prof.space != default.space
    assert prof.n_configs == 48 and prof.n_repeats == 5
    assert (prof.features.image_dim, prof.features.text_dim) == (1152, 896)
    assert (prof.features.image_dim, prof.features.text_dim) != (
        default.features.image_dim,
        default.features.text_dim,
    )
    thirds = prof.quality * 3
    np.testing.assert_allclose(thirds, np.round(thirds), atol=1e-6)
    assert set(np.round(thirds).astype(int).ravel()) == {0, 1, 2, 3}
    qe = prof.quality_expected
    assert qe is not None and qe.shape == prof.quality.shape
    assert (qe >= 0).all() and (qe <= 1).all() and len(np.unique(qe)) > 1000
    # every E5 budget (0.35x the train mean of the full config) is feasible for every request
    full = prof.mean_latency[prof.split_indices("train"), prof.full_index].mean()
    assert prof.mean_latency[:, 0].max() < 0.35 * full


def test_measured_quality_averages_to_the_expected_column():
    n_draws = 100
    draws = [noisy_vqa_profile(20, seed=3, answer_seed=s) for s in range(n_draws)]
    p = draws[0].quality_expected.astype(np.float64)
    mean = np.mean([d.quality for d in draws], axis=0)
    se = np.sqrt(p * (1 - p) / (3 * n_draws))
    # per cell within 4.5 standard errors (960 cells: a miss by chance is ~1e-2 likely)
    assert (np.abs(mean - p) <= 4.5 * se + 1e-6).all()
    z = (mean - p).sum() / np.sqrt((se**2).sum())
    assert abs(z) < 4, z
    # and a single draw is noisy: it is not the expected value
    assert np.abs(draws[0].quality - p).mean() > 0.1


def test_answers_agree_across_configs_of_a_request(prof):
    # a request's answers are correlated across configs (ANSWER_CORRELATION); independent
    # draws would leave the residuals of two configs uncorrelated (sd of the estimate ~0.02)
    res = prof.quality - prof.quality_expected
    full, other = prof.full_index, prof.full_index - 1
    assert np.corrcoef(res[:, full], res[:, other])[0, 1] > 0.15


def test_hidden_factor_observability(prof):
    r2 = hidden_factor_r2(prof)
    assert r2["n_out"] <= 0.3, r2
    for k in ("v", "r"):
        assert 0.85 <= r2[k] <= 0.97, (k, r2)
    assert r2["n_native"] >= 0.97 and r2["log_prompt_tokens"] >= 0.9, r2
    assert r2["q_max"] < 0.05, r2


def test_expected_oracle_well_above_best_static_at_every_budget(prof):
    # measured here (2000 requests, seed 0): margins 0.05-0.10 in quality and utility
    rows = oracle_static_margin(prof)
    # every E5 budget has its row (an empty list would pass the loop below vacuously)
    assert [r["budget_ratio"] for r in rows] == list(E5_BUDGET_RATIOS)
    for row in rows:
        assert row["quality"] == "expected"
        assert row["margin"] >= 0.04, row
        assert row["oracle_utility"] - row["static_utility"] >= 0.04, row
    res = evaluate_baselines(
        ProfileEnv(prof, "train"), ProfileEnv(prof, "test"), measure_overhead=False
    )
    budgets = [f"{r:.2f}" for r in E5_BUDGET_RATIOS]
    assert list(res["oracle_expected"].per_budget) == budgets
    assert list(res["best_static"].per_budget) == budgets
    for k, blk in res["oracle_expected"].per_budget.items():
        assert blk.utility_expected - res["best_static"].per_budget[k].utility_expected >= 0.04, k


class PlugIn:
    """A simple learned controller: least squares from the top-64 feature PCs to each config's
    measured quality and log latency (read with ``profile_rows``, as an offline method
    would); decides by the predicted reward with a log-normal latency of the residual sd."""

    name = "plug_in"

    def __init__(self, env: ProfileEnv) -> None:
        prof = env.profile
        tr = env.requests
        x = np.hstack([prof.features.image, prof.features.text]).astype(np.float64)
        x = (x - x[tr].mean(0)) / x[tr].std(0)
        pcs = x @ _top_directions(x[tr], 64, np.random.default_rng(0))
        pcs = np.c_[pcs / pcs[tr].std(0), np.ones(len(pcs))]
        quality, latency = env.profile_rows(tr)
        # [n, C] or [n, C, S] measured latencies: fit the log of each cell's mean
        log_lat = np.log(latency if latency.ndim == 3 else latency[:, :, None])
        cq, *_ = np.linalg.lstsq(pcs[tr], quality, rcond=None)
        cl, *_ = np.linalg.lstsq(pcs[tr], log_lat.mean(2), rcond=None)
        self.q, self.log_lat = pcs @ cq, pcs @ cl
        self.sd = np.sqrt(((log_lat - self.log_lat[tr][:, :, None]) ** 2).mean((0, 2)))
        self.lam = env.reward.lam

    def decide(self, ctx: Contexts, env: ProfileEnv) -> np.ndarray:
        m, s, b = self.log_lat[ctx.req], self.sd[None, :], ctx.budget_ms[:, None]
        # E[max(0, L - b)] for L ~ lognormal(m, s)
        over = np.exp(m + s**2 / 2) * ndtr((m + s**2 - np.log(b)) / s) - b * ndtr(
            (m - np.log(b)) / s
        )
        return env.profile.config_indices[(self.q[ctx.req] - self.lam * over / b).argmax(1)]


def test_a_simple_learned_controller_beats_best_static_at_every_budget(prof):
    train, test = ProfileEnv(prof, "train"), ProfileEnv(prof, "test")
    res = evaluate_baselines(train, test, measure_overhead=False)
    pe = evaluate_policy(PlugIn(train), test, measure_overhead=False)
    add_static_gap_closed(pe, res)
    assert pe.overall.gap_closed_reference == "oracle_expected"
    # measured here: 0.29 (budget 0.35) to 0.68 of the gap per budget, 0.50 overall
    assert list(pe.per_budget) == [f"{r:.2f}" for r in E5_BUDGET_RATIOS]
    for k, blk in pe.per_budget.items():
        assert blk.gap_closed > 0.2, (k, blk.gap_closed)
    assert pe.overall.gap_closed > 0.4


def test_bad_arguments_are_named():
    for kwargs, match in [
        ({"n_requests": 0}, "n_requests"),
        ({"n_answers": 0}, "n_answers"),
        ({"n_repeats": 0}, "n_repeats"),
        ({"answer_seed": -1}, "answer_seed"),
        ({"feature_noise": -1.0}, "feature_noise"),
        ({"space": ActionSpace({"max_crops": [1, 2]})}, "space"),
    ]:
        with pytest.raises(ValueError, match=match):
            noisy_vqa_profile(**{"n_requests": 10, **kwargs})
