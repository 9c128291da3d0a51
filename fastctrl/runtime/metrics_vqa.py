"""VQA-style answer normalisation and accuracy: VQAv2 / OK-VQA (the official VQA evaluation,
GT-Vision-Lab/VQA ``vqaEval.py`` as of 2021) and TextVQA / VizWiz (the M4C / EvalAI evaluator
in mmf, ``m4c_evaluators.py``, which lmms-eval's textvqa, vizwiz_vqa and ok_vqa tasks
reproduce).

The two evaluators share the per-word normalisation (:func:`normalize_answer`) and the
leave-one-annotator-out average of ``min(#matches / 3, 1)``; they differ in what runs before
and when:

- VQAv2 (2021 script): references and prediction are stripped; only when the references are
  not all identical are they and the prediction normalised; when all are identical the raw
  stripped strings are compared ("Yes" vs ten "yes" scores 0).
- TextVQA / VizWiz: every string is first tokenised (:func:`tokenize_answer`: lower-case, ","
  and "?" dropped, "'s" split off as a word), then normalised, always ("hes" vs ten "he's":
  "he's" vs "he 's", scores 0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .metrics_common import check_prediction, check_references

#: Missing-apostrophe spellings -> the apostrophe form, applied word by word after
#: lower-casing. Same table as the official script, including its oddities: the keys with an
#: upper-case "I" ("Im", "Ive", "Id've", "I'dve") can never match lower-cased words, and
#: "somebody'd" maps to "somebodyd". The apostrophe itself is not punctuation, so "it's" stays
#: "it's" (and "its", a word of its own, is not in the table).
_CONTRACTIONS: dict[str, str] = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}

#: Number words -> digits (whole words only, so "twenty" or "eleven" stay words).
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}
_NUMBER_WORDS["none"] = "0"

_ARTICLES = frozenset(("a", "an", "the"))

#: The characters the official script treats as punctuation (not ".", ":", "'", "%", ...).
_PUNCT = ';/[]"{}()=+\\_-><@`,?!'

#: A comma between two digits ("1,000") anywhere in the answer.
_DIGIT_COMMA = re.compile(r"\d,\d")

#: The official period-strip pattern is "(?!<=\d)(\.)(?!\d)"; its "(?!<=\d)" is a lookahead
#: for the text "<=digit" (not a lookbehind) and always holds in front of a ".", so the
#: pattern removes every period that is not followed by a digit ("dog." -> "dog", "e.g" ->
#: "eg", "1.5" kept).
_PERIOD = re.compile(r"\.(?!\d)")

#: The official call passes ``re.UNICODE`` (32) positionally to ``Pattern.sub``, where it is
#: the replacement count: at most 32 periods are stripped. Kept for fidelity.
_PERIOD_MAX_STRIPS = int(re.UNICODE)


def _vqa_punctuation(text: str) -> str:
    """processPunctuation: each punctuation character is deleted when it touches a space in
    the original text (``"a, b"``) or when the text has a comma between digits anywhere
    (``"1,000"`` -> ``"1000"``; then every punctuation character is deleted), otherwise
    replaced by a space (``"a,b"`` -> ``"a b"``); then periods not followed by a digit go."""
    delete_all = _DIGIT_COMMA.search(text) is not None
    out = text
    for p in _PUNCT:
        if delete_all or (p + " ") in text or (" " + p) in text:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out, count=_PERIOD_MAX_STRIPS)


def _vqa_digit_article(text: str) -> str:
    """processDigitArticle: lower-case, split on whitespace, number words -> digits, drop
    articles, expand contractions, join with single spaces."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def _clean(s: str) -> str:
    """Newlines and tabs -> spaces, then strip (both evaluators do this first)."""
    return s.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(s: str) -> str:
    """The official VQA answer normalisation: newlines/tabs -> spaces, strip, then
    processPunctuation and processDigitArticle (see :func:`_vqa_punctuation`,
    :func:`_vqa_digit_article`). E.g. ``"The  Red!"`` -> ``"red"``, ``"Two"`` -> ``"2"``,
    ``"1,000"`` -> ``"1000"``, ``"isnt"`` -> ``"isn't"``."""
    if not isinstance(s, str):
        raise TypeError(f"an answer must be a str, got {type(s).__name__}")
    return _vqa_digit_article(_vqa_punctuation(_clean(s)))


def tokenize_answer(s: str) -> str:
    """The TextVQA / VizWiz (M4C / EvalAI) answer processing: lower-case, drop every "," and
    "?", split "'s" off as its own word, then :func:`normalize_answer`. E.g. ``"He's"`` ->
    ``"he 's"``, ``"hes"`` -> ``"he's"``, ``"1,000 x-y"`` -> ``"1000 x y"`` (the commas are
    gone before the digit-comma rule could delete every punctuation character)."""
    if not isinstance(s, str):
        raise TypeError(f"an answer must be a str, got {type(s).__name__}")
    s = s.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return _vqa_digit_article(_vqa_punctuation(_clean(s)))


def _leave_one_out(pred: str, refs: Sequence[str]) -> float:
    """Mean over references i of ``min(#matches among the other n - 1 / 3, 1)``, by position
    (identical answers from different annotators count separately, as in both evaluators:
    the official one compares answer records that carry distinct ids)."""
    hits = sum(r == pred for r in refs)
    # leaving out a matching reference leaves hits - 1 matches, any other leaves hits
    total = sum(min((hits - (r == pred)) / 3, 1) for r in refs)
    return total / len(refs)


def exact_match(pred: str, answer: str | Sequence[str] | None) -> float:
    """1 if the VQA-normalised prediction equals any VQA-normalised reference, else 0."""
    p = normalize_answer(check_prediction("exact_match", pred))
    return float(any(p == normalize_answer(a) for a in check_references("exact_match", answer)))


def vqa_accuracy(pred: str, answer: str | Sequence[str] | None) -> float:
    """VQAv2 / OK-VQA accuracy as the official evaluation (``vqaEval.py``, 2021) computes it.

    Prediction and references are stripped (newlines and tabs -> spaces first). When the
    references are not all identical, all of them and the prediction are normalised
    (:func:`normalize_answer`); when they are all identical, the stripped raw strings are
    compared (the annotation files are stored normalised, so "yes" x 10 against "Yes" is 0).
    Then for each reference i the accuracy against the other n - 1 is ``min(#matches / 3,
    1)``, and the score is the mean over i: for 10 annotators, 2 matching -> (2 * 1/3 + 8 *
    2/3) / 10 = 0.6; 3 -> 0.9; 4+ -> 1.

    Departure: with a single reference the official formula gives 0 to every prediction (no
    other annotator); fastctrl scores the exact match of the normalised strings instead.
    ``vqa_normalized`` (:func:`vqa_accuracy_normalized`) normalises every string always.
    """
    p = _clean(check_prediction("vqa", pred))
    refs = [_clean(a) for a in check_references("vqa", answer)]
    if len(refs) == 1:
        return float(
            _vqa_digit_article(_vqa_punctuation(p)) == _vqa_digit_article(_vqa_punctuation(refs[0]))
        )
    if len(set(refs)) > 1:
        p = _vqa_digit_article(_vqa_punctuation(p))
        refs = [_vqa_digit_article(_vqa_punctuation(r)) for r in refs]
    return _leave_one_out(p, refs)


def vqa_accuracy_normalized(pred: str, answer: str | Sequence[str] | None) -> float:
    """VQA accuracy with every string normalised (:func:`normalize_answer`) whether or not
    the references agree: fastctrl's earlier ``vqa``, kept by name. It differs from the
    official 2021 script only when all references are identical and the raw prediction
    differs from them but normalises to the same ("Yes" vs ten "yes": 1.0 here, 0.0 there).
    A single reference scores the exact match."""
    p = normalize_answer(check_prediction("vqa_normalized", pred))
    refs = [normalize_answer(a) for a in check_references("vqa_normalized", answer)]
    if len(refs) == 1:
        return float(p == refs[0])
    return _leave_one_out(p, refs)


def textvqa_accuracy(pred: str, answer: str | Sequence[str] | None) -> float:
    """TextVQA / VizWiz accuracy as the M4C / EvalAI evaluator (mmf ``m4c_evaluators.py``,
    lmms-eval's textvqa and vizwiz_vqa tasks) computes it: every string goes through
    :func:`tokenize_answer`, then the leave-one-annotator-out average of ``min(#matches / 3,
    1)`` (as :func:`vqa_accuracy`). E.g. "hes" vs ten "he's" -> 0 ("he's" vs "he 's").

    Departure: a single reference scores the exact match of the processed strings (the
    evaluator's formula gives 0 to every prediction)."""
    p = tokenize_answer(check_prediction("textvqa", pred))
    refs = [tokenize_answer(a) for a in check_references("textvqa", answer)]
    if len(refs) == 1:
        return float(p == refs[0])
    return _leave_one_out(p, refs)
