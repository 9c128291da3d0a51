"""Count how often fastctrl's answer metrics disagree with the reference evaluators on the
golden cases (tests/fixtures/metrics_golden/, written by make_goldens.py).

    python bench/metrics_golden/compare.py --before 9d87cf7^ --out bench/metrics_golden/results.json

scores every golden case with the current fastctrl metrics and, with ``--before REV``, with
``fastctrl/runtime/metrics.py`` as it was at git revision REV (one self-contained file then),
each golden file with the metric the dataset got at that time. Writes the counts and a few
disagreeing cases per metric as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastctrl.runtime import metrics

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "metrics_golden"
#: |fastctrl - reference| above this is a disagreement; see tests/test_metrics_golden.py
TOL = 1e-12

#: golden file -> (metric now, metric the dataset got before this change)
NOW_AND_BEFORE = {
    "vqa": ("vqa", "vqa"),
    "textvqa": ("textvqa", "vqa"),
    "vizwiz": ("textvqa", "vqa"),
    "anls": ("anls", "anls"),
    "relaxed_accuracy": ("relaxed_accuracy", "relaxed_accuracy"),
    "chartqapro": ("chartqapro", "relaxed_accuracy"),
    "mmmu": ("mmmu", "multiple_choice"),
}
#: the paper-literal variants, scored on the golden file of their metric (documented departures)
VARIANTS = {
    "vqa": "vqa_normalized",
    "anls": "anls_paper",
    "relaxed_accuracy": "relaxed_accuracy_paper",
}


def load_golden(name: str) -> list[dict[str, Any]]:
    with (GOLDEN / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _old_module(rev: str) -> types.ModuleType:
    src = subprocess.run(
        ["git", "show", f"{rev}:fastctrl/runtime/metrics.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    mod = types.ModuleType("fastctrl_metrics_before")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up there
    exec(compile(src, f"{rev}:fastctrl/runtime/metrics.py", "exec"), mod.__dict__)
    return mod


def _score(fn: Callable[..., float], case: dict[str, Any], with_flags: bool) -> float | str:
    try:
        if with_flags:
            return fn(
                case["pred"],
                case["refs"],
                year_flags=case["year_flags"],
                question_type=case["question_type"],
            )
        return fn(case["pred"], case["refs"])
    except Exception as e:  # a metric that raises on a case disagrees with the reference
        return f"{type(e).__name__}: {e}"


def count(
    fn: Callable[..., float], cases: list[dict[str, Any]], key: str = "score", flags: bool = False
) -> dict[str, Any]:
    bad = []
    for c in cases:
        got = _score(fn, c, flags)
        if isinstance(got, str) or abs(got - c[key]) > TOL:
            bad.append({"pred": c["pred"], "refs": c["refs"], "reference": c[key], "got": got})
    return {"cases": len(cases), "disagree": len(bad), "examples": bad[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="git revision whose metrics.py is the 'before' column")
    ap.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    args = ap.parse_args()
    old = _old_module(args.before) if args.before else None
    result: dict[str, Any] = {"before_rev": args.before, "tolerance": TOL, "metrics": {}}
    for name, (now, before) in NOW_AND_BEFORE.items():
        cases = load_golden(name)
        flags = name == "chartqapro"
        row: dict[str, Any] = {
            "metric": now,
            "after": count(metrics.METRICS[now].fn, cases, flags=flags),
        }
        if old is not None:
            row["before_metric"] = before
            row["before"] = count(old.METRICS[before].fn, cases)
        if name in VARIANTS:
            row["variant"] = VARIANTS[name]
            row["variant_vs_reference"] = count(metrics.METRICS[VARIANTS[name]].fn, cases)
        if name == "anls":
            row["after_vs_anls_package"] = count(metrics.anls, cases, key="anls_package")
        if name == "mmmu":
            row["random_guess_cases"] = sum(c["random_guess"] for c in cases)
        result["metrics"][name] = row
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    summary = {
        k: (v.get("before", {}).get("disagree"), v["after"]["disagree"])
        for k, v in result["metrics"].items()
    }
    print("golden file: (disagreements before, after)", json.dumps(summary))


if __name__ == "__main__":
    main()
