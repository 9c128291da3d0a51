"""``python -m fastctrl.profile``: sweep a config grid on a VLM and write a training profile.

Default: a tiny random-weight LLaVA-OLMoE on the built-in synthetic image/question set, grid
max_crops [1, 2, 4] x top_k [1, 2, 4] x num_active_blocks [2, 3, 4]; a few minutes on a CPU.
The table (Parquet/CSV), its feature store (``.features.safetensors``) and a ``.sweep.json``
sidecar (grid, settings, p50/p95 per config) are what ``python -m fastctrl.train --profile``
reads. An interrupted run resumes where it stopped (``--no-resume`` starts over).

Quality: with ``--metric auto`` it is exact match when the samples have answers, else
agreement with the full configuration's generated tokens. A random-weight model cannot answer
anything, so the tiny models ignore the synthetic answers by default (``--use-answers`` to
score them anyway): their quality column is the agreement proxy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import torch

from .hook.tiny import FAMILIES, TinyProcessor, build_tiny
from .space import ActionSpace

DEFAULT_GRID = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [2, 3, 4]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastctrl.profile",
        description="Sweep a config grid on a transformers VLM and write the profile table + "
                    "feature store that `python -m fastctrl.train --profile` reads.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="tiny-llava-olmoe",
                   choices=[f"tiny-{f}" for f in FAMILIES],
                   help="built-in tiny random-weight model (nothing is downloaded)")
    p.add_argument("--seed", type=int, default=0, help="model weights and dataset seed")
    p.add_argument("--samples", type=int, default=12, help="synthetic requests to profile")
    p.add_argument("--grid", default=json.dumps(DEFAULT_GRID),
                   help="JSON object knob -> ascending values (the grid top must be the full "
                        "model: top_k = its top_k, num_active_blocks = its layers)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before each timing")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per (request, config)")
    p.add_argument("--max-new-tokens", type=int, default=4, help="tokens generated per request")
    p.add_argument("--metric", default="auto", choices=["auto", "exact_match", "vqa",
                                                         "agreement"])
    p.add_argument("--use-answers", action="store_true",
                   help="score the synthetic answers (meaningless for random weights)")
    p.add_argument("--tokens-per-crop", type=int, default=None,
                   help="vision tokens per max_crops unit (default: grid top keeps all)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 by default: tiny models are overhead-bound and "
                        "timings are steadier on a shared CPU; 0 keeps torch's default)")
    p.add_argument("--out", default="runs/profile/tiny.parquet", help=".parquet or .csv")
    p.add_argument("--no-resume", action="store_true", help="ignore a partial earlier run")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from .data.synthetic_vqa import synthetic_vqa
    from .profiling.sweep import run_sweep

    try:
        space = ActionSpace(json.loads(args.grid))
        if args.threads:
            torch.set_num_threads(args.threads)
        model = build_tiny(args.model.removeprefix("tiny-"), seed=args.seed)
        data = synthetic_vqa(args.samples, seed=args.seed, with_answers=args.use_answers)
        res = run_sweep(model, TinyProcessor(model), data, space, args.out, warmup=args.warmup,
                        repeats=args.repeats, max_new_tokens=args.max_new_tokens,
                        metric=args.metric, tokens_per_crop=args.tokens_per_crop,
                        resume=not args.no_resume, quiet=args.quiet, total=args.samples)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"profile: {res.table_path} ({res.profile.n_requests} requests x "
          f"{res.profile.n_configs} configs; {res.resumed} resumed, {res.measured} measured)")
    print(f"features: {res.table_path.with_suffix('')}.features.safetensors")
    print(f"sweep summary: {res.sidecar_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
