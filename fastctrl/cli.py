"""Every command line of fastctrl, built the same way: tyro over a config dataclass.

A field is one flag spelled as in Python (``--batch_size``; nested config groups add no
prefix), its docstring is the ``--help`` text and a ``Literal`` type gives its choices, so a
hyper-parameter is documented and its choices are listed in one place (CleanRL's habit).

One exit-code policy for every command (``fastctrl <stage>`` and ``python -m fastctrl.<stage>``
alike), always with one line ``error: <message>`` on stderr:

- 2 (:data:`USAGE_ERROR`): bad input, found before or while the command runs: a bad flag or
  value (tyro's message, or a config's ``__post_init__`` ``ValueError`` naming the flag), a
  missing or corrupt input file, an ``--output_dir`` that is an existing file. No traceback.
- 1 (:data:`RUNTIME_FAILURE`): the command failed while running (a worker died, no run
  finished, an unexpected exception: its traceback is printed before the ``error:`` line).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tyro

T = TypeVar("T")

USAGE_ERROR = 2
RUNTIME_FAILURE = 1
#: what a command's run raises for bad input by default (a missing or invalid file or value)
BAD_INPUT: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)


def parse(
    cls: Any,
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    description: str | None = None,
    default: Any = None,
    config: tuple[Any, ...] | None = None,
    known_only: bool = False,
) -> Any:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into a ``cls`` (a dataclass, or a union of
    subcommands); ``--help`` exits with 0, bad input with 2 and one ``error:`` line.
    ``known_only``: parse the flags ``cls`` knows (no ``--help``) and return ``(parsed, the
    other arguments)``."""
    args = list(sys.argv[1:] if argv is None else argv)
    captured = io.StringIO()
    extra: dict[str, Any] = {"return_unknown_args": True, "add_help": False} if known_only else {}
    if default is not None:  # (a None default would add a "none" choice to a union)
        extra["default"] = default
    try:
        with contextlib.redirect_stderr(captured):
            parsed = tyro.cli(
                cls,
                args=args,
                prog=prog,
                description=description,
                use_underscores=True,
                config=config,
                **extra,
            )
    except SystemExit as e:
        if e.code in (0, None):
            sys.stderr.write(captured.getvalue())
            raise
        fail(one_line(captured.getvalue()) or f"bad arguments: {' '.join(args)}")
    except ValueError as e:
        fail(str(e))
    sys.stderr.write(captured.getvalue())  # warnings, if any
    check_output_dirs(parsed[0] if known_only else parsed)
    return parsed


#: tyro box titles the one-line message leaves out (its text says the same)
SILENT_TITLES = ("Value error", "Required options")


def one_line(text: str) -> str:
    """tyro's error box (a title, sections split by rules, a "--help" footer; drawn in ASCII
    where stdout is not UTF-8) as one line: its first section, and where to find the help."""
    title = ""
    sections: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line[0] == "╭":
            title = line.strip("╭╮─ ")
            continue
        if line[0] == "╰":
            break
        inner = line.strip("│").strip()
        if set(inner) <= {"─", "-"}:
            sections.append([])
        else:
            sections[-1].append(inner)
    if not title and len(sections) > 1 and len(sections[0]) == 1:  # ASCII: title, then a rule
        title = sections.pop(0)[0]
    body = sections[0]
    msg = " ".join(" ".join(body).split())
    msg = re.sub(r"^Error parsing [A-Za-z_][\w.]*: ", "", msg)
    msg = re.sub(r"^Error parsing (--\S+): ", r"\1: ", msg)
    msg = re.sub(r"^Missing from [^:]+: ", "missing required ", msg)
    if title and title.lower() not in msg.lower() and title not in SILENT_TITLES:
        msg = f"{title.lower()}: {msg}" if msg else title.lower()
    where = re.search(r"For full helptext, (?:run|see):?\s*(.+? --help)", " ".join(text.split()))
    if msg and where:
        prog = where.group(1).replace("│", " ")
        msg += f" (see {' '.join(prog.split())})"
    return msg


def _output_dirs(obj: Any) -> Iterator[str]:
    """Every ``output_dir`` field of a parsed config, nested groups included."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name, None)
        if f.name == "output_dir" and isinstance(v, (str, os.PathLike)):
            yield str(v)
        elif dataclasses.is_dataclass(v):
            yield from _output_dirs(v)


def check_output_dirs(cfg: Any) -> None:
    """``--output_dir`` must be a directory or not exist yet (it is created): an existing
    file is bad input (status 2, before anything runs)."""
    for path in _output_dirs(cfg):
        p = Path(path)
        if p.exists() and not p.is_dir():
            fail(f"--output_dir {path}: is a file")


def execute(
    command: Callable[[T], int | None],
    args: T,
    *,
    bad_input: tuple[type[BaseException], ...] = BAD_INPUT,
) -> int:
    """Run a parsed command under the exit-code policy: its own status (``None``: 0); one of
    ``bad_input`` raised -> ``error: <message>``, 2; an ``ImportError`` (a missing optional
    dependency) -> ``error: <message>``, 1; any other exception -> its traceback, then
    ``error: <message>``, 1."""
    try:
        code = command(args)
    except bad_input as e:
        print(f"error: {_message(e)}", file=sys.stderr)
        return USAGE_ERROR
    except ImportError as e:  # an optional dependency is missing: the message says which
        return failure(_message(e))
    except Exception as e:  # a failure at run time: the traceback helps whoever reports it
        traceback.print_exc()
        return failure(f"{type(e).__name__}: {_message(e)}")
    return 0 if code is None else int(code)


def _message(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(msg).split()) or type(e).__name__


def fail(message: str) -> Any:
    """Exit like a command-line error: ``error: message`` on stderr, status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def failure(message: str) -> int:
    """Report a failure at run time: ``error: message`` on stderr; returns status 1."""
    print(f"error: {message}", file=sys.stderr)
    return RUNTIME_FAILURE


def setup_logging(quiet: bool) -> None:
    """A command's log on stderr, ``LEVEL logger: message``: progress (INFO) and up, warnings
    only with ``--quiet``."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


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
