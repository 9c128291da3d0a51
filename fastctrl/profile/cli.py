"""``python -m fastctrl.profile``: sweep a config grid on a VLM and write a training profile.

Default: a tiny random-weight LLaVA-OLMoE on the built-in synthetic image/question set, grid
max_crops [1, 2, 4] x top_k [1, 2, 4] x num_active_blocks [2, 3, 4]; a few minutes on a CPU.
The table (Parquet/CSV), its feature store (``.features.safetensors``) and a ``.sweep.json``
sidecar (grid, settings, p50/p95 per config) are what ``python -m fastctrl.train --profile``
reads. An interrupted run resumes where it stopped (``--no_resume`` starts over).

Quality: with ``--metric auto`` it is exact match when the samples have answers, else
agreement with the full configuration's generated tokens. A random-weight model cannot answer
anything, so the tiny models ignore the synthetic answers by default (``--use_answers`` to
score them anyway): their quality column is the agreement proxy.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .. import cli
from ..inengine.tiny import FAMILIES
from ..space import ActionSpace
from .metrics import METRICS

DEFAULT_GRID = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [2, 3, 4]}

TinyModel = Literal[tuple(f"tiny-{f}" for f in FAMILIES)]  # type: ignore[misc]
MetricName = Literal[("auto", *METRICS)]  # type: ignore[misc]


@dataclass
class ProfileArgs:
    """Sweep a config grid on a transformers VLM and write the profile table + feature store
    that `python -m fastctrl.train --profile` reads."""

    model: TinyModel = "tiny-llava-olmoe"  # type: ignore[valid-type]
    """Built-in tiny random-weight model (nothing is downloaded)."""
    seed: int = 0
    """Model weights and dataset seed."""
    samples: int = 12
    """Synthetic requests to profile."""
    grid: str = field(default_factory=lambda: json.dumps(DEFAULT_GRID))
    """JSON object knob -> ascending values (the grid top must be the full model: top_k = its
    top_k, num_active_blocks = its layers)."""
    warmup: int = 1
    """Untimed runs before each timing."""
    repeats: int = 3
    """Timed runs per (request, config)."""
    max_new_tokens: int = 4
    """Tokens generated per request."""
    metric: MetricName = "auto"  # type: ignore[valid-type]
    """Quality metric: auto = exact match with answers, else agreement with the full config."""
    use_answers: bool = False
    """Score the synthetic answers (meaningless for random weights)."""
    tokens_per_crop: int | None = None
    """Vision tokens per max_crops unit (default: the grid top keeps all)."""
    threads: int = 1
    """Torch CPU threads (1 by default: tiny models are overhead-bound and timings are steadier
    on a shared CPU; 0 keeps torch's default)."""
    out: str = "runs/profile/tiny.parquet"
    """The profile table: .parquet or .csv."""
    resume: bool = True
    """Continue a partial earlier run of the same sweep (--no_resume starts over)."""
    quiet: bool = False
    """No progress bar, warnings only."""

    def __post_init__(self) -> None:
        for name in ("samples", "repeats", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = cli.parse(ProfileArgs, argv, prog="python -m fastctrl.profile")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    import torch

    from ..inengine.tiny import TinyProcessor, build_tiny
    from .sweep import run_sweep
    from .synthetic_vqa import synthetic_vqa

    try:
        space = ActionSpace(json.loads(args.grid))
        if args.threads:
            torch.set_num_threads(args.threads)
        model = build_tiny(args.model.removeprefix("tiny-"), seed=args.seed)
        data = synthetic_vqa(args.samples, seed=args.seed, with_answers=args.use_answers)
        res = run_sweep(model, TinyProcessor(model), data, space, args.out, warmup=args.warmup,
                        repeats=args.repeats, max_new_tokens=args.max_new_tokens,
                        metric=args.metric, tokens_per_crop=args.tokens_per_crop,
                        resume=args.resume, quiet=args.quiet, total=args.samples)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.USAGE_ERROR
    print(f"profile: {res.table_path} ({res.profile.n_requests} requests x "
          f"{res.profile.n_configs} configs; {res.resumed} resumed, {res.measured} measured)")
    print(f"features: {res.table_path.with_suffix('')}.features.safetensors")
    print(f"sweep summary: {res.sidecar_path}")
    return 0
