"""A request's fastctrl fields in vLLM's ``SamplingParams.extra_args`` (``vllm_xargs`` of the
OpenAI request body): the same keys :mod:`fastctrl.serve.protocol` reads, plus a pin for tests.

- ``fastctrl_budget_ms``: the latency budget in ms (a number > 0; a numeric string is accepted,
  since ``vllm_xargs`` values may arrive as strings). Without it the request runs the full
  config (the unmodified model), unless pinned.
- ``fastctrl_task_type``: the task type the controller takes as an input (unknown if absent).
- ``fastctrl_pin``: run this config instead of asking the controller, as
  ``"top_k=2,num_active_blocks=3"`` (or a dict of knob values); knobs not named stay at the full
  model's value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..serve.protocol import VLLM_BUDGET_KEY, VLLM_TASK_KEY

VLLM_PIN_KEY = "fastctrl_pin"
#: the knobs the plugin applies inside vLLM's forward
TOPK_KNOB = "top_k"
BLOCKS_KNOB = "num_active_blocks"
APPLIED_KNOBS = (TOPK_KNOB, BLOCKS_KNOB)


@dataclass(frozen=True)
class RequestArgs:
    budget_ms: float | None = None
    task_type: str | None = None
    pin: dict[str, int] | None = None


def parse_pin(value: Any) -> dict[str, int]:
    """``"top_k=2,num_active_blocks=3"`` or ``{"top_k": 2, ...}`` -> knob values."""
    if isinstance(value, str):
        items: list[tuple[str, Any]] = []
        for part in value.split(","):
            if not part.strip():
                continue
            name, sep, v = part.partition("=")
            if not sep:
                raise ValueError(
                    f"{VLLM_PIN_KEY}: expected 'knob=value' pairs separated by commas, got "
                    f"{value!r}"
                )
            items.append((name.strip(), v.strip()))
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        raise ValueError(
            f"{VLLM_PIN_KEY}: expected a string like 'top_k=2,num_active_blocks=3' or a dict, "
            f"got {type(value).__name__}"
        )
    pin: dict[str, int] = {}
    for name, v in items:
        if name not in APPLIED_KNOBS:
            raise ValueError(f"{VLLM_PIN_KEY}: unknown knob {name!r}; knobs are {APPLIED_KNOBS}")
        try:
            iv = int(v)
        except (TypeError, ValueError):
            raise ValueError(f"{VLLM_PIN_KEY}: {name} must be an integer, got {v!r}") from None
        if isinstance(v, bool) or isinstance(v, float) and v != iv:
            raise ValueError(f"{VLLM_PIN_KEY}: {name} must be an integer, got {v!r}")
        pin[name] = iv
    if not pin:
        raise ValueError(f"{VLLM_PIN_KEY}: names no knob (got {value!r})")
    return pin


def parse_request_args(extra_args: Mapping[str, Any] | None) -> RequestArgs:
    """The fastctrl fields of one request's ``extra_args`` (other keys are left to others)."""
    if not extra_args:
        return RequestArgs()
    budget = extra_args.get(VLLM_BUDGET_KEY)
    if budget is not None:
        try:
            budget = float(budget)
        except (TypeError, ValueError):
            raise ValueError(
                f"{VLLM_BUDGET_KEY} must be a number of milliseconds, got {budget!r}"
            ) from None
        if not (math.isfinite(budget) and budget > 0):
            raise ValueError(f"{VLLM_BUDGET_KEY} must be finite and > 0 ms, got {budget!r}")
    task = extra_args.get(VLLM_TASK_KEY)
    if task is not None and not isinstance(task, str):
        raise ValueError(f"{VLLM_TASK_KEY} must be a string, got {type(task).__name__}")
    pin = extra_args.get(VLLM_PIN_KEY)
    return RequestArgs(
        budget_ms=budget, task_type=task, pin=None if pin is None else parse_pin(pin)
    )
