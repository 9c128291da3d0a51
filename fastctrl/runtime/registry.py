"""Built-in names that stand for a model or a profile (``--model fastctrl-digits``,
``--model tiny-llava-olmoe``, ``--profile fastctrl-digits``).

Packages that ship models or profiles register them here rather than being imported by the
stages that load them, so no stage imports up the flow: each provider declares a
``fastctrl.builtins`` entry point (``pyproject.toml``) whose target is a function that calls
:func:`register_model` / :func:`register_profile`. The entry points are loaded once, the
first time a name is looked up; a third-party package can add names the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fastctrl.builtins"

ModelLoader = Callable[..., tuple[Any, Any]]
"""``load(name, *, seed, dtype, device, device_map, attn_implementation, trust_remote_code)``
-> ``(model in eval mode, processor)``."""


@dataclass(frozen=True)
class BuiltinModel:
    """A model name (or, with ``choices``, a family of names sharing a prefix)."""

    name: str
    """The name, or the prefix of the names in ``choices`` (e.g. ``tiny-``)."""
    load: ModelLoader
    description: str
    choices: Callable[[], Sequence[str]] | None = None
    """For a prefix: the full names it offers."""
    random_weights: bool = False
    """Untrained weights: its answers mean nothing, so nothing should score them."""

    def names(self) -> list[str]:
        return list(self.choices()) if self.choices is not None else [self.name]


_MODELS: dict[str, BuiltinModel] = {}
_PROFILES: dict[str, tuple[Callable[[], Path], str]] = {}
_CONTROLLERS: dict[str, tuple[Callable[[], Path], str]] = {}
_loaded = False


def register_model(
    name: str,
    load: ModelLoader,
    *,
    description: str,
    choices: Callable[[], Sequence[str]] | None = None,
    random_weights: bool = False,
) -> None:
    """Make ``name`` (or every name of ``choices``, all starting with the prefix ``name``)
    loadable by :func:`fastctrl.runtime.loading.load_model`."""
    if name in _MODELS:
        raise ValueError(f"built-in model {name!r} is registered twice")
    _MODELS[name] = BuiltinModel(name, load, description, choices, random_weights)


def register_profile(name: str, path: Callable[[], Path], *, description: str) -> None:
    """Make ``name`` stand for the profile table ``path()`` wherever a profile is read."""
    if name in _PROFILES:
        raise ValueError(f"built-in profile {name!r} is registered twice")
    _PROFILES[name] = (path, description)


def register_controller(name: str, path: Callable[[], Path], *, description: str) -> None:
    """Make ``path()`` (a ``Controller.save_pretrained`` directory) the controller served by
    default for the built-in model ``name``."""
    if name in _CONTROLLERS:
        raise ValueError(f"built-in controller {name!r} is registered twice")
    _CONTROLLERS[name] = (path, description)


def builtin_controller(name: str) -> Path | None:
    """The shipped controller directory of the built-in model ``name``; ``None`` if none."""
    _load_providers()
    entry = _CONTROLLERS.get(str(name))
    return entry[0]() if entry is not None else None


def _load_providers() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()()


def builtin_model(name: str) -> BuiltinModel | None:
    """The registration that ``name`` belongs to; ``None`` for a hub id or a directory.

    A name that starts with a registered prefix but is not one of its choices is an error
    listing them."""
    _load_providers()
    if name in _MODELS:
        return _MODELS[name]
    for entry in _MODELS.values():
        if entry.choices is not None and name.startswith(entry.name):
            if name not in entry.names():
                raise ValueError(
                    f"--model {name}: no such built-in model; {entry.description}: "
                    f"{', '.join(entry.names())}"
                )
            return entry
    return None


def builtin_model_names() -> list[str]:
    """Every built-in model name."""
    _load_providers()
    return [n for entry in _MODELS.values() for n in entry.names()]


def builtin_profile(name: str) -> Path | None:
    """The table file a built-in profile name stands for; ``None`` for any other name."""
    _load_providers()
    entry = _PROFILES.get(str(name))
    return entry[0]() if entry is not None else None


def builtin_profile_names() -> list[str]:
    _load_providers()
    return list(_PROFILES)
