"""The action space: named knobs, each a small grid of values.

Grids are data, not code: an :class:`ActionSpace` is built from a mapping of knob name to
values and round-trips through JSON. A :class:`Config` is one point of the grid, held as
indices (what a controller outputs) and mapped to values (what a model runs).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The three knobs of a MolmoE-like VLM: image crops, experts per token, decoder blocks.
DEFAULT_GRIDS: dict[str, tuple[int, ...]] = {
    "max_crops": (1, 2, 4, 6, 9, 12),
    "top_k": (1, 2, 3, 4, 6, 8),
    "num_active_blocks": (8, 10, 12, 14, 16),
}


@dataclass(frozen=True)
class Knob:
    """One knob: a name and its grid of values (ascending: index 0 is the cheapest)."""

    name: str
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"knob name must be a non-empty string, got {self.name!r}")
        if len(self.values) == 0:
            raise ValueError(f"knob {self.name!r}: values must be a non-empty grid")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"knob {self.name!r}: values must be distinct, got {self.values}")
        if list(self.values) != sorted(self.values):
            raise ValueError(
                f"knob {self.name!r}: values must be ascending (cheapest first), got {self.values}"
            )

    def __len__(self) -> int:
        return len(self.values)

    def index_of(self, value: int) -> int:
        try:
            return self.values.index(value)
        except ValueError:
            raise ValueError(
                f"knob {self.name!r}: value {value!r} is not on the grid {self.values}"
            ) from None


class ActionSpace:
    """An ordered set of knobs. The order fixes the column order of decisions ``[B, n_knobs]``."""

    def __init__(self, grids: Mapping[str, Sequence[int]] | None = None) -> None:
        grids = DEFAULT_GRIDS if grids is None else grids
        if len(grids) == 0:
            raise ValueError("grids must name at least one knob")
        self.knobs: tuple[Knob, ...] = tuple(
            Knob(name, tuple(int(v) for v in values)) for name, values in grids.items()
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.knobs)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(k) for k in self.knobs)

    @property
    def n_configs(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n

    def __len__(self) -> int:
        return len(self.knobs)

    def __getitem__(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise KeyError(f"no knob named {name!r}; knobs are {self.names}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActionSpace) and self.knobs == other.knobs

    def __hash__(self) -> int:
        return hash(self.knobs)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k.name}={list(k.values)}" for k in self.knobs)
        return f"ActionSpace({inner})"

    def to_dict(self) -> dict[str, list[int]]:
        return {k.name: list(k.values) for k in self.knobs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[int]]) -> ActionSpace:
        return cls(d)

    def config(self, indices: Sequence[int]) -> Config:
        return Config(self, tuple(int(i) for i in indices))

    def config_from_values(self, **values: int) -> Config:
        missing = set(self.names) - set(values)
        extra = set(values) - set(self.names)
        if missing or extra:
            raise ValueError(
                f"config_from_values needs exactly the knobs {self.names}; "
                f"missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        return Config(self, tuple(self[n].index_of(values[n]) for n in self.names))

    def full(self) -> Config:
        """The most expensive configuration: the top of every grid (the unmodified model)."""
        return Config(self, tuple(s - 1 for s in self.sizes))

    def cheapest(self) -> Config:
        return Config(self, tuple(0 for _ in self.sizes))

    def all_configs(self) -> Iterator[Config]:
        for idx in itertools.product(*(range(s) for s in self.sizes)):
            yield Config(self, idx)

    def flat_index(self, indices: Any) -> Any:
        """Row-major index of configs in :meth:`all_configs` order: the one helper for it.

        ``indices`` is one config's grid indices (a sequence of ints -> an int), or an array /
        tensor ``[..., n_knobs]`` (numpy or torch -> ``[...]`` of the same kind). Out-of-range
        indices raise ``ValueError`` naming the knob.
        """
        if not hasattr(indices, "ndim"):
            indices = tuple(int(i) for i in indices)
            if len(indices) != len(self.sizes):
                raise ValueError(
                    f"a config needs {len(self.sizes)} indices (one per knob "
                    f"{self.names}), got {len(indices)}"
                )
        elif indices.ndim == 0 or indices.shape[-1] != len(self.sizes):
            raise ValueError(
                f"grid indices must be [..., {len(self.sizes)}] (one column per knob "
                f"{self.names}), got shape {list(indices.shape)}"
            )
        flat = 0
        for k, size in enumerate(self.sizes):
            col = indices[k] if isinstance(indices, tuple) else indices[..., k]
            if (col < 0).any() if hasattr(col, "any") else col < 0:
                raise ValueError(f"knob {self.names[k]!r}: grid index out of range [0, {size})")
            if (col >= size).any() if hasattr(col, "any") else col >= size:
                raise ValueError(f"knob {self.names[k]!r}: grid index out of range [0, {size})")
            flat = flat * size + col
        return flat


@dataclass(frozen=True)
class Config:
    """One configuration: an index per knob, mapped to values through its space."""

    space: ActionSpace
    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.space):
            raise ValueError(
                f"config needs {len(self.space)} indices (one per knob {self.space.names}), "
                f"got {len(self.indices)}"
            )
        for knob, i in zip(self.space.knobs, self.indices, strict=True):
            if not 0 <= i < len(knob):
                raise ValueError(f"knob {knob.name!r}: index {i} out of range [0, {len(knob)})")

    @property
    def values(self) -> dict[str, int]:
        return {k.name: k.values[i] for k, i in zip(self.space.knobs, self.indices, strict=True)}

    def __getitem__(self, name: str) -> int:
        return self.values[name]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v}" for n, v in self.values.items())
        return f"Config({inner})"
