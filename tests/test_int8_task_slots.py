"""The int8 engine's task input: ``[text, one_hot(task)]`` written into a reused buffer gives
exactly the decisions of the reference concatenation (``Engine.with_task``)."""

from __future__ import annotations

import numpy as np
import torch

from fastctrl import Controller, ControllerConfig, make_engine


def test_task_buffer_equals_the_reference_concatenation():
    torch.manual_seed(0)
    c = Controller(ControllerConfig(image_dim=24, text_dim=40, task_types=["a", "b", "c"])).eval()
    with torch.no_grad():  # task vectors that move decisions (they start at zero)
        c.task_embed.weight.normal_(0.0, 5.0)
    eng = make_engine(c, "int8")
    rng = np.random.default_rng(0)
    for bsz in (1, 3, 7, 3):  # a batch size seen again reuses its buffer
        image = torch.from_numpy(rng.standard_normal((bsz, 24), dtype=np.float32))
        text = torch.from_numpy(rng.standard_normal((bsz, 40), dtype=np.float32))
        budget = torch.from_numpy(rng.uniform(5, 400, bsz).astype(np.float32))
        task = torch.from_numpy(rng.integers(0, 4, bsz))
        for t in (task, None):
            got = eng.decide_rows(image, text, budget, t)
            ref_text = eng.with_task(text, t).numpy()
            want = eng._decide_list(image.numpy(), np.ascontiguousarray(ref_text), budget.numpy())
            assert got == want
            arrays = eng._arrays(image, text, budget, t)
            np.testing.assert_array_equal(arrays[1], ref_text)
    # the premise: the task input changes some decisions, so the comparison can tell
    image = torch.from_numpy(rng.standard_normal((64, 24), dtype=np.float32))
    text = torch.from_numpy(rng.standard_normal((64, 40), dtype=np.float32))
    budget = torch.from_numpy(rng.uniform(5, 400, 64).astype(np.float32))
    per_task = [eng.decide_rows(image, text, budget, torch.full((64,), k)) for k in range(4)]
    assert any(per_task[k] != per_task[0] for k in range(1, 4))
