"""The lookup table as served: the saved table decides every (request, budget) as the trained
method decides it, loads without pickle and refuses bad input clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastctrl.policy.lookup_table import RUN_SUBDIR, LookupTablePolicy
from fastctrl.space import ActionSpace

from .train_kit import synthetic_training, training_run


@pytest.fixture(scope="module")
def lut_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lut")
    run = training_run(out, "--method", "lut", *synthetic_training(300, 20000, 4500))
    run.run()
    return run, out


def test_the_served_table_decides_as_the_method_does(lut_run):
    run, out = lut_run
    served = LookupTablePolicy.from_pretrained(out / RUN_SUBDIR)
    env = run.test_env
    n = len(env.requests)
    ctx = env.contexts(
        np.tile(env.requests, len(env.budget_ratios)), np.repeat(env.budget_ratios, n)
    )
    want = run.method.decide(ctx, env)  # [requests x budgets, knobs] grid indices
    got = np.array(
        [
            served.decide(str(env.profile.task_types[r]), float(b)).indices
            for r, b in zip(ctx.req, ctx.budget_ms, strict=True)
        ]
    )
    np.testing.assert_array_equal(got, want)
    assert len({tuple(row) for row in want}) > 1  # the table varies: a real comparison
    assert served.space == run.profile.space
    assert served.tasks == sorted(set(env.profile.task_types.astype(str)))


def test_a_round_trip_keeps_the_table_and_bad_files_are_refused(lut_run, tmp_path):
    _, out = lut_run
    served = LookupTablePolicy.from_pretrained(out / RUN_SUBDIR)
    served.save_pretrained(tmp_path / "copy")
    again = LookupTablePolicy.from_pretrained(tmp_path / "copy")
    np.testing.assert_array_equal(again.indices, served.indices)
    np.testing.assert_array_equal(again.edges_ms, served.edges_ms)
    assert again.tasks == served.tasks and again.space == served.space

    (tmp_path / "copy" / "table.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt or unreadable"):
        LookupTablePolicy.from_pretrained(tmp_path / "copy")
    (tmp_path / "copy" / "table.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lookup table not found"):
        LookupTablePolicy.from_pretrained(tmp_path / "copy")
    cfg = tmp_path / "copy" / "config.json"
    cfg.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a fastctrl lookup table"):
        LookupTablePolicy.from_pretrained(tmp_path / "copy")


def test_bad_requests_and_tables_name_what_was_expected():
    space = ActionSpace({"top_k": [1, 2], "num_active_blocks": [1, 2]})
    table = LookupTablePolicy(
        space, ["count", "read"], np.array([10.0]), np.array([[[0, 0], [1, 1]], [[0, 1], [1, 0]]])
    )
    assert table.decide("read", 5.0).values == {"top_k": 1, "num_active_blocks": 2}
    assert table.decide("read", 50.0).values == {"top_k": 2, "num_active_blocks": 1}
    assert table.decide("count", 10.0).values == {"top_k": 1, "num_active_blocks": 1}
    with pytest.raises(ValueError, match="task_type 'sum'"):
        table.decide("sum", 5.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="budget_ms must be a positive finite"):
            table.decide("read", bad)
    with pytest.raises(ValueError, match="indices must be"):
        LookupTablePolicy(space, ["read"], np.array([10.0]), np.zeros((1, 2, 3), dtype=int))
    with pytest.raises(ValueError, match="edges_ms must hold"):
        LookupTablePolicy(space, ["read"], np.array([1.0, 2.0]), np.zeros((1, 2, 2), dtype=int))
    with pytest.raises(ValueError, match="out of the grid"):
        LookupTablePolicy(space, ["read"], np.array([1.0]), np.full((1, 2, 2), 2))
