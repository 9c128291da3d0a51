"""Sweep a config grid on a transformers VLM and write the profile that ``fastctrl.train``
reads (``--profile``).

For every request (image, prompt, optional answer) and every config of the grid, the model runs
``generate()`` through :func:`fastctrl.hook` with the config pinned, i.e. through exactly the
code path a controller drives at inference time:

- latency: ``warmup`` untimed rounds, then ``repeats`` timed rounds of the whole request
  (prefill plus ``max_new_tokens`` decode steps), synchronised on GPU; a round runs every
  config once (round-robin, so load drift hits all configs alike); stored per repeat in
  ``latency_ms_<i>``; p50/p95 per config go to the ``.sweep.json`` sidecar;
- quality: a pluggable metric (:mod:`fastctrl.profile.metrics`) on the first timed run's
  output; with answers exact match / VQA accuracy, without answers agreement with the full
  configuration's tokens (a proxy, not accuracy);
- features: the pooled image / text features the hook computed in the full-config prefill
  (the same ones a hooked model feeds its controller), written to the feature store.

Resumable: after each request the rows and features so far are written atomically to
``<out>.partial.json``; a new run with the same settings skips the requests already there.
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
from ..inengine import hook
from ..space import ActionSpace, Config
from .metrics import Metric, resolve_metric

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial.json"
SIDECAR_SUFFIX = ".sweep.json"


@dataclass
class Request:
    request_id: str
    image: Any
    prompt: str
    answer: str | Sequence[str] | None
    task_type: str


@dataclass
class SweepResult:
    profile: Any  # fastctrl.profile.table.Profile
    table_path: Path
    sidecar_path: Path
    measured: int
    """Requests measured in this call."""
    resumed: int
    """Requests taken from an interrupted earlier run."""


def as_requests(dataset: Iterable[Any]) -> Iterable[Request]:
    """Accept samples with attributes (``request_id``, ``image``, ``prompt``, ``answer``,
    ``task_type``), dicts with those keys, or tuples ``(image, prompt[, answer])``."""
    for i, item in enumerate(dataset):
        if isinstance(item, dict):
            get = item.get
        elif hasattr(item, "image") and hasattr(item, "prompt"):
            def get(k: str, default: Any = None, _it: Any = item) -> Any:
                return getattr(_it, k, default)
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            vals = dict(zip(("image", "prompt", "answer"), item, strict=False))
            get = vals.get
        else:
            raise TypeError(
                f"dataset item {i}: expected (image, prompt[, answer]), a dict or a sample "
                f"object with image/prompt attributes, got {type(item).__name__}"
            )
        prompt = get("prompt")
        if not isinstance(prompt, str):
            raise TypeError(f"dataset item {i}: prompt must be a str, got {type(prompt).__name__}")
        yield Request(str(get("request_id") or f"req-{i:05d}"), get("image"), prompt,
                      get("answer"), str(get("task_type") or "vqa"))


def _fingerprint(model: nn.Module, space: ActionSpace, settings: dict[str, Any]) -> str:
    cfg = getattr(model, "config", None)
    model_desc = cfg.to_json_string(use_diff=False) if cfg is not None else type(model).__name__
    blob = json.dumps({"model": model_desc, "grid": space.to_dict(), **settings}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_outputs(rows: list[dict[str, Any]], features: dict[str, tuple[list[float], list[float]]],
                  space: ActionSpace, out_path: str | Path, sidecar: dict[str, Any]) -> Any:
    """The output stage: the table + feature store (:mod:`fastctrl.profile.table`) and a JSON
    sidecar with the swept grid and per-config latency percentiles."""
    from .table import FeatureStore, Profile

    out_path = Path(out_path)
    ids = list(features)
    store = FeatureStore(ids, np.array([features[r][0] for r in ids], dtype=np.float32),
                         np.array([features[r][1] for r in ids], dtype=np.float32))
    profile = Profile.from_frame(pd.DataFrame(rows), space, features=store, source="sweep")
    profile.save(out_path)
    io.write_json(out_path.with_suffix(SIDECAR_SUFFIX), sidecar)
    return profile


def _config_summary(rows: list[dict[str, Any]], space: ActionSpace, repeats: int) -> list[dict]:
    df = pd.DataFrame(rows)
    lat_cols = [f"latency_ms_{i}" for i in range(repeats)]
    out = []
    for values, g in df.groupby(list(space.names), sort=True):
        lat = g[lat_cols].to_numpy().ravel()
        out.append({
            **{n: int(v) for n, v in zip(space.names, values, strict=True)},
            "latency_p50_ms": float(np.percentile(lat, 50)),
            "latency_p95_ms": float(np.percentile(lat, 95)),
            "quality_mean": float(g["quality"].mean()),
            "n_requests": int(len(g)),
        })
    return out


def _decoder(processor: Any) -> Callable[[Sequence[int]], str]:
    for name in ("decode", "batch_decode"):
        fn = getattr(processor, name, None)
        if callable(fn):
            if name == "decode":
                return lambda ids: fn(list(ids), skip_special_tokens=True) \
                    if _accepts_skip(fn) else fn(list(ids))
            return lambda ids: fn([list(ids)], skip_special_tokens=True)[0]
    raise TypeError("processor must have decode() or batch_decode() to score generations")


def _accepts_skip(fn: Callable[..., Any]) -> bool:
    import inspect

    try:
        return "skip_special_tokens" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True


def run_sweep(model: nn.Module, processor: Callable[..., dict[str, torch.Tensor]],
              dataset: Iterable[Any], space: ActionSpace, out_path: str | Path, *,
              warmup: int = 1, repeats: int = 3, max_new_tokens: int = 4,
              metric: str | Metric = "auto", have_answers: bool | None = None,
              tokens_per_crop: int | None = None, resume: bool = True, quiet: bool = False,
              total: int | None = None) -> SweepResult:
    """Profile ``model`` on ``dataset`` over every config of ``space``; see the module doc.

    ``processor(images, prompts)`` must return the model's input tensors for a batch of one;
    it also needs ``decode(ids)`` or ``batch_decode(ids)``. ``have_answers`` (default: whether
    the first request has an answer) picks the ``auto`` metric.
    """
    if repeats < 1 or warmup < 0 or max_new_tokens < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, max_new_tokens >= 1; got {repeats}, "
                         f"{warmup}, {max_new_tokens}")
    out_path = Path(out_path)
    if out_path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"out_path must end in .parquet or .csv, got {out_path}")
    decode = _decoder(processor)
    requests = iter(as_requests(dataset))
    first = next(requests, None)
    if first is None:
        raise ValueError("the dataset is empty")
    if have_answers is None:
        have_answers = first.answer is not None
    metric_name, metric_fn = resolve_metric(metric, have_answers)
    settings = {"warmup": warmup, "repeats": repeats, "max_new_tokens": max_new_tokens,
                "metric": metric_name, "tokens_per_crop": tokens_per_crop}
    fp = _fingerprint(model, space, settings)
    partial = out_path.with_name(out_path.name + PARTIAL_SUFFIX)
    rows: list[dict[str, Any]] = []
    features: dict[str, tuple[list[float], list[float]]] = {}
    if resume and partial.is_file():
        state = io.read_json(partial, what="partial sweep")
        if state.get("fingerprint") == fp:
            rows, features = state["rows"], {k: tuple(v) for k, v in state["features"].items()}
            log.info("resuming %s: %d requests already measured", partial, len(features))
        else:
            log.warning("%s was written with other settings; starting over", partial)
    resumed = len(features)

    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    full = space.full()
    configs = list(space.all_configs())
    measured = 0
    handle = hook(model, space=space, tokens_per_crop=tokens_per_crop)
    try:
        bar = tqdm(total=total, desc="profile", unit="req", disable=quiet)
        bar.update(resumed)

        def measure(inputs: dict[str, Any], prompt_len: int) -> tuple[
                dict[Config, list[int]], dict[Config, list[float]]]:
            """Every config of one request, round-robin: warm-up rounds, then timed rounds.
            Interleaving makes load drift on a shared machine hit all configs alike."""
            gen = dict(max_new_tokens=max_new_tokens, do_sample=False)
            ids: dict[Config, list[int]] = {}
            times: dict[Config, list[float]] = {c: [] for c in configs}
            for rnd in range(warmup + repeats):
                for config in configs:
                    handle.pin(config)
                    sync()
                    t0 = time.perf_counter()
                    out = model.generate(**inputs, **gen)
                    sync()
                    if rnd >= warmup:
                        times[config].append((time.perf_counter() - t0) * 1e3)
                    ids.setdefault(config, out[0, prompt_len:].tolist())
                    if config == full:  # features of the full-config prefill
                        feats[0] = tuple(t[0].float().cpu().tolist()
                                         for t in handle.last_features)
            return ids, times

        feats: list[Any] = [None]
        for req in _chain(first, requests):
            if req.request_id in features:
                continue
            inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                      for k, v in processor([req.image], [req.prompt]).items()}
            prompt_len = int(inputs["input_ids"].shape[1])
            with torch.inference_mode():
                ids, times = measure(inputs, prompt_len)
            img, txt = feats[0]
            for config in configs:
                q = float(metric_fn(decode(ids[config]), req.answer, ids[config], ids[full]))
                if not 0.0 <= q <= 1.0:
                    raise ValueError(f"metric {metric_name} returned {q}, outside [0, 1]")
                rows.append({"request_id": req.request_id, "task_type": req.task_type,
                             **config.values, "quality": q,
                             **{f"latency_ms_{i}": t for i, t in enumerate(times[config])}})
            features[req.request_id] = (img, txt)
            measured += 1
            io.write_json(partial, {"fingerprint": fp, "settings": settings,
                                    "grid": space.to_dict(), "rows": rows,
                                    "features": features})
            bar.update(1)
        bar.close()
    finally:
        handle.remove()

    sidecar = {
        "format": "fastctrl-profile-sweep", "grid": space.to_dict(), "settings": settings,
        "model": type(model).__name__, "family": handle.adapter.family,
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "n_requests": len(features), "n_configs": len(configs),
        "quality_proxy": metric_name == "agreement",
        "configs": _config_summary(rows, space, repeats),
    }
    profile = write_outputs(rows, features, space, out_path, sidecar)
    partial.unlink(missing_ok=True)
    log.info("wrote %s (%d requests x %d configs) and its feature store", out_path,
             len(features), len(configs))
    return SweepResult(profile, out_path, out_path.with_suffix(SIDECAR_SUFFIX), measured, resumed)


def _chain(first: Request, rest: Iterable[Request]) -> Iterable[Request]:
    yield first
    yield from rest
