"""Expected findings as data: claims the E5 report checks against its statistics.

A findings file is JSON, ``{"source": "...", "claims": [Claim, ...]}``; the default one ships
beside this module (``expected_findings.json``, the expectations the E5 issue started from) and
``python -m fastctrl.compare --expected_findings PATH`` replaces it. Each claim names a metric
of ``e5_statistics.json`` (:func:`fastctrl.compare.analysis.metric_specs`) and is marked

- ``held``: the data support it with disjoint 95% intervals (or the whole interval on the right
  side of a threshold);
- ``contradicted``: the data support the opposite the same way;
- ``not distinguishable``: the intervals overlap (or a threshold lies inside the interval);
- ``not tested``: a method or metric it names is not in this comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .. import io
from . import stats as S
from .analysis import estimate

DEFAULT_FINDINGS = Path(__file__).with_name("expected_findings.json")

Relation = Literal["best", "better_than", "at_least", "at_most"]
Status = Literal["held", "contradicted", "not distinguishable", "not tested"]
RELATIONS: tuple[str, ...] = ("best", "better_than", "at_least", "at_most")


@dataclass
class Claim:
    """One expected finding."""

    claim: str
    """The finding, in words (what the report prints)."""
    metric: str
    """A metric of e5_statistics.json (final_utility, env_steps_to_both, utility@0.50, ...)."""
    method: str
    """The method the claim is about."""
    relation: str
    """best (better than every other method), better_than (``other``), at_least / at_most
    (``value``)."""
    other: str | None = None
    """better_than: a method or a baseline (oracle, best_static, ...)."""
    value: float | None = None
    """at_least / at_most: the threshold, in the metric's units."""
    among: list[str] | None = None
    """best: the methods it is compared with (default: every method of the comparison)."""


@dataclass
class Findings:
    claims: list[Claim]
    source: str = ""


@dataclass
class ClaimResult:
    claim: str
    metric: str
    method: str
    relation: str
    status: Status
    evidence: str


def load_findings(path: str | Path | None = None) -> Findings:
    """Read and validate a findings file (errors name the file and the claim)."""
    path = Path(path) if path is not None else DEFAULT_FINDINGS
    findings = io.from_json(Findings, io.read_json(path, "expected findings"), str(path))
    for i, c in enumerate(findings.claims):
        where = f"{path}: claims[{i}] ({c.claim!r})"
        if c.relation not in RELATIONS:
            raise ValueError(f"{where}: relation must be one of {RELATIONS}, got {c.relation!r}")
        if c.relation == "better_than" and not c.other:
            raise ValueError(f"{where}: relation better_than needs 'other'")
        if c.relation in ("at_least", "at_most") and c.value is None:
            raise ValueError(f"{where}: relation {c.relation} needs 'value'")
    return findings


def _fmt(stats: dict[str, Any], metric: str, name: str, e: S.Estimate) -> str:
    spec = stats["metrics"][metric]["fmt"]
    return f"{name} {e.fmt(spec)}"


def check_claim(stats: dict[str, Any], c: Claim) -> ClaimResult:
    """Mark one claim against ``e5_statistics.json``'s content."""

    def result(status: Status, evidence: str) -> ClaimResult:
        return ClaimResult(c.claim, c.metric, c.method, c.relation, status, evidence)

    if c.metric not in stats["metrics"]:
        return result("not tested", f"no metric {c.metric!r} in this comparison")
    block = stats["metrics"][c.metric]
    hib = bool(block["higher_is_better"])
    mine = estimate(stats, c.metric, c.method)
    if mine is None or c.method not in block["methods"]:
        return result("not tested", f"{c.method} is not in this comparison")
    label = (
        f"{block['label']} (IQM [95% CI])"
        if block["statistic"] == "iqm"
        else f"{block['label']} [95% CI]"
    )
    if c.relation in ("at_least", "at_most"):
        assert c.value is not None
        v = S.point(c.value)
        verdict = S.compare(mine, v, higher_is_better=c.relation == "at_least")
        status: Status = {"better": "held", "worse": "contradicted"}.get(
            verdict, "not distinguishable"
        )  # type: ignore[assignment]
        side = ">=" if c.relation == "at_least" else "<="
        return result(
            status, f"{label}: {_fmt(stats, c.metric, c.method, mine)}; claimed {side} {c.value:g}"
        )
    if c.relation == "better_than":
        others = [c.other] if c.other else []
    else:
        pool = c.among if c.among is not None else list(block["methods"])
        others = [m for m in pool if m != c.method and m in block["methods"]]
    found = [(o, estimate(stats, c.metric, o)) for o in others]
    found = [(o, e) for o, e in found if e is not None]
    if not found:
        return result("not tested", f"nothing to compare {c.method} with on {c.metric}")
    verdicts = [(o, e, S.compare(mine, e, hib)) for o, e in found]
    parts = [
        f"{_fmt(stats, c.metric, o, e)} ({S.describe(c.method, mine, o, e, hib)})"
        for o, e, _ in verdicts
    ]
    evidence = f"{label}: {_fmt(stats, c.metric, c.method, mine)}; " + "; ".join(parts)
    if any(v == "worse" for _, _, v in verdicts):
        return result("contradicted", evidence)
    if all(v == "better" for _, _, v in verdicts):
        return result("held", evidence)
    return result("not distinguishable", evidence)


def check_findings(stats: dict[str, Any], findings: Findings) -> list[ClaimResult]:
    return [check_claim(stats, c) for c in findings.claims]
