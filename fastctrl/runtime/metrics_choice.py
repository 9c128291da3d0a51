"""Multiple-choice and MMMU answers: the option letter a free-form answer chose
(:func:`extract_choice`), the multiple-choice score, and MMMU's evaluator (``eval_utils.py``
of MMMU-Benchmark/MMMU) for its multiple-choice and open questions."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .metrics_common import check_prediction, check_references

# Multiple choice --------------------------------------------------------------------------

#: Markdown emphasis and code marks: "**B**", "*B*", "__B__", "`B`" -> "B". Underscores are
#: removed only at a word's edge, so "snake_case" keeps its own.
_MD_MARKS = re.compile(r"[*`]+|(?<!\w)_+|_+(?!\w)")
#: The whole answer is one letter, optionally in parentheses and/or followed by ".", ":" or
#: ")": "B", "b", "(B)", "B.", "B)", "(b).".
_MC_ONLY = re.compile(r"\(?([A-Za-z])\)?[.:)]?")
#: "answer is B", "Answer: (b)", "the correct option is C.", "choice: D": the letter after
#: answer/option/choice (+ optional "is" / ":"), standing alone. A lower-case letter counts
#: only when it is parenthesised or ends the phrase (so "the answer is a dog" is not "A").
_MC_PHRASE = re.compile(
    r"\b(?i:answer|option|choice)s?\s*(?i:is|:|=)?\s*:?\s*"
    r"(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z0-9'])|([a-z])(?=\s*(?:[.,;:)!]|$)))"
)
#: A conclusion marked by an arrow or "so"/"thus"/"therefore" at the end of the answer:
#: "(A) a cat (B) a dog -> B", "... => (C).", "... so B".
_MC_FINAL = re.compile(r"(?:->|=>|→|\b(?i:so|thus|therefore|hence)\b,?)\s*\(?([A-Z])\)?[.!]?\s*$")
#: The answer starts with a letter then a delimiter: "B) cat", "B. cat", "B: cat",
#: "(B) cat", "(b) cat" (no bare "A cat": that is an article).
_MC_LEAD = re.compile(r"\s*(?:\(([A-Za-z])\)|([A-Za-z])[.:)])(?:\s|$)")
#: Anywhere: a parenthesised capital letter, "I pick (C) because ..." (first one).
_MC_PAREN = re.compile(r"\(([A-Z])\)")


def _strip_markdown(text: str) -> str:
    return _MD_MARKS.sub("", text)


def extract_choice(text: str) -> str | None:
    """The option letter a multiple-choice answer chose (upper-case), or None.

    Markdown emphasis is removed first ("**B**" -> "B"). Then, in order: the whole answer is
    a letter ("B", "(B)", "b."); the final stated answer, i.e. the last of the
    "answer/option/choice [is|:] X" phrases and of a conclusion closing the answer ("-> B",
    "=> (C)", "so B"): "The answer is **B**." and "(A) a cat (B) a dog -> B" give B; a
    leading letter with a delimiter ("B) cat", "(B) cat", "B. cat"); the first parenthesised
    capital letter anywhere ("I'd say (C)."). Nothing else is guessed: a bare capital
    elsewhere ("I think B") or a leading "A cat" gives None.
    """
    s = _strip_markdown(text).strip()
    m = _MC_ONLY.fullmatch(s)
    if m:
        return m.group(1).upper()
    stated = [(m.end(), next(g for g in m.groups() if g)) for m in _MC_PHRASE.finditer(s)]
    m = _MC_FINAL.search(s)
    if m:
        stated.append((m.end(), m.group(1)))
    if stated:
        return max(stated)[1].upper()  # the one stated last
    m = _MC_LEAD.match(s)
    if m:
        return (m.group(1) or m.group(2)).upper()
    m = _MC_PAREN.search(s)
    return m.group(1) if m else None


def _reference_choice(name: str, ref: str) -> str:
    s = ref.strip()
    m = _MC_ONLY.fullmatch(s) or _MC_LEAD.match(s)
    if not m:
        raise ValueError(
            f"{name}: the reference answer {ref!r} is not an option "
            "letter (expected e.g. 'B' or '(B) text')"
        )
    return next(g for g in m.groups() if g).upper()


def multiple_choice(pred: str, answer: str | Sequence[str] | None) -> float:
    """1 if the option letter extracted from the prediction (:func:`extract_choice`) is the
    reference's letter ("B", "b", "(B) text", "B. text"), 0 otherwise or when the prediction
    names no letter; max over references."""
    letter = extract_choice(check_prediction("multiple_choice", pred))
    refs = {
        _reference_choice("multiple_choice", r) for r in check_references("multiple_choice", answer)
    }
    return float(letter is not None and letter in refs)


# MMMU ---------------------------------------------------------------------------------------

#: MMMU questions have at most nine options.
MMMU_CHOICES = "ABCDEFGHI"
_MMMU_EDGE_PUNCT = (",", ".", "!", "?", ";", ":", "'")


def mmmu_choice(response: str, choices: str = MMMU_CHOICES) -> str | None:
    """The option MMMU's ``parse_multi_choice_response`` reads from a response, without the
    option texts: a parenthesised "(X)" if any, else a standalone " X "; of several, the one
    whose last occurrence comes last. None when there is none (MMMU then matches the option
    texts in long responses and otherwise picks a random option)."""
    for ch in _MMMU_EDGE_PUNCT:
        response = response.strip(ch)
    padded = f" {response} "
    found = [c for c in choices if f"({c})" in padded]
    forms = [f"({c})" for c in found]
    if not found:
        found = [c for c in choices if f" {c} " in padded]
        forms = [f" {c} " for c in found]
    if not found:
        return None
    # the candidate whose last occurrence comes last (max keeps the first on ties, as argmax)
    last = [padded.rfind(f) for f in forms]
    return found[max(range(len(found)), key=last.__getitem__)]


_MMMU_SPLIT = re.compile(r"\.\s(?=[A-Z])|\n")
_MMMU_KEYS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_MMMU_TRIVIAL = frozenset((":", ",", ".", "!", "?", ";", "'"))
_NUM_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCI = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def _mmmu_normalize(s: str) -> list[str | float]:
    """A number (commas dropped) rounded to 2 decimals, else the lower-cased string; a
    one-character string becomes " x" and "x " so that it only matches as a word edge."""
    s = s.strip()
    try:
        return [round(float(s.replace(",", "")), 2)]
    except ValueError:
        pass
    s = s.lower()
    return [" " + s, s + " "] if len(s) == 1 else [s]


def _mmmu_key_parts(response: str) -> list[str]:
    """The tails after the last answer indicator ("is ", "so ", "answer ", ...) of each line,
    the shortest per line; the whole response when no line has one."""
    response = response.strip().strip(".").lower()
    # the split's "(?=[A-Z])" never holds on the lower-cased text: only newlines split
    lines = _MMMU_SPLIT.split(response)
    parts = []
    for i, line in enumerate(lines):
        keys = _MMMU_KEYS + (("=",) if i == len(lines) - 1 else ())
        shortest: str | None = None
        for key in keys:
            if key in line:
                tail = line.split(key)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _MMMU_TRIVIAL:
            parts.append(shortest)
    return parts or [response]


def mmmu_open_predictions(response: str) -> list[str | float]:
    """What MMMU's ``parse_open_response`` keeps of an open-ended response: the key parts
    (:func:`_mmmu_key_parts`) and every number in them, normalised (:func:`_mmmu_normalize`)."""
    parts = _mmmu_key_parts(response)
    found: list[str] = list(parts)
    for part in parts:
        found += _NUM_COMMAS.findall(part) + _NUM_SCI.findall(part) + _NUM_SIMPLE.findall(part)
    out: list[str | float] = []
    for f in found:
        out += _mmmu_normalize(f)
    return list(dict.fromkeys(out))


def mmmu_accuracy(pred: str, answer: str | Sequence[str] | None) -> float:
    """MMMU's score of one question, as its evaluator computes it.

    When every reference is an option letter (A-I), the question is multiple choice: the
    letter :func:`mmmu_choice` reads must equal one of them. Otherwise it is open-ended: the
    prediction is right when a normalised number from it equals a normalised reference
    number (rounded to 2 decimals), or a reference string is contained in a string part
    (:func:`mmmu_open_predictions`); e.g. "The answer is 3.14159." vs "3.14" -> 1.

    Departures: fastctrl does not know the option texts, so a response that names no letter
    scores 0 (MMMU matches the option texts in responses of more than five words and
    otherwise picks a random option, 1/n expected) and every letter A-I is an option.
    """
    p = check_prediction("mmmu", pred)
    refs = [r.strip() for r in check_references("mmmu", answer)]
    if all(len(r) == 1 and r in MMMU_CHOICES for r in refs):
        return float(mmmu_choice(p) in refs)
    gold: list[str | float] = []
    for r in refs:
        gold += _mmmu_normalize(r)
    for guess in mmmu_open_predictions(p):
        if isinstance(guess, str):
            if any(isinstance(g, str) and g in guess for g in gold):
                return 1.0
        elif guess in gold:
            return 1.0
    return 0.0
