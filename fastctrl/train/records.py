"""What a training run writes and the E5 comparison reads: one definition for both.

``eval_results.json`` is :class:`EvalResults` and ``training_stats.json`` is
:class:`TrainingStats`, written with :func:`fastctrl.io.to_json` and read back with
:func:`read_eval_results` / :func:`read_training_stats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import io
from ..env import Metrics, PolicyEval

EVAL_FILE = "eval_results.json"
STATS_FILE = "training_stats.json"

#: the validation metrics each evaluation point records (the curves of the report)
CURVE_METRICS = ("utility", "quality_mean", "latency_p95", "slo_violation_rate", "reward_std")


@dataclass
class BudgetPoint:
    """Validation metrics at one budget ratio of an evaluation point."""

    utility: float
    quality_mean: float
    slo_violation_rate: float


@dataclass
class CurvePoint:
    """One evaluation point on the validation split."""

    epoch: int
    env_steps: int
    wall_s: float
    utility: float
    quality_mean: float
    latency_p95: float
    slo_violation_rate: float
    reward_std: float
    per_budget: dict[str, BudgetPoint] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    """The method's counters so far (updates, failed updates, zero-spread groups, ...)."""
    timers: dict[str, float] = field(default_factory=dict)
    """The method's timers so far, seconds."""
    lr: float | None = None
    train_logs: dict[str, float | None] = field(default_factory=dict)
    """Means of the training logs (losses...) since the previous point."""

    @classmethod
    def of(cls, m: PolicyEval, **kw: Any) -> CurvePoint:
        o = m.overall
        return cls(
            **kw,
            **{k: getattr(o, k) for k in CURVE_METRICS},
            per_budget={
                b: BudgetPoint(v.utility, v.quality_mean, v.slo_violation_rate)
                for b, v in m.per_budget.items()
            },
        )


@dataclass
class TrainingStats:
    """``training_stats.json``: the validation curve and the cost of training."""

    method: str
    config: dict[str, Any]
    """The run's TrainConfig (``TrainConfig.to_dict()``)."""
    history: list[CurvePoint]
    val_references: dict[str, Metrics]
    """Validation metrics of the oracle, best-static and full-model baselines."""
    cost_timer: str
    """Which of ``timers`` holds the method-specific cost."""
    timers: dict[str, float]
    counters: dict[str, int]
    train_time_s: float
    profile: str
    profile_report: dict[str, Any]


@dataclass
class EvalResults:
    """``eval_results.json``: the trained policy and the baselines on the test split."""

    method: str
    engine: str
    split: str
    n_test_requests: int
    n_configs: int
    budget_ratios: list[float]
    budget_baseline: str
    reward: dict[str, Any]
    env_steps: int
    train_time_s: float
    controller_parameters: int
    best_epoch: int | None
    controller: PolicyEval
    """The policy as deployed (with its safe fallback, when one was fitted)."""
    baselines: dict[str, PolicyEval]
    raw_controller: PolicyEval | None = None
    """The controller's own decisions without the safe fallback (when one was fitted)."""
    safe_fallback: dict[str, Any] | None = None
    """The fallback's cells: how many keep the controller (``safe_fallback.summary``)."""


def write_record(path: str | Path, record: Any) -> None:
    io.write_json(path, io.to_json(record))


def read_eval_results(run_dir: str | Path) -> EvalResults:
    path = Path(run_dir) / EVAL_FILE
    return io.from_json(EvalResults, io.read_json(path, "eval results"), str(path))


def read_training_stats(run_dir: str | Path) -> TrainingStats:
    path = Path(run_dir) / STATS_FILE
    return io.from_json(TrainingStats, io.read_json(path, "training stats"), str(path))
