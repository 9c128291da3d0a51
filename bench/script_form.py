"""The script form of a benchmark: ``python bench/bench_<name>.py [--rounds N] [--json PATH]``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fastctrl.io import write_json


def run_script(
    doc: str,
    rounds: int,
    report: Callable[[int], dict[str, Any]],
    show: Callable[[dict[str, Any]], None],
) -> None:
    """Parse ``--rounds`` (default ``rounds``) and ``--json``; print ``report(rounds)`` with
    ``show`` and, given ``--json``, write it there. ``doc``: the module docstring, whose first
    line describes the script."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    res = report(args.rounds)
    show(res)
    if args.json:
        write_json(args.json, res)
