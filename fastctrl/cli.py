"""Every command line of fastctrl, built the same way: tyro over a config dataclass.

A field is one flag spelled as in Python (``--batch_size``; nested config groups add no
prefix), its docstring is the ``--help`` text and a ``Literal`` type gives its choices, so a
hyper-parameter is documented and its choices are listed in one place (CleanRL's habit). A
``ValueError`` raised while the config is built (its ``__post_init__`` checks, which name the
flag) becomes an ordinary command-line error: the message on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import tyro

T = TypeVar("T")

USAGE_ERROR = 2


def parse(
    cls: type[T],
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    description: str | None = None,
    default: T | None = None,
) -> T:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into a ``cls``; bad values exit with 2."""
    try:
        return tyro.cli(
            cls,
            args=list(sys.argv[1:] if argv is None else argv),
            prog=prog,
            description=description,
            default=default,
            use_underscores=True,
        )
    except ValueError as e:
        fail(str(e))


def fail(message: str) -> Any:
    """Exit like a command-line error: ``error: message`` on stderr, status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def need(cond: bool, msg: str) -> None:
    """Raise the ``ValueError`` a config's validation reports (``msg`` names the flag)."""
    if not cond:
        raise ValueError(msg)


def need_at_least(cfg: Any, minimum: float, *names: str) -> None:
    """Every field ``names`` of ``cfg`` is a number >= ``minimum`` (else a ValueError naming
    ``--field``)."""
    for name in names:
        v = getattr(cfg, name)
        need(
            not isinstance(v, bool) and v == v and v >= minimum,
            f"--{name} must be >= {minimum}, got {v!r}",
        )


def need_positive(cfg: Any, *names: str) -> None:
    """Every field ``names`` of ``cfg`` is a number > 0 (else ``--name must be > 0, got X``)."""
    for name in names:
        v = getattr(cfg, name)
        need(not isinstance(v, bool) and v == v and v > 0, f"--{name} must be > 0, got {v!r}")
