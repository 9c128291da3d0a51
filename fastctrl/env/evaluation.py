"""Evaluation: the same metrics for every controller, baseline and method.

For a batch of (request, budget) contexts and the config chosen for each, with all ``S``
measured latency repeats of that config:

- ``quality_mean``: mean quality of the chosen configs;
- ``latency_mean`` / ``latency_p95``: over all n x S measured latencies (ms);
- ``slo_violation_rate``: share of those latencies above the budget;
- ``utility``: mean reward (the env's reward, over contexts and repeats);
- ``reward_std``: std over contexts of the repeat-averaged reward;
- ``gap_to_oracle`` / ``gap_to_oracle_pct``: oracle utility minus this utility (absolute, and
  in percent of the oracle's utility);
- ``controller_overhead_ms``: median wall time of one decision at batch 1, measured through
  the policy's decision engine (or its own decide() for table policies).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..profile.table import Profile
from .bandit import E5_BUDGET_RATIOS, Contexts, ProfileEnv
from .baselines import EnginePolicy, FullPolicy, OraclePolicy, Policy, RandomPolicy, StaticPolicy
from .reward import Reward


@dataclass
class Metrics:
    """Metrics of one policy on a set of contexts (see the module docstring)."""

    quality_mean: float
    latency_mean: float
    latency_p95: float
    slo_violation_rate: float
    utility: float
    reward_std: float
    gap_to_oracle: float | None = None
    gap_to_oracle_pct: float | None = None


@dataclass
class PolicyEval:
    """A policy on a split: metrics per budget ratio (keys ``"0.35"``...) and overall."""

    overall: Metrics
    per_budget: dict[str, Metrics] = field(default_factory=dict)
    controller_overhead_ms: float | None = None


def decision_metrics(env: ProfileEnv, ctx: Contexts, configs_flat: np.ndarray) -> Metrics:
    """Metrics of chosen configs (flat indices [n]) over all measured repeats."""
    cfg = np.asarray(configs_flat, dtype=np.int64)
    prof = env.profile
    q = prof.quality[ctx.req, cfg].astype(np.float64)
    lat = prof.latency[ctx.req, cfg].astype(np.float64)                 # [n, S]
    budget = ctx.budget_ms[:, None]
    r = env.reward(q[:, None], lat, budget, env.complexity[cfg][:, None])
    return Metrics(
        quality_mean=float(q.mean()),
        latency_mean=float(lat.mean()),
        latency_p95=float(np.percentile(lat, 95)),
        slo_violation_rate=float((lat > budget).mean()),
        utility=float(r.mean()),
        reward_std=float(r.mean(1).std()),
    )


def to_flat(env: ProfileEnv, indices: np.ndarray) -> np.ndarray:
    """[n, n_knobs] grid indices (a policy's decisions) -> [n] flat config indices."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 2:
        raise ValueError(f"decisions must be [n, {len(env.space)}] grid indices, got "
                         f"{list(idx.shape)}")
    return env.space.flat_index(idx)


def measure_overhead_ms(policy: Policy, env: ProfileEnv, ctx: Contexts,
                        n_calls: int = 200, warmup: int = 20) -> float:
    """Median time of one decision at batch 1 (ms), through the decision engine if any."""
    n = min(len(ctx), n_calls)
    if isinstance(policy, EnginePolicy):
        image, text = env.features(ctx.take(np.arange(n)))
        rows = [(np.ascontiguousarray(image[i:i + 1]), np.ascontiguousarray(text[i:i + 1]),
                 float(ctx.budget_ms[i])) for i in range(n)]

        def call(i: int) -> None:
            policy.engine.decide(*rows[i])
    else:
        singles = [ctx.take(np.array([i])) for i in range(n)]

        def call(i: int) -> None:
            policy.decide(singles[i], env)

    for i in range(min(warmup, n)):
        call(i)
    times = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def evaluate_policy(policy: Policy, env: ProfileEnv,
                    ratios: tuple[float, ...] | None = None,
                    measure_overhead: bool = True) -> PolicyEval:
    """Metrics per budget ratio and overall for one policy on ``env``'s split."""
    ratios = env.budget_ratios if ratios is None else ratios
    ctx = env.all_contexts(ratios)
    flat = to_flat(env, policy.decide(ctx, env))
    out = PolicyEval(overall=decision_metrics(env, ctx, flat))
    for ratio in ratios:
        m = ctx.ratio == ratio
        out.per_budget[f"{ratio:.2f}"] = decision_metrics(env, ctx.take(m), flat[m])
    if measure_overhead:
        out.controller_overhead_ms = measure_overhead_ms(policy, env, ctx)
    return out


def add_oracle_gap(result: PolicyEval, oracle: PolicyEval) -> None:
    """Set ``gap_to_oracle`` (+ ``_pct``) of every block of ``result``, in place."""
    def gap(block: Metrics, ref: Metrics) -> None:
        g = ref.utility - block.utility
        block.gap_to_oracle = float(g)
        block.gap_to_oracle_pct = float(100.0 * g / abs(ref.utility)) if ref.utility != 0 \
            else None

    gap(result.overall, oracle.overall)
    for k, block in result.per_budget.items():
        gap(block, oracle.per_budget[k])


def evaluate_baselines(train_env: ProfileEnv, eval_env: ProfileEnv, seed: int = 0,
                       measure_overhead: bool = True) -> dict[str, PolicyEval]:
    """random / full / best_static (fit on train) / oracle on ``eval_env``, with oracle gaps."""
    policies: list[Policy] = [RandomPolicy(seed), FullPolicy(), StaticPolicy.fit(train_env),
                              OraclePolicy()]
    results = {p.name: evaluate_policy(p, eval_env, measure_overhead=measure_overhead)
               for p in policies}
    for res in results.values():
        add_oracle_gap(res, results["oracle"])
    return results


def pareto_frontier(latency: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both axes (lower latency, higher
    quality), sorted by latency."""
    latency = np.asarray(latency, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    order = np.lexsort((-quality, latency))
    keep, best = [], -np.inf
    for i in order:
        if quality[i] > best:
            keep.append(i)
            best = quality[i]
    return np.asarray(keep, dtype=np.int64)


def profile_frontier(profile: Profile, split: str = "test") -> list[dict[str, Any]]:
    """The latency-quality Pareto frontier of static configs on a split (means per config)."""
    idx = profile.split_indices(split)
    lat = profile.mean_latency[idx].mean(0)
    q = profile.quality[idx].mean(0)
    return [{"config": profile.space.config(profile.config_indices[i]).values,
             "latency_mean": float(lat[i]), "quality_mean": float(q[i])}
            for i in pareto_frontier(lat, q)]


def oracle_static_margin(profile: Profile, reward: Reward | None = None, *,
                         ratios: tuple[float, ...] = E5_BUDGET_RATIOS,
                         baseline: str = "global", split: str = "test"
                         ) -> list[dict[str, Any]]:
    """Is the problem worth a controller? Per budget ratio: the per-request oracle's quality vs
    the best single static config whose SLO violation on ``split`` is at most the oracle's.

    The static config is picked with hindsight on ``split`` itself (the strongest static
    baseline there is), so ``margin`` = oracle quality - static quality is a lower bound on
    what per-request decisions buy.
    """
    ev = ProfileEnv(profile, split, reward=reward, budget_ratios=ratios, baseline=baseline)
    oracle = OraclePolicy()
    rows = []
    for ratio in ratios:
        ctx = ev.all_contexts((ratio,))
        m_or = decision_metrics(ev, ctx, to_flat(ev, oracle.decide(ctx, ev)))
        lat = profile.latency[ctx.req].astype(np.float64)               # [n, C, S]
        viol = (lat > ctx.budget_ms[:, None, None]).mean(axis=(0, 2))   # [C]
        qual = profile.quality[ctx.req].mean(0)
        ok = np.flatnonzero(viol <= m_or.slo_violation_rate)
        if len(ok) == 0:
            ok = np.array([int(viol.argmin())])
        best = int(ok[qual[ok].argmax()])
        m_st = decision_metrics(ev, ctx, np.full(len(ctx), best))
        rows.append({
            "budget_ratio": ratio,
            "oracle_quality": m_or.quality_mean,
            "oracle_slo_violation_rate": m_or.slo_violation_rate,
            "static_config": profile.space.config(profile.config_indices[best]).values,
            "static_quality": m_st.quality_mean,
            "static_slo_violation_rate": m_st.slo_violation_rate,
            "margin": m_or.quality_mean - m_st.quality_mean,
        })
    return rows
