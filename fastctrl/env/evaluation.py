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
- ``quality_expected_mean`` / ``utility_expected`` (profiles with ``quality_expected`` only,
  else None): the same mean quality and mean reward on the *expected* quality — what the
  policy earns on average, free of the answer noise of the measured quality;
- ``gap_closed``: the share of the best-static -> oracle gap this policy closes,
  ``(u - u_best_static) / (u_ref - u_best_static)`` (1 = as good as the reference oracle,
  0 = as good as the best static config, < 0 = worse). The reference (``gap_closed_reference``)
  is ``oracle_expected`` when the profile has expected quality, and then every ``u`` is a
  ``utility_expected``; else the hindsight ``oracle`` on measured utility. None where the
  oracle does not beat the static config (no gap to close);
- ``imputed_fraction`` (profiles loaded with ``missing_configs="impute"`` only, else None):
  the share of chosen (request, config) cells that were imputed, not measured;
- ``controller_overhead_ms``: median wall time of one decision at batch 1, measured through
  the policy's decision engine (or its own decide() for table policies).
"""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..profile.table import Profile
from .bandit import E5_BUDGET_RATIOS, Contexts, ProfileEnv
from .baselines import EnginePolicy, ExpectedOraclePolicy, OraclePolicy, Policy, baseline_policies
from .reward import Reward

QualityKind = Literal["auto", "measured", "expected"]
QUALITY_KINDS: tuple[str, ...] = typing.get_args(QualityKind)
#: below this utility gap (reward units) the oracle does not beat the static config
_MIN_GAP = 1e-9


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
    quality_expected_mean: float | None = None
    utility_expected: float | None = None
    gap_closed: float | None = None
    gap_closed_reference: str | None = None
    imputed_fraction: float | None = None


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
    lat = prof.latency[ctx.req, cfg].astype(np.float64)  # [n, S]
    budget = ctx.budget_ms[:, None]
    r = env.reward(q[:, None], lat, budget, env.complexity[cfg][:, None])
    m = Metrics(
        quality_mean=float(q.mean()),
        latency_mean=float(lat.mean()),
        latency_p95=float(np.percentile(lat, 95)),
        slo_violation_rate=float((lat > budget).mean()),
        utility=float(r.mean()),
        reward_std=float(r.mean(1).std()),
    )
    if prof.measured is not None:
        m.imputed_fraction = float(1.0 - prof.measured[ctx.req, cfg].mean())
    if prof.quality_expected is not None:
        qe = prof.quality_expected[ctx.req, cfg].astype(np.float64)
        re = env.reward(qe[:, None], lat, budget, env.complexity[cfg][:, None])
        m.quality_expected_mean = float(qe.mean())
        m.utility_expected = float(re.mean())
    return m


def to_flat(env: ProfileEnv, indices: np.ndarray) -> np.ndarray:
    """[n, n_knobs] grid indices (a policy's decisions) -> [n] flat config indices."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 2:
        raise ValueError(
            f"decisions must be [n, {len(env.space)}] grid indices, got {list(idx.shape)}"
        )
    return env.space.flat_index(idx)


def measure_overhead_ms(
    policy: Policy, env: ProfileEnv, ctx: Contexts, n_calls: int = 200, warmup: int = 20
) -> float:
    """Median time of one decision at batch 1 (ms), through the decision engine if any.

    An engine policy is timed through exactly the call a hooked forward makes
    (:func:`fastctrl.model_hook.decision.decide`: ``engine.decide_tensors`` / ``decide_rows`` on
    float32 ``[1, D]`` tensors and a float32 ``[1]`` budget tensor on the engine's device,
    then the config from the host-read decisions), so the overhead reported is what serving
    pays after pooling; the numpy fast path of ``Engine.decide`` is not what the hook runs.
    """
    n = min(len(ctx), n_calls)
    if isinstance(policy, EnginePolicy):
        import torch

        from ..model_hook.decision import ConfigCache, decide

        engine = policy.engine
        configs = ConfigCache(env.space)
        image, text = env.features(ctx.take(np.arange(n)))

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(engine.device)

        rows = [
            (
                tensor(image[i : i + 1]),
                tensor(text[i : i + 1]),
                tensor(np.asarray([ctx.budget_ms[i]])),
            )
            for i in range(n)
        ]
        tasks: list[torch.Tensor | None] = [None] * n
        if getattr(engine, "n_task_slots", 0):
            types = env.profile.task_types[ctx.req[:n]]
            tasks = [
                torch.from_numpy(engine.task_slots(types[i : i + 1], 1)).to(engine.device)
                for i in range(n)
            ]

        def call(i: int) -> None:
            decide(engine, configs, *rows[i], tasks[i])
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


def evaluate_policy(
    policy: Policy,
    env: ProfileEnv,
    ratios: tuple[float, ...] | None = None,
    measure_overhead: bool = True,
) -> PolicyEval:
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
        block.gap_to_oracle_pct = float(100.0 * g / abs(ref.utility)) if ref.utility != 0 else None

    gap(result.overall, oracle.overall)
    for k, block in result.per_budget.items():
        gap(block, oracle.per_budget[k])


def gap_reference(baselines: dict[str, PolicyEval]) -> str:
    """The oracle that :func:`add_static_gap_closed` measures against: ``oracle_expected``
    when the baselines have it (a profile with expected quality), else ``oracle``."""
    for name in ("oracle_expected", "oracle"):
        if name in baselines:
            return name
    raise ValueError(f"baselines must hold 'oracle' or 'oracle_expected', got {sorted(baselines)}")


def add_static_gap_closed(result: PolicyEval, baselines: dict[str, PolicyEval]) -> None:
    """Set ``gap_closed`` (+ ``gap_closed_reference``) of every block of ``result``, in place:
    the share of the ``best_static`` -> reference-oracle gap it closes (see the module
    docstring; ``baselines`` is what :func:`evaluate_baselines` returns, on the same split)."""
    if "best_static" not in baselines:
        raise ValueError(f"baselines must hold 'best_static', got {sorted(baselines)}")
    ref_name = gap_reference(baselines)
    static, ref = baselines["best_static"], baselines[ref_name]
    expected = ref_name == "oracle_expected"

    def utility(block: Metrics, who: str) -> float:
        if not expected:
            return block.utility
        if block.utility_expected is None:
            raise ValueError(
                f"add_static_gap_closed: {who} has no utility_expected; evaluate "
                "it on the same profile (one with quality_expected)"
            )
        return block.utility_expected

    def closed(block: Metrics, st: Metrics, rf: Metrics) -> None:
        gap = utility(rf, ref_name) - utility(st, "best_static")
        block.gap_closed = (
            float((utility(block, "result") - utility(st, "best_static")) / gap)
            if gap > _MIN_GAP
            else None
        )
        block.gap_closed_reference = ref_name

    closed(result.overall, static.overall, ref.overall)
    missing = sorted(set(result.per_budget) - (set(ref.per_budget) & set(static.per_budget)))
    if missing:
        raise ValueError(
            f"add_static_gap_closed: the baselines lack budgets {missing} of the "
            "result; evaluate them on the same budget ratios"
        )
    for k, block in result.per_budget.items():
        closed(block, static.per_budget[k], ref.per_budget[k])


def evaluate_baselines(
    train_env: ProfileEnv, eval_env: ProfileEnv, seed: int = 0, measure_overhead: bool = True
) -> dict[str, PolicyEval]:
    """random / full / best_static (fit on train) / oracle on ``eval_env``, plus
    ``oracle_expected`` when the profile has expected quality; with oracle gaps
    (:func:`add_oracle_gap`, to the hindsight ``oracle``) and the share of the static -> oracle
    gap each closes (:func:`add_static_gap_closed`)."""
    results = {
        p.name: evaluate_policy(p, eval_env, measure_overhead=measure_overhead)
        for p in baseline_policies(train_env, eval_env, seed)
    }
    for res in results.values():
        add_oracle_gap(res, results["oracle"])
    for res in results.values():
        add_static_gap_closed(res, results)
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
    return [
        {
            "config": profile.space.config(profile.config_indices[i]).values,
            "latency_mean": float(lat[i]),
            "quality_mean": float(q[i]),
        }
        for i in pareto_frontier(lat, q)
    ]


def oracle_static_margin(
    profile: Profile,
    reward: Reward | None = None,
    *,
    ratios: tuple[float, ...] = E5_BUDGET_RATIOS,
    baseline: str = "global",
    split: str = "test",
    quality: QualityKind = "auto",
) -> list[dict[str, Any]]:
    """Is the problem worth a controller? Per budget ratio: the per-request oracle's quality vs
    the best single static config whose SLO violation on ``split`` is at most the oracle's.

    The static config is picked with hindsight on ``split`` itself (the strongest static
    baseline there is), so ``margin`` = oracle quality - static quality is a lower bound on
    what per-request decisions buy.

    ``quality``: ``"measured"`` (the hindsight oracle on measured quality), ``"expected"`` (the
    expected-quality oracle, and both sides' qualities are expected ones; needs a profile with
    ``quality_expected``) or ``"auto"`` (expected where the profile has it, since on noisy
    measured quality the hindsight oracle's margin is mostly lucky answers). Each row says
    which in ``quality``, and also gives both sides' utility (mean reward) on that quality.
    """
    if quality not in QUALITY_KINDS:
        raise ValueError(f"quality must be one of {QUALITY_KINDS}, got {quality!r}")
    if quality == "expected" and profile.quality_expected is None:
        raise ValueError("quality='expected' needs a profile with quality_expected")
    use_expected = quality == "expected" or (
        quality == "auto" and profile.quality_expected is not None
    )
    ev = ProfileEnv(profile, split, reward=reward, budget_ratios=ratios, baseline=baseline)
    oracle: Policy = ExpectedOraclePolicy() if use_expected else OraclePolicy()
    table = profile.quality_expected if use_expected else profile.quality
    assert table is not None

    def q_and_u(m: Metrics) -> tuple[float, float]:
        if use_expected:
            assert m.quality_expected_mean is not None and m.utility_expected is not None
            return m.quality_expected_mean, m.utility_expected
        return m.quality_mean, m.utility

    rows = []
    for ratio in ratios:
        ctx = ev.all_contexts((ratio,))
        m_or = decision_metrics(ev, ctx, to_flat(ev, oracle.decide(ctx, ev)))
        lat = profile.latency[ctx.req].astype(np.float64)  # [n, C, S]
        viol = (lat > ctx.budget_ms[:, None, None]).mean(axis=(0, 2))  # [C]
        qual = table[ctx.req].mean(0)
        ok = np.flatnonzero(viol <= m_or.slo_violation_rate)
        if len(ok) == 0:
            ok = np.array([int(viol.argmin())])
        best = int(ok[qual[ok].argmax()])
        m_st = decision_metrics(ev, ctx, np.full(len(ctx), best))
        (q_or, u_or), (q_st, u_st) = q_and_u(m_or), q_and_u(m_st)
        rows.append(
            {
                "budget_ratio": ratio,
                "quality": "expected" if use_expected else "measured",
                "oracle_quality": q_or,
                "oracle_slo_violation_rate": m_or.slo_violation_rate,
                "static_config": profile.space.config(profile.config_indices[best]).values,
                "static_quality": q_st,
                "static_slo_violation_rate": m_st.slo_violation_rate,
                "margin": q_or - q_st,
                "oracle_utility": u_or,
                "static_utility": u_st,
            }
        )
    return rows
