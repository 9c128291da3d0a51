"""Quality metrics for profiling: a metric maps one generation to a score in [0, 1].

A metric is any callable ``metric(pred_text, answer, pred_ids, full_ids) -> float``:
``answer`` is the reference answer (``None`` when the dataset has none) and ``full_ids`` the
tokens the full configuration generated for the same request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Metric = Callable[[str, "str | Sequence[str] | None", Sequence[int], Sequence[int]], float]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and articles, squeeze spaces (VQA-style normalisation)."""
    s = _PUNCT.sub(" ", s.lower())
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _answers(answer: str | Sequence[str] | None) -> list[str]:
    if answer is None:
        raise ValueError("this metric needs reference answers; use 'agreement' without them")
    return [answer] if isinstance(answer, str) else list(answer)


def exact_match(pred: str, answer: str | Sequence[str] | None, pred_ids: Sequence[int],
                full_ids: Sequence[int]) -> float:
    """1 if the normalised prediction equals any normalised reference answer."""
    p = normalize_answer(pred)
    return float(any(p == normalize_answer(a) for a in _answers(answer)))


def vqa_accuracy(pred: str, answer: str | Sequence[str] | None, pred_ids: Sequence[int],
                 full_ids: Sequence[int]) -> float:
    """VQA accuracy: min(1, #annotators who gave the prediction / 3) over the answer list."""
    p = normalize_answer(pred)
    hits = sum(p == normalize_answer(a) for a in _answers(answer))
    return min(1.0, hits / 3.0)


def agreement(pred: str, answer: str | Sequence[str] | None, pred_ids: Sequence[int],
              full_ids: Sequence[int]) -> float:
    """Proxy without answers: fraction of generated token positions equal to the full
    configuration's generation (1.0 for the full configuration itself)."""
    n = max(len(pred_ids), len(full_ids))
    if n == 0:
        return 1.0
    same = sum(a == b for a, b in zip(pred_ids, full_ids, strict=False))
    return same / n


METRICS: dict[str, Metric] = {
    "exact_match": exact_match,
    "vqa": vqa_accuracy,
    "agreement": agreement,
}


def resolve_metric(metric: str | Metric, have_answers: bool) -> tuple[str, Metric]:
    """``auto`` -> exact match with answers, agreement (a proxy) without."""
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    if metric == "auto":
        metric = "exact_match" if have_answers else "agreement"
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose auto, {', '.join(METRICS)} or pass "
                         "a callable")
    if metric != "agreement" and not have_answers:
        raise ValueError(f"metric {metric!r} needs an answer for every sample")
    return metric, METRICS[metric]
