"""The live evaluation's host check: is this machine as fast as the profile's?"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastctrl.digits import DIGITS_MODEL, shipped_profile
from fastctrl.evaluate.host_check import SAME_SPEED, check_host, profile_machine
from fastctrl.profile.table import Profile


@pytest.fixture(scope="module")
def digits():
    return Profile.load(DIGITS_MODEL)


def _full_p50(profile: Profile) -> float:
    return float(np.median(profile.mean_latency[:, profile.full_index]))


def test_the_scale_is_the_live_full_p50_over_the_profiles(digits):
    recorded = profile_machine(DIGITS_MODEL)
    p50 = _full_p50(digits)
    same = check_host(digits, recorded, [p50 * 0.9, p50, p50 * 1.1], dict(recorded))
    assert same.latency_scale == pytest.approx(1.0)
    assert same.warning is None and same.differs == []
    slow = check_host(digits, recorded, [2 * p50] * 4, {**recorded, "cpu": "other"})
    assert slow.latency_scale == pytest.approx(2.0)
    assert slow.differs == ["cpu"]
    assert slow.warning is not None and "2.00x" in slow.warning and "differ: cpu" in slow.warning
    lo, hi = SAME_SPEED
    assert check_host(digits, recorded, [p50 * lo * 0.99], recorded).warning is not None
    assert check_host(digits, recorded, [p50 * hi * 0.99], recorded).warning is None
    unknown = check_host(digits, None, [2 * p50], recorded)  # an imported table: no sidecar
    assert unknown.differs == [] and "records no machine" in unknown.warning


def test_the_shipped_profile_records_its_machine():
    recorded = profile_machine(DIGITS_MODEL)
    assert recorded == profile_machine(shipped_profile())
    assert recorded["cpu"] and recorded["cpu_count"] >= 1 and recorded["torch_threads"] == 1


def test_bad_inputs_are_named(digits, tmp_path):
    for bad in ([], [1.0, float("nan")], [0.0], [-1.0]):
        with pytest.raises(ValueError, match="full_latency_ms"):
            check_host(digits, None, bad, {})
    table = tmp_path / "p.parquet"
    assert profile_machine(table) is None  # no sidecar: an imported or hand-made table
    table.with_suffix(".sweep.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        profile_machine(table)
    table.with_suffix(".sweep.json").write_text(json.dumps({"machine": [1, 2]}))
    with pytest.raises(ValueError, match="'machine' must be an object"):
        profile_machine(table)
