"""Placeholder until the triton engine lands (work in progress in this session)."""

from __future__ import annotations

from .base import EngineUnavailableError


class TritonEngine:
    def __init__(self, *args, **kwargs) -> None:
        raise EngineUnavailableError("the triton engine is not implemented yet")
