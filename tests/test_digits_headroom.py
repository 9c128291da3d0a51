"""The headroom table: what knowing a request attribute perfectly gains over one static config,
chosen on train and read on test (and in-sample on test), on a profile built so the answer is
known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastctrl.digits.headroom import headroom, main, page_grids, to_markdown
from fastctrl.digits.pages import PageGenerator
from fastctrl.profile.table import Profile
from fastctrl.space import ActionSpace

SPACE = ActionSpace({"top_k": [1, 2], "num_active_blocks": [1, 2]})


def two_task_profile() -> Profile:
    """``read`` is right only at (top_k 1, 2 blocks), ``count`` only at (top_k 2, 1 block); both
    cost 4 ms, the full config 10 ms. Train: 6 read, 4 count; test: 5 and 5."""
    cfgs = [c.values for c in SPACE.all_configs()]
    lat_of = {(1, 1): 2.0, (1, 2): 4.0, (2, 1): 4.0, (2, 2): 10.0}
    right = {"read": (1, 2), "count": (2, 1)}
    ids, tasks, splits = [], [], []
    for split, pool, n_read, n_count in (("train", "val", 6, 4), ("test", "test", 5, 5)):
        for i, t in enumerate(["read"] * n_read + ["count"] * n_count):
            ids.append(f"digits-{pool}-0-{i}")
            tasks.append(t)
            splits.append(split)
    key = [(c["top_k"], c["num_active_blocks"]) for c in cfgs]
    quality = np.array([[float(k == right[t] or k == (2, 2)) for k in key] for t in tasks])
    latency = np.tile(np.array([lat_of[k] for k in key])[None, :, None], (len(ids), 1, 2))
    return Profile(SPACE, ids, tasks, splits, quality, latency)


def test_a_per_task_choice_gains_what_the_profile_was_built_with():
    h = headroom(two_task_profile(), (0.5,))  # 5 ms: only the 2 and 4 ms configs fit
    assert h.baseline_ms == pytest.approx(10.0)
    # static picks read's config (the train majority): right on the 5 test read requests only
    assert h.accuracy["static"]["carried"] == [pytest.approx(0.5)]
    assert h.accuracy["by task"]["carried"] == [pytest.approx(1.0)]
    assert h.gain_points("by task", "carried") == [pytest.approx(50.0)]
    assert h.accuracy["by request"]["in_sample"] == [pytest.approx(1.0)]
    md = to_markdown(h)
    assert "| by task | train -> test | 1.000 | +50.0 | +50.0 |" in md


def test_over_budget_answers_count_as_wrong():
    h = headroom(two_task_profile(), (0.15,))  # 1.5 ms: nothing fits
    assert all(v == [0.0] for modes in h.accuracy.values() for v in modes.values())


def test_page_grids_are_the_pages_own_and_foreign_ids_are_refused():
    gen = PageGenerator("val", 3)
    want = [f"{len(p.digits)}x{len(p.digits[0])}" for p in (gen.page(0), gen.page(5))]
    assert page_grids(["digits-val-3-0", "digits-val-3-5"]).tolist() == want
    with pytest.raises(ValueError, match="request_id 'vqa-7' is not a digits page id"):
        page_grids(["vqa-7"])


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    table = tmp_path / "p.parquet"
    two_task_profile().save(table)
    out = tmp_path / "report"
    assert main(["--profile", str(table), "--budget_ratios", "0.5", "--output_dir", str(out)]) == 0
    assert "by task+grid" in capsys.readouterr().out
    assert "by task+grid" in (out / "headroom.md").read_text()
    data = json.loads((out / "headroom.json").read_text())
    assert data["gain_points"]["by task"]["carried"] == [pytest.approx(50.0)]
    assert main(["--profile", str(tmp_path / "missing.parquet")]) == 2  # bad input
    assert capsys.readouterr().err.startswith("error: profile table not found")


def test_the_knob_report_gives_the_latency_span_per_question_type():
    from fastctrl.digits.report import knob_table
    from fastctrl.digits.report import to_markdown as report_markdown

    prof = two_task_profile()
    prof.latency[np.array(prof.task_types) == "count"] *= np.array([1.0, 1.0, 1.0, 3.0])[:, None]
    rep = knob_table(prof, "test")
    # read: full 10 / cheapest 2 ms; count: its full config costs 30 ms
    spans = rep["latency_span_per_task"]
    assert spans["read"] == pytest.approx(
        {"full_p50_ms": 10.0, "cheapest_p50_ms": 2.0, "span": 5.0}
    )
    assert spans["count"] == pytest.approx(
        {"full_p50_ms": 30.0, "cheapest_p50_ms": 2.0, "span": 15.0}
    )
    assert "read 5.00x (10.00 / 2.00 ms), count 15.00x (30.00 / 2.00 ms)" in report_markdown(rep)
