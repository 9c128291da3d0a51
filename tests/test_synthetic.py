"""The built-in synthetic profile: deterministic, heterogeneous, and worth a controller."""

from __future__ import annotations

import numpy as np
import pytest

from fastctrl.env.evaluation import oracle_static_margin
from fastctrl.profile import synthetic_profile
from fastctrl.profile.synthetic import TOKENS_PER_CROP


@pytest.fixture(scope="module")
def prof():
    return synthetic_profile(3000, seed=0)


def test_deterministic_by_seed():
    a, b = synthetic_profile(50, seed=7), synthetic_profile(50, seed=7)
    np.testing.assert_array_equal(a.quality, b.quality)
    np.testing.assert_array_equal(a.latency, b.latency)
    np.testing.assert_array_equal(a.features.text, b.features.text)
    c = synthetic_profile(50, seed=8)
    assert not np.array_equal(a.latency, c.latency)


def test_shapes_ranges_and_monotone_costs(prof):
    assert prof.quality.shape == (3000, 180) and prof.n_repeats == 5
    assert prof.features.image_dim == 768 and prof.features.text_dim == 2048
    assert (prof.quality >= 0).all() and (prof.quality <= 1).all()
    lat = prof.mean_latency
    grid = prof.config_indices
    # latency grows with each knob, others fixed (vision tokens only up to the native crops)
    for k in range(3):
        for c in range(prof.n_configs):
            if grid[c, k] + 1 < prof.space.sizes[k]:
                up = grid[c].copy()
                up[k] += 1
                c2 = prof.space.flat_index(up)
                assert (lat[:, c2] >= lat[:, c] * 0.8).all()  # noise is ~3%, never 20%
                assert (prof.quality[:, c2] >= prof.quality[:, c] - 1e-6).all()
    # every E5 budget is feasible: the cheapest config fits 0.35x the full latency
    assert (lat[:, 0] / lat[:, prof.full_index]).max() < 0.35
    assert TOKENS_PER_CROP > 0


def test_requests_differ_in_what_knobs_buy(prof):
    h = prof.hidden
    q = prof.quality
    g = prof.config_indices
    full = prof.full_index
    one_crop = prof.space.flat_index([0, g[full, 1], g[full, 2]])
    loss_crops = q[:, full] - q[:, one_crop]
    # requests needing visual detail lose much more when crops are cut
    hi_v, lo_v = h["v"] > 0.7, h["v"] < 0.2
    assert loss_crops[hi_v & (h["n_native"] >= 6)].mean() > 5 * loss_crops[lo_v].mean()
    one_expert = prof.space.flat_index([g[full, 0], 0, g[full, 2]])
    loss_k = q[:, full] - q[:, one_expert]
    assert loss_k[h["r"] > 0.7].mean() > 3 * loss_k[h["r"] < 0.2].mean()


def test_features_carry_the_factors_but_not_exactly(prof):
    from numpy.linalg import lstsq

    # the features live near a 64-D manifold (a 64-unit random map), so 256 dims suffice
    x = prof.features.text[:2000, :256].astype(np.float64)
    y = prof.hidden["r"][:2000]
    xt, yt = x[:1500], y[:1500]
    coef, *_ = lstsq(np.c_[xt, np.ones(len(xt))], yt, rcond=None)
    pred = np.c_[x[1500:], np.ones(500)] @ coef
    r2 = 1 - ((pred - y[1500:]) ** 2).mean() / y[1500:].var()
    assert 0.5 < r2 < 0.999, r2


def test_oracle_beats_best_static_at_middle_budgets(prof):
    rows = {r["budget_ratio"]: r for r in oracle_static_margin(prof)}
    for ratio in (0.5, 0.7, 0.85):
        r = rows[ratio]
        assert r["margin"] >= 0.03, r
        assert r["static_slo_violation_rate"] <= r["oracle_slo_violation_rate"]
