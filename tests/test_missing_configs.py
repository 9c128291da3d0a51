"""Profiles whose requests lack some configs (sampled sweeps): refused, dropped or imputed by
the documented rule, never silently; imputed cells are counted, reported and never saved."""

from __future__ import annotations

import numpy as np
import pytest

from fastctrl.env import ProfileEnv
from fastctrl.env.evaluation import decision_metrics
from fastctrl.profile.synthetic import synthetic_profile
from fastctrl.profile.table import Profile, ProfileError
from fastctrl.space import ActionSpace

SPACE = ActionSpace({"max_crops": [1, 2, 4], "top_k": [1, 2], "num_active_blocks": [2, 4]})


@pytest.fixture(scope="module")
def dense() -> Profile:
    return synthetic_profile(40, seed=3, n_repeats=3, image_dim=8, text_dim=8, space=SPACE)


def sampled_frame(dense: Profile, seed: int = 0, keep: float = 0.5):
    """Drop about half of each request's configs, keeping the full and the cheapest."""
    df = dense.to_frame()
    rng = np.random.default_rng(seed)
    full = dense.space.full().values
    is_full = np.all([df[k] == v for k, v in full.items()], axis=0)
    is_cheap = np.all([df[k] == dense.space[k].values[0] for k in full], axis=0)
    drop = (rng.random(len(df)) > keep) & ~is_full & ~is_cheap
    return df.loc[~drop].reset_index(drop=True), drop


def test_missing_configs_refused_with_the_way_out(dense):
    df, _ = sampled_frame(dense)
    with pytest.raises(ProfileError, match="missing_configs='impute'"):
        Profile.from_frame(df, SPACE)


def test_drop_counts_the_requests(dense):
    df, drop = sampled_frame(dense, keep=0.97)
    p = Profile.from_frame(df, SPACE, missing_configs="drop")
    n_incomplete = len(set(dense.to_frame().loc[drop, "request_id"]))
    assert p.n_requests == dense.n_requests - n_incomplete
    assert p.report.dropped_requests == {"missing configs": n_incomplete}


def test_impute_rule_and_bookkeeping(dense, tmp_path):
    df, drop = sampled_frame(dense)
    p = Profile.from_frame(df, SPACE, missing_configs="impute")
    assert p.n_requests == dense.n_requests
    assert p.report.imputed_cells == int(drop.sum()) and p.measured is not None
    assert np.isfinite(p.quality).all() and np.isfinite(p.latency).all()
    # measured cells are the data, untouched
    assert np.array_equal(p.quality[p.measured], dense.quality[p.measured])
    # the rule, checked by hand on one imputed cell
    r, c = map(int, np.argwhere(~p.measured)[0])
    cfgs = list(SPACE.all_configs())
    below = [
        j
        for j, cfg in enumerate(cfgs)
        if p.measured[r, j]
        and all(a <= b for a, b in zip(cfg.indices, cfgs[c].indices, strict=True))
    ]
    assert p.quality[r, c] == pytest.approx(max(dense.quality[r, j] for j in below))
    full = p.full_index
    mean = dense.latency.mean(2)
    both = p.measured[:, c] & p.measured[:, full]
    scale = np.median(mean[both, c] / mean[both, full])
    np.testing.assert_allclose(p.latency[r, c], dense.latency[r, full] * scale, rtol=1e-5)
    # saving writes measured rows only, and the reload imputes the same cells again
    p.save(tmp_path / "sampled.csv")
    again = Profile.load(tmp_path / "sampled.csv", missing_configs="impute")
    assert len(again.to_frame()) == len(df)
    np.testing.assert_array_equal(again.measured, p.measured)
    np.testing.assert_allclose(again.quality, p.quality)
    # evaluation says how much of what a policy chose was imputed
    env = ProfileEnv(p, "test", seed=0)
    ctx = env.all_contexts()
    m = decision_metrics(env, ctx, np.zeros(len(ctx.req), dtype=np.int64))
    assert m.imputed_fraction == 0.0  # the cheapest config is always measured
    m = decision_metrics(env, ctx, np.full(len(ctx.req), c, dtype=np.int64))
    assert m.imputed_fraction == pytest.approx(1 - p.measured[ctx.req, c].mean())
    assert m.imputed_fraction > 0


def test_impute_needs_full_and_cheapest_and_every_config_somewhere(dense):
    df = dense.to_frame()
    rid = df["request_id"].iloc[0]
    full = dense.space.full().values
    is_full = np.all([df[k] == v for k, v in full.items()], axis=0)
    p = Profile.from_frame(
        df.loc[~((df["request_id"] == rid) & is_full)], SPACE, missing_configs="impute"
    )
    assert rid not in set(p.request_ids)
    assert p.report.dropped_requests == {"missing configs, full or cheapest unmeasured": 1}
    one = (df["max_crops"] == 2) & (df["top_k"] == 1) & (df["num_active_blocks"] == 2)
    with pytest.raises(ProfileError, match="measured for no request"):
        Profile.from_frame(df.loc[~one], SPACE, missing_configs="impute")
