"""Which configs the profiler measures per request: every one, or a sample (E5's profiling
budget of "~200-500 configurations" over a grid that can be far larger).

- ``all``: the whole grid;
- ``random N``: N distinct configs drawn uniformly;
- ``lhs N``: a Latin-hypercube sample: each knob's grid is cut into N equal strata of its
  index range and every stratum is used once per knob (the strata paired at random across
  knobs), so every knob's range is covered evenly even for small N;

always including the full and the cheapest config (the profile's anchors: the full config is
the SLO reference and the no-regret baseline, the cheapest the floor every request has; the
table's imputation needs both). A sample is a deterministic function of the seed and the
request id, so a resumed or repeated sweep measures the same cells. Duplicates (a small grid,
or LHS strata that round to the same grid index) are topped up with random configs, so a
request gets exactly ``min(N, grid size)`` configs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from ..space import ActionSpace, Config

_SPEC = re.compile(r"^\s*(all|random|lhs)(?:\s*[ :=]?\s*(\d+))?\s*$")


@dataclass(frozen=True)
class ConfigSampler:
    space: ActionSpace
    mode: str = "all"
    n: int | None = None
    seed: int = 0

    @classmethod
    def parse(cls, spec: str, space: ActionSpace, seed: int = 0) -> ConfigSampler:
        """``"all"``, ``"random N"`` or ``"lhs N"`` (also ``random:N``)."""
        m = _SPEC.match(str(spec))
        if m is None or (m.group(1) != "all") != (m.group(2) is not None):
            raise ValueError(f"--configs must be 'all', 'random N' or 'lhs N', got {spec!r}")
        n = int(m.group(2)) if m.group(2) else None
        if n is not None and n < 2:
            raise ValueError(
                f"--configs {m.group(1)} N needs N >= 2 (the full and the cheapest "
                f"config are always measured), got {n}"
            )
        return cls(space, m.group(1), n, seed)

    @property
    def per_request(self) -> int:
        return self.space.n_configs if self.n is None else min(self.n, self.space.n_configs)

    def describe(self) -> str:
        return "all" if self.mode == "all" else f"{self.mode} {self.n}"

    def for_request(self, request_id: str) -> list[Config]:
        """The configs measured for one request, in the grid's flat order."""
        configs = list(self.space.all_configs())
        if self.mode == "all" or self.per_request >= len(configs):
            return configs
        digest = hashlib.sha256(f"{self.seed}:{request_id}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        chosen = {0, self.space.flat_index(self.space.full().indices)}
        if self.mode == "lhs":
            sizes = np.asarray(self.space.sizes)
            n = self.per_request
            strata = np.stack([rng.permutation(n) for _ in sizes], 1)  # [n, K]
            u = (strata + rng.random(strata.shape)) / n  # in [0, 1)
            idx = np.minimum((u * sizes).astype(np.int64), sizes - 1)
            for row in idx:
                if len(chosen) >= n:
                    break
                chosen.add(int(self.space.flat_index(row)))
        rest = [i for i in rng.permutation(len(configs)).tolist() if i not in chosen]
        chosen.update(rest[: self.per_request - len(chosen)])
        return [configs[i] for i in sorted(chosen)]
