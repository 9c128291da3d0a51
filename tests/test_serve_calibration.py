"""The server's latency calibration: this host's model time over the profile's, per config."""

from __future__ import annotations

import pytest

from fastctrl.profile.table import Profile
from fastctrl.serve.runner import LatencyCalibration


def test_the_scale_follows_this_host_over_the_profile():
    prof = Profile.load("fastctrl-digits")
    cal = LatencyCalibration(prof)
    full, cheap = prof.space.full(), prof.space.cheapest()
    train = prof.split_indices("train")
    assert cal.predicted[tuple(full.indices)] == pytest.approx(
        float(prof.mean_latency[train, prof.full_index].mean())
    )
    assert cal.scale == 1.0
    for _ in range(60):  # a host 1.5x slower than the profiled one, on two configs
        cal.observe(full, 1.5 * cal.predicted[tuple(full.indices)])
        cal.observe(cheap, 1.5 * cal.predicted[tuple(cheap.indices)])
    assert cal.scale == pytest.approx(1.5, abs=0.01)
    cal.observe(full, float("nan"))  # a failed timing moves nothing
    assert cal.scale == pytest.approx(1.5, abs=0.01)
    for _ in range(200):  # outliers are clamped
        cal.observe(cheap, 100.0 * cal.predicted[tuple(cheap.indices)])
    assert cal.scale == pytest.approx(4.0, abs=0.01)
