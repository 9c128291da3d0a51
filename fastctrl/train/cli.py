"""``python -m fastctrl.train --method {lut,supervised,ppo,dpo,grpo}``.

With no data arguments it trains on the built-in synthetic profile. ``--help`` lists every
shared flag and the flags of the method ``--method`` names (default grpo):
``python -m fastctrl.train --method ppo --help``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Sequence

import tyro

from .. import cli
from .config import TrainConfig, loop_for
from .methods import METHODS
from .records import EvalResults

PROG = "python -m fastctrl.train"


def _method_in(argv: Sequence[str]) -> str:
    """The ``--method`` value in ``argv`` (the default when absent or unknown: tyro then
    reports the bad choice)."""
    for i, a in enumerate(argv):
        if a == "--method" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--method="):
            return a.split("=", 1)[1]
    return TrainConfig.method


def parse_train_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The TrainConfig of a command line; the method's own flags join the shared ones."""
    argv = list(sys.argv[1:] if argv is None else argv)
    method = _method_in(argv)
    if method not in METHODS:
        method = TrainConfig.method
    config_cls = METHODS[method].Config
    # the same TrainConfig with method_args typed as this method's config, so its fields
    # become flags (without a prefix) and its docstrings their help
    cli_cls = dataclasses.make_dataclass(
        "TrainConfig",
        [
            (
                "method_args",
                tyro.conf.OmitArgPrefixes[config_cls],
                dataclasses.field(default_factory=config_cls),
            )
        ],
        bases=(TrainConfig,),
    )
    cli_cls.__doc__ = TrainConfig.__doc__
    # the method's own defaults of shared loop fields (e.g. its learning rate) show in --help
    parsed = cli.parse(
        cli_cls, argv, prog=PROG, default=cli_cls(method=method, loop=loop_for(method))
    )
    try:
        return TrainConfig(
            **{f.name: getattr(parsed, f.name) for f in dataclasses.fields(TrainConfig)}
        )
    except ValueError as e:
        return cli.fail(str(e))


def summary_table(results: EvalResults) -> str:
    rows = [("controller", results.controller), *results.baselines.items()]
    ratios = list(results.controller.per_budget)
    head = (
        f"{'policy':<12}"
        + "".join(f"{'u@' + r:>10}" for r in ratios)
        + f"{'utility':>10}{'quality':>9}{'SLO viol':>9}{'p95 ms':>9}{'gap %':>8}"
    )
    lines = [head]
    for name, res in rows:
        o = res.overall
        gap = o.gap_to_oracle_pct
        lines.append(
            f"{name:<12}"
            + "".join(f"{res.per_budget[r].utility:>10.4f}" for r in ratios)
            + f"{o.utility:>10.4f}{o.quality_mean:>9.4f}"
            f"{o.slo_violation_rate:>9.3f}{o.latency_p95:>9.1f}"
            f"{(gap if gap is not None else float('nan')):>8.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_train_args(argv)
    logging.basicConfig(
        level=logging.WARNING if cfg.run.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from .loop import run_training

    try:
        results = run_training(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.USAGE_ERROR
    if not cfg.run.quiet:
        print(summary_table(results))
        print(
            json.dumps(
                {
                    "method": cfg.method,
                    "engine": results.engine,
                    "controller_parameters": results.controller_parameters,
                    "env_steps": results.env_steps,
                    "train_time_s": round(results.train_time_s, 1),
                    "controller_overhead_ms": round(
                        results.controller.controller_overhead_ms or 0.0, 4
                    ),
                    "output_dir": cfg.run.output_dir,
                }
            )
        )
    return 0
