"""The model side of the server: a batch of scheduled requests in, each answered at its own
config, with what it spent.

One :class:`ModelRunner` owns the hooked model. For a batch it

1. encodes the requests' prompts and images in one processor call (left-padded);
2. decides each request's config on what is left of its budget when the batch starts
   (``policy``): ``controller`` -- the hook's decision on the model's own features (a single
   request decides inside its own forward, one pass; a batch is decided first with
   ``handle.decide``, the language model not run); ``table`` -- a lookup table (the ``lut``
   method: task type x budget bin -> config); ``static`` -- the best static config for
   the remaining budget, chosen on the profile's train split; ``full`` -- the full config;
3. groups the batch (``batching``): ``per_request`` -- one pinned run per distinct config, so
   no request runs at another's config; ``min`` -- one run at the per-knob minimum of the
   batch's decisions (what ``fastctrl.hook`` did for every batch before: the tightest request
   binds everyone);
4. answers each group greedily by the lean answer path (:mod:`fastctrl.runtime.answering`,
   ``generate()``'s tokens), each request cut to its own ``max_tokens``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..evaluate.live import reference_latency_ms, static_configs
from ..model_hook import hook
from ..model_hook.decision import batch_indices
from ..model_hook.per_request import group_rows, take_rows
from ..policy import Controller
from ..policy.lookup_table import LookupTablePolicy
from ..profile.table import Profile
from ..runtime.answering import lean_answer_path, token_ids
from ..space import ActionSpace, Config

Policy = Literal["controller", "table", "static", "full"]
Batching = Literal["per_request", "min"]


@dataclass
class Job:
    """One request inside the server."""

    request_id: str
    text: str
    """The prompt as the chat template renders it."""
    images: list[Any]
    budget_ms: float
    task_type: str | None
    max_new_tokens: int
    arrival: float
    """``time.perf_counter()`` at arrival (s)."""
    force_cheapest: bool = False
    """Set by admission control: run the cheapest config (the deadline cannot be met)."""

    @property
    def deadline(self) -> float:
        return self.arrival + self.budget_ms / 1e3


@dataclass
class Answer:
    token_ids: list[int]
    text: str
    finish_reason: Literal["stop", "length"]
    config: dict[str, int]
    decided_by: Literal["controller", "lookup_table", "static", "full", "cheapest"]
    remaining_budget_ms: float
    latency_scale: float
    """This host's latency over the profile's when it decided (the budget it decided on is
    ``remaining_budget_ms / latency_scale``)."""
    decision_ms: float
    model_ms: float
    batch_size: int
    prompt_tokens: int
    started: float = field(default=0.0)
    """``time.perf_counter()`` when its batch started (s): the end of its queueing."""
    prep_ms: float = 0.0
    """Its batch's prompt rendering and image processing (the processor call)."""
    finished: float = field(default=0.0)
    """``time.perf_counter()`` when the answer was ready (s)."""


class StaticTable:
    """The best static config per budget, chosen on the profile's train split (the same rule
    as the live evaluation's static baseline), looked up for the largest tabulated budget not
    above the remaining one (below the smallest: the cheapest config)."""

    RATIOS = tuple(np.round(np.arange(0.2, 1.51, 0.05), 2))

    def __init__(self, profile: Profile) -> None:
        budgets = [float(r * reference_latency_ms(profile)) for r in self.RATIOS]
        self.configs, self.reference_ms = static_configs(profile, budgets)
        self.budgets = np.array(sorted(self.configs))
        self.cheapest = profile.space.cheapest()

    def lookup(self, remaining_ms: float) -> Config:
        i = int(np.searchsorted(self.budgets, remaining_ms, side="right")) - 1
        return self.cheapest if i < 0 else self.configs[float(self.budgets[i])]


class LatencyCalibration:
    """This host's latency over the profile's, per answered request: ``model_ms`` over the
    profile's train-split mean for the config it ran, an exponential moving average.

    The controller learned its budgets on the profile's host and answer lengths; a request's
    remaining budget is divided by this ratio before the decision, so a host 1.3x slower than
    the profiled one decides as if it had 1/1.3 of the time (the profile's milliseconds). Starts
    at 1 and follows the last ~20 answers; clamped to [0.5, 4].
    """

    def __init__(self, profile: Profile, alpha: float = 0.1) -> None:
        train = profile.split_indices("train")
        mean = profile.mean_latency[train].mean(axis=0)
        self.predicted = {
            tuple(int(i) for i in idx): float(ms)
            for idx, ms in zip(profile.config_indices, mean, strict=True)
        }
        self.alpha, self.scale = alpha, 1.0

    def observe(self, config: Config, model_ms: float) -> None:
        pred = self.predicted.get(tuple(config.indices))
        if pred and math.isfinite(model_ms) and model_ms > 0:
            ratio = min(max(model_ms / pred, 0.5), 4.0)
            self.scale += self.alpha * (ratio - self.scale)


class ModelRunner:
    """Answers batches of :class:`Job` on one hooked model (see the module docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        space: ActionSpace,
        *,
        controller: Controller | None = None,
        policy: Policy = "controller",
        batching: Batching = "per_request",
        static: StaticTable | None = None,
        engine: str = "auto",
        calibration: LatencyCalibration | None = None,
        table: LookupTablePolicy | None = None,
    ) -> None:
        if policy == "controller" and controller is None:
            raise ValueError("policy 'controller' needs a controller")
        if policy == "table" and table is None:
            raise ValueError("policy 'table' needs a lookup table")
        if policy == "static" and static is None:
            raise ValueError("policy 'static' needs a profile to choose static configs on")
        self.model, self.processor, self.space = model, processor, space
        self.policy, self.batching, self.static = policy, batching, static
        self.calibration = calibration
        self.table = table
        self.handle = hook(
            model,
            controller if policy == "controller" else None,
            engine=engine,
            space=None if policy == "controller" else space,
            batching=batching,
        )
        self.full, self.cheapest = space.full(), space.cheapest()
        self._paths: dict[int, Any] = {}
        tok = processor.tokenizer
        cfg = getattr(model, "generation_config", None)
        self.eos = set(token_ids(getattr(cfg, "eos_token_id", None)) or token_ids(tok.eos_token_id))

    def close(self) -> None:
        self.handle.remove()

    # ------------------------------------------------------------------ one batch
    @torch.no_grad()
    def run(self, jobs: Sequence[Job]) -> list[Answer]:
        start = time.perf_counter()
        inputs = self.processor.encode([j.text for j in jobs], [j.images for j in jobs])
        prep_ms = (time.perf_counter() - start) * 1e3
        remaining = [max((j.deadline - time.perf_counter()) * 1e3, 1e-3) for j in jobs]
        scale = self.calibration.scale if self.calibration is not None else 1.0
        # in the profile host's milliseconds, the controller's and the guardrail's unit
        decide_on = [r / scale for r in remaining]
        tasks = [j.task_type for j in jobs]
        n_new = max(j.max_new_tokens for j in jobs)
        answer = self._path(n_new)
        prompt_len = int(inputs["input_ids"].shape[1])
        pad = inputs.get("attention_mask")
        prompt_tokens = (
            pad.sum(1).tolist() if isinstance(pad, torch.Tensor) else [prompt_len] * len(jobs)
        )

        decided_inside = (
            self.policy == "controller" and len(jobs) == 1 and not jobs[0].force_cheapest
        )
        t0 = time.perf_counter()
        if decided_inside:  # one request: the decision inside its own forward, one pass
            self.handle.stats.take_times()
            out = answer(inputs, budget_ms=decide_on[0], task_type=tasks[0])  # scalars: cheaper
            ctrl_ms, _ = self.handle.stats.take_times()
            configs = [self.handle.last_config]
            decision_ms = [ctrl_ms[-1] if ctrl_ms else float("nan")]
            outputs = {0: out[0]}
            model_ms = [(time.perf_counter() - t0) * 1e3 - decision_ms[0]]
            decided_by = ["controller"]
        else:
            configs, decision_ms, decided_by = self._decide(jobs, inputs, decide_on, tasks)
            outputs, model_ms = self._run_groups(configs, inputs, answer, len(jobs))
        finished = time.perf_counter()
        if self.calibration is not None:
            for c, ms in zip(configs, model_ms, strict=True):
                self.calibration.observe(c, ms)

        answers = []
        for i, j in enumerate(jobs):
            new = outputs[i][prompt_len:].tolist()[: j.max_new_tokens]
            stop = next((k for k, t in enumerate(new) if t in self.eos), None)
            tokens = new if stop is None else new[: stop + 1]
            answers.append(
                Answer(
                    token_ids=tokens,
                    text=self.processor.decode(tokens),
                    finish_reason="stop" if stop is not None else "length",
                    config=dict(configs[i].values),
                    decided_by=decided_by[i],
                    remaining_budget_ms=remaining[i],
                    latency_scale=scale,
                    decision_ms=decision_ms[i],
                    model_ms=model_ms[i],
                    batch_size=len(jobs),
                    prompt_tokens=int(prompt_tokens[i]),
                    started=start,
                    prep_ms=prep_ms,
                    finished=finished,
                )
            )
        return answers

    def _path(self, max_new_tokens: int) -> Any:
        """The lean answer path for ``max_new_tokens`` (``generate()`` where there is none)."""
        path = self._paths.get(max_new_tokens)
        if path is None:
            gen = {"max_new_tokens": max_new_tokens, "do_sample": False}
            lean = lean_answer_path(self.model, gen)
            if lean is None:
                model = self.model

                def lean(inputs: dict[str, Any], **kw: Any) -> torch.Tensor:
                    return model.generate(**inputs, **gen, **kw)

            path = self._paths[max_new_tokens] = lean
        return path

    def _decide(
        self,
        jobs: Sequence[Job],
        inputs: dict[str, Any],
        remaining: list[float],
        tasks: list[str | None],
    ) -> tuple[list[Config], list[float], list[str]]:
        n = len(jobs)
        forced = [j.force_cheapest for j in jobs]
        t0 = time.perf_counter()
        if self.policy == "controller" and not all(forced):
            self.handle.stats.take_times()
            configs = self.handle.decide(budget_ms=remaining, task_type=tasks, **inputs)
            ctrl_ms, _ = self.handle.stats.take_times()
            per_request = ctrl_ms[-1] if ctrl_ms else (time.perf_counter() - t0) * 1e3
            by = "controller"
        elif self.policy == "table":
            configs = [self.table.decide(t, r) for t, r in zip(tasks, remaining, strict=True)]
            per_request = (time.perf_counter() - t0) * 1e3 / n
            by = "lookup_table"
        elif self.policy == "static":
            configs = [self.static.lookup(r) for r in remaining]
            per_request = (time.perf_counter() - t0) * 1e3 / n
            by = "static"
        else:
            configs = [self.full] * n
            per_request, by = 0.0, "full"
        configs = [self.cheapest if f else c for c, f in zip(configs, forced, strict=True)]
        decided_by = ["cheapest" if f else by for f in forced]
        return configs, [per_request] * n, decided_by

    def _run_groups(
        self, configs: list[Config], inputs: dict[str, Any], answer: Any, n: int
    ) -> tuple[dict[int, torch.Tensor], list[float]]:
        rows = [list(c.indices) for c in configs]
        if self.batching == "min":
            low = batch_indices(rows)
            groups = {low: list(range(n))}
            for i in range(n):  # what each request actually runs
                configs[i] = self.space.config(list(low))
        else:
            groups = group_rows(rows)
        outputs: dict[int, torch.Tensor] = {}
        model_ms = [0.0] * n
        try:
            for indices, members in groups.items():
                self.handle.pin(self.space.config(list(indices)))
                sub = inputs if len(members) == n else take_rows(inputs, members, n)
                t0 = time.perf_counter()
                out = answer(sub)
                ms = (time.perf_counter() - t0) * 1e3
                for k, r in enumerate(members):
                    outputs[r] = out[k]
                    model_ms[r] = ms
        finally:
            self.handle.pin(None)
        return outputs, model_ms
