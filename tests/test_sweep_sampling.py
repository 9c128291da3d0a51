"""The profiler's sampled configs (random / Latin hypercube per request), batches grouped by
config, and the cost summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastctrl.profile.configs import ConfigSampler
from fastctrl.profile.table import Profile
from fastctrl.runtime.synthetic_vqa import synthetic_vqa
from fastctrl.space import ActionSpace

from .sweep_kit import tiny_sweep

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

BIG = ActionSpace(
    {"max_crops": [1, 2, 4, 8], "top_k": [1, 2, 4, 8], "num_active_blocks": [2, 4, 6, 8, 10]}
)


@pytest.mark.parametrize("mode", ["random", "lhs"])
def test_sampler_keeps_anchors_is_deterministic_and_exact_size(mode):
    s = ConfigSampler.parse(f"{mode} 12", BIG, seed=4)
    a, b = s.for_request("req-1"), s.for_request("req-1")
    assert a == b and len(a) == 12 and len(set(a)) == 12
    assert BIG.full() in a and BIG.cheapest() in a
    assert a != s.for_request("req-2")
    assert ConfigSampler.parse(f"{mode}:12", BIG, seed=5).for_request("req-1") != a


def test_lhs_covers_every_knob_range_evenly():
    s = ConfigSampler.parse("lhs 20", BIG, seed=0)
    counts = np.zeros(4)
    for i in range(200):
        for c in s.for_request(f"r{i}"):
            counts[c.indices[0]] += 1
    # 20 strata over 4 max_crops values: each value gets ~a quarter of the picks
    share = counts / counts.sum()
    assert np.all(np.abs(share - 0.25) < 0.05), share


@pytest.mark.parametrize("bad", ["some", "random", "lhs 1", "all 3", "random -2"])
def test_bad_config_specs(bad):
    with pytest.raises(ValueError, match="--configs"):
        ConfigSampler.parse(bad, BIG)


def test_sampled_batched_sweep_writes_an_imputable_profile(llava, tmp_path):
    space = ActionSpace({"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [2, 4]})
    out = tmp_path / "sampled.csv"
    data = synthetic_vqa(5, with_answers=False)
    res = tiny_sweep(llava, data, space, out, configs="lhs 4", batch_size=2, seed=1)
    # 5 requests x 4 of 18 configs leave some configs unmeasured: written, not loadable
    assert res.profile is None
    side = json.loads(res.sidecar_path.read_text())
    # batches of 2 measure the union of their requests' samples: 4..8 of 18 configs each
    per_req = pd_counts(out)
    assert set(per_req.values()) <= set(range(4, 9)) and len(per_req) == 5
    assert side["cells_measured"] == sum(per_req.values())
    assert side["settings"]["configs"] == "lhs 4" and side["settings"]["batch_size"] == 2
    assert side["cost"]["answer_calls"] > 0 and side["cost"]["wall_s"] > 0
    with pytest.raises(ValueError, match="measured for no request"):
        Profile.load(out, missing_configs="impute")
    # enough requests for every config: the sweep's own profile, imputed
    out2 = tmp_path / "sampled2.csv"
    data = synthetic_vqa(14, with_answers=False)
    res = tiny_sweep(llava, data, space, out2, max_new_tokens=1, configs="random 6", seed=2)
    side = json.loads(res.sidecar_path.read_text())
    assert side["cells_measured"] == 14 * 6
    with pytest.raises(ValueError, match="missing_configs"):
        Profile.load(out2)
    p = Profile.load(out2, missing_configs="impute")
    assert p.n_requests == 14 and p.measured is not None
    assert p.report.imputed_cells == 14 * (space.n_configs - 6)
    assert res.profile.report.imputed_cells == p.report.imputed_cells


def pd_counts(path):
    import pandas as pd

    return pd.read_csv(path, dtype={"request_id": str}).groupby("request_id").size().to_dict()
