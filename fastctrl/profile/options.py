"""What a profiling run is given (:class:`ProfileArgs`, the flags of ``fastctrl profile``) and
how it turns them into a model, data and a grid: shared by the local sweep and every Ray
sweep worker."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from ..distributed.backend import BackendArgs
from ..runtime.answering import ANSWER_PATH_HELP, AnswerPath
from ..runtime.loading import ModelArgs
from ..runtime.metrics import METRICS
from ..runtime.registry import builtin_model
from ..space import ActionSpace

#: the table's file name in --output_dir (its feature store and sidecars go beside it)
TABLE_NAME = "profile"

DEFAULT_GRID = {"max_crops": [1, 2, 4], "top_k": [1, 2, 4], "num_active_blocks": [2, 3, 4]}


MetricName = Literal[("auto", *METRICS)]  # type: ignore[misc]


@dataclass
class ProfileArgs:
    """Sweep a config grid on a transformers VLM and write the profile table + feature store
    that `python -m fastctrl.train --profile` reads."""

    loading: tyro.conf.OmitArgPrefixes[ModelArgs] = field(default_factory=ModelArgs)
    """The model to sweep, and how it is loaded."""
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
    answer_path: Annotated[AnswerPath, tyro.conf.arg(help=ANSWER_PATH_HELP)] = "auto"
    metric: MetricName = "auto"  # type: ignore[valid-type]
    """Quality metric: auto = the dataset's standard metric / exact match with answers, else
    agreement with the full config."""
    use_answers: bool = False
    """Score the synthetic answers (meaningless for random weights)."""
    tokens_per_crop: int | None = None
    """Vision tokens per max_crops unit (default: the grid top keeps all)."""
    threads: int = 1
    """Torch CPU threads (1 by default: tiny models are overhead-bound and timings are steadier
    on a shared CPU; 0 keeps torch's default)."""
    output_dir: str = "runs/profile"
    """Where the profile goes: DIR/profile.parquet (or .csv), its feature store
    (profile.features.safetensors), profile.sweep.json and, while it runs,
    profile.partial.json. `--profile DIR` reads it."""
    table_format: Literal["parquet", "csv"] = "parquet"
    """File format of the profile table."""
    resume: bool = True
    """Continue a partial earlier run of the same sweep (--no_resume starts over)."""
    quiet: bool = False
    """No progress bar, warnings only."""
    execution: tyro.conf.OmitArgPrefixes[BackendArgs] = field(default_factory=BackendArgs)
    """Where the sweep runs: this process, or model replicas on a Ray cluster."""
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

    def sweep_settings(self) -> dict[str, Any]:
        """How each (request, config) is measured and scored, as
        :func:`~fastctrl.profile.sweep.run_sweep` and ``SweepSetup.create`` take it: the local
        sweep and every Ray sweep worker measure alike."""
        return dict(
            warmup=self.warmup,
            repeats=self.repeats,
            max_new_tokens=self.max_new_tokens,
            metric=self.metric,
            tokens_per_crop=self.tokens_per_crop,
            configs=self.configs,
            batch_size=self.batch_size,
            seed=self.seed,
            answer_path=self.answer_path,
        )

    @property
    def table_path(self) -> Path:
        """The profile table this run writes: ``<output_dir>/profile.<table_format>``."""
        return Path(self.output_dir) / f"{TABLE_NAME}.{self.table_format}"


def auto_grid(model: Any) -> dict[str, list[int]]:
    """A grid that fits the model: its top is the unmodified model."""
    from ..model_hook import find_adapter

    a = find_adapter(model)
    grid: dict[str, list[int]] = {"max_crops": [1, 2, 4]}
    if a.is_moe:
        k = a.native_top_k
        grid["top_k"] = sorted({1, max(1, k // 2), k})
    n = a.num_layers
    grid["num_active_blocks"] = sorted({max(1, n // 2), max(1, (3 * n) // 4), n})
    return grid


def load(args: ProfileArgs) -> tuple[Any, Any, Any, str | None, int]:
    """(model, processor, dataset, dataset name, n requests) from the arguments."""
    model, processor = load_args_model(args)
    return (model, processor, *load_data(args))


def load_args_model(args: ProfileArgs) -> tuple[Any, Any]:
    """(model, processor) of ``--model`` (what every sweep worker loads once)."""
    return args.loading.load(seed=args.seed)


def load_data(args: ProfileArgs) -> tuple[Any, str | None, int]:
    """(dataset, dataset name, n requests) from the arguments."""
    if args.dataset is None:
        from ..runtime.synthetic_vqa import synthetic_vqa

        n = args.samples or 12
        entry = builtin_model(args.loading.model)
        random_weights = entry is not None and entry.random_weights
        data: Any = synthetic_vqa(
            n, seed=args.seed, with_answers=args.use_answers or not random_weights
        )
        return data, None, n
    from ..runtime.datasets import load_requests

    data, name = load_requests(
        args.dataset, split=args.split, samples=args.samples, on_error=args.on_error
    )
    return data, name, len(data)


def args_space(args: ProfileArgs, model: Any) -> ActionSpace:
    """The swept grid: ``--grid`` JSON, or :func:`auto_grid` of the model."""
    return ActionSpace(auto_grid(model) if args.grid == "auto" else json.loads(args.grid))
