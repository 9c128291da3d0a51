"""Share of the best-static -> oracle gap each method closes in an E5 output directory.

Reads every ``runs/<method>_seed<k>/eval_results.json`` under the directory that
``python -m fastctrl.compare --output_dir DIR`` wrote and prints, per method, the IQM over seeds
with its 95% stratified-bootstrap CI of ``gap_closed`` (test split; against
``oracle_expected`` on profiles with expected quality), overall and per budget ratio.

    python -m fastctrl.compare.gap_closed runs/e5_noisy_600k
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from .stats import Estimate, iqm

RUN_DIR = re.compile(r"^(?P<method>[a-z_]+)_seed(?P<seed>\d+)$")


def collect(root: Path) -> dict[str, list[dict]]:
    """Each method's ``controller`` results, one per seed, in seed order."""
    runs = root / "runs"
    if not runs.is_dir():
        raise FileNotFoundError(f"output_dir: {root} has no runs/ folder (is it an E5 output?)")
    found: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for d in sorted(runs.iterdir()):
        m = RUN_DIR.match(d.name)
        path = d / "eval_results.json"
        if m is None or not path.is_file():
            continue
        found[m["method"]].append((int(m["seed"]), json.loads(path.read_text())["controller"]))
    if not found:
        raise FileNotFoundError(f"output_dir: no <method>_seed<k>/eval_results.json in {runs}")
    return {k: [r for _, r in sorted(v, key=lambda t: t[0])] for k, v in found.items()}


def gap_closed(root: Path) -> dict[str, tuple[str, Estimate, dict[str, Estimate]]]:
    """Per method: the gap's reference, the IQM [CI] of ``gap_closed`` overall, and per budget."""
    out = {}
    for method, results in collect(root).items():
        ref = results[0]["overall"].get("gap_closed_reference")
        if ref is None:
            raise ValueError(f"{method}: eval_results.json has no gap_closed (rerun the E5)")
        overall = iqm([r["overall"]["gap_closed"] for r in results], key=f"{method}:all")
        per = {b: iqm([r["per_budget"][b]["gap_closed"] for r in results], key=f"{method}:{b}")
               for b in results[0]["per_budget"]}
        out[method] = (ref, overall, per)
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m fastctrl.compare.gap_closed E5_OUTPUT_DIR")
    for method, (ref, overall, per) in gap_closed(Path(argv[0])).items():
        print(f"{method}: {overall.fmt()} (n={overall.n}, vs {ref}); per budget "
              f"{' / '.join(per)}: {' / '.join(f'{e.point:.3f}' for e in per.values())}")


if __name__ == "__main__":
    main(sys.argv[1:])
