"""``python -m fastctrl.profile``: sweep a config grid on a VLM and write a training profile.

Default: a tiny random-weight LLaVA-OLMoE on the built-in synthetic image/question set, grid
max_crops [1, 2, 4] x top_k [1, 2, 4] x num_active_blocks [2, 3, 4]; a few minutes on a CPU.
``--model`` also takes a hub id or a ``save_pretrained`` directory of any supported family
(loaded with ``from_pretrained`` and its own processor / chat template), ``--dataset`` a
local JSONL / CSV / ``save_to_disk`` directory / image folder or a hub dataset name
(:mod:`fastctrl.profile.datasets`); ``--configs random N`` / ``lhs N`` measures a sample of
the grid per request (always the full and the cheapest config).
The table (Parquet/CSV), its feature store (``.features.safetensors``) and a ``.sweep.json``
sidecar (grid, settings, p50/p95 per config, what the sweep cost) are what
``python -m fastctrl.train --profile`` reads. An interrupted run resumes where it stopped
(``--no_resume`` starts over). ``--backend ray`` sweeps on a Ray cluster, one model replica
per worker (:mod:`fastctrl.distributed.ray_profile`), into the same files.

Quality: with ``--metric auto`` it is the dataset's standard metric when its name is known
(VQA accuracy for VQAv2 / TextVQA, ANLS for DocVQA, relaxed accuracy for ChartQA, ...), exact
match for other data with answers, else agreement with the full configuration's generated
tokens. A random-weight model cannot answer anything, so the tiny models ignore the synthetic
answers by default (``--use_answers`` to score them anyway): their quality column is the
agreement proxy.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import tyro

from .. import cli
from ..distributed.backend import BackendArgs
from ..space import ActionSpace
from .metrics import METRICS

DEFAULT_GRID = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [2, 3, 4]}
TINY_PREFIX = "tiny-"
MetricName = Literal[("auto", *METRICS)]  # type: ignore[misc]


@dataclass
class ProfileArgs:
    """Sweep a config grid on a transformers VLM and write the profile table + feature store
    that `python -m fastctrl.train --profile` reads."""

    model: str = "tiny-llava-olmoe"
    """A built-in tiny random-weight model (tiny-<family>, nothing downloaded), or a hub id /
    save_pretrained directory of a supported family (loaded with from_pretrained and its
    AutoProcessor)."""
    dataset: str | None = None
    """JSONL / CSV file, save_to_disk directory, image folder with questions.jsonl/csv, or a
    hub dataset name; default: the built-in synthetic image/question set."""
    split: str | None = None
    """Dataset split (save_to_disk DatasetDict or hub dataset)."""
    samples: int | None = None
    """Requests to profile: the synthetic set's size (default 12), or at most this many of
    --dataset (default: all)."""
    on_error: Literal["raise", "skip"] = "raise"
    """A bad dataset row (missing image, empty answers): stop, or skip it and count it."""
    seed: int = 0
    """Tiny model weights, the synthetic set and the config sample."""
    grid: str = "auto"
    """JSON object knob -> ascending values (the grid top must be the full model); `auto`:
    max_crops [1, 2, 4], top_k [1, k/2, k] on MoE models, num_active_blocks [L/2, 3L/4, L]."""
    configs: str = "all"
    """Configs measured per request: `all`, `random N` or `lhs N` (Latin hypercube); the full
    and the cheapest config always."""
    batch_size: int = 1
    """Requests run together, one config at a time (each request's latency is its batch's)."""
    warmup: int = 1
    """Untimed runs before each timing."""
    repeats: int = 3
    """Timed runs per (request, config)."""
    max_new_tokens: int = 4
    """Tokens generated per request."""
    answer_path: Literal["auto", "generate"] = "auto"
    """auto: a one-token answer (--max_new_tokens 1) from the prefill forward alone, the tokens
    generate() gives without its per-call set-up; generate: always generate()."""
    metric: MetricName = "auto"  # type: ignore[valid-type]
    """Quality metric: auto = the dataset's standard metric / exact match with answers, else
    agreement with the full config."""
    use_answers: bool = False
    """Score the synthetic answers (meaningless for random weights)."""
    tokens_per_crop: int | None = None
    """Vision tokens per max_crops unit (default: the grid top keeps all)."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Weights dtype of a loaded model."""
    device: str | None = None
    """Device of a loaded model (default: cuda if available, else cpu)."""
    device_map: str | None = None
    """accelerate device map for a loaded model (e.g. auto); instead of --device."""
    attn_implementation: str | None = None
    """e.g. sdpa, eager, flash_attention_2."""
    trust_remote_code: bool = False
    """Allow a model's own code from its repository (off unless asked)."""
    threads: int = 1
    """Torch CPU threads (1 by default: tiny models are overhead-bound and timings are steadier
    on a shared CPU; 0 keeps torch's default)."""
    out: str = "runs/profile/tiny.parquet"
    """The profile table: .parquet or .csv."""
    resume: bool = True
    """Continue a partial earlier run of the same sweep (--no_resume starts over)."""
    quiet: bool = False
    """No progress bar, warnings only."""
    execution: tyro.conf.OmitArgPrefixes[BackendArgs] = field(default_factory=BackendArgs)
    num_workers: int | None = None
    """With --backend ray: model replicas (Ray actors) sweeping at once; None: as many as the
    cluster's GPUs (or, without GPUs, its CPUs) hold."""
    gpus_per_worker: float | None = None
    """With --backend ray: GPUs each worker reserves (0.5: two share one); None: 1 on a cluster
    with GPUs, else 0."""
    shard_size: int | None = None
    """With --backend ray: requests per shard (what a worker is handed, and what is written and
    resumed), a multiple of --batch_size; None: about 4 shards per worker."""

    def __post_init__(self) -> None:
        for name in (
            "samples",
            "repeats",
            "max_new_tokens",
            "batch_size",
            "num_workers",
            "shard_size",
        ):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name} must be >= 1, got {v}")
        if self.gpus_per_worker is not None and not self.gpus_per_worker >= 0:
            raise ValueError(f"--gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.execution.backend != "ray":
            for name in ("num_workers", "gpus_per_worker", "shard_size"):
                if getattr(self, name) is not None:
                    raise ValueError(f"--{name} needs --backend ray")
        for name in ("warmup", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        # imported here, not at the top: the tiny models import transformers' model classes
        # (seconds), and every stage that reads a profile table imports this module
        from ..inengine.tiny import tiny_families

        if (
            self.model.startswith(TINY_PREFIX)
            and self.model.removeprefix(TINY_PREFIX) not in tiny_families()
        ):
            raise ValueError(
                f"--model {self.model}: no such tiny model; built-in: "
                f"{', '.join(TINY_PREFIX + f for f in tiny_families())}"
            )


def auto_grid(model: Any) -> dict[str, list[int]]:
    """A grid that fits the model: its top is the unmodified model."""
    from ..inengine import find_adapter

    a = find_adapter(model)
    grid: dict[str, list[int]] = {"max_crops": [1, 2, 4]}
    if a.is_moe:
        k = a.native_top_k
        grid["top_k"] = sorted({1, max(1, k // 2), k})
    n = a.num_layers
    grid["num_active_blocks"] = sorted({max(1, n // 2), max(1, (3 * n) // 4), n})
    return grid


def load_model(
    model_id: str,
    *,
    seed: int = 0,
    dtype: str = "auto",
    device: str | None = None,
    device_map: str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """(model, processor): a built-in ``tiny-<family>`` (weights from ``seed``) or a hub id /
    save_pretrained directory (:func:`fastctrl.profile.loading.load_model`);
    ``fastctrl-digits`` is the trained digits VLM shipped in the package
    (:mod:`fastctrl.digits`); its weights are stored in bfloat16 to halve the file, and
    ``auto`` runs it in float32, the dtype it was profiled in."""
    from ..digits import DIGITS_MODEL, pretrained_dir

    if model_id == DIGITS_MODEL:
        model_id = str(pretrained_dir())
        dtype = "float32" if dtype == "auto" else dtype
    if model_id.startswith(TINY_PREFIX):
        from ..inengine.tiny import TinyProcessor, build_tiny

        model = build_tiny(model_id.removeprefix(TINY_PREFIX), seed=seed)
        if device:
            model.to(device)
        return model, TinyProcessor(model)
    from .loading import load_model as load_pretrained

    return load_pretrained(
        model_id,
        dtype=dtype,
        device=device,
        device_map=device_map,
        attn_implementation=attn_implementation,
        trust_remote_code=trust_remote_code,
    )


def load_requests(
    dataset: str, *, split: str | None, samples: int | None, on_error: str
) -> tuple[Any, str]:
    """A --dataset (:func:`fastctrl.profile.datasets.load_vqa_dataset`) and its name; skipped
    rows are logged with their count."""
    from .datasets import load_vqa_dataset

    data = load_vqa_dataset(dataset, split=split, max_samples=samples, on_error=on_error)
    if data.skipped:
        logging.getLogger(__name__).warning(data.summary())
    return data, data.name


def load(args: ProfileArgs) -> tuple[Any, Any, Any, str | None, int]:
    """(model, processor, dataset, dataset name, n requests) from the arguments."""
    model, processor = load_args_model(args)
    return (model, processor, *load_data(args))


def load_args_model(args: ProfileArgs) -> tuple[Any, Any]:
    """(model, processor) of ``--model`` (what every sweep worker loads once)."""
    return load_model(
        args.model,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        device_map=args.device_map,
        attn_implementation=args.attn_implementation,
        trust_remote_code=args.trust_remote_code,
    )


def load_data(args: ProfileArgs) -> tuple[Any, str | None, int]:
    """(dataset, dataset name, n requests) from the arguments."""
    if args.dataset is None:
        from .synthetic_vqa import synthetic_vqa

        n = args.samples or 12
        tiny = args.model.startswith(TINY_PREFIX)
        data: Any = synthetic_vqa(n, seed=args.seed, with_answers=args.use_answers or not tiny)
        return data, None, n
    data, name = load_requests(
        args.dataset, split=args.split, samples=args.samples, on_error=args.on_error
    )
    return data, name, len(data)


def args_space(args: ProfileArgs, model: Any) -> ActionSpace:
    """The swept grid: ``--grid`` JSON, or :func:`auto_grid` of the model."""
    return ActionSpace(auto_grid(model) if args.grid == "auto" else json.loads(args.grid))


def main(argv: Sequence[str] | None = None) -> int:
    args = cli.parse(ProfileArgs, argv, prog="python -m fastctrl.profile")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    import torch

    from .loading import ModelLoadError
    from .sweep import run_sweep

    try:
        if args.execution.backend == "ray":
            from ..distributed.ray_profile import WorkerError, ray_sweep

            data, name, n = load_data(args)
            try:
                res = ray_sweep(args, data, dataset_name=name, total=n)
            except WorkerError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
        else:
            if args.threads:
                torch.set_num_threads(args.threads)
            model, processor, data, name, n = load(args)
            res = run_sweep(
                model,
                processor,
                data,
                args_space(args, model),
                args.out,
                warmup=args.warmup,
                repeats=args.repeats,
                max_new_tokens=args.max_new_tokens,
                metric=args.metric,
                tokens_per_crop=args.tokens_per_crop,
                resume=args.resume,
                quiet=args.quiet,
                total=n,
                configs=args.configs,
                batch_size=args.batch_size,
                seed=args.seed,
                dataset_name=name,
                answer_path=args.answer_path,
            )
    except (ValueError, TypeError, FileNotFoundError, ModelLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.USAGE_ERROR
    cost = json.loads(res.sidecar_path.read_text())["cost"]
    if res.profile is None:
        print(
            f"profile: {res.table_path} written, but some configs were measured for no "
            "request: profile more requests or use a smaller grid before training on it"
        )
    else:
        print(
            f"profile: {res.table_path} ({res.profile.n_requests} requests x "
            f"{res.profile.n_configs} configs, {res.profile.imputed_share:.0%} of cells "
            f"imputed; {res.resumed} resumed, {res.measured} measured)"
        )
    print(f"features: {res.table_path.with_suffix('')}.features.safetensors")
    print(
        f"sweep cost: {cost['wall_s']:.1f} s wall, {cost['answer_calls']} answer calls "
        f"({cost['timed_s']:.1f} s timed); summary: {res.sidecar_path}"
    )
    return 0
