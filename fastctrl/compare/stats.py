"""E5 statistics as rliable does them: IQM over seeds with stratified-bootstrap 95% CIs, and
the probability of improvement between methods.

- The point estimate is rliable's interquartile mean (``rliable.metrics.aggregate_iqm``: the
  25%-trimmed mean), and ``rliable.metrics.probability_of_improvement`` (the Mann-Whitney U
  statistic over ``n x m``: ``P(X > Y) + P(X = Y) / 2``) for pairs of methods.
- The interval is the percentile bootstrap over runs that rliable's ``StratifiedBootstrap``
  draws (one stratum per statistic: each is over the seeds of one method, or of two methods
  resampled independently for ``P(X > Y)``). It is drawn with :func:`scipy.stats.bootstrap`
  rather than ``rliable.library``: that module needs ``arch<8``, whose import fails under
  pandas 3, and it samples from numpy's global RNG, so its CIs are not reproducible from a seed.
  Here every statistic has its own generator, seeded from ``seed`` and the statistic's name:
  the same runs give the same CIs, whatever else is compared.
- Two estimates whose intervals overlap are "not distinguishable" (:func:`compare`). With one
  seed there is no interval (``low``/``high`` are NaN) and nothing is distinguishable.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.stats
from rliable import metrics as rly

Verdict = Literal["better", "worse", "not distinguishable"]

#: bootstrap resamples per statistic (rliable's examples use 2,000 for the probability of
#: improvement)
DEFAULT_REPS = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate over seeds with its confidence interval."""

    point: float
    low: float
    high: float
    n: int
    """Seeds (runs) the estimate is over."""

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def overlaps(self, other: Estimate) -> bool:
        """True when the two intervals share a point (or either has none)."""
        if not (self.has_interval and other.has_interval):
            return True
        return self.low <= other.high and other.low <= self.high

    def fmt(self, spec: str = ".3f") -> str:
        """``0.737 [0.731, 0.742]`` (the interval omitted when there is none)."""
        if not math.isfinite(self.point):
            return "n/a"
        if not self.has_interval:
            return f"{self.point:{spec}} (n={self.n}, no CI)"
        return f"{self.point:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"

    def to_dict(self) -> dict[str, float | int | None]:
        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {"point": num(self.point), "low": num(self.low), "high": num(self.high), "n": self.n}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Estimate:
        """Inverse of :meth:`to_dict` (``null`` bounds: no interval)."""

        def num(x: Any) -> float:
            return math.nan if x is None else float(x)

        return cls(num(d["point"]), num(d["low"]), num(d["high"]), int(d["n"]))


def _rng(seed: int, key: str) -> np.random.Generator:
    # one generator per statistic: a CI does not depend on which other statistics were drawn
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _iqm_along(x: np.ndarray, axis: int = -1) -> np.ndarray:
    # the same trim as rliable.metrics.aggregate_iqm, vectorised over bootstrap resamples
    return scipy.stats.trim_mean(x, proportiontocut=0.25, axis=axis)


def _std_along(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.std(x, axis=axis)


def _as_scores(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(a) == 0:
        raise ValueError(f"{what}: no values")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: values must be finite, got {a.tolist()}")
    return a


def _interval(
    data: tuple[np.ndarray, ...], statistic, key: str, seed: int, reps: int
) -> tuple[float, float]:
    if any(len(d) < 2 for d in data):
        return math.nan, math.nan
    if all(np.ptp(d) == 0 for d in data):  # every resample is the same: the CI is the point
        v = float(statistic(*(d[None, :] for d in data), axis=-1)[0])
        return v, v
    res = scipy.stats.bootstrap(
        data,
        statistic,
        n_resamples=reps,
        vectorized=True,
        paired=False,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=_rng(seed, key),
    )
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def iqm(
    values: Sequence[float] | np.ndarray, *, key: str = "", seed: int = 0, reps: int = DEFAULT_REPS
) -> Estimate:
    """IQM of per-seed values with its 95% stratified-bootstrap CI (``key`` names the statistic
    for its seeded generator)."""
    a = _as_scores(values, key or "iqm")
    low, high = _interval((a,), _iqm_along, f"iqm:{key}", seed, reps)
    return Estimate(float(rly.aggregate_iqm(a)), low, high, len(a))


def spread(
    values: Sequence[float] | np.ndarray, *, key: str = "", seed: int = 0, reps: int = DEFAULT_REPS
) -> Estimate:
    """Standard deviation across seeds with its bootstrap CI (the stability of a method)."""
    a = _as_scores(values, key or "spread")
    low, high = _interval((a,), _std_along, f"std:{key}", seed, reps)
    return Estimate(float(np.std(a)), low, high, len(a))


def _poi_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    # P(X > Y) + P(X = Y) / 2 over all (x, y) pairs: rliable's probability_of_improvement for one
    # task (its Mann-Whitney U / (n m)), vectorised over bootstrap resamples
    x = np.moveaxis(x, axis, -1)[..., :, None]
    y = np.moveaxis(y, axis, -1)[..., None, :]
    return (x > y).mean((-2, -1)) + 0.5 * (x == y).mean((-2, -1))


def probability_of_improvement(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    key: str = "",
    seed: int = 0,
    reps: int = DEFAULT_REPS,
) -> Estimate:
    """P(X > Y): the chance that a run of X scores above a run of Y (ties count half), with the
    bootstrap CI of X's and Y's seeds resampled independently."""
    a, b = _as_scores(x, f"{key} x"), _as_scores(y, f"{key} y")
    point = float(rly.probability_of_improvement(a[:, None], b[:, None]))
    low, high = _interval((a, b), _poi_along, f"poi:{key}", seed, reps)
    return Estimate(point, low, high, min(len(a), len(b)))


def compare(a: Estimate, b: Estimate, higher_is_better: bool = True) -> Verdict:
    """``a`` against ``b``: "better" or "worse" when the intervals are disjoint, else
    "not distinguishable"."""
    if a.overlaps(b):
        return "not distinguishable"
    a_higher = a.low > b.high
    return "better" if a_higher == higher_is_better else "worse"


def point(value: float) -> Estimate:
    """A value without uncertainty (a baseline that does not vary with the training seed): its
    interval is the point itself."""
    return Estimate(float(value), float(value), float(value), 1)


def describe(
    name_a: str, a: Estimate, name_b: str, b: Estimate, higher_is_better: bool = True
) -> str:
    """``"grpo better than lut"``, ``"lut better than grpo"`` or
    ``"grpo and lut not distinguishable"``."""
    v = compare(a, b, higher_is_better)
    if v == "better":
        return f"{name_a} better than {name_b}"
    if v == "worse":
        return f"{name_b} better than {name_a}"
    return f"{name_a} and {name_b} not distinguishable"
