"""The latency guardrail: a decision predicted to miss its budget becomes the best config
predicted to meet it; in the hook it runs after every engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastctrl.model_hook import hook
from fastctrl.model_hook.guardrail import ALL_TASKS, LatencyGuardrail
from fastctrl.profile.table import Profile
from fastctrl.testing.tiny_models import build_tiny, tiny_inputs

from .family_kit import grids_for, make_controller


@pytest.fixture(scope="module")
def digits():
    prof = Profile.load("fastctrl-digits")
    return prof, LatencyGuardrail.fit(prof, quantile=0.9)


def test_the_table_is_the_train_split_quantile_and_mean(digits):
    prof, g = digits
    train = prof.split_indices("train")
    reads = train[prof.task_types[train] == "read"]
    c = prof.full_index
    assert g.latency["read"][c] == pytest.approx(np.quantile(prof.latency[reads, c], 0.9))
    assert g.quality["read"][c] == pytest.approx(prof.quality[reads, c].mean())
    assert g.latency[ALL_TASKS][c] == pytest.approx(np.quantile(prof.latency[train, c], 0.9))


def test_a_decision_that_fits_stays_one_that_misses_is_replaced(digits):
    prof, g = digits
    full = [int(i) for i in prof.space.full().indices]
    lat, qual = g.latency["read"], g.quality["read"]
    roomy = float(lat.max()) + 1.0
    assert g.apply([full], np.array([roomy]), "read") == ([full], 0)
    tight = float(np.sort(lat)[len(lat) // 4])  # a quarter of the configs fit
    (row,), replaced = g.apply([full], np.array([tight]), "read")
    assert replaced == 1
    col = g._column[tuple(row)]
    fits = lat <= tight
    assert fits[col] and qual[col] == pytest.approx(qual[fits].max())
    (row,), _ = g.apply([full], np.array([0.001]), "read")  # nothing fits: the fastest
    assert g._column[tuple(row)] == int(np.argmin(lat))
    (row,), _ = g.apply([full], np.array([tight]), "no-such-task")  # unknown task: all tasks
    assert g.latency[ALL_TASKS][g._column[tuple(row)]] <= tight


@torch.no_grad()
def test_the_hook_runs_it_after_the_engine():
    model = build_tiny("llava-olmoe", seed=0)
    space = make_controller(model).space
    full = [len(v) - 1 for v in grids_for(model).values()]
    cheap = [0] * len(full)
    cols = {tuple(int(i) for i in c.indices): k for k, c in enumerate(space.all_configs())}
    n = len(cols)
    lat = np.full(n, 100.0)
    lat[cols[tuple(cheap)]] = 1.0
    table = {ALL_TASKS: lat}
    g = LatencyGuardrail(space.names, np.array(list(cols)), table, {ALL_TASKS: np.zeros(n)}, 0.9)
    with hook(
        model,
        make_controller(
            model,
            pick=dict(
                zip(
                    space.names,
                    [space[k].values[i] for k, i in zip(space.names, full, strict=True)],
                    strict=True,
                )
            ),
        ),
        budget_ms=[5.0, 500.0],
    ) as h:
        h.guardrail = g
        model(**tiny_inputs(model, batch=2, seed=1))
        assert h.last_request_decisions.tolist() == [cheap, full]
        assert h.stats.guardrail_replaced == 1
        assert h.last_config.indices == tuple(cheap)  # one forward: the per-knob minimum
