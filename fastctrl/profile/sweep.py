"""Sweep a config grid on a transformers VLM and write the profile that ``fastctrl.train``
reads (``--profile``).

For every request (image, prompt, optional answer) and every config of the grid (or a random /
Latin-hypercube sample of it per request, :mod:`fastctrl.profile.configs`), the model answers
through :func:`fastctrl.hook` with the config pinned, i.e. through exactly the code path a
controller drives at inference time, one batch of requests at a time. It answers with greedy
``generate()``, or, with ``answer_path="auto"``, by the lean path that gives its tokens
without its per-call set-up (:func:`~fastctrl.runtime.answering.lean_answer_path`: the
prefill forward alone for ``max_new_tokens=1``, the cached greedy loop for more):

- latency: ``warmup`` untimed rounds, then ``repeats`` timed rounds of the whole request
  (prefill plus ``max_new_tokens`` decode steps), synchronised on GPU; a round runs every
  config once (round-robin, so load drift hits all configs alike); stored per repeat in
  ``latency_ms_<i>``; p50/p95 per config and what the sweep cost (wall time, answer
  calls, cells measured) go to the ``.sweep.json`` sidecar;
- quality: a pluggable metric (:mod:`fastctrl.runtime.metrics`) on the first timed run's
  output; with answers exact match / VQA accuracy, without answers agreement with the full
  configuration's tokens (a proxy, not accuracy);
- features: the pooled image / text features the hook computed in the full-config prefill
  (the same ones a hooked model feeds its controller), written to the feature store.

Resumable: after each request the rows and features so far are written atomically to
``<out>.partial.json``; a new run with the same settings skips the requests already there.

One code path measures: :class:`BatchMeasurer` (one batch on one hooked model). The local sweep
runs it in this process; ``--backend ray`` (:mod:`fastctrl.profile.ray_sweep`) runs it in
every worker, and both write their result with :func:`finish_sweep`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import io
from ..model_hook import hook
from ..runtime.answering import answered_by, check_answer_path, lean_answer_path, make_decoder
from ..runtime.metrics import AnswerFn, Metric, resolve_metric
from ..runtime.requests import Request, as_requests
from ..runtime.timing import CallTimer
from ..space import ActionSpace, Config
from ..sysinfo import machine
from .configs import ConfigSampler

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial.json"
SIDECAR_SUFFIX = ".sweep.json"


@dataclass
class SweepResult:
    profile: Any  # fastctrl.profile.table.Profile; None when a sample left a config unmeasured
    table_path: Path
    sidecar_path: Path
    measured: int
    """Requests measured in this call."""
    resumed: int
    """Requests taken from an interrupted earlier run."""


def _fingerprint(model: nn.Module, space: ActionSpace, settings: dict[str, Any]) -> str:
    cfg = getattr(model, "config", None)
    model_desc = cfg.to_json_string(use_diff=False) if cfg is not None else type(model).__name__
    blob = json.dumps(
        {"model": model_desc, "grid": space.to_dict(), **settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_outputs(
    rows: list[dict[str, Any]],
    features: dict[str, tuple[list[float], list[float]]],
    space: ActionSpace,
    out_path: str | Path,
    sidecar: dict[str, Any],
    missing_configs: str = "raise",
) -> Any:
    """The output stage: the table + feature store (:mod:`fastctrl.profile.table`) and a JSON
    sidecar with the swept grid and per-config latency percentiles."""
    from .table import FeatureStore, Profile, ProfileError, features_path_for, write_table

    out_path = Path(out_path)
    ids = list(features)
    store = FeatureStore(
        ids,
        np.array([features[r][0] for r in ids], dtype=np.float32),
        np.array([features[r][1] for r in ids], dtype=np.float32),
    )
    try:
        profile = Profile.from_frame(
            pd.DataFrame(rows),
            space,
            features=store,
            source="sweep",
            missing_configs=missing_configs,
        )
        profile.save(out_path)
    except ProfileError as e:
        if "measured for no request" not in str(e):
            raise
        # a sample too small to have measured every config once: the measurements are still
        # data, written as they are; loading them needs more requests or a smaller grid
        log.warning(
            "%s; the table is written, but it cannot be loaded for training until "
            "every config is measured for some request",
            e,
        )
        write_table(pd.DataFrame(rows), space, out_path)
        store.save(features_path_for(out_path))
        profile = None
    io.write_json(out_path.with_suffix(SIDECAR_SUFFIX), sidecar)
    return profile


def _config_summary(rows: list[dict[str, Any]], space: ActionSpace, repeats: int) -> list[dict]:
    df = pd.DataFrame(rows)
    lat_cols = [f"latency_ms_{i}" for i in range(repeats)]
    out = []
    for values, g in df.groupby(list(space.names), sort=True):
        lat = g[lat_cols].to_numpy().ravel()
        out.append(
            {
                **{n: int(v) for n, v in zip(space.names, values, strict=True)},
                "latency_p50_ms": float(np.percentile(lat, 50)),
                "latency_p95_ms": float(np.percentile(lat, 95)),
                "quality_mean": float(g["quality"].mean()),
                "n_requests": int(len(g)),
            }
        )
    return out


@dataclass(frozen=True)
class SweepSetup:
    """How a sweep measures, apart from the model: built the same way by the local sweep and
    every worker, and hashed (with the model and the grid) into the fingerprint a resumed sweep
    must match."""

    space: ActionSpace
    sampler: ConfigSampler
    metric_name: str
    metric: Metric
    """What it reads (:attr:`Metric.kind`): the answer text and references, or the tokens and
    the full config's tokens for the same request."""
    warmup: int
    repeats: int
    max_new_tokens: int
    tokens_per_crop: int | None
    batch_size: int
    answer_path: str = "auto"
    """:data:`~fastctrl.runtime.answering.ANSWER_PATHS`: how a request is answered."""

    @classmethod
    def create(
        cls,
        space: ActionSpace,
        *,
        have_answers: bool,
        warmup: int = 1,
        repeats: int = 3,
        max_new_tokens: int = 4,
        metric: str | Metric | AnswerFn = "auto",
        tokens_per_crop: int | None = None,
        configs: str | ConfigSampler = "all",
        batch_size: int = 1,
        seed: int = 0,
        dataset_name: str | None = None,
        answer_path: str = "auto",
    ) -> SweepSetup:
        check_sweep_numbers(warmup, repeats, max_new_tokens, batch_size)
        check_answer_path(answer_path)
        sampler = (
            configs
            if isinstance(configs, ConfigSampler)
            else ConfigSampler.parse(configs, space, seed)
        )
        metric_name, metric_obj = resolve_metric(metric, have_answers, dataset_name)
        return cls(
            space,
            sampler,
            metric_name,
            metric_obj,
            warmup,
            repeats,
            max_new_tokens,
            tokens_per_crop,
            batch_size,
            answer_path,
        )

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "warmup": self.warmup,
            "repeats": self.repeats,
            "max_new_tokens": self.max_new_tokens,
            "metric": self.metric_name,
            "tokens_per_crop": self.tokens_per_crop,
            "configs": self.sampler.describe(),
            "config_seed": self.sampler.seed,
            "batch_size": self.batch_size,
            "answer_path": self.answer_path,
        }

    def fingerprint(self, model: nn.Module) -> str:
        return _fingerprint(model, self.space, self.settings)

    def batch_configs(self, request_ids: Sequence[str]) -> list[Config]:
        """What a batch measures: the union of its requests' sampled configs, and the full
        one (the features and the agreement reference come from it)."""
        configs = sorted(
            {c for r in request_ids for c in self.sampler.for_request(r)},
            key=lambda c: self.space.flat_index(c.indices),
        )
        full = self.space.full()
        return configs if full in configs else [*configs, full]


def check_sweep_numbers(warmup: int, repeats: int, max_new_tokens: int, batch_size: int) -> None:
    if repeats < 1 or warmup < 0 or max_new_tokens < 1 or batch_size < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0, max_new_tokens >= 1, batch_size >= 1;"
            f" got {repeats}, {warmup}, {max_new_tokens}, {batch_size}"
        )


def check_out_path(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    if out_path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"out_path must end in .parquet or .csv, got {out_path}")
    return out_path


class BatchMeasurer:
    """Measures batches of requests on one hooked model: the one measuring code path (the
    local sweep calls it in this process, each Ray worker in its own). ``cost`` counts the
    answer calls and the timed seconds of everything measured so far."""

    def __init__(
        self, model: nn.Module, processor: Callable[..., dict[str, torch.Tensor]], setup: SweepSetup
    ) -> None:
        self.model, self.processor, self.setup = model, processor, setup
        self.decode = make_decoder(processor)
        self.device = next(model.parameters()).device
        self.timer = CallTimer(self.device)
        self.cost: dict[str, float] = {"answer_calls": 0, "timed_s": 0.0}
        self.handle = hook(model, space=setup.space, tokens_per_crop=setup.tokens_per_crop)
        self.gen = dict(max_new_tokens=setup.max_new_tokens, do_sample=False)
        self.prefill_answer = (
            lean_answer_path(model, self.gen) if setup.answer_path == "auto" else None
        )

    def close(self) -> None:
        self.handle.remove()

    def __enter__(self) -> BatchMeasurer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """The sidecar's description of where the measuring ran (latencies mean little
        without the machine)."""
        return {
            "model": type(self.model).__name__,
            "family": self.handle.adapter.family,
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
            "timer": self.timer.kind,
            "machine": machine(self.device),
            "answered_by": answered_by(self.prefill_answer),
        }

    def measure(
        self, batch: Sequence[Request]
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[list[float], list[float]]]]:
        """The batch's rows (one per request and config) and features (per request)."""
        s = self.setup
        batch_configs = s.batch_configs([r.request_id for r in batch])
        full = s.space.full()
        inputs = {
            k: v.to(self.device) if isinstance(v, torch.Tensor) else v
            for k, v in self.processor([r.image for r in batch], [r.prompt for r in batch]).items()
        }
        prompt_len = int(inputs["input_ids"].shape[1])
        with torch.inference_mode():
            ids, times, feats = self._rounds(inputs, prompt_len, batch_configs)
        rows: list[dict[str, Any]] = []
        features: dict[str, tuple[list[float], list[float]]] = {}
        for b, req in enumerate(batch):
            for config in batch_configs:
                pred, ref = ids[config][b], ids[full][b]
                q = s.metric.score(
                    prediction_text=self.decode(pred),
                    references=req.answer,
                    prediction_ids=pred,
                    full_config_ids=ref,
                )
                rows.append(
                    {
                        "request_id": req.request_id,
                        "task_type": req.task_type,
                        **({"split": req.split} if req.split else {}),
                        **config.values,
                        "quality": q,
                        **{f"latency_ms_{i}": t for i, t in enumerate(times[config])},
                    }
                )
            features[req.request_id] = (feats[0][b].tolist(), feats[1][b].tolist())
        return rows, features

    def _rounds(
        self, inputs: dict[str, Any], prompt_len: int, batch_configs: list[Config]
    ) -> tuple[dict[Config, list[list[int]]], dict[Config, list[float]], Any]:
        """The batch's configs, round-robin: warm-up rounds, then timed rounds.
        Interleaving makes load drift on a shared machine hit all configs alike."""
        s, full = self.setup, self.setup.space.full()
        answer = self.prefill_answer
        if answer is not None:

            def call() -> torch.Tensor:
                return answer(inputs)
        else:

            def call() -> torch.Tensor:
                return self.model.generate(**inputs, **self.gen)

        ids: dict[Config, list[list[int]]] = {}
        times: dict[Config, list[float]] = {c: [] for c in batch_configs}
        feats = None
        for rnd in range(s.warmup + s.repeats):
            for config in batch_configs:
                self.handle.pin(config)
                out, ms = self.timer.time(call)
                self.cost["answer_calls"] += 1
                if rnd >= s.warmup:
                    times[config].append(ms)
                    self.cost["timed_s"] += ms / 1e3
                ids.setdefault(config, out[:, prompt_len:].tolist())
                if config == full and feats is None:  # features of the full-config prefill
                    feats = [t.float().cpu() for t in self.handle.last_features]
        return ids, times, feats


def finish_sweep(
    rows: list[dict[str, Any]],
    features: dict[str, tuple[list[float], list[float]]],
    setup: SweepSetup,
    out_path: Path,
    *,
    cost: dict[str, float],
    where: dict[str, Any],
    backend: dict[str, Any] | None = None,
) -> Any:
    """Write the table, its feature store and the ``.sweep.json`` sidecar from the measured
    rows (any backend); ``where``: :meth:`BatchMeasurer.describe`. Returns the profile (None
    when a sample left a config unmeasured)."""
    space, n_cells = setup.space, len(rows)
    sidecar = {
        "format": "fastctrl-profile-sweep",
        "grid": space.to_dict(),
        "settings": setup.settings,
        **where,
        "n_requests": len(features),
        "n_configs": space.n_configs,
        "cells_measured": n_cells,
        "cells_share": n_cells / max(1, len(features) * space.n_configs),
        "quality_proxy": setup.metric.kind == "agreement",
        "cost": {k: round(v, 3) if isinstance(v, float) else v for k, v in cost.items()},
        "configs": _config_summary(rows, space, setup.repeats),
        "backend": backend or {"name": "local"},
    }
    missing = "impute" if n_cells < len(features) * space.n_configs else "raise"
    profile = write_outputs(rows, features, space, out_path, sidecar, missing)
    log.info(
        "wrote %s (%d requests, %d of %d cells measured) and its feature store; sweep "
        "cost %.1f s wall, %d answer calls",
        out_path,
        len(features),
        n_cells,
        len(features) * space.n_configs,
        cost["wall_s"],
        cost["answer_calls"],
    )
    return profile


def run_sweep(
    model: nn.Module,
    processor: Callable[..., dict[str, torch.Tensor]],
    dataset: Iterable[Any],
    space: ActionSpace,
    out_path: str | Path,
    *,
    warmup: int = 1,
    repeats: int = 3,
    max_new_tokens: int = 4,
    metric: str | Metric | AnswerFn = "auto",
    have_answers: bool | None = None,
    tokens_per_crop: int | None = None,
    resume: bool = True,
    quiet: bool = False,
    total: int | None = None,
    configs: str | ConfigSampler = "all",
    batch_size: int = 1,
    seed: int = 0,
    dataset_name: str | None = None,
    answer_path: str = "auto",
) -> SweepResult:
    """Profile ``model`` on ``dataset`` over the configs of ``space``; see the module doc.

    ``processor(images, prompts)`` must return the model's input tensors for a batch (left
    padding); it also needs ``decode(ids)`` or ``batch_decode(ids)``. ``have_answers``
    (default: whether the first request has an answer) picks the ``auto`` metric.
    ``configs``: ``"all"``, ``"random N"`` or ``"lhs N"`` per request
    (:class:`~fastctrl.profile.configs.ConfigSampler`, seeded by ``seed`` and the request
    id). ``batch_size``: requests run together, one config at a time (a batch measures the
    union of its requests' sampled configs); each request's latency is its batch's.
    ``answer_path``: ``auto`` answers one-token requests with the prefill forward alone
    (see the module doc), ``generate`` always with ``generate()``.
    """
    check_sweep_numbers(warmup, repeats, max_new_tokens, batch_size)
    out_path = check_out_path(out_path)
    if not isinstance(configs, ConfigSampler):
        configs = ConfigSampler.parse(configs, space, seed)
    make_decoder(processor)  # a processor that cannot decode fails before the dataset is read
    requests = iter(as_requests(dataset))
    first = next(requests, None)
    if first is None:
        raise ValueError("the dataset is empty")
    setup = SweepSetup.create(
        space,
        have_answers=first.answer is not None if have_answers is None else have_answers,
        warmup=warmup,
        repeats=repeats,
        max_new_tokens=max_new_tokens,
        metric=metric,
        tokens_per_crop=tokens_per_crop,
        configs=configs,
        batch_size=batch_size,
        dataset_name=dataset_name,
        answer_path=answer_path,
    )
    fp = setup.fingerprint(model)
    partial = out_path.with_name(out_path.name + PARTIAL_SUFFIX)
    rows: list[dict[str, Any]] = []
    features: dict[str, tuple[list[float], list[float]]] = {}
    cost = {"answer_calls": 0, "timed_s": 0.0, "wall_s": 0.0}
    if resume and partial.is_file():
        state = io.read_json(partial, what="partial sweep")
        if state.get("fingerprint") == fp:
            rows, features = state["rows"], {k: tuple(v) for k, v in state["features"].items()}
            cost = state.get("cost", cost)
            log.info("resuming %s: %d requests already measured", partial, len(features))
        else:
            log.warning("%s was written with other settings; starting over", partial)
    resumed = len(features)
    before = dict(cost)
    measured = 0
    t_start = time.perf_counter()
    with BatchMeasurer(model, processor, setup) as measurer:
        bar = tqdm(total=total, desc="profile", unit="req", disable=quiet)
        bar.update(resumed)
        for batch in batches(_chain(first, requests), batch_size, skip=set(features)):
            batch_rows, batch_features = measurer.measure(batch)
            rows += batch_rows
            features.update(batch_features)
            measured += len(batch)
            cost = {
                "answer_calls": before["answer_calls"] + measurer.cost["answer_calls"],
                "timed_s": before["timed_s"] + measurer.cost["timed_s"],
                "wall_s": before["wall_s"] + time.perf_counter() - t_start,
            }
            io.write_json(
                partial,
                {
                    "fingerprint": fp,
                    "settings": setup.settings,
                    "grid": space.to_dict(),
                    "rows": rows,
                    "features": features,
                    "cost": cost,
                },
            )
            bar.update(len(batch))
        bar.close()
        where = measurer.describe()
    profile = finish_sweep(rows, features, setup, out_path, cost=cost, where=where)
    partial.unlink(missing_ok=True)
    return SweepResult(profile, out_path, out_path.with_suffix(SIDECAR_SUFFIX), measured, resumed)


def batches(requests: Iterable[Request], size: int, skip: set[str]) -> Iterable[list[Request]]:
    """Consecutive batches of ``size`` requests, leaving out the ids in ``skip``."""
    batch: list[Request] = []
    for r in requests:
        if r.request_id in skip:
            continue
        batch.append(r)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _chain(first: Request, rest: Iterable[Request]) -> Iterable[Request]:
    yield first
    yield from rest
