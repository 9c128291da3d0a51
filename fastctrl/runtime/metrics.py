"""Quality metrics for profiling and live evaluation: a metric maps one generation to a score
in [0, 1].

Two kinds, each a function of exactly what it reads:

- an **answer metric** ``fn(prediction_text, references) -> float`` scores the decoded answer
  against the reference answers (a str or a list of reference strings);
- an **agreement metric** ``fn(prediction_ids, full_config_ids) -> float`` compares the
  generated token ids with the tokens the full configuration generated for the same request
  (no answers needed).

:class:`Metric` wraps one with its name and kind, so a caller knows what to hand it:
:meth:`Metric.score` takes all four values by keyword and passes the metric the two it reads.
:data:`METRICS` is the registry of the built-in ones and :func:`resolve_metric` picks one. The
answer metrics are the standard evaluators of the usual VLM benchmarks:

- ``vqa``: VQAv2 / TextVQA / VizWiz accuracy (official answer normalisation, then the average
  over leave-one-annotator-out subsets of ``min(#matches / 3, 1)``);
- ``anls``: DocVQA / InfographicVQA Average Normalized Levenshtein Similarity (tau = 0.5);
- ``relaxed_accuracy``: ChartQA (numbers within 5 % relative error, else exact string);
- ``exact_match``: VQA-normalised equality with any reference;
- ``multiple_choice``: the chosen option letter against the reference letter;
- ``agreement`` (the agreement kind): no answers needed, token agreement with the full
  configuration (a proxy).

Answer metrics raise ``ValueError`` without a reference (``None`` or an empty list) and
``TypeError`` for a prediction or reference that is not a str.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

AnswerFn = Callable[[str, "str | Sequence[str] | None"], float]
"""An answer metric: ``(prediction_text, references) -> score``."""
AgreementFn = Callable[[Sequence[int], Sequence[int]], float]
"""An agreement metric: ``(prediction_ids, full_config_ids) -> score``."""
MetricKind = Literal["answer", "agreement"]
METRIC_KINDS: tuple[MetricKind, ...] = ("answer", "agreement")

# --------------------------------------------------------------------------------------------
# Official VQA answer normalisation (processPunctuation + processDigitArticle of vqaEval.py)
# --------------------------------------------------------------------------------------------

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
_PUNCT = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)

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


def normalize_answer(s: str) -> str:
    """The official VQA answer normalisation: newlines/tabs -> spaces, strip, then
    processPunctuation and processDigitArticle (see :func:`_vqa_punctuation`,
    :func:`_vqa_digit_article`). E.g. ``"The  Red!"`` -> ``"red"``, ``"Two"`` -> ``"2"``,
    ``"1,000"`` -> ``"1000"``, ``"isnt"`` -> ``"isn't"``."""
    if not isinstance(s, str):
        raise TypeError(f"an answer must be a str, got {type(s).__name__}")
    s = s.replace("\n", " ").replace("\t", " ").strip()
    return _vqa_digit_article(_vqa_punctuation(s))


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_pred(name: str, pred: object) -> str:
    if not isinstance(pred, str):
        raise TypeError(f"{name}: the prediction must be a str, got {type(pred).__name__}")
    return pred


def _references(name: str, answer: str | Sequence[str] | None) -> list[str]:
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


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def exact_match(pred: str, answer: str | Sequence[str] | None) -> float:
    """1 if the VQA-normalised prediction equals any VQA-normalised reference, else 0."""
    p = normalize_answer(_check_pred("exact_match", pred))
    return float(any(p == normalize_answer(a) for a in _references("exact_match", answer)))


def vqa_accuracy(pred: str, answer: str | Sequence[str] | None) -> float:
    """VQAv2 / TextVQA / VizWiz accuracy, as the official evaluation computes it.

    Prediction and references are normalised (:func:`normalize_answer`); then for each
    reference i the accuracy against the other n - 1 references is ``min(#matches / 3, 1)``,
    and the score is the mean over i: for 10 annotators, the average over the 10-choose-9
    subsets (e.g. 2 matching annotators -> (2 * 1/3 + 8 * 2/3) / 10 = 0.6; 3 -> 0.9; 4+ -> 1).
    Leave-one-out is by position, so identical answers from different annotators count
    separately (the official script compares answer records that carry distinct ids).

    Choices: the references are normalised like the prediction whether or not they agree (the
    official script only punctuation-processes the ground truth, and only when the answers
    differ, because the official annotation files are stored pre-normalised; normalising raw
    references is what makes e.g. a reference "Two" match "2"). With a single reference there
    is no other annotator to score against (the formula would give 0 for every prediction),
    so the score is the exact match of the normalised strings.
    """
    p = normalize_answer(_check_pred("vqa", pred))
    refs = [normalize_answer(a) for a in _references("vqa", answer)]
    if len(refs) == 1:
        return float(p == refs[0])
    hits = sum(r == p for r in refs)
    # leaving out a matching reference leaves hits - 1 matches, any other leaves hits
    total = sum(min((hits - (r == p)) / 3.0, 1.0) for r in refs)
    return total / len(refs)


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


#: ANLS threshold: a normalised Levenshtein distance at or above it scores 0.
ANLS_TAU = 0.5


def anls(pred: str, answer: str | Sequence[str] | None) -> float:
    """DocVQA's Average Normalized Levenshtein Similarity for one question.

    Both strings are lower-cased and stripped of surrounding whitespace; per reference
    ``NL = levenshtein(pred, ref) / max(len(pred), len(ref))`` (0 when both are empty) and the
    score is ``1 - min NL`` over the references, or 0 when that best NL is >= tau = 0.5 (the
    definition of Biten et al., 2019). E.g. "hello" vs "helo": distance 1 / 5 -> 0.8.
    """
    p = _check_pred("anls", pred).strip().lower()
    best = 1.0
    for ref in _references("anls", answer):
        r = ref.strip().lower()
        n = max(len(p), len(r))
        best = min(best, levenshtein(p, r) / n if n else 0.0)
    return 0.0 if best >= ANLS_TAU else 1.0 - best


#: Relative tolerance of ChartQA's relaxed accuracy.
RELAXED_TOLERANCE = 0.05

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def _to_number(text: str) -> float | None:
    """A plain decimal number, with optional thousands commas ("1,234.5") and an optional
    trailing "%" (which divides by 100, as the ChartQA reference code does: "50%" == 0.5);
    anything else (words, units, "nan", "1_000", "1,23") -> None."""
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


def relaxed_accuracy(pred: str, answer: str | Sequence[str] | None) -> float:
    """ChartQA relaxed accuracy: 1 if, for any reference, both strings are numbers (see
    :func:`_to_number`) and ``|pred - ref| / |ref| <= 0.05`` (a reference of 0 needs exactly
    0), or they are not both numbers and are equal after lower-casing and stripping."""
    p_text = _check_pred("relaxed_accuracy", pred)
    p_num = _to_number(p_text)
    p_str = p_text.strip().lower()
    for ref in _references("relaxed_accuracy", answer):
        r_num = _to_number(ref)
        if p_num is not None and r_num is not None:
            if r_num == 0.0:
                ok = p_num == 0.0
            else:
                # a tiny slack so that a boundary like 105 vs 100 is not lost to rounding
                ok = abs(p_num - r_num) / abs(r_num) <= RELAXED_TOLERANCE + 1e-12
        else:
            ok = p_str == ref.strip().lower()
        if ok:
            return 1.0
    return 0.0


# Multiple choice --------------------------------------------------------------------------

#: The whole answer is one letter, optionally in parentheses and/or followed by ".", ":" or
#: ")": "B", "b", "(B)", "B.", "B)", "(b).".
_MC_ONLY = re.compile(r"\(?([A-Za-z])\)?[.:)]?")
#: "answer is B", "Answer: (b)", "the correct option is C.", "choice: D": the letter after
#: answer/option/choice (+ optional "is" / ":"), standing alone. The last such phrase wins
#: (reasoning usually ends with the conclusion). A lower-case letter counts only when it is
#: parenthesised or ends the phrase (so "the answer is a dog" is not "A").
_MC_PHRASE = re.compile(
    r"\b(?i:answer|option|choice)s?\s*(?i:is|:|=)?\s*:?\s*"
    r"(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z0-9'])|([a-z])(?=\s*(?:[.,;:)!]|$)))"
)
#: The answer starts with a letter then a delimiter: "B) cat", "B. cat", "B: cat",
#: "(B) cat", "(b) cat" (no bare "A cat": that is an article).
_MC_LEAD = re.compile(r"\s*(?:\(([A-Za-z])\)|([A-Za-z])[.:)])(?:\s|$)")
#: Anywhere: a parenthesised capital letter, "I pick (C) because ..." (first one).
_MC_PAREN = re.compile(r"\(([A-Z])\)")


def extract_choice(text: str) -> str | None:
    """The option letter a multiple-choice answer chose (upper-case), or None.

    Tried in order: the whole answer is a letter ("B", "(B)", "b."); the last
    "answer/option/choice [is|:] X" phrase ("The answer is B", "answer: b"); a leading
    letter with a delimiter ("B) cat", "(B) cat", "B. cat"); the first parenthesised capital
    letter anywhere ("I'd say (C)."). Nothing else is guessed: a bare capital elsewhere ("I
    think B") or a leading "A cat" gives None.
    """
    s = text.strip()
    m = _MC_ONLY.fullmatch(s)
    if m:
        return m.group(1).upper()
    found = None
    for m in _MC_PHRASE.finditer(s):
        found = next(g for g in m.groups() if g)
    if found:
        return found.upper()
    m = _MC_LEAD.match(s)
    if m:
        return (m.group(1) or m.group(2)).upper()
    m = _MC_PAREN.search(s)
    return m.group(1) if m else None


def _reference_choice(ref: str) -> str:
    s = ref.strip()
    m = _MC_ONLY.fullmatch(s) or _MC_LEAD.match(s)
    if not m:
        raise ValueError(
            f"multiple_choice: the reference answer {ref!r} is not an option "
            "letter (expected e.g. 'B' or '(B) text')"
        )
    return next(g for g in m.groups() if g).upper()


def multiple_choice(pred: str, answer: str | Sequence[str] | None) -> float:
    """1 if the option letter extracted from the prediction (:func:`extract_choice`) is the
    reference's letter ("B", "b", "(B) text", "B. text"), 0 otherwise or when the prediction
    names no letter; max over references."""
    letter = extract_choice(_check_pred("multiple_choice", pred))
    refs = {_reference_choice(r) for r in _references("multiple_choice", answer)}
    return float(letter is not None and letter in refs)


def agreement(pred_ids: Sequence[int], full_ids: Sequence[int]) -> float:
    """Proxy without answers: fraction of generated token positions equal to the full
    configuration's generation for the same request (1.0 for the full configuration itself);
    positions past the shorter generation count as different."""
    n = max(len(pred_ids), len(full_ids))
    if n == 0:
        return 1.0
    same = sum(a == b for a, b in zip(pred_ids, full_ids, strict=False))
    return same / n


@dataclass(frozen=True)
class Metric:
    """A named metric and what it reads (``kind``): ``answer`` -> ``fn(prediction_text,
    references)``, ``agreement`` -> ``fn(prediction_ids, full_config_ids)``. Build one with
    :func:`answer_metric` or :func:`agreement_metric`."""

    name: str
    kind: MetricKind
    fn: Callable[..., float]

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS:
            raise ValueError(f"metric kind must be one of {METRIC_KINDS}, got {self.kind!r}")
        if not callable(self.fn):
            raise TypeError(f"metric {self.name!r}: fn must be callable, got {self.fn!r}")

    @property
    def needs_answers(self) -> bool:
        """Whether every request needs reference answers (answer metrics)."""
        return self.kind == "answer"

    @property
    def needs_full_config_ids(self) -> bool:
        """Whether the caller must generate the full configuration's tokens for the same
        request (agreement metrics)."""
        return self.kind == "agreement"

    def score(
        self,
        *,
        prediction_text: str,
        references: str | Sequence[str] | None,
        prediction_ids: Sequence[int],
        full_config_ids: Sequence[int] | None,
    ) -> float:
        """The score of one generation, checked to lie in [0, 1]: the metric gets the two
        values its kind reads. ``full_config_ids`` may be ``None`` only for answer metrics."""
        if self.kind == "answer":
            q = float(self.fn(prediction_text, references))
        else:
            if full_config_ids is None:
                raise ValueError(
                    f"metric {self.name!r} compares with the full configuration's tokens for "
                    "the same request: full_config_ids is required"
                )
            q = float(self.fn(prediction_ids, full_config_ids))
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"metric {self.name} returned {q}, outside [0, 1]")
        return q


def _check_arity(fn: Callable[..., float], kind: MetricKind) -> None:
    """A custom function that cannot take its kind's two positional arguments is refused now,
    not at its first call mid-run."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    try:
        sig.bind(None, None)
    except TypeError as e:
        reads = (
            "(prediction_text, references)"
            if kind == "answer"
            else "(prediction_ids, full_config_ids)"
        )
        raise TypeError(
            f"an {kind} metric is called as fn{reads}; "
            f"{getattr(fn, '__name__', fn)!r} cannot be ({e})"
        ) from None


def answer_metric(fn: AnswerFn, name: str | None = None) -> Metric:
    """An answer metric: ``fn(prediction_text, references) -> float`` in [0, 1]."""
    _check_arity(fn, "answer")
    return Metric(name or getattr(fn, "__name__", "custom"), "answer", fn)


def agreement_metric(fn: AgreementFn, name: str | None = None) -> Metric:
    """An agreement metric: ``fn(prediction_ids, full_config_ids) -> float`` in [0, 1]."""
    _check_arity(fn, "agreement")
    return Metric(name or getattr(fn, "__name__", "custom"), "agreement", fn)


METRICS: dict[str, Metric] = {
    "exact_match": answer_metric(exact_match),
    "vqa": answer_metric(vqa_accuracy, "vqa"),
    "anls": answer_metric(anls),
    "relaxed_accuracy": answer_metric(relaxed_accuracy),
    "multiple_choice": answer_metric(multiple_choice),
    "agreement": agreement_metric(agreement),
}

#: Dataset name (lower-case, letters and digits only) prefix -> its standard metric.
_DATASET_METRICS: tuple[tuple[str, str], ...] = (
    ("vqav2", "vqa"),
    ("textvqa", "vqa"),
    ("vizwiz", "vqa"),
    ("docvqa", "anls"),
    ("infographicvqa", "anls"),
    ("infovqa", "anls"),
    ("chartqa", "relaxed_accuracy"),
    ("ai2d", "multiple_choice"),
    ("mmmu", "multiple_choice"),
    ("scienceqa", "multiple_choice"),
    ("mmbench", "multiple_choice"),
)


def metric_for_dataset(name: str) -> str:
    """The standard metric of a dataset, from its name: VQAv2 / TextVQA / VizWiz -> ``vqa``,
    DocVQA / InfographicVQA -> ``anls``, ChartQA -> ``relaxed_accuracy``, AI2D / MMMU /
    ScienceQA / MMBench -> ``multiple_choice``, anything else -> ``exact_match``.

    Case, punctuation and a hub owner are ignored and the name may carry a suffix:
    "lmms-lab/VQAv2", "vqa_v2", "TextVQA-val", "ScienceQA-IMG", "MMBench_DEV_EN" all match.
    """
    if not isinstance(name, str):
        raise TypeError(f"a dataset name must be a str, got {type(name).__name__}")
    key = re.sub(r"[^a-z0-9]", "", name.rsplit("/", 1)[-1].lower())
    for prefix, metric in _DATASET_METRICS:
        if key.startswith(prefix):
            return metric
    return "exact_match"


def resolve_metric(
    metric: str | Metric | AnswerFn, have_answers: bool, dataset: str | None = None
) -> tuple[str, Metric]:
    """``(name, metric)`` for a metric name, a :class:`Metric`, or a plain function (taken as
    an answer metric, ``fn(prediction_text, references)``; wrap a token comparison with
    :func:`agreement_metric`).

    ``auto``: with answers, the dataset's standard metric when ``dataset`` names it
    (:func:`metric_for_dataset`), else exact match; without answers, agreement (a proxy).
    Every answer metric needs answers (``ValueError`` without them); ``agreement`` does not.
    """
    if isinstance(metric, Metric) or callable(metric):
        m = metric if isinstance(metric, Metric) else answer_metric(metric)
        if m.needs_answers and not have_answers:
            raise ValueError(f"metric {m.name!r} needs an answer for every sample")
        return m.name, m
    if metric == "auto":
        if not have_answers:
            metric = "agreement"
        else:
            metric = metric_for_dataset(dataset) if dataset else "exact_match"
    if metric not in METRICS:
        raise ValueError(
            f"unknown metric {metric!r}; choose auto, {', '.join(METRICS)} or pass a callable"
        )
    m = METRICS[metric]
    if m.needs_answers and not have_answers:
        raise ValueError(f"metric {metric!r} needs an answer for every sample")
    return metric, m
