"""The environment every method learns from and is judged on: a contextual bandit over a
profile table, the reward, the no-training baselines and the metrics on the table.

- :mod:`.bandit`: :class:`ProfileEnv` (request + budget in, config out, quality and one
  measured latency back; counts ``env_steps``), :class:`Contexts`, the E5 budget ratios.
- :mod:`.reward`: the E5 reward and the GRPO design's shaped reward.
- :mod:`.baselines`: random / full / best-static / oracle (and, on profiles with expected
  quality, expected-quality oracle) policies and :class:`EnginePolicy` (a controller deciding
  through a decision engine).
- :mod:`.evaluation`: :class:`Metrics` / :class:`PolicyEval` of any policy on a split, oracle
  gaps, the share of the static -> oracle gap closed, Pareto frontiers,
  :func:`oracle_static_margin`.

Training (:mod:`fastctrl.train`) and the E5 comparison (:mod:`fastctrl.compare`) build on it;
nothing here imports them.
"""

from __future__ import annotations

from .bandit import (
    E5_BUDGET_RATIOS,
    GUIDE_BUDGET_RATIOS,
    Contexts,
    ProfileEnv,
    StepResult,
    guide_budgets,
)
from .baselines import (
    EnginePolicy,
    ExpectedOraclePolicy,
    FullPolicy,
    OraclePolicy,
    Policy,
    RandomPolicy,
    StaticPolicy,
    expected_quality_rewards,
)
from .evaluation import (
    Metrics,
    PolicyEval,
    add_oracle_gap,
    add_static_gap_closed,
    evaluate_baselines,
    evaluate_policy,
    gap_reference,
    oracle_static_margin,
    pareto_frontier,
    profile_frontier,
)
from .reward import E5Reward, Reward, ShapedReward

__all__ = [
    "E5_BUDGET_RATIOS",
    "GUIDE_BUDGET_RATIOS",
    "Contexts",
    "E5Reward",
    "EnginePolicy",
    "ExpectedOraclePolicy",
    "FullPolicy",
    "Metrics",
    "OraclePolicy",
    "Policy",
    "PolicyEval",
    "ProfileEnv",
    "RandomPolicy",
    "Reward",
    "ShapedReward",
    "StaticPolicy",
    "StepResult",
    "add_oracle_gap",
    "add_static_gap_closed",
    "evaluate_baselines",
    "evaluate_policy",
    "expected_quality_rewards",
    "gap_reference",
    "guide_budgets",
    "oracle_static_margin",
    "pareto_frontier",
    "profile_frontier",
]
