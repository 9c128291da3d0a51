from __future__ import annotations

import pytest

from fastctrl import ActionSpace


def test_default_space_has_three_knobs():
    space = ActionSpace()
    assert space.names == ("max_crops", "top_k", "num_active_blocks")
    assert space.n_configs == 6 * 6 * 5
    full = space.full()
    assert full.values == {"max_crops": 12, "top_k": 8, "num_active_blocks": 16}
    assert space.cheapest().values == {"max_crops": 1, "top_k": 1, "num_active_blocks": 8}


def test_config_round_trip_and_flat_index():
    space = ActionSpace({"a": [1, 2], "b": [10, 20, 30]})
    configs = list(space.all_configs())
    assert len(configs) == 6
    for flat, c in enumerate(configs):
        assert space.flat_index(c.indices) == flat
    c = space.config_from_values(a=2, b=20)
    assert c.indices == (1, 1) and c["b"] == 20
    assert ActionSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize(
    "grids, match",
    [
        ({}, "at least one knob"),
        ({"a": []}, "non-empty"),
        ({"a": [2, 1]}, "ascending"),
        ({"a": [1, 1]}, "distinct"),
    ],
)
def test_bad_grids_are_refused(grids, match):
    with pytest.raises(ValueError, match=match):
        ActionSpace(grids)


def test_bad_config_is_refused():
    space = ActionSpace({"a": [1, 2]})
    with pytest.raises(ValueError, match="out of range"):
        space.config([2])
    with pytest.raises(ValueError, match="not on the grid"):
        space.config_from_values(a=3)
    with pytest.raises(ValueError, match="missing"):
        ActionSpace({"a": [1], "b": [1]}).config_from_values(a=1)
