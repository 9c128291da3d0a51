"""A controller, the best static config and the full config, live on the same requests.

For every budget and every request the three policies answer on the hooked model in turn
(interleaved, so load drift on a shared machine hits them alike): the controller decides
through the hook's one decision path (a lookup table, which reads no features, by its task
type x budget cell, pinned inside the timed call); the other two are pinned. A request is answered with
greedy ``generate()``, or, with ``answer_path="auto"``, by the lean path that gives its
tokens (:func:`~fastctrl.runtime.answering.lean_answer_path`: the prefill forward alone
for one-token answers, the cached greedy loop for longer ones; the profiler answers the same
way), up to ``max_new_tokens``, stopping at the end of sequence. Each run is timed end to end
(prefill + decode steps; CUDA events on GPU), its answer scored with the dataset's
metric, or, with the ``agreement`` metric (no answers needed), its tokens compared with the
tokens the full config generated for the same request at the same budget. Per budget and
policy: accuracy, latency p50 / p95, SLO attainment (share of requests whose latency is within
the budget), the histogram of configs run and, for the controller, its share of the forward
(``handle.stats``).

The best static config per budget is chosen on the TRAIN split of the model's profile (the
profile the controller was trained on), exactly as the table evaluation chooses it: the
config with the best mean reward at that budget ratio (:class:`~fastctrl.env.baselines.
StaticPolicy`). Budgets are absolute ms; a ratio is relative to the profile's mean
full-config latency on train (the ``global`` budget baseline of training).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..env import ProfileEnv
from ..env.baselines import StaticPolicy
from ..model_hook import hook
from ..policy import Controller
from ..policy.lookup_table import LookupTablePolicy
from ..profile.table import Profile
from ..runtime.answering import answered_by, check_answer_path, lean_answer_path, make_decoder
from ..runtime.metrics import AnswerFn, Metric, resolve_metric
from ..runtime.requests import Request
from ..runtime.timing import CallTimer
from ..space import Config


@dataclass
class PolicyResult:
    """One policy at one budget."""

    accuracy: float
    latency_p50_ms: float
    latency_p95_ms: float
    slo_attainment: float
    configs: dict[str, int]
    """Histogram of the configs run: ``"max_crops=2,top_k=4,..."`` -> requests."""
    latency_ms: list[float] = field(default_factory=list)
    controller_share: float | None = None
    """The controller's share of the forward time (controller policy only)."""
    controller_ms_p50: float | None = None


@dataclass
class LiveResult:
    budgets_ms: list[float]
    reference_ms: float | None
    """Mean full-config latency on the profile's train split (what ratios multiply)."""
    metric: str
    n_requests: int
    max_new_tokens: int
    per_budget: dict[str, dict[str, PolicyResult]]
    """``"<budget ms>"`` -> policy name -> result."""
    static_configs: dict[str, dict[str, int]]
    """``"<budget ms>"`` -> the best static config's knob values."""
    answered_by: str = "generate"
    """``prefill_forward``, ``greedy_decode`` or ``generate``: the path every request was
    answered by."""
    decided_by: str = "controller"
    """``controller`` (through the hook's engine) or ``lookup_table`` (task type x budget
    bin, pinned): what the ``controller`` policy was."""
    guardrail_replaced: int = 0
    """Controller decisions the latency guardrail replaced (all budgets, warm-up included)."""


def config_key(values: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


def reference_latency_ms(profile: Profile) -> float:
    """What budget ratios multiply: the full config's mean latency on the train split."""
    return float(profile.mean_latency[profile.split_indices("train"), profile.full_index].mean())


def static_configs(
    profile: Profile, budgets_ms: Sequence[float]
) -> tuple[dict[float, Config], float]:
    """Per budget, the best static config chosen on the profile's train split, and the
    reference latency (:func:`reference_latency_ms`) budgets are relative to."""
    ref = reference_latency_ms(profile)
    ratios = tuple(b / ref for b in budgets_ms)
    env = ProfileEnv(profile, "train", budget_ratios=ratios, baseline="global")
    policy = StaticPolicy.fit(env)
    configs = list(profile.space.all_configs())
    out = {}
    for b, r in zip(budgets_ms, ratios, strict=True):
        flat = int(policy.configs[np.abs(policy.ratios - r).argmin()])
        out[float(b)] = configs[flat]
    return out, ref


def evaluate_live(
    model: nn.Module,
    processor: Any,
    controller: Controller | LookupTablePolicy,
    requests: Sequence[Request],
    budgets_ms: Sequence[float],
    metric: str | Metric | AnswerFn,
    metric_name: str | None = None,
    *,
    static: dict[float, Config] | None = None,
    reference_ms: float | None = None,
    max_new_tokens: int = 4,
    warmup: int = 1,
    engine: str = "auto",
    answer_path: str = "auto",
    guardrail: Any = None,
    quiet: bool = False,
) -> LiveResult:
    """Run every request at every budget under the controller, ``static`` (if given) and the
    full config; see the module docstring. ``answer_path``: ``auto`` or ``generate``.

    ``metric``: a name of :data:`~fastctrl.runtime.metrics.METRICS`, a
    :class:`~fastctrl.runtime.metrics.Metric` or an answer function (see
    :func:`~fastctrl.runtime.metrics.resolve_metric`); ``metric_name`` (default: the
    metric's) names it in the result. An answer metric scores each answer against the
    request's references (every request needs them); an agreement metric compares each
    policy's tokens with the full config's tokens for the same request and budget.

    ``controller`` may be a :class:`~fastctrl.policy.lookup_table.LookupTablePolicy` (the
    ``lut`` method): it reads no features, so each request's config is looked up from its
    ``task_type`` and budget inside the timed call and pinned on the hooked model, which
    applies it as it applies a controller's decision.

    ``guardrail``: a :class:`~fastctrl.model_hook.guardrail.LatencyGuardrail` run after the
    controller's decisions (the controller row only; pinned policies are not decided)."""
    if not requests:
        raise ValueError("no requests to evaluate")
    budgets = [float(b) for b in budgets_ms]
    if not budgets or any(not np.isfinite(b) or b <= 0 for b in budgets):
        raise ValueError(f"budgets must be positive finite ms, got {list(budgets_ms)}")
    # an answer metric without an answer for every request: ValueError
    resolved_name, metric = resolve_metric(metric, all(r.answer is not None for r in requests))
    metric_name = metric_name or resolved_name
    device = next(model.parameters()).device
    timer = CallTimer(device)
    decode = make_decoder(processor)
    check_answer_path(answer_path)
    # as the profiler answers: greedy, up to max_new_tokens, stopping at the end of sequence
    gen = dict(max_new_tokens=max_new_tokens, do_sample=False)
    prefill = lean_answer_path(model, gen) if answer_path == "auto" else None
    space = controller.space
    full = space.full()
    table = controller if isinstance(controller, LookupTablePolicy) else None
    if table is not None:
        unknown = sorted({str(r.task_type) for r in requests} - set(table.tasks))
        if unknown:
            raise ValueError(
                f"the lookup table knows the task types {table.tasks}; the "
                f"requests also have {unknown}"
            )
        handle = hook(model, space=space)
    else:
        handle = hook(model, controller, budget_ms=budgets[0], engine=engine)
    handle.guardrail = guardrail
    per_budget: dict[str, dict[str, PolicyResult]] = {}
    try:

        def run(
            req: Request, inputs: dict[str, Any], pin: Config | None, budget: float
        ) -> tuple[list[int], float, str]:
            looked_up = table is not None and pin is None
            handle.pin(pin)

            def answer() -> torch.Tensor:
                if looked_up:  # the table's decision, timed with the answer it serves
                    handle.pin(table.decide(req.task_type, budget))
                if prefill is not None:
                    return prefill(inputs, budget_ms=budget, task_type=req.task_type)
                return model.generate(**inputs, **gen, budget_ms=budget, task_type=req.task_type)

            out, ms = timer.time(answer)
            pred = out[0, inputs["input_ids"].shape[1] :].tolist()
            return pred, ms, config_key(handle.last_config.values)

        def score(req: Request, pred: list[int], full_ids: list[int]) -> float:
            return metric.score(
                prediction_text=decode(pred),
                references=req.answer,
                prediction_ids=pred,
                full_config_ids=full_ids,
            )

        inputs_of = [
            {
                k: v.to(device) if isinstance(v, torch.Tensor) else v
                for k, v in processor([r.image], [r.prompt]).items()
            }
            for r in requests
        ]
        with torch.inference_mode():
            for _ in range(warmup):  # untimed: caches, allocator, the engine's first call
                run(requests[0], inputs_of[0], None, budgets[0])
                run(requests[0], inputs_of[0], full, budgets[0])
            bar = tqdm(
                total=len(budgets) * len(requests), desc="evaluate", unit="req", disable=quiet
            )
            for b in budgets:
                pins: dict[str, Config | None] = {"controller": None, "full": full}
                if static is not None:
                    pins["best_static"] = static[b]
                acc: dict[str, list[tuple[float, float, str]]] = {n: [] for n in pins}
                handle.stats.take_times()
                for req, inputs in zip(requests, inputs_of, strict=True):
                    ran = {name: run(req, inputs, pin, b) for name, pin in pins.items()}
                    # scored once every policy ran: an agreement metric compares each policy's
                    # tokens with the full config's for this request and budget
                    full_ids = ran["full"][0]
                    for name, (pred, ms, cfg) in ran.items():
                        acc[name].append((score(req, pred, full_ids), ms, cfg))
                    bar.update(1)
                # only the controller's forwards decide, so only they are timed
                ctrl_ms, fwd_ms = handle.stats.take_times()
                res = {}
                for name, rows in acc.items():
                    q = np.array([r[0] for r in rows])
                    lat = np.array([r[1] for r in rows])
                    res[name] = PolicyResult(
                        accuracy=float(q.mean()),
                        latency_p50_ms=float(np.percentile(lat, 50)),
                        latency_p95_ms=float(np.percentile(lat, 95)),
                        slo_attainment=float((lat <= b).mean()),
                        configs=dict(Counter(r[2] for r in rows).most_common()),
                        latency_ms=[float(x) for x in lat],
                    )
                if ctrl_ms:
                    res["controller"].controller_share = float(np.sum(ctrl_ms) / np.sum(fwd_ms))
                    res["controller"].controller_ms_p50 = float(np.median(ctrl_ms))
                per_budget[f"{b:g}"] = res
            bar.close()
    finally:
        replaced = handle.stats.guardrail_replaced
        handle.remove()
    return LiveResult(
        budgets,
        reference_ms,
        metric_name,
        len(requests),
        max_new_tokens,
        per_budget,
        {f"{b:g}": c.values for b, c in (static or {}).items()},
        answered_by(prefill),
        "lookup_table" if table is not None else "controller",
        replaced,
    )
