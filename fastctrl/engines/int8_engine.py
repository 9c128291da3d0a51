"""Placeholder until the int8 engine lands (work in progress in this session)."""

from __future__ import annotations

from .base import EngineUnavailableError


class Int8Engine:
    def __init__(self, *args, **kwargs) -> None:
        raise EngineUnavailableError("the int8 engine is not implemented yet")
