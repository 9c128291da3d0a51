"""ANLS (Average Normalized Levenshtein Similarity) for DocVQA / InfographicVQA, as the
official evaluation script scores one question (the Robust Reading Competition script
distributed by docvqa.org, reproduced by lmms-eval's ``anls``), and the paper's literal
definition (Biten et al., 2019) by name."""

from __future__ import annotations

from collections.abc import Sequence

from .metrics_common import check_prediction, check_references, levenshtein

#: ANLS threshold: a question whose best similarity is below it scores 0.
ANLS_TAU = 0.5


def _collapse(s: str) -> str:
    """Strip, lower-case, and collapse every run of whitespace to one space."""
    return " ".join(s.strip().lower().split())


def anls(pred: str, answer: str | Sequence[str] | None) -> float:
    """DocVQA / InfographicVQA ANLS of one question, as the official script computes it.

    Per reference, the distance is ``levenshtein(collapse(pred), collapse(ref)) /
    max(len(pred), len(ref))`` where ``collapse`` strips, lower-cases and turns each run of
    whitespace into one space, and the lengths are those of the strings as given (upper-cased,
    so "ß" counts 2), not of the collapsed ones; 0 when both are empty. The score is ``1 - min
    distance``, or 0 when that is below tau = 0.5: a distance of exactly 0.5 scores 0.5.
    E.g. "hello  world" vs "hello world" -> 1.0; "ab" vs "ac" -> 0.5; "hello" vs "helo" ->
    0.8; " abc " vs "abd" -> 1 - 1/5 = 0.8 (the raw prediction's 5 characters).

    ``anls_paper`` (:func:`anls_paper`) is the paper's definition, fastctrl's earlier one.
    """
    raw_p = check_prediction("anls", pred)
    p = _collapse(raw_p)
    best = None
    for ref in check_references("anls", answer):
        n = max(len(ref.upper()), len(raw_p.upper()))
        d = 0.0 if n == 0 else levenshtein(_collapse(ref), p) / n
        best = d if best is None else min(best, d)
    score = 1 - best
    # the script zeroes a similarity *below* tau, so exactly tau survives
    return 0.0 if score < ANLS_TAU else float(score)


def anls_paper(pred: str, answer: str | Sequence[str] | None) -> float:
    """ANLS as Biten et al. (2019) define it: both strings lower-cased and stripped (inner
    whitespace kept); per reference ``NL = levenshtein / max(len(pred), len(ref))`` (0 when
    both are empty); the score is ``1 - min NL``, or 0 when that NL is >= 0.5. It departs from
    :func:`anls` (the script behind published numbers) on runs of whitespace ("hello  world"
    vs "hello world": 0.917 here, 1.0 there) and at exactly 0.5 ("ab" vs "ac": 0 here, 0.5
    there)."""
    p = check_prediction("anls_paper", pred).strip().lower()
    best = 1.0
    for ref in check_references("anls_paper", answer):
        r = ref.strip().lower()
        n = max(len(p), len(r))
        best = min(best, levenshtein(p, r) / n if n else 0.0)
    return 0.0 if best >= ANLS_TAU else 1.0 - best
