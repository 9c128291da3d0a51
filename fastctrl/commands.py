"""The ``fastctrl`` command: every stage of the project under one name.

    fastctrl profile                       sweep a config grid on a VLM -> a profile
    fastctrl train {grpo,ppo,dpo,supervised,lut}
    fastctrl evaluate                      a trained controller live through the hook
    fastctrl compare                       the E5 experiment (--summary length-blind|gap-closed)
    fastctrl tune                          tune one method's hyper-parameters
    fastctrl serve                         the OpenAI-compatible server, a budget per request
    fastctrl loadtest                      Poisson load on it: goodput and deadline attainment
    fastctrl digits {data,train,report,headroom}
    fastctrl lqr {pipeline,generate,train,finetune,evaluate,compare,generalize,export,ablation}

Each subcommand parses the same config dataclass and runs the same function as its
``python -m fastctrl.<stage>`` form, so flags, help and exit codes are the same in both
(:mod:`fastctrl.cli`: 2 and one ``error:`` line for bad input, 1 for a failure at run time).
:data:`COMMANDS` is the registry the command line is built from: a new stage (a later
``fastctrl serve``) is one more entry, a :class:`Command` or a :class:`Group` of them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

import tyro

from . import cli

PROG = "fastctrl"

#: where a command's config class or run function lives: ``"module:attribute"`` (imported only
#: when that subcommand is used), or a callable that returns it
Target = Union[str, Callable[[], Any]]  # noqa: UP007


def load(target: Target) -> Any:
    """The object a :data:`Target` names."""
    if callable(target):
        return target()
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Command:
    """One subcommand: the config dataclass its flags come from and what runs it."""

    config: Target
    """The dataclass tyro parses (its fields are the flags, their docstrings the help)."""
    run: Target
    """Runs the parsed config; returns the exit status (None: 0)."""
    help: str
    """One line for the list of subcommands."""
    bad_input: tuple[type[BaseException], ...] = cli.BAD_INPUT
    """What ``run`` raises for bad input (status 2, see :func:`fastctrl.cli.execute`)."""


@dataclass(frozen=True)
class Group:
    """Subcommands under one name (``fastctrl digits data``)."""

    help: str
    commands: dict[str, Command | Group] | Callable[[], dict[str, Command | Group]]
    """The subcommands, or what lists them (called only when the group is used)."""

    def members(self) -> dict[str, Command | Group]:
        return self.commands() if callable(self.commands) else self.commands


def _train_commands() -> dict[str, Command | Group]:
    """``fastctrl train <method>``: one subcommand per registered method, its own flags."""
    from .train.cli import method_summary, train_args_class
    from .train.methods import METHOD_NAMES

    return {
        m: Command(
            functools.partial(train_args_class, m, method_flag=False),
            "fastctrl.train.cli:run",
            method_summary(m),
        )
        for m in METHOD_NAMES
    }


#: every ``fastctrl`` subcommand; the command line is built from it
COMMANDS: dict[str, Command | Group] = {
    "profile": Command(
        "fastctrl.profile.options:ProfileArgs",
        "fastctrl.profile.cli:run",
        "Sweep a config grid on a VLM and write a profile (table + feature store).",
        bad_input=(*cli.BAD_INPUT, TypeError),
    ),
    "train": Group(
        "Train (or build) a controller with one method and evaluate it on the test split.",
        _train_commands,
    ),
    "evaluate": Command(
        "fastctrl.evaluate.cli:EvaluateArgs",
        "fastctrl.evaluate.cli:run",
        "Run a trained controller live through the hook on held-out requests.",
        bad_input=(*cli.BAD_INPUT, TypeError),
    ),
    "compare": Command(
        "fastctrl.compare.cli:CompareArgs",
        "fastctrl.compare.cli:run",
        "The E5 experiment: every method x seeds, JSON + figures + report (or --summary).",
    ),
    "tune": Command(
        "fastctrl.tune.cli:TuneArgs",
        "fastctrl.tune.cli:run",
        "Tune one method's hyper-parameters with Optuna on the validation split.",
    ),
    "serve": Command(
        "fastctrl.serve.cli:ServeArgs",
        "fastctrl.serve.cli:run",
        "An OpenAI-compatible server where every request carries its own latency budget.",
    ),
    "loadtest": Command(
        "fastctrl.serve.loadtest:LoadTestArgs",
        "fastctrl.serve.loadtest:run",
        "Poisson load with per-request budgets on fastctrl serve: goodput and attainment.",
    ),
    "digits": Group(
        "The handwritten-digits VLM benchmark: data, model, reports.",
        {
            "data": Command(
                "fastctrl.digits.data:DigitsDataArgs",
                "fastctrl.digits.data:run",
                "Write the profiling and live-evaluation datasets (PNG + JSONL).",
            ),
            "train": Command(
                "fastctrl.digits.train:DigitsTrainArgs",
                "fastctrl.digits.train:run",
                "Train the digits VLM from scratch on CPU.",
            ),
            "report": Command(
                "fastctrl.digits.report:DigitsReportArgs",
                "fastctrl.digits.report:run",
                "Accuracy per question type x config, and latency, from a digits profile.",
            ),
            "headroom": Command(
                "fastctrl.digits.headroom:DigitsHeadroomArgs",
                "fastctrl.digits.headroom:run",
                "How much a per-request config choice can gain over the best static one.",
            ),
        },
    ),
    "lqr": Group(
        "TinyRecursiveControl on the double-integrator LQR benchmark.",
        {
            name: Command(
                f"fastctrl.recursive_control.{module}:{config}",
                f"fastctrl.recursive_control.{module}:command",
                help,
            )
            for name, module, config, help in (
                (
                    "pipeline",
                    "pipeline",
                    "PipelineArgs",
                    "The whole experiment: data, training, fine-tuning, export, evaluation.",
                ),
                ("generate", "generate", "GenerateArgs", "Generate an LQR dataset."),
                (
                    "train",
                    "supervised_training",
                    "TRCTrainConfig",
                    "Supervised training on LQR-optimal controls.",
                ),
                (
                    "finetune",
                    "finetune",
                    "FinetuneArgs",
                    "Fine-tune a checkpoint on the control cost itself.",
                ),
                (
                    "evaluate",
                    "optimality_gap",
                    "EvaluateArgs",
                    "A checkpoint against the LQR optimum on a test set.",
                ),
                (
                    "compare",
                    "baseline_comparison",
                    "CompareArgs",
                    "A checkpoint vs random controls and the LQR oracle.",
                ),
                (
                    "generalize",
                    "generalize",
                    "GeneralizeArgs",
                    "Generalisation beyond the training box (scales, steps, horizons, costs).",
                ),
                ("export", "onnx_export", "ExportArgs", "Export a checkpoint to ONNX."),
                (
                    "ablation",
                    "ablation",
                    "AblationArgs",
                    "What each generalisation change buys: train the variants, judge them.",
                ),
            )
        },
    ),
}


def iter_commands(
    commands: dict[str, Command | Group] | None = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every leaf subcommand with its path (``("digits", "data")``)."""
    for name, c in (COMMANDS if commands is None else commands).items():
        if isinstance(c, Group):
            yield from iter_commands(c.members(), (*path, name))
        else:
            yield (*path, name), c


def _class_name(path: Sequence[str]) -> str:
    return "".join(p.replace("-", "_").title().replace("_", "") for p in path)


def _subcommands(
    commands: dict[str, Command | Group],
    words: Sequence[str],
    path: tuple[str, ...],
    leaves: dict[type, Command],
) -> Any:
    """The tyro union of ``commands``. Only the subcommand ``words`` name is built in full (its
    module imported); the others are empty stand-ins that list their name and help. Fills
    ``leaves``: parsed type -> its command."""
    chosen = words[0] if words else None
    options = []
    for name, c in commands.items():
        here = (*path, name)
        if name != chosen:  # listed only
            cls = dataclasses.make_dataclass(_class_name(here) + "Command", [])
            cls.__doc__ = c.help
        elif isinstance(c, Group):
            inner = _subcommands(c.members(), words[1:], here, leaves)
            cls = dataclasses.make_dataclass(
                _class_name(here) + "Commands",
                [("command", tyro.conf.OmitSubcommandPrefixes[inner])],
            )
            cls.__doc__ = c.help
        else:
            cls = load(c.config)
            leaves[cls] = c
        options.append(Annotated[cls, tyro.conf.subcommand(name, description=c.help)])
    return Union[tuple(options)]  # noqa: UP007 (a runtime union of Annotated subcommands)


def command_line(
    argv: Sequence[str], commands: dict[str, Command | Group] | None = None
) -> tuple[Any, dict[type, Command]]:
    """``(the tyro type of the command line argv starts, parsed type -> its command)``: the
    subcommand ``argv`` names is built in full, every other one listed by name."""
    words = [a for a in argv if not a.startswith("-")]
    leaves: dict[type, Command] = {}
    tree = _subcommands(COMMANDS if commands is None else commands, words, (), leaves)
    return tree, leaves


def resolve(parsed: Any, leaves: dict[type, Command]) -> tuple[Any, Command]:
    """The leaf config of a parsed command line (groups unwrapped) and its command."""
    while type(parsed) not in leaves:
        parsed = parsed.command
    return parsed, leaves[type(parsed)]


def main(argv: Sequence[str] | None = None) -> int:
    """``fastctrl <stage> ...``: the exit status (0, 1: failed while running, 2: bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        tree, leaves = command_line(argv)
        parsed = cli.parse(tree, argv, prog=PROG)
        config, command = resolve(parsed, leaves)
        return cli.execute(load(command.run), config, bad_input=command.bad_input)
    except SystemExit as e:  # --help (0) or bad input (2), already reported
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return cli.RUNTIME_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
