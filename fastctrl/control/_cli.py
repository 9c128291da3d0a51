"""Command lines generated from hyper-parameter dataclasses (CleanRL style).

Each dataclass field becomes one option, ``--field_name`` (the spelling with dashes,
``--field-name``, is accepted too); its help text is the docstring written under the field.
Values are validated by the dataclass's ``__post_init__``; a ``ValueError`` raised there is
turned into an ordinary command-line error (exit status 2, message on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import typing
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from ..cli import field_docs, unwrap_optional

T = TypeVar("T")


def build_parser(cls: type, description: str | None = None, prog: str | None = None
                 ) -> argparse.ArgumentParser:
    """An ``argparse`` parser with one option per field of the dataclass ``cls``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description or (inspect.getdoc(cls) or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        tp, optional = unwrap_optional(hints[f.name])
        names = [f"--{f.name}"]
        if "_" in f.name:
            names.append(f"--{f.name.replace('_', '-')}")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": docs.get(f.name, "")}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            choices = list(typing.get_args(tp))
            kwargs["type"] = type(choices[0])
            kwargs["choices"] = choices
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported CLI type {tp!r}")
        if optional and tp is not bool:
            kwargs["help"] += " (optional)"
        parser.add_argument(*names, **kwargs)
    return parser


def parse_args(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None,
               prog: str | None = None) -> T:
    """Parse ``argv`` into an instance of ``cls``; invalid values exit with a clear message."""
    parser = build_parser(cls, description=description, prog=prog)
    ns = parser.parse_args(argv)
    try:
        return cls(**vars(ns))
    except ValueError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits


def positive(name: str, value: float | int, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` naming the option ``--name`` unless ``value`` is positive."""
    bad = isinstance(value, bool) or not (value >= 0 if allow_zero else value > 0)
    if bad or value != value:  # NaN
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"--{name} must be {need}, got {value!r}")
