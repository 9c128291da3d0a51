"""Golden cases for fastctrl's answer metrics, scored by the reference evaluators themselves.

Run it in its own environment (the reference packages are not fastctrl dependencies):

    python3 -m venv /work/metrics-ref-venv
    /work/metrics-ref-venv/bin/pip install anls==0.0.2 editdistance==0.8.1 numpy
    /work/metrics-ref-venv/bin/pip install --no-deps lmms-eval==0.7.3
    /work/metrics-ref-venv/bin/python bench/metrics_golden/make_goldens.py

The oracles are the reference code, run unchanged:

- ``vqa``: GT-Vision-Lab/VQA ``vqaEval.py`` (2021), vendored in ``reference/`` (Python 2: its
  two ``print "..."`` statements are turned into calls when it is loaded; the per-question
  accuracy is taken before the script rounds it to two decimals);
- ``textvqa``: mmf ``m4c_evaluators.py`` ``TextVQAAccuracyEvaluator`` (vendored) for ten
  references, lmms-eval's ``textvqa_process_results`` (installed) for other counts;
- ``vizwiz``: lmms-eval's ``vizwiz_vqa_process_results`` (installed);
- ``anls``: lmms-eval's ``anls`` (installed; the official DocVQA / InfographicVQA script's
  per-question rule), with the ``anls`` package's ``anls_score`` recorded beside it;
- ``relaxed_accuracy``: pix2struct ``metrics.py`` ``relaxed_correctness`` aggregated by its
  ``aggregate_metrics`` (vendored);
- ``chartqapro``: vis-nlp/ChartQAPro ``evaluate_predictions_chartqapro`` (vendored);
- ``mmmu``: MMMU-Benchmark/MMMU ``eval_utils.py`` (vendored), parsing with no option texts
  (fastctrl does not have them); its random pick for an unparsable multiple-choice answer is
  replaced by "no answer", and such cases are marked ``random_guess``.

Functions are taken out of a reference file by name (its own source, compiled as is) so that
the file's unrelated heavy imports (torch, pandas, pycocoevalcap) are not needed. Every case
set is drawn from a seeded generator of edge cases; a case the reference itself raises on is
left out and counted. Output: one JSONL file per metric in tests/fixtures/metrics_golden/ and
a manifest with the counts.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import random
import re
import statistics
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference"
OUT = HERE.parents[1] / "tests" / "fixtures" / "metrics_golden"


# --- loading the reference code -------------------------------------------------------------


def _defs(source: str, names: tuple[str, ...], env: dict[str, Any], where: str) -> dict:
    """Compile and run the named top-level functions / classes of ``source`` (decorators
    included) in a namespace seeded with ``env``; returns that namespace."""
    tree = ast.parse(source, where)
    nodes = [
        n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names
    ]
    missing = set(names) - {n.name for n in nodes}
    if missing:
        raise RuntimeError(f"{where}: no top-level definition of {sorted(missing)}")
    ns = dict(env)
    exec(compile(ast.Module(body=nodes, type_ignores=[]), where, "exec"), ns)
    return ns


def _vendored(name: str) -> str:
    return (REFERENCE / name).read_text(encoding="utf-8")


def _lmms_file(rel: str) -> tuple[str, str]:
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("lmms-eval is not installed: pip install --no-deps lmms-eval==0.7.3")
    path = Path(spec.submodule_search_locations[0]) / rel
    return path.read_text(encoding="utf-8"), str(path)


def _typing_env() -> dict[str, Any]:
    return {k: getattr(typing, k) for k in ("Any", "Callable", "Dict", "List", "Optional")} | {
        k: getattr(typing, k) for k in ("Mapping", "Sequence", "Tuple", "Union")
    }


def load_oracles() -> dict[str, Callable[..., Any]]:
    """One scoring function per golden file, each running the reference code."""
    from anls import anls_score  # the anls package (PyPI), as ChartQAPro's evaluator uses

    oracles: dict[str, Callable[..., Any]] = {}

    # VQAv2: the official script; Python 2 print statements become calls
    src = re.sub(r'^(\s*)print (".*")\s*$', r"\1print(\2)", _vendored("vqaEval.py.txt"), flags=re.M)
    vqa_ns = _defs(src, ("VQAEval",), {"re": re, "sys": __import__("sys")}, "vqaEval.py")

    class _Api:  # what VQAEval reads of the VQA API object: .qa and getQuesIds()
        def __init__(self, qa: dict) -> None:
            self.qa = qa

        def getQuesIds(self) -> list:  # noqa: N802 (the API's name)
            return list(self.qa)

    class _Eval(vqa_ns["VQAEval"]):  # keeps the per-question accuracy before rounding
        def setEvalQA(self, quesId, acc):  # noqa: N802, N803
            self.raw[quesId] = acc

        def updateProgress(self, progress):  # noqa: N802 (silence the progress bar)
            pass

    def vqa(pred: str, refs: list[str]) -> float:
        gts = {
            1: {
                "question_id": 1,
                "question_type": "q",
                "answer_type": "other",
                "answers": [
                    {"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                    for i, a in enumerate(refs)
                ],
            }
        }
        e = _Eval(_Api(gts), _Api({1: {"question_id": 1, "answer": pred}}))
        e.raw = {}
        e.evaluate()
        return e.raw[1]

    oracles["vqa"] = vqa

    # TextVQA: mmf's evaluator (ten references), lmms-eval's task code otherwise
    m4c = _defs(
        _vendored("m4c_evaluators.py.txt"),
        ("EvalAIAnswerProcessor", "TextVQAAccuracyEvaluator"),
        {"re": re},
        "m4c_evaluators.py",
    )
    textvqa_eval = m4c["TextVQAAccuracyEvaluator"]()
    proc_src, proc_path = _lmms_file("tasks/_task_utils/vqa_eval_metric.py")
    lm_proc = _defs(proc_src, ("EvalAIAnswerProcessor",), {"re": re}, proc_path)
    lm_env = {"statistics": statistics, "EvalAIAnswerProcessor": lm_proc["EvalAIAnswerProcessor"]}
    tv_src, tv_path = _lmms_file("tasks/textvqa/utils.py")
    lm_textvqa = _defs(tv_src, ("textvqa_process_results",), lm_env, tv_path)
    vz_src, vz_path = _lmms_file("tasks/vizwiz_vqa/utils.py")
    lm_vizwiz = _defs(vz_src, ("vizwiz_vqa_process_results",), lm_env, vz_path)

    def textvqa(pred: str, refs: list[str]) -> tuple[float, str]:
        if len(refs) == 10:
            return textvqa_eval.eval_pred_list([{"pred_answer": pred, "gt_answers": refs}]), "mmf"
        doc = {"question_id": 1, "answers": list(refs)}
        r = lm_textvqa["textvqa_process_results"](doc, [pred])
        return r["exact_match"], "lmms-eval"

    def vizwiz(pred: str, refs: list[str]) -> float:
        doc = {"question_id": 1, "answers": list(refs)}
        return lm_vizwiz["vizwiz_vqa_process_results"](doc, [pred])["exact_match"]

    oracles["textvqa"] = textvqa
    oracles["vizwiz"] = vizwiz

    # ANLS: lmms-eval's (the official script's rule), the anls package beside it
    m_src, m_path = _lmms_file("api/metrics.py")
    lm_metrics = _defs(
        m_src,
        ("anls", "levenshtein_distance"),
        {"register_metric": lambda **_: lambda f: f},
        m_path,
    )

    def anls(pred: str, refs: list[str]) -> tuple[float, float]:
        official = lm_metrics["anls"](refs, [pred])["anls"]
        return float(official), float(anls_score(pred, refs))

    oracles["anls"] = anls

    # ChartQA: pix2struct
    p2s = _defs(
        _vendored("pix2struct_metrics.py.txt"),
        ("aggregate_metrics", "relaxed_correctness"),
        _typing_env(),
        "pix2struct/metrics.py",
    )

    def relaxed(pred: str, refs: list[str]) -> float:
        return (
            p2s["aggregate_metrics"](
                targets=[refs], predictions=[pred], metric_fn=p2s["relaxed_correctness"]
            )
            / 100.0
        )

    oracles["relaxed_accuracy"] = relaxed

    # ChartQAPro
    cqp = _defs(
        _vendored("chartqapro_evaluate_predictions.py.txt"),
        (
            "fix_list_format",
            "parse_to_list",
            "to_float",
            "evaluate_single_answer",
            "relaxed_correctness_chartqapro",
            "evaluate_predictions_chartqapro",
        ),
        _typing_env() | {"ast": ast, "re": re, "anls_score": anls_score},
        "ChartQAPro/evaluate_predictions.py",
    )

    def chartqapro(pred: str, refs: list[str], flags: list[str], qtype: str) -> float:
        row = {"Answer": refs, "Question Type": qtype, "Year": flags, "prediction": pred}
        return cqp["evaluate_predictions_chartqapro"]([row])["Overall"]

    oracles["chartqapro"] = chartqapro

    # MMMU: no option texts; the random pick becomes "no answer" and is reported
    import numpy as np

    class _NoRandom:
        used = False

        def choice(self, seq):
            _NoRandom.used = True
            return None

    mmmu_ns = _defs(
        _vendored("mmmu_eval_utils.py.txt"),
        (
            "parse_multi_choice_response",
            "check_is_number",
            "normalize_str",
            "extract_numbers",
            "parse_open_response",
            "eval_multi_choice",
            "eval_open",
        ),
        {"re": re, "np": np, "random": _NoRandom()},
        "MMMU/eval_utils.py",
    )

    def mmmu(pred: str, refs: list[str], kind: str) -> tuple[float, bool]:
        _NoRandom.used = False
        gold: str | list[str] = refs[0] if len(refs) == 1 else list(refs)
        if kind == "multiple-choice":
            parsed = mmmu_ns["parse_multi_choice_response"](pred, list("ABCDEFGHI"), {})
            ok = mmmu_ns["eval_multi_choice"](gold, parsed)
        else:
            ok = mmmu_ns["eval_open"](gold, mmmu_ns["parse_open_response"](pred))
        return float(ok), _NoRandom.used

    oracles["mmmu"] = mmmu
    return oracles


# --- case generators ------------------------------------------------------------------------

VQA_WORDS = [
    "yes",
    "Yes",
    "YES",
    "no",
    "No.",
    "2",
    "two",
    "Two",
    "two.",
    "none",
    "zero",
    "0",
    "ten",
    "10",
    "eleven",
    "dog",
    "a dog",
    "the dog",
    "The Dog.",
    "dogs",
    "dog's",
    "dogs'",
    "he's",
    "hes",
    "He's",
    "its",
    "it's",
    "isnt",
    "isn't",
    "dont",
    "don't",
    "let's",
    "lets",
    "Im",
    "im",
    "i'm",
    "1,000",
    "1000",
    "1 000",
    "1.5",
    "1.50",
    "3.",
    "e.g.",
    "eg",
    "x-y",
    "x y",
    "x - y",
    "x,y",
    "x, y",
    "red car",
    "red  car",
    " red car ",
    "red\tcar",
    "red\ncar",
    "what?",
    "what",
    "why's",
    "whys",
    "50%",
    "50",
    "$5",
    "5$",
    "a/b",
    "a / b",
    '"hi"',
    "hi",
    "(a)",
    "a",
    "[b]",
    "b",
    "yes!",
    "yes !",
    "o'clock",
    "oclock",
    "café",
    "cafe",
    "naïve",
    "john's book",
    "johns book",
    "john 's book",
    "1,000 x-y",
    "1,2",
    "1, 2",
    "..",
    "...",
    "@home",
    "home",
    "t-shirt",
    "tshirt",
    "t shirt",
    "unanswerable",
    "unsuitable",
    "blue",
    "Blue",
    "blue.",
    "light blue",
    "light-blue",
    "Nike",
    "nike",
    "NIKE",
    "coca cola",
    "coca-cola",
    "Coca-Cola",
    "5:30",
    "5.30",
    "530",
    "one way",
    "1 way",
    "ten dollars",
    "10 dollars",
    "somebodyd",
    "somebody'd",
    "y'all",
    "yall",
    "won't",
    "wont",
    "can't",
    "cant",
    "the",
    "an apple",
    "apple",
    "3 pm",
    "3pm",
    "it's red",
    "its red",
    "what's this",
]
#: Answers the TextVQA / VizWiz tokenisation treats differently from VQAv2's: "'s", "," and "?"
TOKENIZER_WORDS = [
    "he's",
    "hes",
    "He's",
    "it's",
    "its",
    "that's",
    "thats",
    "what's",
    "whats",
    "let's",
    "john's",
    "johns",
    "mcdonald's",
    "mcdonalds",
    "McDonald's",
    "starbucks",
    "levi's",
    "1,000",
    "1000",
    "1,000 x-y",
    "1000 x-y",
    "x,y",
    "x, y",
    "x y",
    "a,b-c",
    "a b c",
    "why?",
    "why",
    "what?",
    "?",
    "who's there?",
    "whos there",
    "5,000,000",
    "5000000",
    "2,5",
    "25",
    "2 5",
    "1,5-2",
    "dr. who's",
    "dr who's",
    "o'clock",
    "oclock",
    "'s",
]
VIZWIZ_WORDS = [
    "unanswerable",
    "Unanswerable",
    "unsuitable",
    "unsuitable image",
    "yes",
    "no",
    "blue",
    "dark blue",
    "soup",
    "tomato soup",
    "Tomato Soup.",
    "can of soup",
    "coca cola",
    "Coca-Cola",
    "coke",
    "1",
    "one",
    "one dollar",
    "$1",
    "1 dollar",
    "it's a can",
    "its can",
    "he's",
    "hes",
    "grey",
    "gray",
    "t-shirt",
    "shirt",
    "50%",
    "white",
    "white.",
    "keyboard",
]


def _variant(rng: random.Random, s: str) -> str:
    """A surface variant of an answer: case, punctuation, articles, spacing, possessive."""
    ops = [
        lambda x: x.upper(),
        lambda x: x.capitalize(),
        lambda x: x + ".",
        lambda x: x + "?",
        lambda x: x + "!",
        lambda x: "the " + x,
        lambda x: "A " + x,
        lambda x: " " + x + " ",
        lambda x: x.replace(" ", "  "),
        lambda x: x.replace("'", ""),
        lambda x: x + "'s",
        lambda x: x.replace(" ", "-"),
        lambda x: x + ",",
        lambda x: "\t" + x + "\n",
    ]
    return rng.choice(ops)(s)


def vqa_cases(rng: random.Random, n: int, words: list[str], counts: list[int]) -> list[dict]:
    cases = []
    for _ in range(n):
        k = rng.choice(counts)
        pool = [rng.choice(words) for _ in range(rng.choice([1, 1, 2, 2, 3, 4]))]
        if rng.random() < 0.3:
            pool.append(_variant(rng, pool[0]))
        refs = [rng.choice(pool) for _ in range(k)]
        r = rng.random()
        if r < 0.35:
            pred = rng.choice(refs)
        elif r < 0.75:
            pred = _variant(rng, rng.choice(refs))
        else:
            pred = rng.choice(words)
        cases.append({"pred": pred, "refs": refs})
    return cases


ANLS_WORDS = [
    "hello world",
    "hello  world",
    " hello world ",
    "Hello World",
    "hello\tworld",
    "helo",
    "hello",
    "ab",
    "ac",
    "abcd",
    "abef",
    "abc",
    "abd",
    "",
    " ",
    "straße",
    "STRASSE",
    "strasse",
    "İstanbul",
    "istanbul",
    "1,234",
    "1234",
    "$12.50",
    "12.5",
    "12.50",
    "new york city",
    "New  York",
    "york",
    "0.5",
    ".5",
    "x",
    "xy",
    "xyz",
    "June 3, 2019",
    "3 June 2019",
    "ﬁle",
    "file",
    "A",
    "a",
    "kitten",
    "sitting",
    "data\nscience",
    "data science",
    "datascience",
]


def anls_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for _ in range(n):
        refs = [rng.choice(ANLS_WORDS) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        r = rng.random()
        if r < 0.4:
            pred = rng.choice(ANLS_WORDS)
        elif r < 0.8:
            base = rng.choice(refs)
            pred = _edit(rng, base) if rng.random() < 0.6 else _variant(rng, base)
        else:
            pred = _edit(rng, _edit(rng, rng.choice(refs)))
        cases.append({"pred": pred, "refs": refs})
    return cases


def _edit(rng: random.Random, s: str) -> str:
    """One random character edit (insert, delete, substitute, or a doubled space)."""
    i = rng.randrange(len(s) + 1)
    op = rng.randrange(4)
    ch = rng.choice("abcxyz  ßİ.")
    if op == 0:
        return s[:i] + ch + s[i:]
    if op == 1 and s:
        return s[: i - 1] + s[i:] if i else s[1:]
    if op == 2 and i < len(s):
        return s[:i] + ch + s[i + 1 :]
    return s[:i] + "  " + s[i:]


NUMBERS = [
    "0",
    "0.0",
    "-0",
    "0%",
    "5",
    "5.0",
    "5%",
    "5 %",
    "5%%",
    " 5",
    "5 ",
    "1000",
    "1,000",
    "1_000",
    "1e3",
    "1E3",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "100",
    "105",
    "95",
    "105.0000001",
    "94.9999999",
    "1.0",
    "0.95",
    "1.05",
    "10",
    "9.5",
    "10.5",
    "0.3",
    "0.1",
    "0.2",
    "-10",
    "-10.5",
    "-9.5",
    "50%",
    "0.5",
    "52%",
    "53%",
    "٣",
    "3",
    "١٠٠",
    "+5",
    ".5",
    "5.",
    "12.5",
    "13",
    "12",
    "20",
    "2016",
    "2017",
    "1.5e2",
    "150",
    "157.5",
    "142.5",
]
TEXTS = ["Yes", "yes", " yes", "yes ", "No", "no", "India", "india", "INDIA", "%", "", "N/A"]


def relaxed_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    vocab = NUMBERS + TEXTS
    for _ in range(n):
        refs = [rng.choice(vocab) for _ in range(rng.choice([1, 1, 1, 2]))]
        if rng.random() < 0.5:
            base = rng.choice(refs)
            try:
                v = float(base.rstrip("%"))
                factor = rng.choice([0.95, 1.05, 0.949, 1.051, 0.9500001, 1.0499999, 1, -1])
                pred = repr(v * factor) + ("%" if base.endswith("%") else "")
            except ValueError:
                pred = _variant(rng, base) if base else base
        else:
            pred = rng.choice(vocab)
        cases.append({"pred": pred, "refs": refs})
    return cases


CQP_ANSWERS = [
    "2016",
    "2017",
    "1999",
    "2000",
    "12.5",
    "13",
    "0",
    "0.0",
    "5%",
    "5",
    "Yes",
    "No",
    "True",
    "False",
    "India",
    "United States",
    "[2016, 2017]",
    "['a', 'b']",
    "[a, b]",
    "[1, 2, 3]",
    "[India, China]",
    "['India', 'China']",
    "The answer.",
    "42.",
    "[5%, 10%]",
    "1,000",
    "1000",
]


def chartqapro_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for _ in range(n):
        qtype = rng.choice(
            ["Factoid", "Multi Choice", "Conversational", "Fact Checking", "Hypothetical"]
        )
        turns = rng.choice([1, 1, 2]) if qtype == "Conversational" else 1
        refs = [rng.choice(CQP_ANSWERS) for _ in range(turns)]
        flags = [rng.choice(["YES", "NO", "no"]) for _ in range(rng.choice([1, 1, 2]))]
        r = rng.random()
        if r < 0.4:
            pred = refs[-1]
        elif r < 0.7:
            pred = _variant(rng, refs[-1])
        else:
            pred = rng.choice(CQP_ANSWERS)
        cases.append({"pred": pred, "refs": refs, "year_flags": flags, "question_type": qtype})
    return cases


MMMU_MC_PREDS = [
    "B",
    "(B)",
    "B.",
    "The answer is (C).",
    "I think B is right",
    "A",
    "(A) (B)",
    "The answer is B",
    "Answer: D",
    "**B**",
    "b",
    "E",
    "(E) because",
    "C and D",
    "I",
    "I choose (A)",
    "Option B is correct. Also A",
    "none of them",
    "It is A or B",
]
MMMU_OPEN = ["3.14", "3.14159", "1,000", "1000", "12", "twelve", "Paris", "x", "42", "-3", "0.5"]
MMMU_OPEN_PREDS = [
    "The answer is 3.14159.",
    "It is 1,000",
    "So the result is 12.",
    "Paris",
    "paris",
    "The capital is Paris.",
    "x = 42",
    "Therefore, -3",
    "Thus 0.50",
    "1e3",
    "It is 3.1",
    "final answer: x",
    "The value\nis 12",
    "answer 1000.0",
    "so 0.5.",
    "I get 42 and 12",
]


def mmmu_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for _ in range(n):
        if rng.random() < 0.5:
            refs = [rng.choice("ABCDE")]
            pred = rng.choice(MMMU_MC_PREDS)
            cases.append({"pred": pred, "refs": refs, "kind": "multiple-choice"})
        else:
            refs = [rng.choice(MMMU_OPEN) for _ in range(rng.choice([1, 1, 2]))]
            r = rng.random()
            pred = rng.choice(MMMU_OPEN_PREDS) if r < 0.6 else f"The answer is {refs[0]}."
            cases.append({"pred": pred, "refs": refs, "kind": "open"})
    return cases


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    oracles = load_oracles()
    plan: dict[str, list[dict]] = {
        "vqa": vqa_cases(rng, 3000, VQA_WORDS, [10] * 8 + [2, 3, 5, 9]),
        "textvqa": vqa_cases(rng, 3000, VQA_WORDS + 2 * TOKENIZER_WORDS, [10] * 8 + [2, 3, 5, 9]),
        "vizwiz": vqa_cases(rng, 1000, VIZWIZ_WORDS + TOKENIZER_WORDS, [10]),
        "anls": anls_cases(rng, 3000),
        "relaxed_accuracy": relaxed_cases(rng, 3000),
        "chartqapro": chartqapro_cases(rng, 1000),
        "mmmu": mmmu_cases(rng, 1000),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"seed": args.seed, "files": {}}
    for name, cases in plan.items():
        kept, raised = [], 0
        for c in cases:
            try:
                if name == "textvqa":
                    c["score"], c["oracle"] = oracles[name](c["pred"], c["refs"])
                elif name == "anls":
                    c["score"], c["anls_package"] = oracles[name](c["pred"], c["refs"])
                elif name == "chartqapro":
                    c["score"] = oracles[name](
                        c["pred"], c["refs"], c["year_flags"], c["question_type"]
                    )
                elif name == "mmmu":
                    c["score"], c["random_guess"] = oracles[name](c["pred"], c["refs"], c["kind"])
                else:
                    c["score"] = oracles[name](c["pred"], c["refs"])
            except Exception:  # the reference itself fails on this input: not a golden case
                raised += 1
                continue
            c["score"] = float(c["score"])
            kept.append(c)
        path = args.out / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for c in kept:
                f.write(json.dumps(c, ensure_ascii=False, separators=(",", ":")) + "\n")
        manifest["files"][name] = {"cases": len(kept), "reference_raised": raised}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
