"""``python -m fastctrl.compare.ship``: the controller an E5 run recommends, chosen on
validation, copied where it is served from, with the statistics it was chosen by.

    python -m fastctrl.compare.ship runs/e5_digits --output_dir fastctrl/digits/controller

The rule (the test split plays no part in it):

1. every run of a method that trains a controller is read with its safe fallback
   (``eval_results.json`` ``safe_fallback``: the cells that keep the controller were chosen by
   a paired bootstrap on validation, see :mod:`fastctrl.env.safe_fallback`);
2. the method with the highest mean, over its seeds, validation gain of the deployed policy
   over the best static config (``val_gain_deployed``; ties: the raw controller's gain);
3. that method's seed with the highest deployed validation gain.

The chosen ``controller/`` directory (weights, config and ``fallback.json``) is copied into
``--output_dir`` beside ``selection.json``: the rule, every candidate's validation gains, and
the E5 test statistics of every method (IQM [95% CI] from ``e5_statistics.json``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from .. import cli, io
from ..sysinfo import command_line, provenance
from ..train.methods import METHODS
from ..train.records import read_eval_results


@dataclass
class ShipArgs:
    """Choose the controller to deploy from an E5 run (on validation) and copy it."""

    e5_dir: tyro.conf.Positional[str]
    """The --output_dir of `fastctrl compare` (holds runs/<method>_seed<k>/ and
    e5_statistics.json)."""
    output_dir: str = "fastctrl/digits/controller"
    """Where the chosen controller and selection.json go (replaced)."""


def candidates(e5_dir: Path) -> list[dict[str, Any]]:
    """Every controller-training run of the E5 with its validation gains."""
    out = []
    for run in sorted((e5_dir / "runs").glob("*_seed*")):
        method, _, seed = run.name.rpartition("_seed")
        if method not in METHODS or not METHODS[method].trains_controller:
            continue
        res = read_eval_results(run)
        fb = res.safe_fallback
        if fb is None or fb.get("val_gain_deployed") is None:
            raise ValueError(
                f"{run}: eval_results.json has no safe-fallback validation gains; re-run the "
                "comparison with the safe fallback on (the default)"
            )
        out.append(
            {
                "method": method,
                "seed": int(seed),
                "run": str(run),
                "val_gain_deployed": fb["val_gain_deployed"],
                "val_gain_raw": fb["val_gain_raw"],
                "cells_policy": fb["cells_policy"],
                "cells": fb["cells"],
                # for the record only (the choice reads validation): what the fallback cost
                "test_utility_deployed": res.controller.overall.utility,
                "test_utility_raw": res.raw_controller.overall.utility
                if res.raw_controller is not None
                else None,
            }
        )
    if not out:
        raise ValueError(f"{e5_dir}/runs holds no run of a method that trains a controller")
    return out


def choose(cands: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The chosen run and each method's mean validation gains (the rule above)."""
    by_method: dict[str, dict[str, float]] = {}
    for m in sorted({c["method"] for c in cands}):
        runs = [c for c in cands if c["method"] == m]
        by_method[m] = {
            k: sum(c[k] for c in runs) / len(runs) for k in ("val_gain_deployed", "val_gain_raw")
        }
    best = max(
        by_method, key=lambda m: (by_method[m]["val_gain_deployed"], by_method[m]["val_gain_raw"])
    )
    runs = [c for c in cands if c["method"] == best]
    chosen = max(runs, key=lambda c: (c["val_gain_deployed"], c["val_gain_raw"], -c["seed"]))
    return chosen, by_method


def run(args: ShipArgs) -> int:
    e5 = Path(args.e5_dir)
    stats_path = e5 / "e5_statistics.json"
    stats = io.read_json(stats_path, "E5 statistics")
    cands = candidates(e5)
    chosen, by_method = choose(cands)
    final = stats["statistics"]["metrics"]["final_utility"]["methods"]
    out = Path(args.output_dir)
    source = Path(chosen["run"]) / "controller"
    if not (source / "fallback.json").is_file():
        raise ValueError(f"{source} has no fallback.json: not a safe-fallback controller")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    io.write_json(
        tmp / "selection.json",
        {
            **provenance(command_line("fastctrl.compare.ship")),
            "rule": "highest mean validation gain of the deployed policy (safe fallback) over "
            "the best static config, over seeds; then that method's best seed",
            "chosen": chosen,
            "methods_validation": by_method,
            "candidates": cands,
            "e5_dir": str(e5),
            "e5_meta": {k: stats["meta"].get(k) for k in ("command", "date", "commit", "profile")},
            "e5_test_utility": {
                m: {k: v[k] for k in ("point", "low", "high", "n")} for m, v in final.items()
            },
        },
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(
        f"shipped {chosen['method']} seed {chosen['seed']} (validation gain over best static: "
        f"{chosen['val_gain_deployed']:+.4f} deployed, {chosen['val_gain_raw']:+.4f} raw) -> {out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.execute(run, cli.parse(ShipArgs, argv, prog="python -m fastctrl.compare.ship"))


if __name__ == "__main__":
    raise SystemExit(main())
