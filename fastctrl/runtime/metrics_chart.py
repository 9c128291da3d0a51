"""Chart question answering: ChartQA relaxed accuracy as pix2struct's ``relaxed_correctness``
computes it (the code behind the published ChartQA numbers, also lmms-eval's chartqa task),
the paper-literal variant fastctrl used before, and ChartQAPro's evaluator
(``evaluate_predictions.py`` of vis-nlp/ChartQAPro)."""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence

from .metrics_common import check_prediction, check_references, levenshtein

#: Relative tolerance of ChartQA's relaxed accuracy.
RELAXED_TOLERANCE = 0.05


def _python_float(text: str) -> float | None:
    """``float(text)`` as Python parses it (surrounding whitespace, "1_000", "1e3", "nan",
    "inf" and non-ASCII digits accepted; thousands commas not), with a trailing "%" (every
    trailing "%") dividing by 100; None when Python cannot parse it."""
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_accuracy(pred: str, answer: str | Sequence[str] | None) -> float:
    """ChartQA relaxed accuracy as pix2struct computes it, max over references.

    The prediction and a reference are numbers when Python's ``float`` parses them (see
    :func:`_python_float`: " 12 " and "1_000" are numbers, "1,000" is not). When both are and
    the reference is not 0 (nor -0), the prediction is right when ``|p - r| / |r| <= 0.05``
    in floating point, so 0.95 vs 1.0 is wrong (the difference is 0.0500000000000000444)
    while 105 vs 100 is right; a NaN on either side is wrong, as is an infinite reference.
    Otherwise (either is not a number, or the reference is 0) the strings must be equal after
    lower-casing, without stripping: "0.0" vs "0" is wrong, " yes" vs "yes" is wrong.

    ``relaxed_accuracy_paper`` (:func:`relaxed_accuracy_paper`) is fastctrl's earlier reading.
    """
    p = check_prediction("relaxed_accuracy", pred)
    p_num = _python_float(p)
    for ref in check_references("relaxed_accuracy", answer):
        r_num = _python_float(ref)
        # a reference of 0 (falsy) falls back to the string comparison, as in pix2struct
        if p_num is not None and r_num:
            ok = abs(p_num - r_num) / abs(r_num) <= RELAXED_TOLERANCE
        else:
            ok = p.lower() == ref.lower()
        if ok:
            return 1.0
    return 0.0


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def _paper_number(text: str) -> float | None:
    """A plain decimal number, with optional thousands commas ("1,234.5") and an optional
    trailing "%" (dividing by 100); anything else (words, units, "nan", "1_000", "1,23") ->
    None."""
    s = text.strip()
    scale = 1.0
    if s.endswith("%"):
        s, scale = s[:-1].rstrip(), 0.01
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    elif not _NUMBER.fullmatch(s):
        return None
    v = float(s) * scale
    return v if math.isfinite(v) else None


def relaxed_accuracy_paper(pred: str, answer: str | Sequence[str] | None) -> float:
    """ChartQA relaxed accuracy read literally from the paper ("within 5 % of the gold
    answer; exact match for non-numeric answers"), fastctrl's earlier ``relaxed_accuracy``:
    numbers may carry thousands commas and surrounding whitespace, a reference of 0 needs
    exactly 0, the 5 % boundary is inclusive up to rounding (0.95 vs 1.0 is right), and text
    is compared after lower-casing and stripping. Departs from :func:`relaxed_accuracy` on
    "1,050" vs "1000" (1 here, 0 there), "0.0" vs "0" (1 / 0), "1_000" vs "1000" (0 / 1)."""
    p_text = check_prediction("relaxed_accuracy_paper", pred)
    p_num = _paper_number(p_text)
    p_str = p_text.strip().lower()
    for ref in check_references("relaxed_accuracy_paper", answer):
        r_num = _paper_number(ref)
        if p_num is not None and r_num is not None:
            if r_num == 0.0:
                ok = p_num == 0.0
            else:
                # a tiny slack so that a boundary like 0.95 vs 1.0 is not lost to rounding
                ok = abs(p_num - r_num) / abs(r_num) <= RELAXED_TOLERANCE + 1e-12
        else:
            ok = p_str == ref.strip().lower()
        if ok:
            return 1.0
    return 0.0


# ChartQAPro ---------------------------------------------------------------------------------

#: A bare item inside "[...]" that the evaluator quotes before parsing the list: a word
#: character, then the shortest run of non-commas not followed by a quote or word character.
_BARE_ITEM = re.compile(r"(?<!['\w])(\w[^,]*?)(?!['\w])")
_BRACKETED = re.compile(r"^\[(.*)\]$")
#: Without the dataset's Year column, a four-digit 1800-2099 integer is taken for a year.
_YEAR = re.compile(r"(?:18|19|20)\d\d")


def _literal_list(text: str) -> list[str] | None:
    """``text`` as a Python list literal, each element as str with spaces and quotes
    stripped from both ends; None when it is not one."""
    try:
        value = ast.literal_eval(text)
    except Exception:  # literal_eval raises several kinds on arbitrary model output
        return None
    return [str(x).strip(" '") for x in value] if isinstance(value, list) else None


def _target_items(target: str) -> list[str]:
    """The reference as a list of items: "[a, b]" with or without quotes -> ["a", "b"];
    anything else -> [target]."""
    m = _BRACKETED.match(target.strip())
    if m:
        quoted = _BARE_ITEM.sub(r"'\1'", m.group(1))
        try:
            fixed: object = ast.literal_eval(f"[{quoted}]")
        except Exception:  # not a list after quoting: the target stays one string
            fixed = target
    else:
        fixed = target
    return _literal_list(str(fixed)) or [target]


def _anls_one(pred: str, target: str) -> float:
    """ANLS of one pair as the ``anls`` package scores it: whitespace collapsed, lengths of
    the collapsed strings, 0 at a distance of 0.5 or more."""
    p = " ".join(pred.strip().lower().split())
    t = " ".join(target.strip().lower().split())
    n = max(len(p.upper()), len(t.upper()))
    nl = 0.0 if n == 0 else levenshtein(p, t) / n
    return 1 - nl if nl < 0.5 else 0.0


def _plain_float(text: str) -> float | None:
    """``float(text)`` after stripping whitespace and "%" at both ends (no division by 100),
    None when Python cannot parse it."""
    try:
        return float(text.strip().strip("%"))
    except ValueError:
        return None


def _chartqapro_item(target: str, pred: str) -> float:
    """One item: numbers (a "%" at either end ignored) within 5 % (a 0 reference needs 0),
    else ANLS of the lower-cased strings."""
    t = target.strip().strip("%").strip()
    p = pred.strip().strip("%").strip()
    t_num, p_num = _plain_float(t), _plain_float(p)
    if t_num is not None and p_num is not None:
        if t_num == 0.0:
            return float(p_num == 0.0)
        return float(abs(p_num - t_num) / abs(t_num) <= RELAXED_TOLERANCE)
    return _anls_one(p.lower(), t.lower())


def chartqapro_accuracy(
    pred: str,
    answer: str | Sequence[str] | None,
    *,
    year_flags: Sequence[str] | None = None,
    question_type: str | None = None,
) -> float:
    """ChartQAPro's score of one question, as its evaluator computes it.

    The answer is the last reference (ChartQAPro's ``Answer`` holds one per conversation
    turn and the evaluator scores the last). Prediction and answer lose "." and newlines at
    both ends; an answer written as a list ("[a, b]", quotes optional) and a prediction that
    is a Python list literal are scored item by item, position by position (a missing or
    extra item scores 0), and the score is the mean. Per item: exact match (stripped,
    lower-cased) when its year flag is "YES"; otherwise numbers within 5 % (a 0 reference
    needs exactly 0), else ANLS (the ``anls`` package: 0 from a distance of 0.5).
    ``year_flags`` is the dataset's ``Year`` column (one flag per item, repeated when
    shorter; a ``Conversational`` question uses its last flag).

    Departures: without ``year_flags`` an item that is a four-digit integer from 1800 to 2099
    is taken for a year ("2016" vs "2017": 0 here; with a "NO" flag the evaluator gives 1,
    0.05 % apart). The evaluator computes an exact-match switch for Fact Checking and Multi
    Choice questions but never passes it on, so those are scored like the rest (ANLS for
    text); fastctrl does the same.
    """
    p_raw = check_prediction("chartqapro", pred)
    refs = check_references("chartqapro", answer)
    target = refs[-1].strip(".").strip("\n")
    prediction = p_raw.strip(".").strip("\n")
    t_items = _target_items(target)
    p_items = _literal_list(prediction) or [prediction]
    flags: list[str] | None = None
    if year_flags is not None:
        flags = list(year_flags)
        if not flags:
            raise ValueError("chartqapro: year_flags is empty; expected one 'YES'/'NO' per item")
        if question_type == "Conversational":
            flags = flags[-1:]
        if len(flags) < len(t_items):
            flags = flags * len(t_items)
    scores = []
    for i in range(max(len(t_items), len(p_items))):
        if i >= len(t_items) or i >= len(p_items):
            scores.append(0.0)  # too many or too few items
            continue
        t_item, p_item = t_items[i], p_items[i]
        if flags is not None:
            is_year = flags[i].upper() == "YES"
        else:
            is_year = _YEAR.fullmatch(t_item.strip()) is not None
        if is_year:
            scores.append(float(t_item.strip().lower() == p_item.strip().lower()))
        else:
            scores.append(_chartqapro_item(t_item, p_item))
    return sum(scores) / len(scores)
