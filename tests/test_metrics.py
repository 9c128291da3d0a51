"""Answer metrics: hand-computed scores for every evaluator (fastctrl.runtime.metrics)."""

from __future__ import annotations

import pytest

from fastctrl.runtime.metrics import (
    METRICS,
    Metric,
    agreement,
    agreement_metric,
    anls,
    answer_metric,
    exact_match,
    extract_choice,
    levenshtein,
    metric_for_dataset,
    multiple_choice,
    normalize_answer,
    relaxed_accuracy,
    resolve_metric,
    vqa_accuracy,
)


def _score(metric, pred, answer):
    return metric(pred, answer)


# --- VQA normalisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("Two", "2"),  # number word -> digit (after lower-casing)
        ("none", "0"),
        ("ten", "10"),
        ("eleven", "eleven"),  # only zero..ten and none are mapped
        ("the dog.", "dog"),  # article dropped, trailing period stripped
        ("An Apple", "apple"),
        ("yes!", "yes"),  # "!" not touching a space -> space -> squeezed
        ("isnt", "isn't"),  # contractions map
        ("itll", "it'll"),
        ("it's", "it's"),  # apostrophe is not punctuation
        ("its", "its"),  # not in the map
        ("Im", "im"),  # the official map's "Im" key is dead after lower()
        ("1,000", "1000"),  # comma between digits: punctuation deleted, digits kept
        ("x, y", "x y"),  # "," touching a space: deleted
        ("x,y", "x y"),  # otherwise replaced by a space
        ("1,000 x-y", "1000 xy"),  # a digit comma anywhere deletes every punctuation char
        ("x-y", "x y"),
        ("1.5", "1.5"),  # period followed by a digit kept
        ("e.g.", "eg"),
        ("3.", "3"),
        ("  red\tcar\n", "red car"),
        ("50%", "50%"),  # "%" and ":" are not in the punctuation list
        ("The  Red!", "red"),
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_normalize_period_strip_count_is_32():
    # the official sub(..., re.UNICODE) passes 32 as the count: periods after the 32nd stay
    assert normalize_answer("." * 40 + "x") == "." * 8 + "x"


# --- VQA accuracy ---------------------------------------------------------------------------


def test_vqa_ten_references_leave_one_out():
    assert _score(vqa_accuracy, "cat", ["cat"] * 1 + ["dog"] * 9) == pytest.approx(0.3)
    # 2 matches: (2 * 1/3 + 8 * 2/3) / 10
    assert _score(vqa_accuracy, "cat", ["cat"] * 2 + ["dog"] * 8) == pytest.approx(0.6)
    # 3 matches: (3 * 2/3 + 7 * 1) / 10
    assert _score(vqa_accuracy, "cat", ["cat"] * 3 + ["dog"] * 7) == pytest.approx(0.9)
    assert _score(vqa_accuracy, "cat", ["cat"] * 4 + ["dog"] * 6) == 1.0
    assert _score(vqa_accuracy, "cat", ["cat"] * 10) == 1.0
    assert _score(vqa_accuracy, "bird", ["cat"] * 4 + ["dog"] * 6) == 0.0


def test_vqa_normalises_prediction_and_references():
    refs = ["2", "two", "Two.", "2", "3", "3", "3", "3", "3", "3"]
    assert _score(vqa_accuracy, "Two", refs) == pytest.approx(1.0)  # 4 matches
    assert _score(vqa_accuracy, "the dog.", ["dog", "Dog", "cat", "cat"]) == pytest.approx(
        (2 * (1 / 3) + 2 * (2 / 3)) / 4
    )


def test_vqa_general_n():
    # 4 refs, 3 match: each matching leave-out has 2 (2/3), the other has 3 (1)
    assert _score(vqa_accuracy, "red", ["red", "red", "blue", "red"]) == pytest.approx(0.75)
    # 3 refs, 1 match: 0 + 1/3 + 1/3 over 3
    assert _score(vqa_accuracy, "red", ["red", "blue", "blue"]) == pytest.approx(2 / 9)


def test_vqa_single_reference_is_exact_match():
    assert _score(vqa_accuracy, "The Red", "red") == 1.0
    assert _score(vqa_accuracy, "blue", ["red"]) == 0.0


# --- ANLS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, d",
    [
        ("hello", "helo", 1),
        ("kitten", "sitting", 3),
        ("", "abc", 3),
        ("abc", "", 3),
        ("flaw", "lawn", 2),
        ("same", "same", 0),
        ("ab", "ba", 2),
    ],
)
def test_levenshtein(a, b, d):
    assert levenshtein(a, b) == d
    assert levenshtein(b, a) == d


def test_anls():
    assert _score(anls, "hello", "helo") == pytest.approx(0.8)  # NL 1/5
    assert _score(anls, "  HELLO ", ["Hello"]) == 1.0  # lower + strip
    assert _score(anls, "kitten", "sitting") == pytest.approx(4 / 7)  # NL 3/7 < 0.5
    assert _score(anls, "ab", "ac") == 0.0  # NL exactly 0.5 -> 0
    assert _score(anls, "abc", "xyz") == 0.0  # NL 1
    # max over references: "helo" (0.8) beats "help me" (NL 4/7 -> 0)
    assert _score(anls, "hello", ["help me", "helo"]) == pytest.approx(0.8)
    assert _score(anls, "abcd", ["abce", "abcd"]) == 1.0
    assert _score(anls, "", "") == 1.0
    assert _score(anls, "", "a") == 0.0


# --- relaxed accuracy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pred, ref, ok",
    [
        ("105", "100", 1.0),  # exactly 5 % above
        ("95", "100", 1.0),  # exactly 5 % below
        ("105.1", "100", 0.0),
        ("94.9", "100", 0.0),
        ("1,050", "1000", 1.0),  # thousands separator
        ("1,051", "1,000", 0.0),
        ("-10.4", "-10", 1.0),
        ("-10.6", "-10", 0.0),
        ("50%", "0.5", 1.0),  # "%" divides by 100 (ChartQA reference code)
        ("52%", "50%", 1.0),  # 0.52 vs 0.50: 4 %
        ("53%", "50%", 0.0),  # 6 %
        ("50%", "50", 0.0),
        ("0", "0", 1.0),  # reference 0: exact
        ("0.0", "0", 1.0),
        ("0.001", "0", 0.0),
        (" Yes ", "yes", 1.0),  # non-numeric: lower + strip equality
        ("yes.", "yes", 0.0),
        ("100 apples", "100", 0.0),  # not a number -> string comparison
        ("1,23", "123", 0.0),  # malformed grouping is not a number
        ("nan", "nan", 1.0),  # "nan" is not a number here: string equality
    ],
)
def test_relaxed_accuracy(pred, ref, ok):
    assert _score(relaxed_accuracy, pred, ref) == ok


def test_relaxed_accuracy_max_over_references():
    assert _score(relaxed_accuracy, "12", ["20", "12.5"]) == 1.0  # 4 % of 12.5
    assert _score(relaxed_accuracy, "12", ["20", "13"]) == 0.0


# --- exact match ----------------------------------------------------------------------------


def test_exact_match():
    assert _score(exact_match, "Two dogs.", "2 dogs") == 1.0
    assert _score(exact_match, "a red", "Red") == 1.0
    assert _score(exact_match, "blue", ["red", "crimson"]) == 0.0
    assert _score(exact_match, "1,000", "1000") == 1.0
    assert _score(exact_match, "1,000", "1 000") == 0.0
    assert _score(exact_match, "isnt", "isn't") == 1.0
    assert _score(exact_match, "it's", "its") == 0.0


# --- multiple choice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, letter",
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("B)", "B"),
        (" (c). ", "C"),
        ("B) cat", "B"),
        ("B. cat", "B"),
        ("(B) cat", "B"),
        ("(b) cat", "B"),
        ("D: red", "D"),
        ("The answer is B", "B"),
        ("answer: b", "B"),
        ("Answer: (d).", "D"),
        ("The correct option is C.", "C"),
        ("ANSWER IS A", "A"),
        ("First I thought the answer is A, but the answer is C", "C"),  # last phrase wins
        ("I'd pick (C) because it is red", "C"),
        ("the answer is a dog", None),  # lower-case article, not an option
        ("A cat", None),  # leading article without delimiter
        ("I think B", None),  # bare capital elsewhere is not guessed
        ("cat", None),
        ("", None),
    ],
)
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


def test_multiple_choice():
    assert _score(multiple_choice, "The answer is B", "B") == 1.0
    assert _score(multiple_choice, "(b) a cat", "(B) cat") == 1.0
    assert _score(multiple_choice, "B", "C. dog") == 0.0
    assert _score(multiple_choice, "C", ["B", "C"]) == 1.0
    assert _score(multiple_choice, "no idea", "B") == 0.0
    with pytest.raises(ValueError, match="not an option letter"):
        _score(multiple_choice, "B", "cat")


# --- errors ---------------------------------------------------------------------------------

ANSWER_METRICS = [exact_match, vqa_accuracy, anls, relaxed_accuracy, multiple_choice]


@pytest.mark.parametrize("metric", ANSWER_METRICS)
def test_missing_references(metric):
    with pytest.raises(ValueError, match="needs reference answers"):
        metric("x", None)
    with pytest.raises(ValueError, match="needs at least one reference answer"):
        metric("x", [])


@pytest.mark.parametrize("metric", ANSWER_METRICS)
def test_bad_types(metric):
    with pytest.raises(TypeError, match="prediction must be a str"):
        metric(None, "B")
    with pytest.raises(TypeError, match="prediction must be a str"):
        metric(3, "B")
    with pytest.raises(TypeError, match="reference answer 1 must be a str"):
        metric("B", ["B", 2])
    with pytest.raises(TypeError, match="answer must be a str or a sequence"):
        metric("B", 5)


def test_agreement_unchanged():
    assert agreement([1, 2, 3, 4], [1, 2, 9, 4]) == 0.75
    assert agreement([1, 2], [1, 2, 3, 4]) == 0.5
    assert agreement([], []) == 1.0


# --- what each metric reads -----------------------------------------------------------------

ALL = dict(prediction_text="cat", references=["dog"], prediction_ids=[1, 2], full_config_ids=[1, 2])


def test_each_registered_metric_says_what_it_reads():
    kinds = {name: m.kind for name, m in METRICS.items()}
    assert kinds == {
        "exact_match": "answer",
        "vqa": "answer",
        "anls": "answer",
        "relaxed_accuracy": "answer",
        "multiple_choice": "answer",
        "agreement": "agreement",
    }
    for name, m in METRICS.items():
        assert isinstance(m, Metric) and m.name == name
        assert m.needs_answers == (m.kind == "answer") != m.needs_full_config_ids


def test_score_hands_each_kind_only_what_it_reads():
    # an answer metric scores the text against the references, whatever the tokens say
    assert METRICS["exact_match"].score(**ALL) == 0.0
    assert METRICS["exact_match"].score(**{**ALL, "references": "Cat"}) == 1.0
    # agreement compares the tokens with the full config's, whatever the text and answers say
    assert METRICS["agreement"].score(**ALL) == 1.0
    assert METRICS["agreement"].score(**{**ALL, "full_config_ids": [1, 9]}) == 0.5
    assert METRICS["agreement"].score(**{**ALL, "references": None}) == 1.0
    with pytest.raises(ValueError, match="full_config_ids is required"):
        METRICS["agreement"].score(**{**ALL, "full_config_ids": None})
    # answer metrics need no full-config tokens
    assert METRICS["exact_match"].score(**{**ALL, "full_config_ids": None}) == 0.0


def test_custom_metrics_are_typed_and_checked():
    seen = []
    m = answer_metric(lambda text, refs: seen.append((text, refs)) or 1.0, "mine")
    assert (m.name, m.kind, m.needs_answers) == ("mine", "answer", True)
    assert m.score(**ALL) == 1.0 and seen == [("cat", ["dog"])]
    t = agreement_metric(lambda ids, full: float(ids[0] == full[0]), "first_token")
    assert (t.kind, t.needs_answers) == ("agreement", False)
    assert t.score(**{**ALL, "full_config_ids": [1, 7]}) == 1.0
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        answer_metric(lambda text, refs: 2.0, "big").score(**ALL)
    # the old four-argument form is refused when it is wrapped, not at its first call
    with pytest.raises(TypeError, match="prediction_text, references"):
        answer_metric(lambda pred, answer, pred_ids, full_ids: 1.0)
    with pytest.raises(TypeError, match="prediction_ids, full_config_ids"):
        agreement_metric(lambda ids: 1.0)
    with pytest.raises(ValueError, match="kind"):
        Metric("x", "tokens", agreement)


# --- selection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, metric",
    [
        ("vqav2", "vqa"),
        ("lmms-lab/VQAv2", "vqa"),
        ("vqa_v2", "vqa"),
        ("TextVQA-val", "vqa"),
        ("vizwiz", "vqa"),
        ("docvqa", "anls"),
        ("DocVQA_val", "anls"),
        ("InfographicVQA", "anls"),
        ("chartqa", "relaxed_accuracy"),
        ("HuggingFaceM4/ChartQA", "relaxed_accuracy"),
        ("ai2d", "multiple_choice"),
        ("MMMU/MMMU", "multiple_choice"),
        ("ScienceQA-IMG", "multiple_choice"),
        ("MMBench_DEV_EN", "multiple_choice"),
        ("gqa", "exact_match"),
        ("", "exact_match"),
    ],
)
def test_metric_for_dataset(name, metric):
    assert metric_for_dataset(name) == metric


def test_resolve_metric():
    assert set(METRICS) == {
        "exact_match",
        "vqa",
        "anls",
        "relaxed_accuracy",
        "multiple_choice",
        "agreement",
    }
    assert resolve_metric("auto", True) == ("exact_match", METRICS["exact_match"])
    assert resolve_metric("auto", False) == ("agreement", METRICS["agreement"])
    assert resolve_metric("auto", True, dataset="docvqa") == ("anls", METRICS["anls"])
    assert resolve_metric("auto", False, dataset="docvqa") == ("agreement", METRICS["agreement"])
    for name in METRICS:
        assert resolve_metric(name, True) == (name, METRICS[name])
    assert METRICS["anls"].fn is anls and METRICS["agreement"].fn is agreement
    # a plain function is an answer metric; a Metric passes through
    assert resolve_metric(anls, True) == ("anls", answer_metric(anls))
    assert resolve_metric(METRICS["agreement"], False) == ("agreement", METRICS["agreement"])
    with pytest.raises(ValueError, match="needs an answer for every sample"):
        resolve_metric(anls, False)
    with pytest.raises(ValueError, match="needs an answer for every sample"):
        resolve_metric(METRICS["vqa"], False)
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        resolve_metric("bleu", True)
    with pytest.raises(ValueError, match="needs an answer for every sample"):
        resolve_metric("relaxed_accuracy", False)
    with pytest.raises(TypeError):
        metric_for_dataset(None)
