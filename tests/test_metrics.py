"""Answer metrics: hand-computed scores for every evaluator (fastctrl.runtime.metrics)."""

from __future__ import annotations

import pytest

from fastctrl.runtime.metrics import (
    METRICS,
    Metric,
    agreement,
    agreement_metric,
    anls,
    anls_paper,
    answer_metric,
    chartqapro_accuracy,
    exact_match,
    extract_choice,
    levenshtein,
    metric_for_dataset,
    mmmu_accuracy,
    multiple_choice,
    normalize_answer,
    relaxed_accuracy,
    relaxed_accuracy_paper,
    resolve_metric,
    textvqa_accuracy,
    tokenize_answer,
    vqa_accuracy,
    vqa_accuracy_normalized,
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
    # documented departure: the official formula gives 0 with one reference
    assert _score(vqa_accuracy, "The Red", "red") == 1.0
    assert _score(vqa_accuracy, "blue", ["red"]) == 0.0
    assert _score(textvqa_accuracy, "He's", "he's") == 1.0


def test_vqa_2021_compares_raw_strings_when_references_agree():
    # all ten identical: the official 2021 script compares the stripped raw strings
    assert _score(vqa_accuracy, "Yes", ["yes"] * 10) == 0.0
    assert _score(vqa_accuracy, " yes\n", ["yes"] * 10) == 1.0
    assert _score(vqa_accuracy, "two", ["2"] * 10) == 0.0
    # one differing reference switches normalisation on for all of them
    assert _score(vqa_accuracy, "Yes", ["yes"] * 9 + ["no"]) == 1.0
    # the earlier always-normalise reading stays available by name
    assert _score(vqa_accuracy_normalized, "Yes", ["yes"] * 10) == 1.0
    assert _score(vqa_accuracy_normalized, "two", ["2"] * 10) == 1.0


@pytest.mark.parametrize(
    "raw, tok",
    [
        ("He's", "he 's"),  # "'s" split off
        ("hes", "he's"),  # the contraction table still applies to the word
        ("1,000 x-y", "1000 x y"),  # commas dropped first: no digit-comma rule afterwards
        ("why?", "why"),
        ("x, y", "x y"),
        ("The  Dog.", "dog"),
    ],
)
def test_tokenize_answer(raw, tok):
    assert tokenize_answer(raw) == tok


def test_textvqa_tokenizes_before_normalising():
    # the example: "hes" vs ten "he's" -> 1.0 with VQAv2 processing, 0.0 in TextVQA's
    assert _score(vqa_accuracy_normalized, "hes", ["he's"] * 10) == 1.0
    assert _score(textvqa_accuracy, "hes", ["he's"] * 10) == 0.0
    assert _score(textvqa_accuracy, "He's", ["he's"] * 10) == 1.0
    assert _score(textvqa_accuracy, "x, y", ["x y"] * 3 + ["z"] * 7) == pytest.approx(0.9)


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
    assert _score(anls, "ab", "ac") == 0.5  # similarity exactly 0.5 is kept (the script)
    assert _score(anls, "hello  world", "hello world") == 1.0  # whitespace runs collapse
    assert _score(anls, "abc", "abd ") == pytest.approx(0.75)  # lengths of the raw strings
    assert _score(anls, "x", "y") == 0.0
    assert _score(anls, "abc", "xyz") == 0.0  # NL 1
    # max over references: "helo" (0.8) beats "help me" (NL 4/7 -> 0)
    assert _score(anls, "hello", ["help me", "helo"]) == pytest.approx(0.8)
    assert _score(anls, "abcd", ["abce", "abcd"]) == 1.0
    assert _score(anls, "", "") == 1.0
    assert _score(anls, "", "a") == 0.0


def test_anls_paper():
    assert _score(anls_paper, "ab", "ac") == 0.0  # NL exactly 0.5 -> 0 (the paper)
    assert _score(anls_paper, "hello  world", "hello world") == pytest.approx(1 - 1 / 12)
    assert _score(anls_paper, "hello", "helo") == pytest.approx(0.8)


# --- relaxed accuracy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pred, ref, ok",
    [
        ("105", "100", 1.0),  # exactly 5 % above (0.05 in floating point)
        ("95", "100", 1.0),
        ("0.95", "1.0", 0.0),  # |0.95 - 1.0| is 0.05000000000000004 in floating point
        ("105.1", "100", 0.0),
        ("94.9", "100", 0.0),
        ("1,050", "1000", 0.0),  # float() does not read thousands commas: string compare
        ("1,000", "1,000", 1.0),
        ("1_000", "1000", 1.0),  # float() reads "1_000"
        (" 100 ", "100", 1.0),  # ... and surrounding whitespace
        ("-10.4", "-10", 1.0),
        ("-10.6", "-10", 0.0),
        ("50%", "0.5", 1.0),  # "%" divides by 100
        ("52%", "50%", 1.0),
        ("53%", "50%", 0.0),
        ("50%", "50", 0.0),
        ("0", "0", 1.0),  # a 0 reference falls back to the string comparison
        ("0.0", "0", 0.0),
        ("-0", "0", 0.0),
        (" Yes ", "yes", 0.0),  # text: lower-cased, not stripped
        ("YES", "yes", 1.0),
        ("100 apples", "100", 0.0),
        ("nan", "nan", 0.0),  # NaN compares false
        ("inf", "inf", 0.0),  # inf - inf is NaN
        ("5", "inf", 0.0),
        ("1e2", "100", 1.0),
    ],
)
def test_relaxed_accuracy(pred, ref, ok):
    assert _score(relaxed_accuracy, pred, ref) == ok


@pytest.mark.parametrize(
    "pred, ref, ok",
    [
        ("1,050", "1000", 1.0),
        ("0.95", "1.0", 1.0),
        ("0.0", "0", 1.0),
        ("0.001", "0", 0.0),
        (" Yes ", "yes", 1.0),
        ("1_000", "1000", 0.0),
        ("nan", "nan", 1.0),  # not a number here: string equality
    ],
)
def test_relaxed_accuracy_paper(pred, ref, ok):
    assert _score(relaxed_accuracy_paper, pred, ref) == ok


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
        ("**B**", "B"),  # markdown emphasis is stripped
        ("The answer is **B**.", "B"),
        ("__C__", "C"),
        ("`D`", "D"),
        ("(A) a cat (B) a dog -> B", "B"),  # the final stated answer wins
        ("(A) a cat (B) a dog => (B).", "B"),
        ("A cat or a dog, so B", "B"),
        ("The answer is A. Wait, the answer is **C**", "C"),
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

ANSWER_METRICS = [
    exact_match,
    vqa_accuracy,
    vqa_accuracy_normalized,
    textvqa_accuracy,
    anls,
    anls_paper,
    relaxed_accuracy,
    relaxed_accuracy_paper,
    chartqapro_accuracy,
    mmmu_accuracy,
    multiple_choice,
]
ANSWER_METRIC_NAMES = (
    "exact_match",
    "vqa",
    "textvqa",
    "anls",
    "relaxed_accuracy",
    "chartqapro",
    "mmmu",
    "multiple_choice",
    "vqa_normalized",
    "anls_paper",
    "relaxed_accuracy_paper",
)


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
    assert kinds == {name: "answer" for name in ANSWER_METRIC_NAMES} | {"agreement": "agreement"}
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
        ("TextVQA-val", "textvqa"),
        ("vizwiz", "textvqa"),
        ("lmms-lab/VizWiz-VQA", "textvqa"),
        ("ok_vqa", "vqa"),
        ("OK-VQA", "vqa"),
        ("docvqa", "anls"),
        ("DocVQA_val", "anls"),
        ("InfographicVQA", "anls"),
        ("chartqa", "relaxed_accuracy"),
        ("HuggingFaceM4/ChartQA", "relaxed_accuracy"),
        ("ahmed-masry/ChartQAPro", "chartqapro"),
        ("chartqa_pro", "chartqapro"),
        ("ai2d", "multiple_choice"),
        ("MMMU/MMMU", "mmmu"),
        ("ScienceQA-IMG", "multiple_choice"),
        ("MMBench_DEV_EN", "multiple_choice"),
        ("gqa", "exact_match"),
        ("", "exact_match"),
    ],
)
def test_metric_for_dataset(name, metric):
    assert metric_for_dataset(name) == metric


def test_resolve_metric():
    assert set(METRICS) == {*ANSWER_METRIC_NAMES, "agreement"}
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


# --- ChartQAPro and MMMU --------------------------------------------------------------------


def test_chartqapro():
    # numbers within 5 %, "%" ignored at either end; a 0 reference needs 0
    assert chartqapro_accuracy("12.4", ["12"]) == 1.0
    assert chartqapro_accuracy("5%", ["5"]) == 1.0
    assert chartqapro_accuracy("0.0", ["0"]) == 1.0
    # text: ANLS (whitespace collapsed, case ignored)
    assert chartqapro_accuracy("United  states", ["United States"]) == 1.0
    assert chartqapro_accuracy("India.", ["india"]) == 1.0  # "." stripped at both ends
    assert chartqapro_accuracy("Indi", ["India"]) == pytest.approx(0.8)
    # lists item by item, quotes optional in the reference; a missing item scores 0
    assert chartqapro_accuracy("['India', 'China']", ["[India, China]"]) == 1.0
    assert chartqapro_accuracy("['India']", ["[India, China]"]) == 0.5
    # years: exact match when flagged (or, without flags, when the item looks like a year)
    assert chartqapro_accuracy("2017", ["2016"], year_flags=["YES"]) == 0.0
    assert chartqapro_accuracy("2017", ["2016"], year_flags=["NO"]) == 1.0
    assert chartqapro_accuracy("2017", ["2016"]) == 0.0
    # the answer is the last turn; a Conversational question uses its last flag
    assert (
        chartqapro_accuracy(
            "2016", ["12", "2016"], year_flags=["NO", "YES"], question_type="Conversational"
        )
        == 1.0
    )
    with pytest.raises(ValueError, match="year_flags is empty"):
        chartqapro_accuracy("1", ["1"], year_flags=[])


def test_mmmu():
    assert mmmu_accuracy("(B)", "B") == 1.0
    assert mmmu_accuracy("The answer is (C).", "C") == 1.0
    assert mmmu_accuracy("I think B is right", "B") == 1.0
    assert mmmu_accuracy("(A) is wrong, (B) is right", "B") == 1.0  # the last one named
    # documented departure: no letter found -> 0 (MMMU picks a random option)
    assert mmmu_accuracy("**B**", "B") == 0.0
    # open questions no longer raise: numbers rounded to 2 decimals, strings contained
    assert mmmu_accuracy("The answer is 3.14159.", "3.14") == 1.0
    assert mmmu_accuracy("It is 1,000", "1000") == 1.0
    assert mmmu_accuracy("The capital is Paris.", "Paris") == 1.0
    assert mmmu_accuracy("The answer is 3.1", "3.14") == 0.0
    assert mmmu_accuracy("so 12.", ["twelve", "12"]) == 1.0
