"""``generate()`` of a batch runs every request at its own decided config (``batching=
"per_request"``, the default), never at a cheaper one because another request in the batch is
tighter; ``batching="min"`` keeps the per-knob minimum."""

from __future__ import annotations

import logging

import pytest
import torch

from fastctrl.model_hook import hook
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs

from .family_kit import Probe, grids_for, make_controller

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

GEN = dict(max_new_tokens=5, min_new_tokens=5, do_sample=False)


class ByBudget:
    """A stand-in decision engine: each request's grid indices from its budget."""

    device = torch.device("cpu")

    def __init__(self, rows: dict[float, list[int]]) -> None:
        self.rows, self.calls = rows, 0

    def decide_tensors(self, image, text, budget):
        self.calls += 1
        return torch.tensor([self.rows[float(b)] for b in budget])


@pytest.fixture(scope="module")
def llava():
    return build_tiny("llava-olmoe", seed=0)


def rows_for(model) -> dict[float, list[int]]:
    """Three budgets that decide three different configs (tight, middle, loose)."""
    sizes = [len(v) for v in grids_for(model).values()]
    return {5.0: [0] * len(sizes), 50.0: [n // 2 for n in sizes], 500.0: [n - 1 for n in sizes]}


def pinned_batch(model, h, inputs, indices) -> torch.Tensor:
    """The whole batch generated pinned at one config (the independent reference)."""
    h.pin(h.space.config(indices))
    try:
        return model.generate(**inputs, **GEN)
    finally:
        h.pin(None)


@torch.no_grad()
def test_each_request_runs_its_own_config(llava):
    rows = rows_for(llava)
    budgets = [500.0, 5.0, 50.0, 500.0]
    inputs = tiny_inputs(llava, batch=4, seed=3)
    with hook(llava, make_controller(llava), budget_ms=budgets) as h:
        h.engine = engine = ByBudget(rows)
        out = llava.generate(**inputs, **GEN)
        assert engine.calls == 1  # one decision for the batch, before any group runs
        assert h.last_request_decisions.tolist() == [rows[b] for b in budgets]
        assert sum(h.stats.configs.values()) == 3  # one pinned run per distinct config
        refs = {b: pinned_batch(llava, h, inputs, rows[b]) for b in set(budgets)}
    for r, b in enumerate(budgets):
        assert torch.equal(out[r], refs[b][r]), f"request {r} (budget {b}) ran another config"
    # the premise: the configs give different answers, so the comparison can tell them apart
    assert not torch.equal(refs[5.0], refs[500.0])


@torch.no_grad()
def test_min_batching_runs_the_tightest_request_config_for_everyone(llava):
    rows = rows_for(llava)
    budgets = [500.0, 5.0]
    inputs = tiny_inputs(llava, batch=2, seed=3)
    with hook(llava, make_controller(llava), budget_ms=budgets, batching="min") as h:
        h.engine = ByBudget(rows)
        out = llava.generate(**inputs, **GEN)
        assert h.last_config.indices == tuple(rows[5.0])
        ref = pinned_batch(llava, h, inputs, rows[5.0])
    assert torch.equal(out, ref)


@torch.no_grad()
def test_decide_runs_no_language_model(llava):
    rows = rows_for(llava)
    inputs = tiny_inputs(llava, batch=3, seed=4)
    with hook(llava, make_controller(llava)) as h:
        h.engine = ByBudget(rows)
        probe = Probe(llava)
        configs = h.decide(budget_ms=[5.0, 50.0, 500.0], **inputs)
        probe.close()
        assert [list(c.indices) for c in configs] == [rows[5.0], rows[50.0], rows[500.0]]
        assert probe.attn_calls == 0  # stopped before the first decoder block
        assert sum(h.stats.configs.values()) == 0  # nothing ran
        h.pin(configs[0])
        with pytest.raises(RuntimeError, match="unpin first"):
            h.decide(budget_ms=5.0, **inputs)


@torch.no_grad()
def test_inputs_not_one_row_per_request_fall_back_to_the_minimum(caplog, monkeypatch):
    """Qwen-VL concatenates its images' patches over the batch: rows cannot be cut out."""
    from fastctrl.model_hook import per_request

    monkeypatch.setattr(per_request, "_warned", set())  # warned once per process
    model = build_tiny("qwen3-vl-moe", seed=0)
    rows = rows_for(model)
    inputs = tiny_inputs(model, batch=2, seed=3)
    assert inputs["pixel_values"].shape[0] != 2  # the premise: not one row per request
    with hook(model, make_controller(model), budget_ms=[500.0, 5.0]) as h:
        h.engine = ByBudget(rows)
        with caplog.at_level(logging.WARNING, logger="fastctrl.model_hook.per_request"):
            model.generate(**inputs, **GEN)
        assert h.last_config.indices == tuple(rows[5.0])
    assert "falls back to the per-knob minimum" in caplog.text


def test_batching_is_checked(llava):
    with pytest.raises(ValueError, match="batching must be one of"):
        hook(llava, make_controller(llava), batching="fastest")
