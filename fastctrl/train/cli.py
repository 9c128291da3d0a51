"""``python -m fastctrl.train --method {lut,supervised,ppo,dpo,grpo}``, also
``fastctrl train {lut,supervised,ppo,dpo,grpo}``.

With no data arguments it trains on the built-in synthetic profile. ``--help`` lists every
shared flag and the flags of the method ``--method`` names (default grpo):
``python -m fastctrl.train --method ppo --help`` (``fastctrl train ppo --help``).

The method's own flags come from its config (``METHODS[m].Config``): :func:`train_args_class`
types ``TrainConfig.method_args`` as that config and defaults the shared loop to the method's
own values, one class per method. ``fastctrl train`` offers them as tyro subcommands
(:func:`train_subcommands`); ``python -m fastctrl.train`` reads ``--method`` with tyro first,
then parses the rest with that method's class.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

import tyro

from .. import cli
from .config import LoopConfig, TrainConfig, loop_for
from .methods import METHODS, MethodName
from .records import EvalResults

PROG = "python -m fastctrl.train"


@functools.cache
def train_args_class(method: str, *, method_flag: bool = True) -> type:
    """The command line of training ``method``: a TrainConfig whose ``method_args`` is typed
    as the method's config (its fields become flags, without a prefix, and its docstrings
    their help) and whose loop defaults are the method's own (e.g. its learning rate).
    ``method_flag``: ``--method`` is a flag (``python -m fastctrl.train``), else it is fixed
    (``fastctrl train <method>``)."""
    config_cls = METHODS[method].Config
    method_type: Any = MethodName if method_flag else tyro.conf.Suppress[MethodName]
    cls = dataclasses.make_dataclass(
        f"Train{config_cls.__name__}",
        [
            ("method", method_type, dataclasses.field(default=method)),
            (
                "loop",
                tyro.conf.OmitArgPrefixes[LoopConfig],
                dataclasses.field(default_factory=functools.partial(loop_for, method)),
            ),
            (
                "method_args",
                tyro.conf.OmitArgPrefixes[config_cls],
                dataclasses.field(default_factory=config_cls),
            ),
        ],
        bases=(TrainConfig,),
    )
    cls.__doc__ = TrainConfig.__doc__
    cls.__module__ = __name__
    return cls


def method_summary(method: str) -> str:
    """The first paragraph of the method's module docstring (its subcommand's help)."""
    doc = sys.modules[METHODS[method].__module__].__doc__ or method
    return " ".join(doc.strip().split("\n\n")[0].split())


def train_subcommands() -> Any:
    """``fastctrl train <method>``: one tyro subcommand per method, each with its own flags."""
    return Union[  # noqa: UP007 (a runtime union of Annotated subcommands)
        tuple(
            Annotated[
                train_args_class(m, method_flag=False),
                tyro.conf.subcommand(m, description=method_summary(m)),
            ]
            for m in METHODS
        )
    ]


def as_train_config(parsed: Any) -> TrainConfig:
    """The plain TrainConfig of a parsed :func:`train_args_class` instance."""
    try:
        return TrainConfig(
            **{f.name: getattr(parsed, f.name) for f in dataclasses.fields(TrainConfig)}
        )
    except ValueError as e:
        return cli.fail(str(e))


@dataclass
class MethodFlag:
    """Which method ``python -m fastctrl.train`` trains (read before its other flags)."""

    method: MethodName = TrainConfig.method  # type: ignore[valid-type]
    """Training method."""


def parse_train_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The TrainConfig of a ``python -m fastctrl.train`` command line: ``--method`` picks the
    class the other flags are parsed with (its own flags join the shared ones)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first, rest = cli.parse(MethodFlag, argv, prog=PROG, known_only=True)
    cls = train_args_class(first.method)
    return as_train_config(cli.parse(cls, rest, prog=PROG))


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
    return cli.execute(run, parse_train_args(argv))


def run(cfg: Any) -> int:
    """Train and evaluate (the parsed command line of ``fastctrl train <method>``)."""
    if type(cfg) is not TrainConfig:  # a train_args_class instance
        cfg = as_train_config(cfg)
    cli.setup_logging(cfg.run.quiet)
    from .loop import run_training

    results = run_training(cfg)
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
