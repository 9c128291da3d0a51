"""Tiny recursive controller and the double-integrator / LQR benchmark.

An exactly solvable problem (finite-horizon LQR on a double integrator) on which the training
stack must learn the known optimum. Modules: :mod:`.system` (dynamics and cost), :mod:`.lqr`
(Riccati oracle), :mod:`.reference` (the optimum of the bounded problem: LQR, or the
box-constrained QP where the bound binds), :mod:`.data` and :mod:`.generate` (datasets),
:mod:`.model` (:class:`TinyRecursiveControl`, built on
:class:`fastctrl.policy.recursive.RecursiveRefiner`, and its checkpoints), :mod:`.train`,
:mod:`.finetune` (on the rollout cost), :mod:`.metrics`, :mod:`.evaluate`, :mod:`.generalize`
(beyond the training box), :mod:`.compare`, :mod:`.export` (ONNX), :mod:`.ablation` (what each
generalisation change buys) and :mod:`.pipeline` (all of it in one command, also
``python -m fastctrl.recursive_control``).

Every command line is :func:`fastctrl.cli.parse` over the command's dataclass, run under the
exit-code policy of :mod:`fastctrl.cli`; the helper below is the only thing the commands add to
it. ``fastctrl lqr <step>`` runs the same commands (:mod:`fastctrl.commands`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from .. import cli
from ..policy.recursive import RecursiveRefiner
from .model import MODEL_SIZES, TinyRecursiveControl, TRCConfig
from .system import DoubleIntegrator

__all__ = [
    "MODEL_SIZES",
    "DoubleIntegrator",
    "RecursiveRefiner",
    "TRCConfig",
    "TinyRecursiveControl",
]

A = TypeVar("A")


def run_command(
    cls: type[A],
    command: Callable[[A], int | None],
    argv: Sequence[str] | None,
    *,
    name: str,
    prog: str | None = None,
) -> int:
    """``python -m fastctrl.recursive_control.<name>``: parse ``argv`` into ``cls`` and run
    ``command`` on it; returns the exit status.

    A bad flag exits with status 2 (:func:`fastctrl.cli.parse`); a missing or invalid file
    (``FileNotFoundError``, ``ValueError`` raised by ``command``) returns 2 with
    ``error: <message>``, a failure at run time 1 (:func:`fastctrl.cli.execute`).
    """
    prog = prog or f"python -m fastctrl.recursive_control.{name}"
    return cli.execute(command, cli.parse(cls, argv, prog=prog))
