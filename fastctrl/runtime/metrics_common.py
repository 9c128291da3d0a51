"""Argument checks and the edit distance shared by the answer metrics
(:mod:`fastctrl.runtime.metrics`)."""

from __future__ import annotations

from collections.abc import Sequence


def check_prediction(name: str, pred: object) -> str:
    """The prediction, refused unless it is a str."""
    if not isinstance(pred, str):
        raise TypeError(f"{name}: the prediction must be a str, got {type(pred).__name__}")
    return pred


def check_references(name: str, answer: str | Sequence[str] | None) -> list[str]:
    """The reference answers as a non-empty list of str."""
    if answer is None:
        raise ValueError(
            f"{name} needs reference answers (got None), i.e. at least one "
            "reference answer; use 'agreement' when the data has none"
        )
    if isinstance(answer, str):
        return [answer]
    if not isinstance(answer, Sequence):
        raise TypeError(
            f"{name}: the answer must be a str or a sequence of str, got {type(answer).__name__}"
        )
    refs = list(answer)
    if not refs:
        raise ValueError(f"{name} needs at least one reference answer, got an empty list")
    for i, r in enumerate(refs):
        if not isinstance(r, str):
            raise TypeError(f"{name}: reference answer {i} must be a str, got {type(r).__name__}")
    return refs


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions; each costs 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]
