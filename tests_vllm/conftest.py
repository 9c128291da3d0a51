"""Fixtures of the vLLM plugin's tests: tiny models, a seeded controller, and engine runs.

These tests need vLLM (its own environment, made by ``.ci/run``): importing it here makes a
missing or broken vLLM fail the run, never skip it. An engine starts in its own process
(:mod:`tests_vllm.engine_run`) once per (architecture, plugin on/off): module-scoped results
serve every test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import vllm  # noqa: F401  (a missing vLLM fails the run)

from fastctrl.policy.controller import Controller, ControllerConfig

from . import tiny
from .engine_run import run_engine

KINDS = ("olmoe", "qwen3_moe")
MAX_TOKENS = 8
PROMPTS = [[1, 40 + 3 * i, 50 + i, 60, 70 + 2 * i, 33 + i] for i in range(6)]
#: pinned (top_k, num_active_blocks) per request: the full config, each knob's cheapest and
#: mid settings, both together
PINS = [(4, 4), (2, 4), (1, 4), (4, 2), (4, 1), (2, 3), (1, 1)]
#: budgets of the controller's requests (distinct: the decision log is matched by budget)
BUDGETS = [3.0, 30.0, 300.0, 3000.0]
TASKS = ["chart", "ocr"]


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "vllm: needs vLLM (tests_vllm/, its own environment)")


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        item.add_marker(pytest.mark.vllm)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fastctrl_vllm")


@pytest.fixture(scope="session")
def hf_models(workdir: Path) -> dict[str, Any]:
    return {k: tiny.build(k, workdir / k) for k in KINDS}


@pytest.fixture(scope="session")
def controller_dir(workdir: Path) -> Path:
    """A seeded controller sized to the models (text_dim = hidden size, a zero image input)."""
    torch.manual_seed(1)
    cfg = ControllerConfig(
        image_dim=8,
        text_dim=tiny.HIDDEN,
        grids={"top_k": [1, 2, 4], "num_active_blocks": [1, 2, 3, 4]},
        ref_latency_ms=100.0,
        task_types=list(TASKS),
    )
    ctrl = Controller(cfg).eval()
    with torch.no_grad():  # make the budget matter: the heads read the budget encoding
        for p in ctrl.parameters():
            p.mul_(3.0)
    path = workdir / "controller"
    ctrl.save_pretrained(path)
    return path


def requests_spec() -> list[dict[str, Any]]:
    """Pinned requests, controller requests (budget + task type) and plain requests."""
    reqs: list[dict[str, Any]] = []
    for i, (k, d) in enumerate(PINS):
        pin = f"top_k={k},num_active_blocks={d}"
        reqs.append({"prompt": PROMPTS[i % len(PROMPTS)], "extra_args": {"fastctrl_pin": pin}})
    for i, b in enumerate(BUDGETS):
        args = {"fastctrl_budget_ms": b, "fastctrl_task_type": TASKS[i % 2]}
        reqs.append({"prompt": PROMPTS[(i + 2) % len(PROMPTS)], "extra_args": args})
    for p in PROMPTS[:2]:
        reqs.append({"prompt": p, "extra_args": {}})
    # a bad value must not take the engine down: that request runs the full config
    reqs.append({"prompt": PROMPTS[3], "extra_args": {"fastctrl_budget_ms": "soon"}})
    for r in reqs:
        r["max_tokens"] = MAX_TOKENS
    return reqs


@pytest.fixture(scope="module", params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def runs(
    kind: str, workdir: Path, hf_models: dict[str, Any], controller_dir: Path
) -> dict[str, Any]:
    """The same requests through vLLM with the plugin on (controller given) and off."""
    log = workdir / f"{kind}.decisions.jsonl"
    log.unlink(missing_ok=True)
    reqs = requests_spec()
    on = run_engine(
        {
            "model": str(workdir / kind),
            "env": {
                "FASTCTRL_CONTROLLER": str(controller_dir),
                "FASTCTRL_ENGINE": "torch",
                "FASTCTRL_DECISION_LOG": str(log),
            },
            "requests": reqs,
            "modes": ["batch", "alone"],
        },
        workdir / f"{kind}_on",
    )
    off = run_engine(
        {"model": str(workdir / kind), "env": {}, "requests": reqs, "modes": ["batch"]},
        workdir / f"{kind}_off",
    )
    decisions = [json.loads(line) for line in log.read_text().splitlines()]
    return {"on": on, "off": off, "requests": reqs, "decisions": decisions}
